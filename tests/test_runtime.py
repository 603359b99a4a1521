"""The session factory: provider selection and clear errors, on real onnxruntime sessions."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from posecast.runtime import DeviceUnavailableError, ModelNotFoundError, create_session, provider_name


@pytest.fixture
def relu_model(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
    path = tmp_path / "relu.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime accepts (onnx may default newer)
    onnx.save(model, path)
    return path


def cuda_active() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers() and ort.get_device() == "GPU"


def test_auto_runs_and_reports_its_provider(relu_model):
    session = create_session(relu_model, "auto")
    out = session.run(None, {"x": np.array([[-1, 0, 2]], np.float32)})[0]
    np.testing.assert_array_equal(out, [[0, 0, 2]])
    assert provider_name(session) in ("CPU", "CUDA")
    if not cuda_active():
        assert session.get_providers() == ["CPUExecutionProvider"]


def test_cpu_is_cpu(relu_model):
    assert provider_name(create_session(relu_model, "cpu")) == "CPU"


def test_cuda_requested_without_gpu_is_a_clear_error(relu_model):
    try:
        session = create_session(relu_model, "cuda")
    except DeviceUnavailableError as exc:
        assert "--device cpu" in str(exc)
    else:  # a machine with a working GPU
        assert provider_name(session) == "CUDA"


def test_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(ModelNotFoundError, match="python -m export lifter"):
        create_session(tmp_path / "nope.onnx", hint="python -m export lifter")
