"""The floor: a ground plane fitted to the feet over time, per-foot contact, and feet in contact kept in place.

All in camera space (mm, x right, y down, z away), so a tilted camera simply gives a tilted plane. The plane is
fitted to the ankles of feet that stand still (a foot at rest is on the ground far more often than in the air),
pulled towards an "up" prior: the mean direction of people's spines, which the lifter gives in camera axes (a
camera tilted down sees upright people leaning back). A person standing still spreads their feet over too small an
area to show a tilt; the prior decides then, walking around lets the feet decide.

Monocular depth jitters by a few percent, so the feet of a standing person would slide on the floor: `FootLock`
pins a foot in contact where it touched down, shifting the whole person by up to a leash length, and lets go
smoothly when the foot lifts.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .skeleton import H

ANKLE_MM = 80.0  # ankle joint above the sole: the floor lies this far below the ankles that stand on it
DEFAULT_UP = np.array([0.0, -1.0, 0.0])  # a level camera: up is -y
FEET = (("right", H["r_ankle"]), ("left", H["l_ankle"]))


@dataclass(frozen=True)
class Floor:
    normal: np.ndarray  # [3] unit vector, camera axes, pointing up (from the floor towards the people)
    height: float       # mm: the camera's height above the floor; floor points p satisfy normal . p = -height

    def height_of(self, points: np.ndarray) -> np.ndarray:
        """Height above the floor (mm) of camera-space points [..., 3]."""
        return np.asarray(points, np.float64) @ self.normal + self.height

    def to_json(self) -> dict:
        return {"normal": np.round(self.normal, 4).tolist(), "height": round(float(self.height), 1)}


@dataclass(frozen=True)
class FloorOptions:
    keep: int = 600             # foot samples kept (20 s at 30 fps): the floor follows a moved camera in time
    min_samples: int = 10       # before this many, no floor is reported
    refit_every: int = 5        # new samples between refits (a refit costs ~1 ms)
    still_mm_s: float = 350.0   # an ankle slower than this counts as standing
    prior_mm: float = 150.0     # weight of the up prior, as a spread of the feet in mm
    inlier_mm: float = 120.0    # samples further than this from the plane are ignored (a box, a stair, a bad frame)
    level_share: float = 0.2    # the floor is the lowest level holding this share of the samples
    max_tilt_deg: float = 40.0  # a plane tilted further from the up prior is a bad fit: the prior is kept
    upright_deg: float = 35.0   # spines within this of the current up feed the prior


def fit_floor(points: np.ndarray, up_prior: np.ndarray, options: FloorOptions = FloorOptions()) -> Floor:
    """A plane through ankle points [K,3] (mm, camera space), ANKLE_MM below them.

    First the level: along the prior, the lowest height that a fair share of the samples stand at (nobody
    stands below the floor; someone on a box stands above it). Then the normal of the samples at that level:
    it minimises their spread along it plus prior_mm^2 * sin^2(angle to up_prior), the smallest eigenvector of
    cov + prior_mm^2 (I - u u^T). Then the level again along that normal."""
    p = np.asarray(points, np.float64)
    u = np.asarray(up_prior, np.float64) / np.linalg.norm(up_prior)
    keep = _lowest_level(p @ u, options)
    normal = u
    for _ in range(8):  # a band of a tilted floor at first: each refit widens it to the whole floor
        q = p[keep]
        centred = q - np.median(q, axis=0)
        cov = centred.T @ centred / max(1, len(q))
        m = cov + options.prior_mm ** 2 * (np.eye(3) - np.outer(u, u))
        normal = np.linalg.eigh(m)[1][:, 0]
        normal = normal if normal @ u >= 0 else -normal
        if normal @ u < math.cos(math.radians(options.max_tilt_deg)):
            normal = u
        level = np.median(q @ normal)  # the ankles' height coordinate along the normal
        new = np.abs(p @ normal - level) < options.inlier_mm
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return Floor(normal, -(float(np.median(p[keep] @ normal)) - ANKLE_MM))


def _lowest_level(heights: np.ndarray, options: FloorOptions) -> np.ndarray:
    """Samples within inlier_mm of the lowest height that level_share of the samples are near."""
    ordered = np.sort(heights)
    r = options.inlier_mm
    counts = np.searchsorted(ordered, heights + r) - np.searchsorted(ordered, heights - r, side="right")
    dense = counts >= max(3, options.level_share * len(heights))
    if not dense.any():
        dense = counts == counts.max()
    level = heights[np.argmin(np.where(dense, heights, np.inf))]
    return np.abs(heights - level) < r


class FloorEstimator:
    """The floor of one stream, from every person's feet over time."""

    def __init__(self, options: FloorOptions = FloorOptions()) -> None:
        self.options = options
        self._feet: deque[np.ndarray] = deque(maxlen=options.keep)
        self._spines: deque[np.ndarray] = deque(maxlen=options.keep)
        self._spine_sum = np.zeros(3)
        self._new = 0  # foot samples since the last fit
        self.floor: Floor | None = None

    @property
    def up(self) -> np.ndarray:
        """The up prior: mean spine direction of upright people, else a level camera's up."""
        norm = np.linalg.norm(self._spine_sum)
        return self._spine_sum / norm if self._spines and norm > 1e-9 else DEFAULT_UP

    def add(self, joints: np.ndarray, valid: np.ndarray, ankle_speed: np.ndarray) -> None:
        """One person in one frame: absolute camera-space joints [17,3] mm, valid [17], speed of each ankle
        (mm/s, [2] in FEET order; NaN when unknown)."""
        spine = joints[H["thorax"]] - joints[H["pelvis"]]
        if valid[H["thorax"]] and valid[H["pelvis"]] and np.linalg.norm(spine) > 1:
            spine = spine / np.linalg.norm(spine)
            if spine @ self.up > math.cos(math.radians(self.options.upright_deg)):
                if len(self._spines) == self._spines.maxlen:
                    self._spine_sum -= self._spines[0]
                self._spines.append(spine)
                self._spine_sum += spine
        for (_, j), speed in zip(FEET, ankle_speed):
            if valid[j] and speed < self.options.still_mm_s:
                self._feet.append(np.asarray(joints[j], np.float64))
                self._new += 1

    def update(self) -> Floor | None:
        """Refit from the samples so far (None until there are enough)."""
        enough = len(self._feet) >= self.options.min_samples
        if enough and (self.floor is None or self._new >= self.options.refit_every):
            self.floor = fit_floor(np.array(self._feet), self.up, self.options)
            self._new = 0
        return self.floor


@dataclass(frozen=True)
class ContactOptions:
    height_mm: float = 70.0     # ankle within this of its standing height: on the ground...
    speed_mm_s: float = 450.0   # ...and slower than this
    release: float = 1.5        # hysteresis: contact ends past these limits times this
    leash_mm: float = 200.0     # a locked foot follows the estimate once they disagree by more than this
    let_go_s: float = 0.25      # time constant for the person to return to the estimate with no foot locked


def foot_contact(height_mm: float, speed_mm_s: float, was: bool, options: ContactOptions = ContactOptions()) -> bool:
    """Whether a foot is on the ground: low (height of its ankle above the ankle plane) and slow, with hysteresis."""
    k = options.release if was else 1.0
    return bool(height_mm < options.height_mm * k and speed_mm_s < options.speed_mm_s * k)


class FootLock:
    """One person: a foot in contact stays where it touched down; the person moves with it.

    Works as an offset added to the estimated pelvis position: with feet locked, the offset that keeps them at
    their anchors (their mean, both feet locked); the offset never exceeds the leash (the anchors are dragged
    instead), so a wrong lock cannot carry a person away; without contact it decays to zero."""

    def __init__(self, options: ContactOptions = ContactOptions()) -> None:
        self.options = options
        self.offset = np.zeros(3)
        self.anchors: dict[str, np.ndarray] = {}

    def __call__(self, root: np.ndarray, joints: np.ndarray, contact: dict[str, bool], dt: float,
                 floor: Floor | None) -> np.ndarray:
        """root [3] estimated pelvis (camera space, mm), joints [17,3] pelvis-relative -> corrected root [3]."""
        needed = []
        for name, j in FEET:
            if not contact.get(name):
                self.anchors.pop(name, None)
                continue
            foot = root + joints[j]
            if name not in self.anchors:  # touched down: pin it where it is shown now
                anchor = foot + self.offset
                if floor is not None:  # on the floor, not above or in it
                    anchor = anchor - (floor.height_of(anchor) - ANKLE_MM) * floor.normal
                self.anchors[name] = anchor
            needed.append(self.anchors[name] - foot)
        if needed:
            offset = np.mean(needed, axis=0)
            size = np.linalg.norm(offset)
            if size > self.options.leash_mm:
                offset *= self.options.leash_mm / size
                for name, j in FEET:  # drag the anchors along
                    if name in self.anchors:
                        self.anchors[name] = root + joints[j] + offset
            self.offset = offset
        else:
            self.offset = self.offset * math.exp(-max(dt, 0.0) / self.options.let_go_s)
        return root + self.offset
