#!/usr/bin/env bash
# Guest instructions per sample of the binary 784-1000-500-10 in the C kernel,
# on the emulated boards (informational; instructions are not cycles):
#
#   sudo bash .ci/boards/insn.sh          (or EDGEBNN_BOARDS_INSN=1 .ci/boards.sh)
#
# How: .ci/boards/insn_driver.c makes the kernel calls the runtime makes for
# one sample, SAMPLES times; .ci/boards/insn_plugin.c, a QEMU TCG plugin built
# against qemu-plugin.h from Debian's qemu source package, counts the guest
# instructions executed under the plugin-enabled qemu-user (Debian's
# qemu-user-static cannot load plugins). Per sample = (count with N samples
# - count with 0) / N, so start-up and set-up cancel. Each build uses the
# flags the package's own build gets on that board (Debian's Python flags,
# -O3 from csrc/build.py, -mfpu=neon-vfpv4 where NEON is found), plus the
# -march=bonnell / -march=silvermont builds. Every build must print the same
# score checksum.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${EDGEBNN_BOARDS_CACHE:-/var/cache/edgebnn-boards}
MIRROR=${EDGEBNN_BOARDS_MIRROR:-http://deb.debian.org/debian}
SAMPLES=${EDGEBNN_BOARDS_INSN_SAMPLES:-100}
SILVERMONT_CPU=n270,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq,+rdrand
WORK=$(mktemp -d /tmp/edgebnn-insn.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

export DEBIAN_FRONTEND=noninteractive
if ! command -v qemu-arm >/dev/null || ! command -v arm-linux-gnueabihf-gcc >/dev/null \
        || ! command -v i686-linux-gnu-gcc >/dev/null; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends qemu-user gcc xz-utils \
        gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-i686-linux-gnu libc6-dev-i386-cross \
        >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; exit 1; }
fi

# qemu-plugin.h of the installed qemu, from Debian's source package (fetched
# with a private apt state, so the machine's sources stay as they are)
version=$(dpkg-query -W -f '${source:Version}' qemu-user)
header_dir=$CACHE/qemu-plugin-$version
if [ ! -e "$header_dir/qemu-plugin.h" ]; then
    apt_dir=$WORK/apt
    mkdir -p "$apt_dir/lists/partial" "$WORK/source"
    echo "deb-src $MIRROR bookworm main" > "$apt_dir/sources.list"
    apt_options=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
                 -o "Dir::State::Lists=$apt_dir/lists")
    apt-get "${apt_options[@]}" update -q >"$WORK/apt-src.log" 2>&1
    (cd "$WORK/source" && apt-get "${apt_options[@]}" source --download-only "qemu=$version" \
        >>"$WORK/apt-src.log" 2>&1) || (cd "$WORK/source" && apt-get "${apt_options[@]}" source \
        --download-only qemu >>"$WORK/apt-src.log" 2>&1) || { tail -20 "$WORK/apt-src.log"; exit 1; }
    orig=$(ls "$WORK"/source/qemu_*.orig.tar.*)
    member=$(tar -tf "$orig" | grep '/include/qemu/qemu-plugin\.h$')
    tar -xf "$orig" -C "$WORK/source" "$member"
    mkdir -p "$header_dir"
    cp "$WORK/source/$member" "$header_dir/qemu-plugin.h"
fi
gcc -O2 -shared -fPIC -Wall -Wextra -Werror -I"$header_dir" .ci/boards/insn_plugin.c -o "$WORK/insn.so"

# Debian's Python extension flags, then csrc/build.py's
PYFLAGS=(-DNDEBUG -fwrapv -fstack-protector-strong -fPIC -O3)
count() {   # name qemu cpu sysroot compiler flags...
    local name=$1 qemu=$2 cpu=$3 sysroot=$4 compiler=$5
    shift 5
    "$compiler" "${PYFLAGS[@]}" "$@" -Icsrc csrc/bnn.c .ci/boards/insn_driver.c -lm -o "$WORK/$name"
    local n counts=() line lines=()
    for n in 0 "$SAMPLES"; do
        line=$("$qemu" -L "$sysroot" -cpu "$cpu" -plugin "$WORK/insn.so" -d plugin \
               -D "$WORK/$name.$n.log" "$WORK/$name" "$n")
        lines+=("$line")
        counts+=("$(awk '/^insns/ {print $2}' "$WORK/$name.$n.log")")
    done
    printf '%-42s %-18s %-9s %12d   %s\n' "$name" "${cpu/$SILVERMONT_CPU/silvermont-model}" "$(awk '{print $2}' <<<"${lines[1]}")" \
        $(( (counts[1] - counts[0]) / SAMPLES )) "$(awk '{print $NF}' <<<"${lines[1]}")"
}

ARM=(qemu-arm /usr/arm-linux-gnueabihf arm-linux-gnueabihf-gcc)
X86=(qemu-i386 /usr/i686-linux-gnu i686-linux-gnu-gcc)
{
    printf '%-42s %-18s %-9s %12s   %s\n' build "qemu -cpu" path insns/sample checksum
    count "armhf Debian default + NEON (Pi 2 build)" "${ARM[0]}" cortex-a7 "${ARM[@]:1}" -mfpu=neon-vfpv4
    count "armhf Debian default (no NEON)" "${ARM[0]}" cortex-a7,neon=off "${ARM[@]:1}"
    count "i686 Debian default (package build)" "${X86[0]}" n270 "${X86[@]:1}"
    count "i686 Debian default (package build)" "${X86[0]}" "$SILVERMONT_CPU" "${X86[@]:1}"
    count "i686 -march=bonnell" "${X86[0]}" n270 "${X86[@]:1}" -march=bonnell
    count "i686 -march=silvermont" "${X86[0]}" "$SILVERMONT_CPU" "${X86[@]:1}" -march=silvermont
} | tee "$WORK/table"
if [ "$(awk 'NR > 1 {print $NF}' "$WORK/table" | sort -u | wc -l)" -ne 1 ]; then
    echo "insn: the builds disagree on the scores' checksum" >&2
    exit 1
fi
