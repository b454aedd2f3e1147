"""The benchmark suite measures one core, like the harness: pin BLAS before NumPy loads.

pytest imports this file before the test modules, and nothing has loaded
NumPy yet at that point (checked: pytest-benchmark does not).
"""
from edgebnn.bench.timing import single_threaded

single_threaded()
