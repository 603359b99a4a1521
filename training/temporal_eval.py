"""Side-by-side measurements on held-out sequences: the temporal lifter against the per-frame
lifter with and without One-Euro smoothing (`python -m benchmarks lifter-temporal`).

The validation tracks of `prepare-temporal` (the climbing set, Bandai held-out clips: whole
clips through one fixed camera, 30 fps) are seen at live rates: every frame (30 fps), every
other (15 fps), or "live": 10-30 fps drawn per track, each interval a little uneven, some
frames dropped. Conditions on the 2D: exact; 5 px Gaussian noise, fresh every frame; knees and
ankles missing over stretches (0.3-1 s gone, 0.5-2 s seen; scored on the frames where they are
gone); knees and ankles missing throughout. Per-frame errors are scored on every live frame
(P-MPJPE, bone-corrected P-MPJPE, limb-direction angle, training/metrics.py); over time:
- accel: mean acceleration error, |a_pred - a_true| with a = p[i+1] - 2 p[i] + p[i-1] over live
  frames, mm/frame^2, all joints pelvis-relative;
- lag: for joints moving at 1.5-2.5 m/s (pelvis-relative), how far the Procrustes-aligned
  prediction trails the truth along the direction of motion, mm (and ms at that speed); 0 for
  an unbiased estimate.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from posecast.skeleton import H
from posecast.smoothing import OneEuroFilter, OneEuroOptions

from .data import LEG_JOINTS
from .evaluate import torch_predictor
from .metrics import POSTURES, all_metrics, procrustes_align, trunk_pitch
from .prepare_temporal import SequenceFiles, Tracks
from .sequences import LiveRate

log = logging.getLogger(__name__)
WindowPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]   # [N,T,17,2], [N,T,17] -> [N,17,3]
FramePredict = Callable[[np.ndarray, np.ndarray], np.ndarray]    # [N,17,2], [N,17] -> [N,17,3]
CONDITIONS = ("exact", "noise5", "legs_gone", "no_legs")
RATES = ("30fps", "15fps", "live")
SETS = ("climb", "bandai")
SPEED_MPS = (1.5, 2.5)
SELECTION = "climb bone_p_mpjpe, live rate, mean of exact, noise5 and legs_gone"


@dataclass
class Method:
    """A way to get 3D from a track: a temporal model over windows, or a per-frame one (+ One-Euro)."""
    name: str
    window: int = 1
    windows: WindowPredict | None = None
    frames: FramePredict | None = None
    one_euro: OneEuroOptions | None = None  # One-Euro after the lifter, with these options

    def __call__(self, kp: np.ndarray, cf: np.ndarray, times: np.ndarray, track: np.ndarray) -> np.ndarray:
        if self.windows is not None:
            wk, wc = windows_of(kp, cf, track, self.window)
            out = np.concatenate([self.windows(wk[i:i + 4096], wc[i:i + 4096]) for i in range(0, len(wk), 4096)])
        else:
            out = self.frames(kp, cf)
        if self.one_euro is not None:
            out = smooth(out, cf > 0, times, track, self.one_euro)
        return out


def windows_of(kp: np.ndarray, cf: np.ndarray, track: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the window of the last t frames of its track (oldest first; before the track: confidence 0)."""
    n = len(kp)
    idx = np.arange(n)[:, None] - np.arange(t - 1, -1, -1)[None]
    ok = (idx >= 0) & (track[np.clip(idx, 0, None)] == track[:, None])
    idx = np.where(ok, idx, np.arange(n)[:, None])
    return kp[idx], cf[idx] * ok[..., None]


def smooth(joints: np.ndarray, valid: np.ndarray, times: np.ndarray, track: np.ndarray,
           options: OneEuroOptions = OneEuroOptions()) -> np.ndarray:
    """One-Euro over each track with the real frame times, as the server does (its default options)."""
    out = np.empty_like(joints)
    filt = OneEuroFilter(options)
    for i in range(len(joints)):
        if i == 0 or track[i] != track[i - 1]:
            filt.reset()
        out[i] = filt(joints[i], valid[i], float(times[i]))
    return out


def torch_window_predictor(net, batch: int = 4096) -> WindowPredict:
    """The per-frame evaluation's torch predictor, in smaller batches (each sample is a window of frames)."""
    return torch_predictor(net, batch)


@dataclass
class Live:
    """A set's tracks as seen at one live rate: the kept frames' data and their times."""
    keypoints: np.ndarray
    joints3d: np.ndarray
    confidence: np.ndarray
    times: np.ndarray
    track: np.ndarray
    groups: np.ndarray   # per frame


def live_view(tracks: Tracks, rate: str, rng: np.random.Generator, frames: int | None = None) -> Live:
    """The tracks at a live rate; with `frames`, only every k-th track, to about that many frames."""
    spans = tracks.spans()
    keep_every = 1
    if frames:
        per_frame = {"30fps": 1.0, "15fps": 0.5, "live": 0.5}[rate]
        keep_every = max(1, round(len(tracks.track) * per_frame / frames))
    idx, times = [], []
    for k, span in enumerate(spans):
        if k % keep_every:
            continue
        n, fps = span.stop - span.start, float(tracks.fps[k])
        if rate == "30fps":
            pick = np.arange(0, n, max(1, round(fps / 30)))
        elif rate == "15fps":
            pick = np.arange(0, n, max(1, round(fps / 15)))
        else:
            pick = live_times(n / fps, LiveRate(short_history=0.0), rng)
            pick = np.unique(np.clip(np.rint(pick * fps).astype(int), 0, n - 1))
        idx.append(span.start + pick)
        times.append(pick / fps)
    idx = np.concatenate(idx)
    groups = np.array(tracks.groups)[tracks.track[idx]]
    return Live(tracks.keypoints[idx], tracks.joints3d[idx], tracks.confidence[idx], np.concatenate(times),
                tracks.track[idx], groups)


def live_times(seconds: float, rate: LiveRate, rng: np.random.Generator) -> np.ndarray:
    """Frame times over `seconds` as the live server sees them (the same model as training's windows)."""
    dt = 1.0 / rng.uniform(*rate.fps)
    drop = rng.random() < rate.drop
    drop_rate = rng.uniform(0, rate.drop_rate) if drop else 0.0
    n = int(seconds / dt * 1.5) + 2
    steps = dt * rng.uniform(1 - rate.jitter, 1 + rate.jitter, n) * (1 + (rng.random(n) < drop_rate))
    t = np.concatenate([[0.0], np.cumsum(steps)])
    return t[t <= seconds]


def condition(live: Live, name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints, confidence, scored frames) for one condition."""
    kp, cf = live.keypoints.copy(), live.confidence.copy()
    scored = np.ones(len(kp), bool)
    if name == "noise5":
        kp += rng.normal(0, 5.0, kp.shape).astype(np.float32)
    elif name == "no_legs":
        cf[:, LEG_JOINTS] = 0
    elif name == "legs_gone":
        gone = np.zeros(len(kp), bool)
        for tr in np.unique(live.track):
            rows = np.flatnonzero(live.track == tr)
            t = live.times[rows]
            start = rng.uniform(0.5, 2.0)
            while start < t[-1]:
                stop = start + rng.uniform(0.3, 1.0)
                gone[rows[(t >= start) & (t < stop)]] = True
                start = stop + rng.uniform(0.5, 2.0)
        cf[np.ix_(gone, LEG_JOINTS)] = 0
        scored = gone
    elif name != "exact":
        raise ValueError(f"unknown condition {name!r}; expected one of {CONDITIONS}")
    return kp, cf, scored


def motion_errors(pred: np.ndarray, gt: np.ndarray, times: np.ndarray, track: np.ndarray) -> dict[str, float]:
    """Acceleration error (mm/frame^2) and lag at 1.5-2.5 m/s (mm, ms) over consecutive live frames."""
    same = (track[2:] == track[1:-1]) & (track[1:-1] == track[:-2])
    acc = lambda p: p[2:] - 2 * p[1:-1] + p[:-2]  # noqa: E731
    accel = np.linalg.norm(acc(pred) - acc(gt), axis=-1)[same]
    dt = (times[2:] - times[:-2])[:, None, None]
    vel = (gt[2:] - gt[:-2]) / np.maximum(dt, 1e-6) / 1000.0  # m/s
    speed = np.linalg.norm(vel, axis=-1)
    fast = same[:, None] & (speed >= SPEED_MPS[0]) & (speed <= SPEED_MPS[1])
    fast[:, H["pelvis"]] = False
    # Along the motion after aligning each pose (Procrustes): a lifter's fixed size or tilt
    # error is not lag.
    aligned = procrustes_align(pred[1:-1].astype(np.float64), gt[1:-1].astype(np.float64))
    along = np.sum((aligned - gt[1:-1]) * vel, -1) / np.maximum(speed, 1e-9)
    lag = -along[fast]
    return {"accel": float(accel.mean()) if accel.size else float("nan"),
            "lag_mm": float(lag.mean()) if lag.size else float("nan"),
            "lag_ms": float((lag / speed[fast]).mean()) if lag.size else float("nan"),
            "fast_n": int(fast.sum())}


def evaluate_tracks(predict: WindowPredict | Method, files: SequenceFiles, sets: tuple[str, ...] = SETS,
                    rates: tuple[str, ...] = ("live",), conditions: tuple[str, ...] = ("exact", "noise5", "legs_gone"),
                    frames: int | None = None, per_group: bool = False, window: int | None = None,
                    seed: int = 0) -> list[dict]:
    """Rows {method, set, rate, condition, group, n, metrics...}. `predict` is a Method, or a
    temporal window predictor (window from `window`, default 27). Group "all", and with per_group
    also each clip group and each of POSTURES."""
    method = predict if isinstance(predict, Method) else Method("temporal", window or 27, windows=predict)
    rows = []
    for name in sets:
        tracks = files.load_tracks(name)
        if tracks is None:
            log.warning("no %s tracks in %s", name, files.root)
            continue
        for rate in rates:
            live = live_view(tracks, rate, np.random.default_rng([seed, 1]), frames)
            for cond in conditions:
                kp, cf, scored = condition(live, cond, np.random.default_rng([seed, 2]))
                pred = method(kp, cf, live.times, live.track)
                errors = all_metrics(pred[scored], live.joints3d[scored])
                selections = [("all", np.ones(int(scored.sum()), bool))]
                if per_group:
                    selections += [(g, live.groups[scored] == g) for g in sorted(set(live.groups.tolist()))]
                    pitch = trunk_pitch(live.joints3d[scored])
                    selections += [(g, (pitch >= lo) & (pitch < hi)) for g, (lo, hi) in POSTURES.items()]
                for group, mask in selections:
                    if not mask.any():
                        continue
                    row = {"method": method.name, "set": name, "rate": rate, "condition": cond, "group": group,
                           "n": int(mask.sum()), **{m: float(v[mask].mean()) for m, v in errors.items()}}
                    if group == "all":
                        row.update(motion_errors(pred, live.joints3d, live.times, live.track))
                    rows.append(row)
    return rows


def selection_score(rows: list[dict]) -> float:
    vals = [r["bone_p_mpjpe"] for r in rows if r["set"] == "climb" and r["group"] == "all"
            and r["rate"] == "live" and r["condition"] in ("exact", "noise5", "legs_gone")]
    return float(np.mean(vals)) if vals else float("nan")


def format_rows(rows: list[dict]) -> str:
    head = (f"{'method':22} {'set':6} {'rate':5} {'condition':9} {'n':>6} {'P-MPJPE':>7} {'bone-P':>6} "
            f"{'limb°':>5} {'accel':>6} {'lag mm':>6} {'lag ms':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["group"] != "all":
            continue
        lines.append(f"{r['method'][:22]:22} {r['set']:6} {r['rate']:5} {r['condition']:9} {r['n']:6d} "
                     f"{r['p_mpjpe']:7.1f} {r['bone_p_mpjpe']:6.1f} {r['limb_deg']:5.1f} {r['accel']:6.2f} "
                     f"{r['lag_mm']:6.1f} {r['lag_ms']:6.1f}")
    return "\n".join(lines)
