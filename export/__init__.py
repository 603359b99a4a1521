"""Export models to ONNX: `python -m export --help`."""
