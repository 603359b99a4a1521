"""`python -m export triton DIR`: the repository for the official Triton server (ONNX Runtime backend).

No ONNX Runtime backend runs on this machine (the bundled server has only the Python backend, which
tests/test_triton.py loads from the same config writer), so this checks what that backend checks when it
loads a model: a config that parses as Triton's ModelConfig, and inputs/outputs that match the ONNX graph.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import onnxruntime as ort
import pytest

from posecast import paths

if importlib.util.find_spec("tritonclient") is None:
    pytest.skip("tritonclient not installed: pip install 'posecast[triton]'", allow_module_level=True)

from google.protobuf import text_format  # noqa: E402 - tritonclient[grpc] brings protobuf
from tritonclient.grpc import model_config_pb2  # noqa: E402


def test_export_writes_a_repository_triton_loads(tmp_path):
    repo = tmp_path / "models"
    proc = subprocess.run([sys.executable, "-m", "export", "triton", str(repo), "--max-batch-size", "12",
                           "--queue-delay-us", "3000", "--instances", "2"],
                          capture_output=True, text=True, timeout=120, cwd=paths.ROOT)
    assert proc.returncode == 0, proc.stderr
    for name, source, rows in (("detector", paths.DETECTOR_ONNX, 12), ("lifter", paths.LIFTER_ONNX, 96)):
        config = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert (config.name, config.backend, config.max_batch_size) == (name, "onnxruntime", rows)
        assert config.dynamic_batching.max_queue_delay_microseconds == (3000 if name == "detector" else 0)
        (group,) = config.instance_group
        assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_AUTO and group.count == 2
        model = repo / name / "1" / "model.onnx"
        assert model.read_bytes() == source.read_bytes()
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        for declared, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
            assert [t.name for t in declared] == [t.name for t in actual]
            for t, a in zip(declared, actual):
                assert t.data_type == model_config_pb2.TYPE_FP32 and a.type == "tensor(float)"
                assert not isinstance(a.shape[0], int), f"{name}.{t.name}: the batch dimension must be dynamic"
                expected = [d if isinstance(d, int) else -1 for d in a.shape[1:]]  # -1: any size
                assert list(t.dims) == expected, f"{name}.{t.name}: dims without the batch dimension"
        assert "posecast" in config.parameters, "the manifest rides along for the pose server's hello"


def test_export_refuses_a_missing_model(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "export", "triton", str(tmp_path / "m"), "--detector",
                           str(tmp_path / "nothing.onnx")], capture_output=True, text=True, timeout=120,
                          cwd=paths.ROOT)
    assert proc.returncode == 1 and "model file not found" in proc.stderr
