"""edgebnn: embedded inference of float and binarized networks for IoT boards.

The repository's folders install under one import package, so nothing
generic lands at the top of site-packages:

    runtime/     -> edgebnn               (from edgebnn import Runtime)
    converters/  -> edgebnn.converters
    bench/       -> edgebnn.bench
    models/      -> edgebnn.models        (the demo models, as package data)

The C kernel is optional: when the system compiler cannot build it, the
package still installs and runs on the kernel's NumPy twin, and its version
carries the local label ``+numpy`` (as ``torch 2.13.0+cpu`` names its build),
so pip's normal output says which build was made.
"""
import os
import re
import sys
import tempfile

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = {"edgebnn": "runtime", "edgebnn.converters": "converters",
           "edgebnn.bench": "bench", "edgebnn.models": "models"}
DEMO_MODELS = ["mnist-mlp.h5", "mnist-bnn.h5", "mnist-samples.npz",
               "biglittle/little-binary-1-small.h5", "biglittle/little-binary-1-small.json"]


def version():
    with open(os.path.join(HERE, "runtime", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def compiler_works():
    """Can the system compiler build a Python extension here? (A one-line probe.)"""
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler, get_python_inc
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint edgebnn_probe(void) { return 0; }\n")
        try:
            compiler.compile([source], output_dir=tmp, include_dirs=[get_python_inc()])
        except Exception as error:       # CompileError, a missing executable, ...
            print(f"WARNING: no working C compiler ({error})")
            return False
    return True


def packages():
    found = []
    for package, folder in FOLDERS.items():
        found += [package] + [f"{package}.{sub}" for sub in find_packages(folder)]
    return found


class OptionalBuildExt(build_ext):
    """Build the C kernel if possible; without it the NumPy twin serves."""

    def run(self):
        try:
            super().run()
        except Exception as error:
            self._warn(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._warn(error)

    @staticmethod
    def _warn(error):
        print(f"WARNING: the C kernel was not built ({error}): {SLOWER}")


SLOWER = "binary layers will run on the NumPy backend, 15-200x slower"


class BuildPy(build_py):
    """The benchmark suite's pytest files stay in the repository, out of the wheel."""

    def find_package_modules(self, package, package_dir):
        return [module for module in super().find_package_modules(package, package_dir)
                if not re.match(r"(test_|conftest$)", module[1])]


with_kernel = "sdist" in sys.argv or compiler_works()
if not with_kernel:
    print(f"WARNING: building edgebnn without its C kernel: {SLOWER}. Install a C compiler "
          "(e.g. apt install gcc python3-dev) and reinstall for the fast kernel.")

setup(
    name="edgebnn",
    version=version() + ("" if with_kernel else "+numpy"),
    description="Embedded float and binarized neural-network runtime for small boards "
                "(Big-Little cascades, DDNN early exits)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    author="The edgebnn developers",
    keywords=["neural networks", "inference", "binarized neural networks", "BNN", "IoT",
              "edge computing", "Raspberry Pi", "early exit", "DDNN", "XNOR popcount"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: MIT License",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: System :: Hardware",
    ],
    python_requires=">=3.9",
    # the kernel is built for the stable ABI: one wheel serves Python 3.9 and every later one
    options={"bdist_wheel": {"py_limited_api": "cp39"}} if with_kernel else {},
    package_dir=FOLDERS,
    packages=packages(),
    package_data={"edgebnn": ["py.typed"], "edgebnn.bench": ["binary_floor.c"],
                  "edgebnn.models": DEMO_MODELS},
    install_requires=["numpy>=1.21", "cffi>=1.15", "h5py>=3.1"],
    cffi_modules=["csrc/build.py:ffi"] if with_kernel else [],
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPy},
    entry_points={"console_scripts": [
        "edgebnn-classify = edgebnn.__main__:main",
        "edgebnn-convert = edgebnn.converters.__main__:main",
        "edgebnn-bench = edgebnn.bench.__main__:main",
        "edgebnn-serve = edgebnn.net.serve:main",
        "edgebnn-sign = edgebnn.packed.signing:main",
    ]},
    extras_require={
        "dev": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "build", "pyyaml"],
        "torch": ["torch>=2.0"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.5"],   # + torch's exporter
        "plot": ["matplotlib>=3.5"],
        # MLServer 1.7.1's parallel workers die at start with uvloop 0.22 and newer
        # ("There is no current event loop"): the runtime needs an older uvloop beside it
        "mlserver": ["mlserver>=1.7.1,<1.8", "uvloop<0.22"],
        "triton": ["tritonclient[http]>=2.42"],
        "sign": ["cryptography>=3.1"],        # Ed25519 signatures of model files
        "sklearn": ["scikit-learn>=1.3", "skl2onnx>=1.16"],   # scikit-learn models via ONNX
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    },
)
