"""Converters from trained models (PyTorch, Keras/Larq, ONNX) to the packed format."""
