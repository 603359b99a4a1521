"""The pipeline's stream with the temporal lifter: each track's window reaches a real ONNX session, and people
come out placed (root, contact) with the stream's camera and floor.

The temporal model here is a tiny hand-built ONNX graph with the real contract ([N,T,17,2] + [N,T,17] ->
[N,17,3]) whose depth output counts the frames seen in the window, so the test sees the history itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from posecast.lifter import Lifter, TemporalLifter
from posecast.history import KeypointHistory
from posecast import records
from posecast.pipeline import PoseStream
from posecast.skeleton import C, H
from posecast.world import World

onnx = pytest.importorskip("onnx")
WINDOW = 4


def counting_lifter(path) -> None:
    """joints3d = (newest keypoints - newest pelvis-ish keypoint 0) * 3 in x, y; z = 100 x frames seen."""
    from onnx import TensorProto, helper

    kp = helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["N", WINDOW, 17, 2])
    cf = helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["N", WINDOW, 17])
    out = helper.make_tensor_value_info("joints3d", TensorProto.FLOAT, ["N", 17, 3])
    const = lambda name, values, dtype=TensorProto.INT64: helper.make_tensor(name, dtype, [len(values)], values)
    nodes = [
        helper.make_node("Slice", ["keypoints", "last", "end", "axis1"], ["newest"]),     # [N,1,17,2]
        helper.make_node("Squeeze", ["newest", "axis1"], ["xy"]),                         # [N,17,2]
        helper.make_node("Slice", ["xy", "zero", "one", "axis1"], ["origin"]),            # [N,1,2]
        helper.make_node("Sub", ["xy", "origin"], ["rel"]),
        helper.make_node("Mul", ["rel", "three"], ["xy_mm"]),
        helper.make_node("ReduceSum", ["confidence", "axis1"], ["seen"], keepdims=0),     # [N,17]
        helper.make_node("Unsqueeze", ["seen", "axis2"], ["seen3"]),                      # [N,17,1]
        helper.make_node("Mul", ["seen3", "hundred"], ["z"]),
        helper.make_node("Concat", ["xy_mm", "z"], ["joints3d"], axis=2),
    ]
    inits = [const("last", [WINDOW - 1]), const("end", [WINDOW]), const("axis1", [1]), const("axis2", [2]),
             const("zero", [0]), const("one", [1]),
             helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
             helper.make_tensor("hundred", TensorProto.FLOAT, [], [100.0])]
    model = helper.make_model(helper.make_graph(nodes, "counting", [kp, cf], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime accepts
    onnx.save(model, path)


@dataclass
class Person:
    id: int
    keypoints: np.ndarray
    confidence: np.ndarray
    main: bool = True
    score: float = 0.9


@dataclass
class Detection:
    people: list
    crop: tuple | None = None
    timings: dict = field(default_factory=dict)


class ScriptedDetector:
    """Gives the people of a script, one frame after another (a stand-in for the network)."""

    def __init__(self, frames: list[list[Person]]) -> None:
        self.frames = iter(frames)

    def __call__(self, frame_bgr: np.ndarray) -> Detection:
        return Detection(next(self.frames))


def standing_coco18(dx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A person of ~300 px standing in a 640x480 frame (COCO-18 pixels), all points seen."""
    at = {"nose": (320, 110), "neck": (320, 140), "r_shoulder": (300, 142), "r_elbow": (295, 190),
          "r_wrist": (292, 235), "l_shoulder": (340, 142), "l_elbow": (345, 190), "l_wrist": (348, 235),
          "r_hip": (308, 250), "r_knee": (307, 320), "r_ankle": (306, 390), "l_hip": (332, 250),
          "l_knee": (333, 320), "l_ankle": (334, 390), "r_eye": (316, 105), "l_eye": (324, 105),
          "r_ear": (311, 108), "l_ear": (329, 108)}
    kp = np.zeros((18, 2), np.float32)
    for name, xy in at.items():
        kp[C[name]] = (xy[0] + dx, xy[1])
    return kp, np.ones(18, np.float32)


def test_a_stream_feeds_each_tracks_window_to_the_temporal_lifter(tmp_path):
    path = tmp_path / "counting.onnx"
    counting_lifter(path)
    temporal = TemporalLifter(path, device="cpu", threads=1)
    assert temporal.window == WINDOW
    kp, cf = standing_coco18()
    script = [[Person(1, kp, cf)]] * 5 + [[]] + [[Person(1, kp, cf), Person(2, *standing_coco18(150), main=False)]]
    stream = PoseStream(ScriptedDetector(script), Lifter(device="cpu", threads=1), None, World(), temporal,
                        KeypointHistory(WINDOW))
    results = [stream(np.zeros((480, 640, 3), np.uint8), k / 30) for k in range(len(script))]
    # The output's depth counts the frames of the window the person was seen in (times 100, then the world's
    # scaling to an adult's legs, the same factor in every frame here): 1, 2, 3, 4, then 4 of the last 4.
    z = [r.people[0]["joints3d"][3][2] for r in results[:5]]
    np.testing.assert_allclose(np.array(z) / z[0], [1, 2, 3, 4, 4], rtol=1e-3)
    assert results[5].people == []
    back, newcomer = results[6].people
    assert back["joints3d"][3][2] / z[0] == pytest.approx(3, rel=1e-3)  # missed one frame of the last four
    assert newcomer["joints3d"][3][2] / z[0] == pytest.approx(1, rel=0.05)  # a new track: its first frame
    for person in (back, newcomer):
        assert person["root"] is not None and person["root"][2] > 0
        assert set(person["contact"]) == {"left", "right"}
    assert back["root"][0] < newcomer["root"][0]  # the newcomer stands to the right in the picture
    assert results[6].scene["camera"]["fov"] == 65.0 and "floor" in results[6].scene


def test_joints_hidden_now_but_seen_in_the_window_are_held_and_placed(tmp_path):
    path = tmp_path / "counting.onnx"
    counting_lifter(path)
    kp, cf = standing_coco18()
    legs_hidden = cf.copy()
    legs_hidden[[C["r_knee"], C["r_ankle"], C["l_knee"], C["l_ankle"]]] = 0
    script = [[Person(1, kp, cf)]] * 3 + [[Person(1, kp, legs_hidden)]]
    temporal = TemporalLifter(path, device="cpu", threads=1)
    stream = PoseStream(ScriptedDetector(script), Lifter(device="cpu", threads=1), None, World(), temporal,
                        KeypointHistory(WINDOW))
    person = [stream(np.zeros((480, 640, 3), np.uint8), k / 30) for k in range(len(script))][-1].people[0]
    hidden = [H["r_knee"], H["r_ankle"], H["l_knee"], H["l_ankle"]]
    assert [j for j, h in enumerate(person["held"]) if h] == sorted(hidden)
    assert all(person["confidence"][j] == 0 and any(person["joints3d"][j]) for j in hidden)  # placed, not zeros
    # A recording's BVH animates held joints from their estimate (not the last seen rotation).
    joints3d, valid, _ = records.main_person_arrays([{"people": [person]}])
    assert valid[0, hidden].all() and valid[0].sum() == 17
    np.testing.assert_array_equal(joints3d[0, hidden], np.array(person["joints3d"])[hidden])
    # The per-frame lifter has no window: the same hidden legs are missing, with no position.
    per_frame = PoseStream(ScriptedDetector([[Person(1, kp, legs_hidden)]]), Lifter(device="cpu", threads=1), None,
                           World())
    alone = per_frame(np.zeros((480, 640, 3), np.uint8), 0.0).people[0]
    assert not any(alone["held"]) and all(alone["joints3d"][j] == [0, 0, 0] for j in hidden)
