"""The benchmark suite measures one core, like the harness: pin BLAS before NumPy loads.

pytest imports this file before the test modules, and nothing has loaded
NumPy yet at that point (checked: pytest-benchmark does not). Importing
edgebnn would load it, so the variables (edgebnn.bench.timing's
THREAD_VARIABLES) are set here without it.
"""
import os

for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(name, "1")
