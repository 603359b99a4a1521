"""Sequence windows for the temporal lifter, its training and export, on small synthetic BVH clips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posecast import paths
from posecast.lifter import Lifter, TemporalLifter
from posecast.skeleton import C, H
from training.data import GROUPS
from training.metrics import POSTURES
from training.prepare_temporal import SequenceFiles, TemporalPrepareOptions, prepare_temporal
from training.sequences import (LiveRate, PerWindow, TemporalDropout, WindowOptions, synthesize_windows,
                                temporal_dropout, window_frames)
from training.temporal_eval import Method, evaluate_tracks, live_times, windows_of
from training.temporal_model import TemporalNet, TemporalOptions, init_from_per_frame, per_frame_weights

from synthetic_bvh import write_bandai_named_clips


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> SequenceFiles:
    root = tmp_path_factory.mktemp("seq")
    rng = np.random.default_rng(0)
    clips = write_bandai_named_clips(root / "bvh", 60, rng, random_heading=True)
    return prepare_temporal(TemporalPrepareOptions(root / "data", clips, None, None, None, None))


def test_prepared_motion_and_tracks(dataset: SequenceFiles):
    (motion,) = dataset.load_motion()
    assert motion.fps is not None and np.allclose(motion.fps, 30, atol=0.01)
    tracks = dataset.load_tracks("bandai")
    info = json.loads(dataset.info.read_text())
    held_out = set(info["rigs"]["bandai"]["validation_clips"])
    assert held_out and held_out.isdisjoint(np.array(motion.clips)[np.unique(motion.clip)])
    # Whole held-out clips, every frame, pelvis at 0.
    assert len(tracks.track) == 60 * len(held_out) and np.all(tracks.joints3d[:, 0] == 0)


def test_per_window_draws_repeat_over_each_window():
    rng = PerWindow(np.random.default_rng(0), 4)
    a = rng.uniform(0, 1, (12, 2))
    assert a.shape == (12, 2) and np.all(a[:4] == a[0]) and not np.all(a[4] == a[0])
    x = rng.integers(1000, size=8).reshape(2, 4)
    assert np.all(x == x[:, :1]) and x[0, 0] != x[1, 0]
    with pytest.raises(ValueError, match="windows of 4"):
        rng.random(6)


def test_windows_reach_back_at_live_rates(dataset: SequenceFiles):
    (motion,) = dataset.load_motion()
    opts = WindowOptions(window=9, rate=LiveRate(drop=0.0, short_history=0.0))
    start = np.flatnonzero(np.r_[True, motion.clip[1:] != motion.clip[:-1]])
    ends = np.r_[start[1:5] - 1, start[:4] + 3]  # clips' last frames, and frames 3 into a clip
    frames, exists = window_frames(motion, ends, np.random.default_rng(0), opts)
    assert np.all(frames[:, -1] == ends) and np.all(np.diff(frames, axis=1)[exists[:, 1:] & exists[:, :-1]] >= 1)
    steps = np.diff(frames[:4], axis=1)
    assert steps.min() >= 1 and steps.max() <= 4  # 10-30 fps from 30 fps motion
    # Frames before the clip's start do not exist: the person had not appeared.
    assert exists[:4].all() and not exists[4:, 0].any() and exists[4:, -1].all()


def test_window_keeps_one_camera_and_one_body(dataset: SequenceFiles):
    (motion,) = dataset.load_motion()
    opts = WindowOptions(window=9, views=2, camera_motion_deg=0.0, dropout=None, rate=LiveRate(short_history=0.0))
    opts.sample.noise = None
    opts.sample.clip_to_image = False
    w = synthesize_windows(motion, np.arange(40, 50), np.random.default_rng(1), opts)  # the window fits in the clip
    assert w.keypoints.shape == (20, 9, 17, 2) and w.joints3d.shape == (20, 17, 3)
    assert np.all(w.joints3d[:, 0] == 0) and np.all(w.confidence == 1)
    # The same person seen over the window: the 2D thigh/shin length ratio of a walker changes
    # only with the view, which stays put, so it moves little; a new camera per frame would scatter it.
    shin = np.linalg.norm(w.keypoints[..., H["l_ankle"], :] - w.keypoints[..., H["l_knee"], :], axis=-1)
    height = np.ptp(w.keypoints[..., 1], axis=-1)
    assert np.median(np.std(shin / height, axis=1) / np.mean(shin / height, axis=1)) < 0.15
    # Two views (cameras, definitions, mirroring) of each posed window.
    assert not np.allclose(w.keypoints[0::2], w.keypoints[1::2])


def test_temporal_dropout_stretches_come_and_go():
    keep = temporal_dropout(4000, 12, TemporalDropout(flicker=0.0, legs=1.0, lower_body=0.0, arm=0.0, face=0.0),
                            np.random.default_rng(0))
    legs = keep[:, :, GROUPS["legs"]]
    assert np.all(legs == legs[:, :, :1])  # the four joints go together
    gone = legs[:, :, 0] == 0
    assert gone.any(1).all()
    # One contiguous stretch per window: at most one start and one end.
    assert (np.diff(gone.astype(int), axis=1) == 1).sum(1).max() <= 1
    newest, oldest = gone[:, -1].mean(), gone[:, 0].mean()
    assert 0.5 < newest < 0.85 and 0.2 < oldest < 0.6  # gone now after being seen, or before and back
    assert np.all(keep[:, :, C["nose"]] == 1)


def test_live_times_are_uneven_10_to_30_fps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = live_times(5.0, LiveRate(), rng)
        dt = np.diff(t)
        assert t[0] == 0 and t[-1] <= 5.0 and 1 / 30 * 0.8 <= dt.min() and dt.max() <= 2 * 1 / 10 * 1.2


def test_windows_of_pad_before_the_track_start():
    kp = np.arange(6 * 17 * 2, dtype=np.float32).reshape(6, 17, 2)
    cf = np.ones((6, 17), np.float32)
    track = np.array([0, 0, 0, 1, 1, 1])
    wk, wc = windows_of(kp, cf, track, 3)
    assert np.array_equal(wk[2], kp[0:3]) and np.array_equal(wk[4, 1:], kp[3:5])
    assert np.all(wc[3, :2] == 0) and np.all(wc[3, 2] == 1) and np.all(wc[5] == 1)


def test_mlp_starts_as_the_per_frame_lifter(dataset: SequenceFiles):
    """Initialised from weights/lifter.onnx, the windowed MLP answers what the per-frame lifter answers."""
    stats, weights = per_frame_weights(paths.LIFTER_ONNX)
    net = TemporalNet(stats, TemporalOptions(window=5, hold_tau=0.0))  # the MLP alone, no filled-in joints
    (motion,) = dataset.load_motion()
    w = synthesize_windows(motion, np.arange(100, 400, 3), np.random.default_rng(0), WindowOptions(window=5))
    init_from_per_frame(net, weights, (torch.from_numpy(w.keypoints), torch.from_numpy(w.confidence)))
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(w.keypoints), torch.from_numpy(w.confidence)).numpy()
    want = Lifter(paths.LIFTER_ONNX, device="cpu")(w.keypoints[:, -1], w.confidence[:, -1])
    np.testing.assert_allclose(got, want, atol=0.05)


def test_refiner_starts_as_the_per_frame_lifter_and_learns_only_its_correction(dataset: SequenceFiles):
    stats, weights = per_frame_weights(paths.LIFTER_ONNX)
    net = TemporalNet(stats, TemporalOptions(arch="refine", window=5, hold_tau=0.0))
    (motion,) = dataset.load_motion()
    w = synthesize_windows(motion, np.arange(100, 400, 3), np.random.default_rng(0), WindowOptions(window=5))
    kp, cf = torch.from_numpy(w.keypoints), torch.from_numpy(w.confidence)
    init_from_per_frame(net, weights, (kp, cf))
    with torch.no_grad():
        got = net.eval()(kp, cf).numpy()
    np.testing.assert_allclose(got, Lifter(paths.LIFTER_ONNX, device="cpu")(w.keypoints[:, -1], w.confidence[:, -1]),
                               atol=0.05)
    assert {n.split(".")[0] for n, p in net.named_parameters() if p.requires_grad} == {"refine"}
    assert not net.train().stem.training and net.refine.training  # the frozen lifter computes as at inference


def test_windows_with_several_targets_give_the_newest_poses(dataset: SequenceFiles):
    (motion,) = dataset.load_motion()
    opts = WindowOptions(window=7, targets=3, views=1, dropout=None, rate=LiveRate(short_history=0.0))
    ends = np.r_[np.arange(1, 4), np.arange(200, 210)]  # the first ones begin with the clip: no frames before
    w = synthesize_windows(motion, ends, np.random.default_rng(0), opts)
    assert w.keypoints.shape == (13, 7, 17, 2) and w.joints3d.shape == (13, 3, 17, 3)
    before = w.confidence[:, -3:].max(-1) == 0  # frames before the person appeared
    assert before[:3].any() and not before[3:].any() and not before[:, -1].any()
    assert np.array_equal(np.isnan(w.joints3d).all((-1, -2)), before)
    assert np.all(w.joints3d[~before][:, 0] == 0)  # pelvis-relative, as the newest frame's alone


def test_smooth_loss_sees_jitter_that_the_joint_distance_does_not():
    from training.fit_temporal import smooth_loss

    stats, _ = per_frame_weights(paths.LIFTER_ONNX)
    net = TemporalNet(stats, TemporalOptions(window=3))
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.normal(0, 200, (64, 3, 17, 3)).astype(np.float32))
    truth[:, :, 0] = 0

    def loss(pred_mm: torch.Tensor, weight: float) -> float:
        standardised = ((pred_mm[:, :, 1:] - net.mean3d) / net.std3d).flatten(2)  # what to_mm turns back into pred_mm
        return float(smooth_loss(net, standardised, truth, weight))

    offset = torch.zeros(3, 17, 3)
    offset[:, 1:, 0] = 30.0
    steady, jitter = truth + offset, truth + offset * torch.tensor([1.0, -1.0, 1.0]).view(3, 1, 1)
    assert loss(truth, 1.0) == pytest.approx(0, abs=1e-3)
    assert loss(steady, 0.0) == pytest.approx(30, rel=1e-3) and loss(jitter, 0.0) == pytest.approx(30, rel=1e-3)
    assert loss(steady, 1.0) == pytest.approx(30, rel=1e-3) and loss(jitter, 1.0) > loss(steady, 1.0) + 100
    truth[:5, 0] = float("nan")  # a frame before the person appeared is left out, not NaN
    assert np.isfinite(loss(steady, 1.0))


@pytest.mark.parametrize("arch", ["mlp", "tcn"])
def test_tiny_temporal_training_resumes_and_exports(dataset: SequenceFiles, tmp_path, arch: str):
    from export.lifter_temporal import export_temporal
    from training.fit_temporal import TemporalFitOptions, fit_temporal

    opts = TemporalFitOptions(out=tmp_path / "run", data=dataset.root, init=None,
                              model=TemporalOptions(arch, window=9, width=96, blocks=1, dropout=0.0),
                              epochs=3, samples_per_epoch=1600, batch=64, lr=3e-3, lr_final=1e-3, eval_frames=200)
    ckpt = fit_temporal(opts)
    curve = [h["train_mpjpe"] for h in ckpt["history"]]
    assert curve[-1] < 0.85 * curve[0], curve
    opts.epochs = 4
    assert fit_temporal(opts)["epoch"] == 4  # resumes from last.pt

    out = tmp_path / "temporal.onnx"
    manifest = export_temporal(tmp_path / "run" / "best.pt", out, dataset)
    assert manifest["parity"]["float_max_abs_mm"] < 0.1 and manifest["temporal"]["window"] == 9
    lifter = TemporalLifter(out, device="cpu")
    assert lifter.window == 9 and lifter.info == json.loads(out.with_suffix(".json").read_text())
    assert set(lifter.info["metrics"]["bandai"]) == {"exact", "noise5", "legs_gone", "no_legs"}
    rows = evaluate_tracks(Method("t", 9, windows=lifter), dataset, sets=("bandai",), rates=("30fps",),
                           conditions=("exact",))
    assert rows[0]["n"] == len(dataset.load_tracks("bandai").track) and np.isfinite(rows[0]["p_mpjpe"])
    # Per group: each clip group, then the postures; each split covers every frame once and averages back.
    rows = evaluate_tracks(Method("t", 9, windows=lifter), dataset, sets=("bandai",), rates=("30fps",),
                           conditions=("exact",), per_group=True)
    postures = [r for r in rows if r["group"] in POSTURES]
    clips = [r for r in rows[1:] if r["group"] not in POSTURES]
    for split in (postures, clips):
        assert split and sum(r["n"] for r in split) == rows[0]["n"]
        assert np.isclose(sum(r["n"] * r["p_mpjpe"] for r in split) / rows[0]["n"], rows[0]["p_mpjpe"])


def test_hold_carries_missing_joints_with_the_hips():
    from training.temporal_model import hold_missing

    rng = np.random.default_rng(0)
    body = rng.uniform(100, 500, (3, 1, 17, 2)).astype(np.float32)
    kp = body + rng.uniform(-50, 50, (3, 5, 1, 2)).astype(np.float32)  # a body moving across the image
    cf = np.ones((3, 5, 17), np.float32)
    knee, hips = H["l_knee"], [H["r_hip"], H["l_hip"]]
    cf[:, -2:, knee] = 0  # gone for the last two frames
    kp[:, -2:, knee] = np.nan
    held, seen = hold_missing(torch.from_numpy(kp), torch.from_numpy(cf), tau=1.5)
    held, seen = held.numpy(), seen.numpy()
    want = body[:, 0, knee] - body[:, 0, hips].mean(1) + kp[:, -1, hips].mean(1)  # where it was on the body
    np.testing.assert_allclose(held[:, knee], want, atol=1e-3)
    assert np.all(seen == 1) and np.isfinite(held).all()
    # Seen joints are untouched; never-seen joints stay missing.
    np.testing.assert_array_equal(held[:, H["head"]], kp[:, -1, H["head"]])
    cf[:, :, knee] = 0
    _, seen = hold_missing(torch.from_numpy(kp), torch.from_numpy(cf), tau=1.5)
    assert np.all(seen.numpy()[:, knee] == 0)


def test_the_mean_of_two_lifters_is_one_lifter_with_their_mean_pose(dataset: SequenceFiles, tmp_path):
    from export.lifter_temporal import export_temporal
    from training.fit_temporal import TemporalFitOptions, fit_temporal

    for name, arch, window in (("mlp", "mlp", 9), ("tcn", "tcn", 9), ("short", "mlp", 3)):
        fit_temporal(TemporalFitOptions(out=tmp_path / name, data=dataset.root, init=None,
                                        model=TemporalOptions(arch, window=window, width=64, blocks=1, dropout=0.0),
                                        epochs=1, samples_per_epoch=640, batch=64, lr=3e-3, eval_frames=100))
        export_temporal(tmp_path / name / "best.pt", tmp_path / f"{name}.onnx")
    out = tmp_path / "mean.onnx"
    # One member a checkpoint, the other already exported: both kinds are accepted.
    manifest = export_temporal([tmp_path / "mlp" / "best.pt", tmp_path / "tcn.onnx"], out, dataset)
    mean, mlp, tcn = (TemporalLifter(tmp_path / f"{n}.onnx", device="cpu") for n in ("mean", "mlp", "tcn"))
    assert mean.window == 9 and mean.info == json.loads(out.with_suffix(".json").read_text())
    assert "mean of 2" in manifest["model"] and [m["source"] for m in manifest["members"]] == ["best.pt", "tcn.onnx"]
    assert set(mean.info["metrics"]["bandai"]) == {"exact", "noise5", "legs_gone", "no_legs"}
    tracks = dataset.load_tracks("bandai")
    kp, cf = windows_of(tracks.keypoints, tracks.confidence, tracks.track, 9)
    cf[::3, -1, 3] = 0  # missing joints too
    want = (mlp(kp, cf) + tcn(kp, cf)) / 2
    assert np.abs(mean(kp, cf) - want).max() < 1e-3 and np.abs(mlp(kp, cf) - tcn(kp, cf)).mean() > 1

    with pytest.raises(ValueError, match="already the mean of 2"):
        export_temporal([out, tmp_path / "tcn.onnx"], tmp_path / "again.onnx")
    with pytest.raises(ValueError, match="different windows"):  # 3 frames beside 9
        export_temporal([tmp_path / "short.onnx", tmp_path / "tcn.onnx"], tmp_path / "again.onnx")
    with pytest.raises(FileNotFoundError, match="not found"):
        export_temporal([tmp_path / "nothing.onnx", tmp_path / "tcn.onnx"], tmp_path / "again.onnx")
    if paths.LIFTER_ONNX.is_file():  # the per-frame lifter is not a temporal one
        with pytest.raises(ValueError, match="not a posecast temporal lifter"):
            export_temporal([paths.LIFTER_ONNX, tmp_path / "tcn.onnx"], tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_benchmark_breakdowns_run_with_the_shipped_lifters(dataset: SequenceFiles):
    from benchmarks.lifter_temporal import one_euro_sweep, where
    from posecast.lifter import Lifter, TemporalLifter

    per_frame, temporal = Lifter(device="cpu", threads=1), TemporalLifter(device="cpu", threads=1)
    table = where(per_frame, temporal, dataset, None).splitlines()
    assert table[1].split()[:2] == ["bandai", "all"] and any("trunk < 45°" in line for line in table)
    sweep = one_euro_sweep(per_frame, temporal, dataset, None)
    assert "(server)" in sweep and "bandai: goal accel <=" in sweep and "lowest accel at no more lag" in sweep
