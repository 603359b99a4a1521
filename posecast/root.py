"""Where the person is: the pelvis position in camera space (mm) from 2D keypoints + the lifted 3D pose.

The lifter gives the pose relative to the pelvis, in mm and camera axes (x right, y down, z away); the detector
gives the same joints in pixels. With a pinhole camera (focal f px, principal point c), the translation t that puts
the pose where it projects onto its keypoints solves, for every seen joint j with a_j = u_j - c,

    f (X_j + t_x) = a_jx (Z_j + t_z),    f (Y_j + t_y) = a_jy (Z_j + t_z),

which is linear in t: a 3x3 least-squares problem, no learning. Each equation is the reprojection error scaled by
the joint's depth, so a second solve, weighted by 1 / depth, makes it the reprojection error itself.
The absolute scale comes from the body's size in mm (posecast/world.py gives everyone an adult's legs, or those of
the height given with `--height`), so a person 10 % taller than that is placed 10 % too near; a wrong focal length
moves the depth by the same factor (lateral positions barely change).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A typical webcam: 60-70 degrees across the width of a 4:3 frame (laptop cameras, a C920 at 640x480).
DEFAULT_FOV_DEG = 65.0
FOV_RANGE_DEG = (20.0, 150.0)  # beyond these a "field of view" is a typo, not a lens
# Hip-knee-ankle of an adult, the length people are scaled to (posecast/world.py): the Bandai actors' legs, the
# size training scales every mocap rig to (training/rigs.py LEG_MM). Real adults vary by about +-7 %.
ADULT_LEG_MM = 800.0
# Hip joint to ankle joint of a standing adult as a share of their height: thigh 0.245 + shank 0.246 (Winter,
# Biomechanics and Motor Control of Human Movement, segment lengths). ADULT_LEG_MM is someone 1.63 m tall.
LEG_SHARE_OF_HEIGHT = 0.491
HEIGHT_RANGE_CM = (100.0, 230.0)  # a person's height; outside it, a typo or a unit mix-up
MIN_JOINTS = 4  # seen joints needed to place a person (2 already fix t, the rest average out detector noise)
MIN_DEPTH_MM = 300.0  # a solution closer than this (or behind the camera) is a failed solve, not a person


def check_fov(fov_deg: float) -> float:
    """The horizontal field of view in degrees, or ValueError with the accepted range."""
    return _in_range(fov_deg, FOV_RANGE_DEG, "field of view", "degrees")


def check_height(height_cm: float) -> float:
    """A person's height in centimetres, or ValueError with the accepted range."""
    return _in_range(height_cm, HEIGHT_RANGE_CM, "height", "centimetres")


def _in_range(value: float, bounds: tuple[float, float], what: str, unit: str) -> float:
    lo, hi = bounds
    if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{what} must be a number of {unit} in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def leg_mm_for_height(height_cm: float) -> float:
    """The hip-knee-ankle length (mm) of a person this tall, or ValueError with the accepted range."""
    return 10.0 * LEG_SHARE_OF_HEIGHT * check_height(height_cm)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal length and principal point in pixels (square pixels, no distortion)."""
    focal: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> "Intrinsics":
        """A camera seeing `fov_deg` across the frame's width, principal point at the centre."""
        focal = 0.5 * width / math.tan(0.5 * math.radians(check_fov(fov_deg)))
        return cls(focal, 0.5 * width, 0.5 * height)


def solve_root(keypoints: np.ndarray, confidence: np.ndarray, joints3d: np.ndarray,
               camera: Intrinsics) -> np.ndarray:
    """Pelvis positions in camera space, mm.

    keypoints [N,17,2] px, confidence [N,17] (0 = missing), joints3d [N,17,3] mm pelvis-relative.
    Returns [N,3]; a row is NaN where fewer than MIN_JOINTS joints are seen or the solve lands behind the camera.
    """
    kp = np.asarray(keypoints, np.float64).reshape(-1, 17, 2)
    cf = np.asarray(confidence, np.float64).reshape(-1, 17)
    xyz = np.asarray(joints3d, np.float64).reshape(-1, 17, 3)
    out = np.full((len(kp), 3), np.nan)
    for i in range(len(kp)):
        seen = cf[i] > 0
        if seen.sum() < MIN_JOINTS:
            continue
        a = kp[i, seen] - (camera.cx, camera.cy)
        t = _solve(a, xyz[i, seen], cf[i, seen], camera.focal)
        if t is not None:
            # Reweight by 1/depth: the algebraic error becomes the reprojection error in pixels.
            depth = np.maximum(xyz[i, seen, 2] + t[2], MIN_DEPTH_MM)
            t = _solve(a, xyz[i, seen], cf[i, seen] * (t[2] / depth) ** 2, camera.focal)
        if t is not None and t[2] >= MIN_DEPTH_MM:
            out[i] = t
    return out


def _solve(a: np.ndarray, xyz: np.ndarray, w: np.ndarray, f: float) -> np.ndarray | None:
    """Weighted least squares of the linear equations above, for one person: a [K,2], xyz [K,3], w [K]."""
    k = len(a)
    rows = np.zeros((2 * k, 3))
    rows[:k, 0] = f
    rows[k:, 1] = f
    rows[:k, 2] = -a[:, 0]
    rows[k:, 2] = -a[:, 1]
    rhs = np.concatenate([a[:, 0] * xyz[:, 2] - f * xyz[:, 0], a[:, 1] * xyz[:, 2] - f * xyz[:, 1]])
    sw = np.sqrt(np.concatenate([w, w]))
    m = rows * sw[:, None]
    normal = m.T @ m
    if np.linalg.cond(normal) > 1e12:
        return None
    return np.linalg.solve(normal, m.T @ (rhs * sw))


def project(points: np.ndarray, camera: Intrinsics) -> np.ndarray:
    """Camera-space points [..., 3] mm -> pixels [..., 2]."""
    p = np.asarray(points, np.float64)
    return camera.focal * p[..., :2] / p[..., 2:3] + (camera.cx, camera.cy)
