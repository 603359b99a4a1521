"""Training windows for the temporal lifter: the last T frames of one person, as the live server sees them.

A window ends at a drawn frame of a clip and reaches back at a drawn live rate (10-30 fps,
each interval a little uneven, some frames dropped as when inference falls behind); frames
before the clip's start are missing (confidence 0), as for a person who just appeared, and a
share of windows has its history cut shorter still. Everything that describes the person and
the camera is drawn once per window (`PerWindow`): pose-space augmentation (so bone lengths,
proportions, postures are the same in every frame), joint definitions, mirroring, one camera
that moves a little or not at all. What a detector does frame by frame is drawn per frame:
2D noise (partly a per-window offset, partly fresh) and joint dropout, which also comes and
goes over time as occlusions do (a group of joints missing over a stretch of frames).

The model predicts the newest frame's pose only, so the target is that frame's 3D.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from posecast.skeleton import coco18_to_h36m17

from .body import h36m17_from_coco3d
from .cameras import random_cameras
from .data import GROUPS, MotionSet, SampleOptions, body_points, detector_noise, posed_landmarks, view
from .posespace import PoseAugment, rodrigues


class PerWindow:
    """A random generator whose draws are shared by the T consecutive rows of each window.

    The augmentation code draws one value per row (`rng.random(b)`, `rng.uniform(lo, hi, (b, 1))`,
    or one per selected row); with rows grouped window by window and every earlier draw shared
    the same way, each of those draws becomes one per window, repeated over its frames."""

    def __init__(self, rng: np.random.Generator, t: int) -> None:
        self.rng, self.t = rng, t

    def _draw(self, fn, size, *args):
        if size is None:
            return fn(*args)
        size = (size,) if np.isscalar(size) else tuple(size)
        if size[0] % self.t:
            raise ValueError(f"draw of {size} rows does not split into windows of {self.t}")
        return np.repeat(fn(*args, size=(size[0] // self.t,) + size[1:]), self.t, axis=0)

    def random(self, size=None):
        return self._draw(self.rng.random, size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._draw(self.rng.uniform, size, low, high)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self._draw(self.rng.normal, size, loc, scale)

    def integers(self, low, high=None, size=None):
        return self._draw(self.rng.integers, size, low, high)


@dataclass
class LiveRate:
    """Frame intervals as the live server sees them."""
    fps: tuple[float, float] = (10.0, 30.0)  # drawn per window
    jitter: float = 0.15                     # each interval off by up to this fraction
    drop: float = 0.25                       # per-window probability of dropping frames at all ...
    drop_rate: float = 0.3                   # ... each frame then dropped with up to this probability
    short_history: float = 0.1               # probability that the person appeared within the window


@dataclass
class TemporalDropout:
    """Joints missing over stretches of frames (the COCO-18 points, before conversion)."""
    flicker: float = 0.25        # probability of single-frame misses (rate per joint up to 0.15)
    legs: float = 0.3            # knees and ankles over a stretch
    lower_body: float = 0.1      # hips, knees and ankles over a stretch
    arm: float = 0.08            # one arm over a stretch
    face: float = 0.05
    to_newest: float = 0.5       # a stretch runs up to the newest frame (the joints are gone now)
    whole: float = 0.25          # ... or covers the whole window (never seen)


@dataclass
class WindowOptions:
    window: int = 27
    sample: SampleOptions = field(default_factory=lambda: SampleOptions(
        pose=replace(PoseAugment(), recombine=0.0)))  # recombination would mix frames within a window
    rate: LiveRate = field(default_factory=LiveRate)
    dropout: TemporalDropout | None = field(default_factory=TemporalDropout)
    static_noise: float = 0.6    # up to this share of the 2D noise is a per-window offset per joint
    camera_motion_deg: float = 2.0  # the camera turns by up to this over a window (hand-held, bumped)
    views: int = 4               # camera/noise/dropout draws per posed window (the costly part)
    full_history: float = 0.6    # share of windows that lie wholly within their clip (see window_ends)
    # The 3D pose of this many newest frames (1: joints3d [N,17,3]; more: [N,K,17,3], NaN for a frame before
    # the person appeared), for a loss on the motion of consecutive outputs (fit-temporal --smooth).
    targets: int = 1


@dataclass
class Windows:
    keypoints: np.ndarray   # [N,T,17,2] float32 pixels, oldest frame first
    confidence: np.ndarray  # [N,T,17] float32
    joints3d: np.ndarray    # [N,17,3] float32 mm, the newest frame's pose (pelvis-relative camera axes)

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def concat(cls, parts: list["Windows"]) -> "Windows":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("keypoints", "confidence", "joints3d")))

    def take(self, index: np.ndarray) -> "Windows":
        return Windows(self.keypoints[index], self.confidence[index], self.joints3d[index])


def clip_bounds(motion: MotionSet) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame index of each frame's clip (frames are stored clip by clip)."""
    starts = np.flatnonzero(np.r_[True, motion.clip[1:] != motion.clip[:-1]])
    ends = np.r_[starts[1:], len(motion.clip)] - 1
    which = np.searchsorted(starts, np.arange(len(motion.clip)), side="right") - 1
    return starts[which], ends[which]


def window_frames(motion: MotionSet, ends: np.ndarray, rng: np.random.Generator,
                  opts: WindowOptions) -> tuple[np.ndarray, np.ndarray]:
    """Source frame indices [B,T] reaching back from `ends` at drawn live rates, and which exist [B,T]."""
    b, t = len(ends), opts.window
    r = opts.rate
    dt = 1.0 / rng.uniform(*r.fps, b)
    steps = dt[:, None] * rng.uniform(1 - r.jitter, 1 + r.jitter, (b, t - 1))
    drop = rng.random((b, 1)) < r.drop
    dropped = drop & (rng.random((b, t - 1)) < rng.uniform(0, r.drop_rate, (b, 1)))
    steps = steps * (1 + dropped)  # a dropped frame doubles that interval
    back = np.concatenate([np.cumsum(steps[:, ::-1], 1)[:, ::-1], np.zeros((b, 1))], 1)  # seconds before the newest
    first, _ = clip_bounds(motion)
    fps = motion.fps[motion.clip[ends]][:, None]  # 0: a set of single poses, i.e. a person holding still
    frames = ends[:, None] - np.rint(back * fps).astype(int)
    exists = frames >= first[ends][:, None]
    short = rng.random(b) < r.short_history
    seen = np.where(short, rng.integers(1, t + 1, b), t)  # frames seen so far, the newest included
    exists &= np.arange(t)[None] >= t - seen[:, None]
    return np.where(exists, frames, ends[:, None]), exists


def synthesize_windows(motion: MotionSet, ends: np.ndarray, rng: np.random.Generator,
                       opts: WindowOptions) -> Windows:
    """Windows ending at `ends` (frame indices of one rig): opts.views camera views of each."""
    t, v = opts.window, opts.views
    frames, exists = window_frames(motion, ends, rng, opts)
    shared = PerWindow(rng, t)
    landmarks, up, forward = posed_landmarks(motion, frames.ravel(), shared, opts.sample.pose)

    def views(a: np.ndarray) -> np.ndarray:  # [B*T,...] -> [B*V*T,...], window by window
        return np.repeat(a.reshape((-1, t) + a.shape[1:]), v, axis=0).reshape((-1,) + a.shape[1:])

    landmarks, up, forward = views(landmarks), views(up), views(forward)
    exists = np.repeat(exists, v, axis=0)
    n = len(exists)
    so = opts.sample
    coco = body_points(landmarks, up, forward, shared, so)
    cams = random_cameras(n * t, shared, so.cameras)
    # A camera that turns a little over the window: about a random axis, up to camera_motion_deg.
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.radians(opts.camera_motion_deg) * rng.uniform(0, 1, n)[:, None] * np.linspace(-1, 0, t)[None]
    cams.rotation = rodrigues(np.repeat(axis, t, axis=0), angle.ravel()) @ cams.rotation
    pixels, conf, cam = view(coco, cams, so)
    if so.noise is not None:
        level = shared.uniform(0, 1, (n * t, 1, 1)), shared.uniform(0, so.noise.floor_px, (n * t, 1, 1))
        fresh = detector_noise(pixels, so.noise, rng, level)
        fixed = detector_noise(pixels, replace(so.noise, outlier=0.0), shared, level)
        share = shared.uniform(0, opts.static_noise, (n * t, 1, 1))
        pixels = pixels + np.sqrt(1 - share ** 2) * fresh + share * fixed
    conf = conf.reshape(n, t, -1) * exists[..., None]
    if opts.dropout is not None:
        conf *= temporal_dropout(n, t, opts.dropout, rng)
    keypoints, confidence = coco18_to_h36m17(pixels, conf.reshape(n * t, -1))
    k = opts.targets
    target = h36m17_from_coco3d(cam.reshape(n, t, 18, 3)[:, -k:].reshape(n * k, 18, 3)).astype(np.float32)
    if k == 1:
        target = target.reshape(n, 17, 3)
    else:
        target = target.reshape(n, k, 17, 3)
        target[~exists[:, -k:]] = np.nan
    return Windows(keypoints.reshape(n, t, 17, 2), confidence.reshape(n, t, 17), target)


def temporal_dropout(n: int, t: int, d: TemporalDropout, rng: np.random.Generator) -> np.ndarray:
    """Keep-masks [N,T,18] over COCO-18: single-frame misses and groups gone over stretches."""
    keep = np.ones((n, t, 18), np.float32)
    rate = np.where(rng.random(n) < d.flicker, rng.uniform(0, 0.15, n), 0.0)
    keep[rng.random((n, t, 18)) < rate[:, None, None]] = 0
    frame = np.arange(t)[None]
    for name in ("legs", "lower_body", "arm", "face"):
        pick = np.flatnonzero(rng.random(n) < getattr(d, name))
        if not len(pick):
            continue
        # A stretch anywhere, or one that runs up to the newest frame, or the whole window.
        start = rng.integers(0, t, len(pick))
        stop = np.where(rng.random(len(pick)) < d.to_newest, t, rng.integers(start + 1, t + 1))
        whole = rng.random(len(pick)) < d.whole
        start, stop = np.where(whole, 0, start), np.where(whole, t, stop)
        gone = (frame >= start[:, None]) & (frame < stop[:, None])  # [P,T]
        if name == "arm":
            side = rng.integers(2, size=len(pick))
            joints = np.array(GROUPS["arm"])[side]  # [P,2]
        else:
            joints = np.broadcast_to(np.array(GROUPS[name]), (len(pick), len(GROUPS[name])))
        rows, cols = pick[:, None, None], joints[:, None, :]
        keep[rows, frame[..., None], cols] *= ~gone[..., None]
    return keep


def window_ends(motion: MotionSet, n: int, rng: np.random.Generator, opts: WindowOptions) -> np.ndarray:
    """n newest frames for windows. Most clips are a few seconds long, so windows drawn anywhere
    would often reach back past the clip's start; live, a person is mostly tracked for longer. A
    share `opts.full_history` of them ends where the whole window, at the slowest rate, lies in the clip."""
    first, _ = clip_bounds(motion)
    reach = np.ceil((opts.window - 1) / opts.rate.fps[0] * (1 + opts.rate.jitter) * np.maximum(motion.fps[motion.clip], 0))
    full = np.flatnonzero(np.arange(len(first)) - first >= reach)
    ends = rng.integers(len(motion.rot), size=n)
    if len(full):
        pick = rng.random(n) < opts.full_history
        ends[pick] = full[rng.integers(len(full), size=int(pick.sum()))]
    return ends


def sample_windows(motions: list[MotionSet], n: int, rng: np.random.Generator, opts: WindowOptions,
                   shares: dict[str, float] | None = None) -> Windows:
    """About n fresh windows across rigs, shuffled: by frame count, with the fixed `shares` per rig
    (e.g. the floor poses oversampled) taken off the top."""
    shares = shares or {}
    frames = np.array([len(m.rot) for m in motions], float)
    rest = 1.0 - sum(shares.get(m.rig, 0.0) for m in motions)
    free = np.array([m.rig not in shares for m in motions])
    share = np.where(free, rest * frames * free / max((frames * free).sum(), 1), 0.0)
    share += [shares.get(m.rig, 0.0) for m in motions]
    counts = rng.multinomial(max(1, n // opts.views), share / share.sum())
    parts = [synthesize_windows(m, window_ends(m, k, rng, opts), rng, opts) for m, k in zip(motions, counts) if k > 0]
    out = Windows.concat(parts)
    return out.take(rng.permutation(len(out)))
