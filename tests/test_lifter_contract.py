"""The ONNX contracts of the committed weights/lifter.onnx and weights/lifter_temporal.onnx (what the
server and outside checks rely on)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import model_path, shared_path
from posecast import paths
from posecast.lifter import Lifter, TemporalLifter
from posecast.skeleton import H, H36M17, H36M17_EDGES, H36M17_LIMBS, coco18_to_h36m17
from training.body import h36m17_from_coco3d, head_frame_from_body
from training.cameras import random_cameras
from training.data import SampleOptions, Samples, body_points, from_landmarks, posed_landmarks, synthesize, view
from training.metrics import p_mpjpe
from training.sequences import PerWindow
from training.sources import load_bvh_folder, load_climb

from synthetic_bvh import write_bvh

BUILD = "python -m training prepare && python -m training fit && python -m export lifter"


@pytest.fixture(scope="module")
def lifter() -> Lifter:
    return Lifter(model_path(paths.LIFTER_ONNX, BUILD), device="cpu")


@pytest.fixture(scope="module")
def walking(tmp_path_factory) -> Samples:
    """Clean 2D/3D pairs of a synthetic walker (no ../shared needed)."""
    folder = tmp_path_factory.mktemp("walker")
    write_bvh(folder / "walker.bvh", 30, np.random.default_rng(2))
    motion = load_bvh_folder([folder / "walker.bvh"], stride=1)["bandai"]
    return synthesize(motion, np.arange(30), np.random.default_rng(0), SampleOptions.evaluation())


def test_names_shapes_and_dynamic_batch(lifter: Lifter, walking: Samples):
    model = onnx.load(paths.LIFTER_ONNX)
    onnx.checker.check_model(model)
    inputs = {i.name: i for i in lifter.session.get_inputs()}
    assert list(inputs) == ["keypoints", "confidence"]
    assert inputs["keypoints"].type == inputs["confidence"].type == "tensor(float)"
    assert inputs["keypoints"].shape[1:] == [17, 2] and inputs["confidence"].shape[1:] == [17]
    (output,) = lifter.session.get_outputs()
    assert output.name == "joints3d" and output.shape[1:] == [17, 3]
    for n in (1, 7, 30):
        out = lifter(walking.keypoints[:n], walking.confidence[:n])
        assert out.shape == (n, 17, 3) and out.dtype == np.float32
    assert lifter(np.zeros((0, 17, 2)), np.zeros((0, 17))).shape == (0, 17, 3)


def test_pelvis_is_zero_and_translation_scale_do_not_matter(lifter: Lifter, walking: Samples):
    base = lifter(walking.keypoints, walking.confidence)
    assert np.all(base[:, H["pelvis"]] == 0)
    moved = lifter(walking.keypoints * 3.7 + np.float32([517.0, -233.0]), walking.confidence)
    np.testing.assert_allclose(moved, base, atol=0.05)


def test_missing_joints_coordinates_are_ignored(lifter: Lifter, walking: Samples):
    conf = walking.confidence.copy()
    gone = [H["r_ankle"], H["l_knee"], H["l_wrist"], H["head"]]
    conf[:, gone] = 0
    want = lifter(walking.keypoints, conf)
    for junk in (np.nan, np.inf, 1e9, -5.0, 0.0):
        kp = walking.keypoints.copy()
        kp[:, gone] = junk
        np.testing.assert_array_equal(lifter(kp, conf), want)
    assert np.isfinite(want).all()


def _plausible(pred: np.ndarray, truth: np.ndarray, max_p_mpjpe: float) -> None:
    """Camera axes and a human size: the trunk pointing where the truth's does, limb bones of
    human length, and close to the truth after alignment."""
    trunk, true_trunk = pred[:, H["head"]], truth[:, H["head"]]
    cos = (trunk * true_trunk).sum(-1) / np.linalg.norm(trunk, axis=-1) / np.linalg.norm(true_trunk, axis=-1)
    assert (cos > np.cos(np.radians(30))).mean() > 0.9
    assert np.median(np.linalg.norm(trunk, axis=-1)) > 400  # not collapsed towards the pelvis
    for a, b in H36M17_LIMBS:
        length = np.linalg.norm(pred[:, a] - pred[:, b], axis=-1)
        assert 150 < np.median(length) < 600, (H36M17[a], H36M17[b], np.median(length))
    assert p_mpjpe(pred.astype(np.float64), truth.astype(np.float64)).mean() < max_p_mpjpe


def test_plausible_on_a_synthetic_walker(lifter: Lifter, walking: Samples):
    pred = lifter(walking.keypoints, walking.confidence)
    assert (pred[:, H["head"], 1] < -350).all()  # upright: the head well above the pelvis (y down)
    _plausible(pred, walking.joints3d, max_p_mpjpe=90)
    # Seen from the waist up: still a plausible body, not a collapse to zero.
    conf = walking.confidence.copy()
    conf[:, [H[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]] = 0
    _plausible(lifter(walking.keypoints, conf), walking.joints3d, max_p_mpjpe=120)


def test_plausible_on_real_climbing_mocap(lifter: Lifter):
    clips, landmarks = load_climb(shared_path("data/holosoma-climb"), stride=40)
    lm = np.concatenate(landmarks)
    up, forward = head_frame_from_body(lm)
    s = from_landmarks(lm, up, forward, np.random.default_rng(0), SampleOptions.evaluation())
    _plausible(lifter(s.keypoints, s.confidence), s.joints3d, max_p_mpjpe=120)


def test_manifest_and_metadata(lifter: Lifter):
    info = lifter.info
    assert info["joints"] == list(H36M17) and info["edges"] == [list(e) for e in H36M17_EDGES]
    assert "non-commercial" in info["licence"].lower()
    names = " ".join(d["name"] for d in info["data"])
    assert "Bandai" in names and "CMU" in names
    assert {"bandai", "climb"} <= set(info["metrics"]) and info["training"]["minutes"] > 0
    assert info["parity_max_abs_mm"] < 0.1
    assert json.loads(paths.LIFTER_ONNX.with_suffix(".json").read_text()) == info


# The temporal lifter (weights/lifter_temporal.onnx): the same contract with a window of frames.
BUILD_TEMPORAL = "python -m training prepare-temporal && python -m training fit-temporal && python -m export lifter-temporal"


@pytest.fixture(scope="module")
def temporal() -> TemporalLifter:
    return TemporalLifter(model_path(paths.LIFTER_TEMPORAL_ONNX, BUILD_TEMPORAL), device="cpu")


@pytest.fixture(scope="module")
def walker_windows(tmp_path_factory, temporal: TemporalLifter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic walker (heading fixed) through one camera, 30 fps: windows ending at each
    frame from the window-th on, and the 3D of every frame."""
    folder = tmp_path_factory.mktemp("walker-seq")
    write_bvh(folder / "walker.bvh", 90, np.random.default_rng(3), heading=30.0)
    motion = load_bvh_folder([folder / "walker.bvh"], stride=1)["bandai"]
    frames = np.arange(90)
    opts = SampleOptions.evaluation()
    one = PerWindow(np.random.default_rng(0), len(frames))
    coco = body_points(*posed_landmarks(motion, frames, one, opts.pose), one, opts)
    pixels, conf, cam = view(coco, random_cameras(len(frames), one, opts.cameras), opts)
    kp, cf = coco18_to_h36m17(pixels, conf)
    t = temporal.window
    idx = np.arange(t - 1, len(frames))[:, None] - np.arange(t - 1, -1, -1)[None]
    return kp[idx], cf[idx], h36m17_from_coco3d(cam)


def test_temporal_names_shapes_and_dynamic_batch(temporal: TemporalLifter, walker_windows):
    onnx.checker.check_model(onnx.load(paths.LIFTER_TEMPORAL_ONNX))
    t = temporal.window
    assert t == temporal.info["temporal"]["window"] >= 2
    inputs = {i.name: i for i in temporal.session.get_inputs()}
    assert list(inputs) == ["keypoints", "confidence"]
    assert inputs["keypoints"].shape[1:] == [t, 17, 2] and inputs["confidence"].shape[1:] == [t, 17]
    (output,) = temporal.session.get_outputs()
    assert output.name == "joints3d" and output.shape[1:] == [17, 3]
    kp, cf, _ = walker_windows
    for n in (1, 5, 30):
        out = temporal(kp[:n], cf[:n])
        assert out.shape == (n, 17, 3) and out.dtype == np.float32
    assert temporal(np.zeros((0, t, 17, 2)), np.zeros((0, t, 17))).shape == (0, 17, 3)
    with pytest.raises(ValueError, match=f"\\[N,{t},17,2\\]"):
        temporal(kp[:2, 1:], cf[:2, 1:])  # one frame short
    with pytest.raises(ValueError):
        temporal(kp[:2, -1], cf[:2, -1])  # per-frame input


def test_temporal_translation_scale_and_missing_joints(temporal: TemporalLifter, walker_windows):
    kp, cf, _ = walker_windows
    base = temporal(kp, cf)
    assert np.all(base[:, H["pelvis"]] == 0)
    np.testing.assert_allclose(temporal(kp * 0.45 + np.float32([-80.0, 310.0]), cf), base, atol=0.05)
    conf = cf.copy()
    gone = [H["r_ankle"], H["l_knee"], H["l_wrist"], H["head"]]
    conf[:, ::3, gone] = 0  # missing in some frames
    conf[:, :4] = 0  # and whole frames: before the person appeared
    want = temporal(kp, conf)
    for junk in (np.nan, np.inf, 1e9, 0.0):
        bad = kp.copy()
        bad[:, ::3, gone] = junk
        bad[:, :4] = junk
        np.testing.assert_array_equal(temporal(bad, conf), want)
    assert np.isfinite(want).all()


def test_temporal_is_causal_and_uses_its_history(temporal: TemporalLifter, lifter: Lifter, walker_windows):
    kp, cf, truth = walker_windows
    t = temporal.window
    pred = temporal(kp, cf)
    newest = truth[t - 1:]
    # The pose answered is the newest frame's, not that of half a second before: nothing waits for the future.
    lag = 16
    now = p_mpjpe(pred[lag:].astype(np.float64), newest[lag:]).mean()
    before = p_mpjpe(pred[lag:].astype(np.float64), truth[t - 1:len(truth) - lag]).mean()
    assert now < 0.6 * before, (now, before)
    # Older frames matter: another history gives another answer ...
    other = kp.copy()
    other[:, :-1] = kp[::-1, :-1]
    assert np.abs(temporal(other, cf) - pred).max() > 1.0
    # ... and with no history at all (the person just appeared) it is about the per-frame answer.
    alone = cf.copy()
    alone[:, :-1] = 0
    first = temporal(kp, alone)
    assert p_mpjpe(first.astype(np.float64), lifter(kp[:, -1], cf[:, -1]).astype(np.float64)).mean() < 25
    _plausible(first, newest, max_p_mpjpe=90)


def test_temporal_plausible_on_a_synthetic_walker(temporal: TemporalLifter, lifter: Lifter, walker_windows):
    kp, cf, truth = walker_windows
    t = temporal.window
    pred = temporal(kp, cf)
    assert (pred[:, H["head"], 1] < -350).all()
    _plausible(pred, truth[t - 1:], max_p_mpjpe=90)
    # Legs gone for the last few frames: the temporal lifter still has them, the per-frame one guesses.
    legs = [H[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]
    conf = cf.copy()
    conf[:, -4:, legs] = 0
    held = temporal(kp, conf)
    _plausible(held, truth[t - 1:], max_p_mpjpe=90)
    guessed = lifter(kp[:, -1], conf[:, -1])
    err = lambda p: p_mpjpe(p.astype(np.float64), truth[t - 1:]).mean()  # noqa: E731
    assert err(held) < 0.8 * err(guessed), (err(held), err(guessed))


def test_temporal_manifest_and_metadata(temporal: TemporalLifter):
    info = temporal.info
    assert info["joints"] == list(H36M17) and info["edges"] == [list(e) for e in H36M17_EDGES]
    assert "non-commercial" in info["licence"].lower()
    names = " ".join(d["name"] for d in info["data"])
    assert "Bandai" in names and "salsa" in names and "floor" in names
    rate = info["temporal"]
    assert rate["causal"] and not rate["frame_times_input"] and rate["rates_fps"] == [10.0, 30.0]
    assert {"bandai", "climb"} <= set(info["metrics"]) and info["training"]["minutes"] > 0
    assert info["parity"]["float_max_abs_mm"] < 0.1
    assert json.loads(paths.LIFTER_TEMPORAL_ONNX.with_suffix(".json").read_text()) == info
