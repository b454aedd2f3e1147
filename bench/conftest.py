"""The benchmark suite measures one core, like the harness: BLAS pinned to one thread."""
from edgebnn.bench.timing import single_threaded

single_threaded()
