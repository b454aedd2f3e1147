"""cffi build of the C kernel (API, out-of-line mode): ``edgebnn.kernels._bnn``.

setup.py names it in ``cffi_modules``. Extra compiler flags come from the
environment variable EDGEBNN_CFLAGS; on a 32-bit ARM board whose CPU reports
NEON, NEON is switched on (Debian's armhf compiler does not assume it).
"""
import os
import platform
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def declarations():
    """bnn.h without its preprocessor lines, which cdef does not take."""
    with open(os.path.join(HERE, "bnn.h")) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


def compile_flags():
    # no fused multiply-add: float results must round as NumPy's do
    flags = ["-O3", "-ffp-contract=off"]
    if re.match(r"armv7", platform.machine()) and _cpu_reports("neon"):
        flags += ["-mfpu=neon-vfpv4"]
    return flags + os.environ.get("EDGEBNN_CFLAGS", "").split()


def _cpu_reports(feature):
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(rf"^(Features|flags)\s*:.*\b{feature}\b", f.read(), re.M) is not None
    except OSError:
        return False


ffi = FFI()
ffi.cdef(declarations())
ffi.set_source("edgebnn.kernels._bnn", '#include "bnn.h"',
               sources=[os.path.relpath(os.path.join(HERE, "bnn.c"))],
               include_dirs=[os.path.relpath(HERE)],
               depends=[os.path.relpath(os.path.join(HERE, name))
                        for name in ("bnn.h", "bnn_kernels.inc")],
               libraries=["m"], extra_compile_args=compile_flags())

if __name__ == "__main__":
    ffi.compile(verbose=True)
