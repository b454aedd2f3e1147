"""edgebnn: embedded inference of float and binarized networks for IoT boards.

The C kernel is optional: when it cannot be built (no compiler), the package
still installs and runs on the kernel's NumPy twin.
"""
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the C kernel if possible; without it the NumPy twin serves."""

    def run(self):
        try:
            super().run()
        except Exception as error:      # no compiler, missing headers, ...
            self._warn(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._warn(error)

    @staticmethod
    def _warn(error):
        print(f"WARNING: the C kernel was not built ({error}); "
              "edgebnn will use its NumPy backend")


setup(
    name="edgebnn",
    version="0.1.0",
    description="Embedded float and binarized neural-network runtime for small boards "
                "(Big-Little cascades, DDNN early exits)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["runtime", "runtime.*", "converters", "converters.*",
                                    "bench", "bench.*"]),
    install_requires=["numpy>=1.21", "cffi>=1.15", "h5py>=3.1"],
    setup_requires=["cffi>=1.15"],
    cffi_modules=["csrc/build.py:ffi"],
    cmdclass={"build_ext": OptionalBuildExt},
    entry_points={"console_scripts": ["edgebnn-bench = bench.__main__:main"]},
    extras_require={
        "dev": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6"],
        "torch": ["torch>=2.0"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "plot": ["matplotlib>=3.5"],
    },
)
