"""The name MLServer settings give the runtime: ``edgebnn.mlserver.EdgeBNNRuntime``."""
from .net.mlserver import EdgeBNNRuntime

__all__ = ["EdgeBNNRuntime"]
