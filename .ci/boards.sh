#!/usr/bin/env bash
# The package on emulated boards: 32-bit ARM (Raspberry Pi 2: ARMv7 Cortex-A7
# with NEON, armhf) and 32-bit x86 (Intel Edison: Silvermont with POPCNT;
# older Bonnell Atoms such as the N270 without it). Run as root on a Debian 12
# machine (it installs what it needs with apt):
#
#   sudo bash .ci/boards.sh
#
# 1. The C kernel's self-test, cross-compiled strictly for each board and run
#    under qemu-user with the board's CPU model: every run must print "ok",
#    the popcount path expected on that CPU and the host build's checksum
#    (the self-test runs every path the CPU supports; each must agree).
#    Negative controls prove the emulated CPUs lack what they should lack: a
#    NEON build dies with SIGILL on a Cortex-A7 without NEON, a -mpopcnt build
#    on the N270.
# 2. The whole Python package in Debian bookworm roots, the way README.md
#    says a fleet of boards gets it: a wheel built once on a board with a
#    compiler (the C kernel built by the root's compiler, csrc/build.py
#    reading the board's /proc/cpuinfo), then installed with pip on a clean
#    root of the same board that has no compiler at all; the popcount path
#    checked there, then the tests (the kernel tests on both backends):
#      armhf Pi 2, qemu cortex-a7 (NEON)       the suite (see PI2_TESTS below)
#      armhf, qemu cortex-a7,neon=off          kernel and binary-layer tests
#      i386 natively (host CPU, POPCNT)        the whole suite
#      the same i386 install on qemu -cpu n270 kernel and binary-layer tests
#
# The bookworm roots are cached under $EDGEBNN_BOARDS_CACHE (default
# /var/cache/edgebnn-boards), keyed by suite, mirror and package list; each
# run works on an overlay of the cached root, so the cache stays pristine.
# EDGEBNN_BOARDS_FULL=1 runs the whole suite on the Pi 2 board too (minutes
# more); EDGEBNN_BOARDS_INSN=1 adds .ci/boards/insn.sh's instruction counts.
# Prints a summary; exit status 0 only when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
START=$SECONDS
ulimit -c 0                      # the SIGILL controls must not leave core files

CACHE=${EDGEBNN_BOARDS_CACHE:-/var/cache/edgebnn-boards}
MIRROR=${EDGEBNN_BOARDS_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
STEP_TIMEOUT=${EDGEBNN_BOARDS_TIMEOUT:-900}   # seconds, per emulated step
HOST_PACKAGES=(gcc libc6-dev git python3 util-linux
               gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
               gcc-i686-linux-gnu libc6-dev-i386-cross
               qemu-user-static binfmt-support mmdebstrap arch-test)
ROOT_PACKAGES=(dash python3 python3-numpy python3-cffi python3-h5py python3-pytest
               python3-dev python3-pip python3-setuptools python3-wheel
               gcc libc6-dev)
ROOT_FIXUPS_VERSION=1            # bump when prepare_root changes
STRICT=(-std=c99 -Wall -Wextra -Werror -pedantic -O2)
# What runs where. i386 runs the whole suite natively. Under emulation an
# interpreter start-up costs seconds, so the Pi 2 board runs the whole suite
# but the test files that start Python processes (servers, command lines:
# found by grep below; the same pure Python on the same bookworm as the i386
# run), unless EDGEBNN_BOARDS_FULL=1; the other emulated CPUs run the tests of
# what depends on the CPU: the C kernel and the binary layers, both backends.
FULL=${EDGEBNN_BOARDS_FULL:-0}
CPU_TESTS=(tests/test_kernels.py tests/test_binary_layers.py)
# Silvermont (Edison) as qemu has no model of it: the N270 (Bonnell: SSE3,
# SSSE3, MOVBE) plus what Silvermont added and gcc's -march=silvermont may use
# (SSE4.1/4.2, POPCNT, AES, PCLMUL, RDRAND; not PREFETCHW, which TCG lacks).
SILVERMONT_CPU=n270,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq,+rdrand

WORK=$(mktemp -d /tmp/edgebnn-boards.XXXXXX)
RESULTS=$WORK/results
: > "$RESULTS"
PIDS=()

unmount_all() {
    # everything mounted under $WORK, deepest first
    local point
    for point in $(awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true
    done
}
cleanup() {
    local pid proc
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for proc in /proc/[0-9]*; do      # what still runs in our roots
        case $(readlink "$proc/root" 2>/dev/null) in
            "$WORK"/*) kill -9 "${proc#/proc/}" 2>/dev/null || true ;;
        esac
    done
    wait 2>/dev/null || true
    unmount_all
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - START)); }
pass() { printf 'PASS  %s\n' "$*" | tee -a "$RESULTS"; }
fail() { printf 'FAIL  %s\n' "$*" | tee -a "$RESULTS"; }

# --- 1. host tools ----------------------------------------------------------
say "installing host packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >"$WORK/apt.log" 2>&1 || tail -20 "$WORK/apt.log"   # the install decides
apt-get install -y -q --no-install-recommends "${HOST_PACKAGES[@]}" >>"$WORK/apt.log" 2>&1 \
    || { tail -40 "$WORK/apt.log"; exit 1; }

# binfmt_misc is not mounted on a fresh machine without systemd; qemu-arm then
# registers with the fix-binary flag, so chroots need no qemu copied in.
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-arm 2>/dev/null; then
    echo "qemu-arm is not registered with binfmt_misc" >&2
    exit 1
fi
ARM_INTERPRETER=$(awk '/^interpreter/ {print $2}' /proc/sys/fs/binfmt_misc/qemu-arm)
ARM_FIX_BINARY=$(awk '/^flags:/ {print ($2 ~ /F/) ? 1 : 0}' /proc/sys/fs/binfmt_misc/qemu-arm)

# --- 2. bookworm roots, cached (built in the background while step 3 runs) --
root_key() {   # arch -> cache key
    printf '%s\n' "$ROOT_FIXUPS_VERSION" "$1" "$SUITE" "$MIRROR" "${ROOT_PACKAGES[@]}" \
        | sha256sum | cut -c1-16
}

prepare_root() {   # root triplet: the fix-ups an extract root needs
    local root=$1 lib=$1/usr/lib/$2
    ln -sfn gcc "$root/usr/bin/cc"                  # an alternatives link
    local name impl
    for name in blas lapack; do                     # alternatives links too
        for impl in "openblas-pthread/lib$name.so.3" "openblas/lib$name.so.3" \
                    "$name/lib$name.so.3" "atlas/lib$name.so.3"; do
            if [ -e "$lib/$impl" ]; then
                ln -sfn "$impl" "$lib/lib$name.so.3"
                break
            fi
        done
        [ -e "$lib/lib$name.so.3" ] || { echo "no lib$name.so.3 in $lib" >&2; return 1; }
    done
    mkdir -p "$root/proc" "$root/dev" "$root/root" "$root/usr/local/bin" "$root/src"
    mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
    [ -e "$root/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    [ -e "$root/etc/group" ] || printf 'root:x:0:\n' > "$root/etc/group"
    [ -e "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$root/etc/hosts"
    # Maintainer scripts did not run, so nothing is byte-compiled: compile
    # with the host's Python when it is the same version (bytecode does not
    # depend on the architecture); emulated start-ups are then 3x faster.
    local version magic
    version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    magic=$(python3 -c 'import importlib.util as u; print(int.from_bytes(u.MAGIC_NUMBER[:2], "little"))' \
            2>/dev/null || true)
    if [ -n "$version" ] && [ -n "$magic" ] && grep -qs "^MAGIC_NUMBER = ($magic)" \
            "$root/usr/lib/python$version/importlib/_bootstrap_external.py"; then
        python3 -m compileall -qq -j0 -s "$root" -p / \
            "$root/usr/lib/python$version" "$root/usr/lib/python3/dist-packages" >/dev/null 2>&1 || true
    fi
}

build_root() {   # arch triplet -> prints the cached root's path
    local arch=$1 triplet=$2 dir
    dir=$CACHE/$arch-$(root_key "$arch")
    if [ ! -e "$dir/complete" ]; then
        local tmp=$dir.tmp.$$
        rm -rf --one-file-system "$tmp"
        mkdir -p "$tmp"
        local packages
        packages=$(IFS=,; echo "${ROOT_PACKAGES[*]}")
        # extract: no maintainer scripts run under emulation (the apt variant
        # takes minutes); only the main suite (the security suite's armhf and
        # i386 indexes are not always there).
        mmdebstrap --quiet --arch="$arch" --variant=extract --include="$packages" \
            "$SUITE" "$tmp/root" "deb $MIRROR $SUITE main" >"$tmp/mmdebstrap.log" 2>&1 \
            || { tail -30 "$tmp/mmdebstrap.log" >&2; return 1; }
        prepare_root "$tmp/root" "$triplet"
        touch "$tmp/complete"
        # older roots of this arch (another package list) go
        find "$CACHE" -maxdepth 1 -name "$arch-*" ! -name "$(basename "$tmp")" \
            -exec rm -rf --one-file-system {} +
        mv "$tmp" "$dir"
    fi
    echo "$dir/root"
}

say "bookworm roots (cache $CACHE)"
mkdir -p "$CACHE"
(build_root armhf arm-linux-gnueabihf > "$WORK/root-armhf") 2>"$WORK/root-armhf.log" &
ROOT_PIDS=($!)
(build_root i386 i386-linux-gnu > "$WORK/root-i386") 2>"$WORK/root-i386.log" &
ROOT_PIDS+=($!)
PIDS+=("${ROOT_PIDS[@]}")

# --- 3. the C self-test, cross-compiled, under qemu-user ---------------------
say "C self-test on emulated CPUs"
cc "${STRICT[@]}" -Icsrc csrc/bnn.c csrc/selftest.c -lm -o "$WORK/selftest-host"
HOST_LINE=$("$WORK/selftest-host")
REFERENCE=$(sed -n 's/.*checksum \([0-9a-f]*\).*/\1/p' <<<"$HOST_LINE")
echo "host x86-64: $HOST_LINE"
[ -n "$REFERENCE" ] || { fail "host self-test printed no checksum: $HOST_LINE"; exit 1; }

cross_build() {   # name compiler flags...
    local name=$1 compiler=$2
    shift 2
    if ! "$compiler" "${STRICT[@]}" "$@" -Icsrc csrc/bnn.c csrc/selftest.c -lm \
            -o "$WORK/selftest-$name" 2>"$WORK/build-$name.log"; then
        fail "build $name ($compiler ${*}): $(head -5 "$WORK/build-$name.log")"
        return 1
    fi
}

cross_run() {   # name qemu cpu expected-path
    local name=$1 qemu=$2 cpu=$3 expected=$4 sysroot line status
    case $qemu in
        qemu-arm-static) sysroot=/usr/arm-linux-gnueabihf ;;
        *) sysroot=/usr/i686-linux-gnu ;;
    esac
    [ -x "$WORK/selftest-$name" ] || { fail "$name on $cpu: not built"; return; }
    status=0
    line=$(timeout 120 "$qemu" -L "$sysroot" -cpu "$cpu" "$WORK/selftest-$name" 2>&1) || status=$?
    line=${line//$'\n'/ | }
    local what="self-test $name on qemu -cpu $cpu"
    if [ "$expected" = SIGILL ]; then
        if [ "$status" -eq 132 ]; then
            pass "$what: SIGILL, as it must (negative control)"
        else
            fail "$what: expected SIGILL (status 132), got status $status: $line"
        fi
        return
    fi
    local want="bnn selftest: ok, popcount path $expected, checksum $REFERENCE"
    if [ "$status" -eq 0 ] && [ "$line" = "$want" ]; then
        pass "$what: ok, path $expected, checksum $REFERENCE"
    else
        fail "$what: status $status, printed '$line', expected '$want'"
    fi
}

ARM_A7=(-mcpu=cortex-a7 -mfloat-abi=hard)
cross_build armhf-neon arm-linux-gnueabihf-gcc "${ARM_A7[@]}" -mfpu=neon-vfpv4 || true
cross_build armhf-vfp arm-linux-gnueabihf-gcc "${ARM_A7[@]}" -mfpu=vfpv4 || true
cross_build i686 i686-linux-gnu-gcc -march=i686 || true
cross_build bonnell i686-linux-gnu-gcc -march=bonnell || true
cross_build silvermont i686-linux-gnu-gcc -march=silvermont || true
cross_build i686-popcnt i686-linux-gnu-gcc -march=i686 -mpopcnt || true

cross_run armhf-neon qemu-arm-static cortex-a7 neon
cross_run armhf-vfp qemu-arm-static cortex-a7 portable
cross_run armhf-vfp qemu-arm-static cortex-a7,neon=off portable
cross_run armhf-neon qemu-arm-static cortex-a7,neon=off SIGILL
cross_run i686 qemu-i386-static n270 portable
cross_run bonnell qemu-i386-static n270 portable
cross_run i686 qemu-i386-static "$SILVERMONT_CPU" popcnt
cross_run silvermont qemu-i386-static "$SILVERMONT_CPU" popcnt
cross_run i686-popcnt qemu-i386-static n270 SIGILL
cross_run i686 qemu-i386-static max avx2       # the run-time AVX2 path, 32-bit

# --- 4. the Python package in the roots --------------------------------------
say "waiting for the bookworm roots"
for pid in "${ROOT_PIDS[@]}"; do
    wait "$pid" || true
done
ROOT_ARMHF=$(cat "$WORK/root-armhf" 2>/dev/null || true)
ROOT_I386=$(cat "$WORK/root-i386" 2>/dev/null || true)
[ -n "$ROOT_ARMHF" ] || fail "armhf root: $(tail -5 "$WORK/root-armhf.log")"
[ -n "$ROOT_I386" ] || fail "i386 root: $(tail -5 "$WORK/root-i386.log")"

git ls-files -z --cached --others --exclude-standard > "$WORK/files"
PI2_TESTS=(tests)
SPAWNING=()
if [ "$FULL" != 1 ]; then
    mapfile -t SPAWNING < <(tr '\0' '\n' < "$WORK/files" | grep -E '^tests/test_.*\.py$' \
        | xargs -r grep -lE 'subprocess|Popen|sys\.executable|multiprocessing' | sort || true)
    for file in "${SPAWNING[@]}"; do
        PI2_TESTS+=("--ignore=$file")
    done
fi

# A board: an overlay over a cached root with the project copied into /src,
# /proc, /dev and, for ARM, a /proc/cpuinfo like the board's (qemu-user 7.2
# shows the host's, which would hide NEON from csrc/build.py). A chain of
# boards runs in a background subshell and sets, per board:
#   BOARD        short name (logs)        LABEL   what the summary calls it
#   ROOT         the board's root         LAUNCH  prefix of chroot (linux32)
#   BOARD_ENV    QEMU_CPU=... etc.        PREFIX  prefix of python3 in the root
board_up() {   # cached-root cpuinfo-file-or-empty
    local lower=$1 cpuinfo=$2 dir=$WORK/$BOARD
    ROOT=$dir/root
    mkdir -p "$dir/upper" "$dir/work" "$ROOT" || return 1
    if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" \
            "$ROOT" 2>/dev/null; then
        cp -a "$lower/." "$ROOT/" || return 1     # no overlayfs here: a copy
    fi
    (cd "$SRC" && xargs -0 cp --parents -t "$ROOT/src" < "$WORK/files") || return 1
    mount -t proc proc "$ROOT/proc" || return 1
    mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" || return 1
    if [ -n "$cpuinfo" ]; then
        cp "$cpuinfo" "$dir/cpuinfo" && mount --bind "$dir/cpuinfo" "$ROOT/proc/cpuinfo" || return 1
    fi
    if [ "$ARM_FIX_BINARY" != 1 ] && [ -n "$ARM_INTERPRETER" ]; then
        mkdir -p "$ROOT$(dirname "$ARM_INTERPRETER")" && cp -L "$ARM_INTERPRETER" "$ROOT$ARM_INTERPRETER"
    fi
}

in_board() {   # command...: run in /src of the board's root, with a clean environment
    timeout "$STEP_TIMEOUT" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
        LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_CACHE_DIR=1 \
        "${BOARD_ENV[@]}" "${LAUNCH[@]}" chroot "$ROOT" /bin/sh -c 'cd /src && exec "$@"' sh "$@"
}

board_wheel() {   # pip wheel . on a board with a compiler: the wheel lands in $WORK/wheels-$BOARD
    local log=$WORK/$BOARD-wheel.log t0=$SECONDS
    if in_board "${PREFIX[@]}" /usr/bin/python3 -m pip wheel --no-build-isolation --no-deps \
            -w /wheels . >"$log" 2>&1 && mkdir -p "$WORK/wheels-$BOARD" \
            && cp "$ROOT"/wheels/edgebnn-*.whl "$WORK/wheels-$BOARD/"; then
        WHEELS=$WORK/wheels-$BOARD
        pass "$LABEL: pip wheel . ($((SECONDS - t0)) s): $(basename "$WHEELS"/*.whl)"
    else
        fail "$LABEL: pip wheel . failed: $(tail -5 "$log" | tr '\n' ' ')"
        return 1
    fi
}

board_install_wheel() {   # on a fresh root of the board, with every compiler removed: pip install the wheel
    local log=$WORK/$BOARD-pip.log t0=$SECONDS
    rm -rf "$ROOT"/usr/bin/*gcc* "$ROOT"/usr/bin/cc "$ROOT"/usr/bin/c89* "$ROOT"/usr/bin/c99* \
        "$ROOT"/usr/bin/*cpp* "$ROOT"/usr/lib/gcc "$ROOT"/usr/libexec/gcc
    if in_board /bin/sh -c 'command -v cc || command -v gcc || ls /usr/lib/gcc' >/dev/null 2>&1; then
        fail "$LABEL: a compiler is still in the root"
        return 1
    fi
    mkdir -p "$ROOT/wheels" && cp "$WHEELS"/edgebnn-*.whl "$ROOT/wheels/"
    if in_board "${PREFIX[@]}" /usr/bin/python3 -m pip install --no-index --no-deps \
            --break-system-packages /wheels/"$(basename "$WHEELS"/*.whl)" >"$log" 2>&1; then
        pass "$LABEL: no compiler in the root; pip install of the wheel ($((SECONDS - t0)) s)"
    else
        fail "$LABEL: pip install of the wheel failed: $(tail -5 "$log" | tr '\n' ' ')"
        return 1
    fi
}

board_build_then_install() {   # cached-root cpuinfo: a wheel on a board with a compiler, installed on one without
    local name=$BOARD label=$LABEL
    BOARD=$name-build LABEL="$label, with a compiler"
    board_up "$1" "$2" || { fail "$LABEL: root not set up"; return 1; }
    board_wheel || return 1
    BOARD=$name LABEL=$label
    board_up "$1" "$2" || { fail "$LABEL: root not set up"; return 1; }
    board_install_wheel
}

CHECK_KERNEL='import edgebnn.kernels as k
assert k.c_available(), k._c_error
from edgebnn.kernels import c_library
print(c_library.popcount_path)'

board_path() {   # expected popcount path
    local expected=$1 path log=$WORK/$BOARD-path.log
    if path=$(in_board "${PREFIX[@]}" /usr/bin/python3 -c "$CHECK_KERNEL" 2>"$log"); then
        if [ "$path" = "$expected" ]; then
            pass "$LABEL: C kernel built, popcount path $path"
        else
            fail "$LABEL: C kernel built, popcount path '$path', expected $expected"
        fi
    else
        fail "$LABEL: C kernel not usable: $(tail -3 "$log" | tr '\n' ' ')"
    fi
}

board_tests() {   # pytest arguments...
    local log=$WORK/$BOARD-pytest.log t0=$SECONDS status=0 last
    in_board "${PREFIX[@]}" /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1 \
        || status=$?
    last=$(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -1 | sed 's/^=* *//; s/ *=*$//' \
           || true)
    if [ "$status" -eq 0 ]; then
        pass "$LABEL: pytest $*: $last"
    else
        fail "$LABEL: pytest $* exited $status: ${last:-no summary line}"
        local failed
        failed=$(grep -E '^(FAILED|ERROR)' "$log" || true)
        if [ -n "$failed" ]; then
            head -8 <<<"$failed" | sed 's/^/      /' | tee -a "$RESULTS"
            if [ "$(wc -l <<<"$failed")" -gt 8 ]; then
                printf '      ... %d more\n' $(( $(wc -l <<<"$failed") - 8 )) | tee -a "$RESULTS"
            fi
        fi
        { echo "---- $log (last 80 lines)"; tail -80 "$log"; } >> "$WORK/failure-logs-$BOARD"
    fi
}

PI2_CPUINFO=$WORK/cpuinfo-pi2
{
    for cpu in 0 1 2 3; do
        printf 'processor\t: %d\nmodel name\t: ARMv7 Processor rev 5 (v7l)\nBogoMIPS\t: 38.40\n' "$cpu"
        printf 'Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xc07\nCPU revision\t: 5\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: a01041\n'
} > "$PI2_CPUINFO"
sed 's/ neon / /' "$PI2_CPUINFO" > "$WORK/cpuinfo-noneon"

# Two chains at once: the machine has two cores, and emulation keeps one busy.
chain_arm_neon() {
    RESULTS=$WORK/results-arm
    # Raspberry Pi 2: csrc/build.py finds NEON in /proc/cpuinfo; the full suite
    BOARD=armhf-neon LABEL="armhf Pi 2 (qemu cortex-a7, NEON)"
    BOARD_ENV=(QEMU_CPU=cortex-a7) LAUNCH=() PREFIX=()
    board_build_then_install "$ROOT_ARMHF" "$PI2_CPUINFO" || return 0
    board_path neon
    board_tests "${PI2_TESTS[@]}"
}

chain_x86_then_arm_scalar() {
    RESULTS=$WORK/results-x86
    # i386 natively on the host CPU (POPCNT, as on the Edison's Silvermont;
    # AVX2 too on most hosts, AVX-512 VPOPCNTDQ on some, which the run-time
    # dispatch then takes)
    BOARD=i386 LABEL="i386 native (host CPU)"
    BOARD_ENV=() LAUNCH=(linux32) PREFIX=()
    local want=portable flag
    grep -qw popcnt /proc/cpuinfo && want=popcnt
    grep -qw popcnt /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo && want=avx2
    if [ "$want" = avx2 ]; then
        want=avx512
        for flag in avx512f avx512bw avx512_vpopcntdq; do
            grep -qw "$flag" /proc/cpuinfo || want=avx2
        done
    fi
    if board_build_then_install "$ROOT_I386" ""; then
        board_path "$want"
        board_tests tests
        # the same install on an emulated N270 (Bonnell: no POPCNT, no SSE4):
        # the run-time dispatch must take the portable path. Subprocesses the
        # tests start (servers) run natively: qemu-user does not follow exec.
        BOARD=i386-n270 LABEL="i386 on qemu -cpu n270 (no POPCNT)"
        PREFIX=(/usr/local/bin/qemu-i386-static -cpu n270)
        cp /usr/bin/qemu-i386-static "$ROOT/usr/local/bin/"
        board_path portable
        board_tests "${CPU_TESTS[@]}"
    fi
    # ARMv7 without NEON, Debian armhf's default: csrc/build.py must not switch
    # NEON on, and the build must run where a NEON instruction is SIGILL
    BOARD=armhf-vfp LABEL="armhf without NEON (qemu cortex-a7,neon=off)"
    BOARD_ENV=("QEMU_CPU=cortex-a7,neon=off") LAUNCH=() PREFIX=()
    board_build_then_install "$ROOT_ARMHF" "$WORK/cpuinfo-noneon" || return 0
    board_path portable
    board_tests "${CPU_TESTS[@]}"
}

if [ -n "$ROOT_ARMHF" ] && [ -n "$ROOT_I386" ]; then
    say "the package in the bookworm roots (two chains at once)"
    chain_arm_neon > "$WORK/chain-arm.out" 2>&1 &
    CHAIN_PIDS=($!)
    chain_x86_then_arm_scalar > "$WORK/chain-x86.out" 2>&1 &
    CHAIN_PIDS+=($!)
    PIDS+=("${CHAIN_PIDS[@]}")
    for pid in "${CHAIN_PIDS[@]}"; do
        wait "$pid" || fail "a board chain exited with status $?"
    done
    cat "$WORK/chain-arm.out" "$WORK/chain-x86.out"
    cat "$WORK/results-arm" "$WORK/results-x86" >> "$RESULTS" 2>/dev/null || true
fi

# --- 5. optional: guest instructions per sample (informational) --------------
if [ "${EDGEBNN_BOARDS_INSN:-0}" = 1 ]; then
    say "guest instructions per sample, binary 784-1000-500-10 (.ci/boards/insn.sh)"
    if bash .ci/boards/insn.sh > "$WORK/insn.out" 2>&1; then
        cat "$WORK/insn.out"
        pass "instruction counts: every build gives the same scores"
    else
        cat "$WORK/insn.out"
        fail "instruction counts (.ci/boards/insn.sh)"
    fi
fi

# --- 6. summary ---------------------------------------------------------------
passed=$(grep -c '^PASS' "$RESULTS" || true)
failed=$(grep -c '^FAIL' "$RESULTS" || true)
cat "$WORK"/failure-logs-* 2>/dev/null || true
printf '\n==================== edgebnn boards summary ====================\n'
printf 'host x86-64 reference: %s\n' "$HOST_LINE"
if [ "${#SPAWNING[@]}" -gt 0 ]; then
    printf 'not under ARM emulation (they start Python processes; run natively on i386): %s\n' \
        "${SPAWNING[*]}"
fi
grep -E '^(PASS|FAIL|      )' "$RESULTS"
printf -- '----------------------------------------------------------------\n'
if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then
    printf 'boards: all %d checks passed in %d s\n' "$passed" $((SECONDS - START))
    exit 0
fi
printf 'boards: %d of %d checks FAILED (%d s)\n' "$failed" $((passed + failed)) $((SECONDS - START))
exit 1
