"""Serving the networks from NVIDIA Triton: model repositories (repository.py), the Python-backend model that
runs them with onnxruntime (model.py) and the local server command `posecast triton` (serve.py)."""
