"""People in the room: per track, the pelvis position (posecast/root.py) filtered over time, the stream's floor and
each foot's contact (posecast/floor.py), with feet in contact kept from sliding.

One `World` per video stream, fed once per frame with every person's keypoints and lifted pose.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .floor import ANKLE_MM, FEET, ContactOptions, Floor, FloorEstimator, FloorOptions, FootLock, foot_contact
from .root import ADULT_LEG_MM, DEFAULT_FOV_DEG, Intrinsics, check_fov, leg_mm_for_height, solve_root
from .skeleton import H
from .smoothing import OneEuroFilter, OneEuroOptions


LEGS = tuple((H[f"{s}_hip"], H[f"{s}_knee"], H[f"{s}_ankle"]) for s in "rl")
LEG_FRAMES = 90  # a track's size is the median over this many frames with legs seen


@dataclass(frozen=True)
class WorldOptions:
    fov_deg: float = DEFAULT_FOV_DEG  # horizontal field of view of the frames
    # The root is filtered as a direction (the ray through the pelvis, precise: it is where the pelvis is seen,
    # in mm per metre of depth) and a depth (a few percent of jitter: it rests on the lifted body's size), the
    # depth much harder. Walking towards the camera at 1.5 m/s, the depth trails by ~0.15 s.
    ray_smoothing: OneEuroOptions | None = OneEuroOptions(min_cutoff=1.0, beta=0.02)
    depth_smoothing: OneEuroOptions | None = OneEuroOptions(min_cutoff=0.3, beta=0.0005)
    floor: FloorOptions = field(default_factory=FloorOptions)
    contact: ContactOptions = field(default_factory=ContactOptions)
    foot_lock: bool = True
    max_age: float = 1.0  # seconds a track's state is kept after the person was last seen
    leg_mm: float | None = ADULT_LEG_MM  # people are given legs this long (hip-knee-ankle); None = the lifter's
    # A foot's speed is measured in the image, where a planted foot is steady (the lifted depth is not), over
    # this baseline: frame-to-frame detector jitter of 3 px would read as ~1 m/s at 6 m.
    speed_baseline_s: float = 0.2


@dataclass
class _Track:
    ray: OneEuroFilter
    depth: OneEuroFilter
    lock: FootLock
    seen: float
    ankles: deque = field(default_factory=deque)  # (t, ankle pixels [2,2], seen [2]) of the last frames
    legs: deque = field(default_factory=lambda: deque(maxlen=LEG_FRAMES))  # lifted leg lengths, mm
    contact: dict[str, bool] = field(default_factory=lambda: {name: False for name, _ in FEET})


def leg_lengths(joints: np.ndarray) -> np.ndarray:
    """Hip-knee-ankle length of each leg (right, left), mm: joints [..., 17, 3] -> [..., 2]."""
    return np.stack([np.linalg.norm(joints[..., a, :] - joints[..., b, :], axis=-1)
                     + np.linalg.norm(joints[..., b, :] - joints[..., c, :], axis=-1) for a, b, c in LEGS], axis=-1)


class World:
    """temporal=False (IMAGE mode): each frame alone, no filtering, no floor, no contact."""

    def __init__(self, options: WorldOptions = WorldOptions(), temporal: bool = True) -> None:
        self.options = options
        self.temporal = temporal
        self.fov_deg = check_fov(options.fov_deg)
        self.leg_mm = options.leg_mm
        self.floors = FloorEstimator(options.floor)
        self._tracks: dict[int, _Track] = {}

    def set_fov(self, fov_deg: float) -> None:
        """A new field of view (the page's setting): positions follow at once, the floor is learnt anew."""
        self.fov_deg = check_fov(fov_deg)
        self._start_over()

    def set_height(self, height_cm: float | None) -> None:
        """The height of the people in view (the page's setting; None: the size of the options). Their distances
        change with it, so positions follow at once and the floor is learnt anew."""
        self.leg_mm = self.options.leg_mm if height_cm is None else leg_mm_for_height(height_cm)
        self._start_over()

    def _start_over(self) -> None:
        self.floors = FloorEstimator(self.options.floor)
        self._tracks.clear()

    def camera(self, width: int, height: int) -> Intrinsics:
        return Intrinsics.from_fov(width, height, self.fov_deg)

    def __call__(self, ids: list[int], keypoints: np.ndarray, confidence: np.ndarray, joints3d: np.ndarray,
                 frame_size: tuple[int, int], t: float) -> tuple[list[dict], np.ndarray, dict]:
        """keypoints [N,17,2] px, confidence [N,17], joints3d [N,17,3] mm pelvis-relative (as shown).

        Returns per person {"root": [x,y,z] mm or None, "contact": {"left", "right"}}, the joints scaled to
        an adult's size [N,17,3] (what `root` places: show these), and the stream's
        {"camera": {"fov", "focal"}, "floor": {"normal", "height"} or None} (see docs/protocol.md)."""
        camera = self.camera(*frame_size)
        tracks = [self._track(track_id, t) if self.temporal else None for track_id in ids]
        joints = np.array(joints3d, np.float64).reshape(-1, 17, 3)
        for i, track in enumerate(tracks):
            joints[i] *= self._scale(track, joints[i], confidence[i] > 0)
        roots = solve_root(keypoints, confidence, joints, camera) if len(ids) else np.zeros((0, 3))
        floor = self.floors.floor
        out = []
        for i, track in enumerate(tracks):
            root, valid = roots[i], confidence[i] > 0
            if track is None or np.isnan(root).any():
                out.append({"root": None if np.isnan(root).any() else root, "contact": _no_contact()})
                continue
            root = self._smooth(track, root, t)
            contact = self._contact(track, root, joints[i], keypoints[i], valid, t, camera, floor)
            if self.options.foot_lock:
                root = track.lock(root, joints[i], contact, t - track.seen, floor)
            track.seen = t
            out.append({"root": root, "contact": contact})
        if self.temporal:
            self.floors.update()
            self._tracks = {k: v for k, v in self._tracks.items() if 0 <= t - v.seen <= self.options.max_age}
        for person in out:
            if person["root"] is not None:
                person["root"] = np.round(person["root"], 1).tolist()
        floor = self.floors.floor if self.temporal else None
        return out, joints, {"camera": {"fov": round(self.fov_deg, 2), "focal": round(camera.focal, 1)},
                             "floor": floor.to_json() if floor is not None else None}

    def _scale(self, track: _Track | None, joints: np.ndarray, valid: np.ndarray) -> float:
        """The factor that gives the person an adult's legs: the lifter sees 2D normalised for position and
        size, so the size of its answer is only a guess, and a person's depth is in proportion to it.
        Per track, the median over its recent frames (a leg's lifted length changes with the pose)."""
        if self.leg_mm is None:
            return 1.0
        seen = [valid[a] and valid[b] and valid[c] for a, b, c in LEGS]
        history = track.legs if track is not None else deque()
        if any(seen):
            history.append(float(np.mean(leg_lengths(joints)[seen])))
        if not history:
            return 1.0
        # A lifted leg is a human's within a factor of two; beyond that the lifter failed, not the person grew.
        return float(np.clip(self.leg_mm / max(float(np.median(history)), 1e-3), 0.5, 2.0))

    def _track(self, track_id: int, t: float) -> _Track:
        track = self._tracks.get(track_id)
        if track is None:
            o = self.options
            track = _Track(OneEuroFilter(o.ray_smoothing or OneEuroOptions()),
                           OneEuroFilter(o.depth_smoothing or OneEuroOptions()), FootLock(o.contact), t)
            self._tracks[track_id] = track
        return track

    def _smooth(self, track: _Track, root: np.ndarray, t: float) -> np.ndarray:
        one = np.ones(1, bool)
        ray, depth = 1000.0 * root[:2] / root[2], root[2:]
        if self.options.ray_smoothing is not None:
            ray = track.ray(ray[None], one, t)[0]
        if self.options.depth_smoothing is not None:
            depth = track.depth(depth[None], one, t)[0]
        return np.array([ray[0] * depth[0] / 1000.0, ray[1] * depth[0] / 1000.0, depth[0]])

    def _contact(self, track: _Track, root: np.ndarray, joints: np.ndarray, keypoints: np.ndarray,
                 valid: np.ndarray, t: float, camera: Intrinsics, floor: Floor | None) -> dict[str, bool]:
        """Per-foot contact from the estimate before any lock (a lock must not confirm itself)."""
        absolute = root + joints
        feet = [j for _, j in FEET]
        ankles = absolute[feet]
        speed = self._foot_speed(track, keypoints[feet], valid[feet], ankles[:, 2], t, camera)
        self.floors.add(absolute, valid, speed)
        for k, (name, j) in enumerate(FEET):
            if floor is None or not valid[j] or np.isnan(speed[k]):
                track.contact[name] = False
                continue
            height = float(floor.height_of(ankles[k])) - ANKLE_MM
            track.contact[name] = foot_contact(height, float(speed[k]), track.contact[name], self.options.contact)
        return dict(track.contact)


    def _foot_speed(self, track: _Track, pixels: np.ndarray, seen: np.ndarray, depth: np.ndarray, t: float,
                    camera: Intrinsics) -> np.ndarray:
        """Each ankle's speed across the image over about the baseline, in mm/s at its depth; NaN if unknown."""
        history = track.ankles
        history.append((t, pixels, seen))
        baseline = self.options.speed_baseline_s
        while len(history) > 1 and t - history[1][0] >= baseline:
            history.popleft()
        then, old, old_seen = history[0]
        if t - then < 0.5 * baseline:
            return np.full(2, np.nan)
        px_s = np.linalg.norm(pixels - old, axis=1) / (t - then)
        return np.where(seen & old_seen, px_s * depth / camera.focal, np.nan)


def _no_contact() -> dict[str, bool]:
    return {name: False for name, _ in FEET}
