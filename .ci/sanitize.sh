#!/usr/bin/env bash
# The C kernel under AddressSanitizer and UndefinedBehaviorSanitizer: its C
# self-test on every popcount path (each one the CPU supports, and the
# portable-only build), then the Python kernel, layer and path tests
# against an instrumented build, made in a copy of the tree so the installed
# build stays as it is. Any report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q setuptools cffi     # for the in-place build below
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for flags in "" "-DBNN_PORTABLE_ONLY"; do
    cc -std=c99 -Wall -Wextra -Werror -pedantic $SAN $flags -Icsrc csrc/bnn.c csrc/selftest.c -lm \
        -o "$work/selftest"
    "$work/selftest"
done

git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
(cd "$work" && EDGEBNN_CFLAGS="$SAN" python3 setup.py -q build_ext --inplace >/dev/null)
# the copy importable as edgebnn, ahead of the installed package: the folders
# laid out as setup.py installs them (runtime/ is the package)
mkdir "$work/site"
ln -s "$work/runtime" "$work/site/edgebnn"
for part in converters bench models; do ln -s "$work/$part" "$work/runtime/$part"; done
preload="$(cc -print-file-name=libasan.so):$(cc -print-file-name=libubsan.so)"
(cd "$work" && PYTHONPATH="$work/site" LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 python3 -c \
    'import edgebnn.kernels.c_library as c, sys; assert c.__file__.startswith(sys.argv[1]), c.__file__' \
    "$work/site/")
(cd "$work" && PYTHONPATH="$work/site" LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 \
    python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_binary_layers.py \
        tests/test_float_conv.py tests/test_dense_int8.py \
        tests/test_popcount_paths.py)
