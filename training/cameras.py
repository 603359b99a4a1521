"""Virtual cameras like webcams and phones: random pose and intrinsics, pinhole projection.

World: Y up, millimetres. Camera: x right, y down, z away from the camera (the lifter's axes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecast.bvh import WORLD_TO_CAMERA, axis_rotation

IMAGE_SIZES = ((640, 480), (1280, 720), (1920, 1080), (480, 640), (720, 1280))


@dataclass
class CameraRanges:
    distance_mm: tuple[float, float] = (1500.0, 6000.0)
    pitch_deg: tuple[float, float] = (-15.0, 35.0)   # positive: camera looks down on the person
    roll_deg: float = 8.0
    hfov_deg: tuple[float, float] = (50.0, 80.0)     # of the longer image side
    offset: float = 0.25                             # pelvis off the optical axis, fraction of the half view
    principal_jitter: float = 0.02                   # fraction of the image size


@dataclass
class Cameras:
    rotation: np.ndarray     # [B,3,3] world -> camera
    translation: np.ndarray  # [B,3] mm, camera coordinates of the world origin (the pelvis)
    focal: np.ndarray        # [B] pixels
    centre: np.ndarray       # [B,2] principal point, pixels
    size: np.ndarray         # [B,2] image width, height

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        """World points [B,K,3] (pelvis-centred) -> camera coordinates [B,K,3]."""
        return np.einsum("bij,bkj->bki", self.rotation, world) + self.translation[:, None]

    def project(self, cam: np.ndarray) -> np.ndarray:
        """Camera points [B,K,3] -> pixels [B,K,2]."""
        z = np.maximum(cam[..., 2:], 1.0)
        return self.focal[:, None, None] * cam[..., :2] / z + self.centre[:, None]

    def unproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels [B,K,2] at depths [B,K] -> camera points [B,K,3] (inverse of project)."""
        xy = (pixels - self.centre[:, None]) * depth[..., None] / self.focal[:, None, None]
        return np.concatenate([xy, depth[..., None]], -1)

    def in_image(self, pixels: np.ndarray, cam: np.ndarray) -> np.ndarray:
        return ((cam[..., 2] > 1.0) & (pixels[..., 0] >= 0) & (pixels[..., 1] >= 0)
                & (pixels[..., 0] < self.size[:, None, 0]) & (pixels[..., 1] < self.size[:, None, 1]))


def random_cameras(n: int, rng: np.random.Generator, ranges: CameraRanges = CameraRanges()) -> Cameras:
    """Cameras looking at a person whose pelvis is at the world origin, from any yaw."""
    size = np.array(IMAGE_SIZES, dtype=np.float64)[rng.integers(len(IMAGE_SIZES), size=n)]
    hfov = np.radians(rng.uniform(*ranges.hfov_deg, size=n))
    focal = 0.5 * size.max(1) / np.tan(0.5 * hfov)
    centre = size * (0.5 + rng.normal(0, ranges.principal_jitter, (n, 2)))
    yaw = rng.uniform(0, 2 * np.pi, n)
    pitch = np.radians(rng.uniform(*ranges.pitch_deg, size=n))
    roll = np.radians(rng.normal(0, ranges.roll_deg, n))
    rotation = (axis_rotation(roll, "Z") @ axis_rotation(pitch, "X") @ WORLD_TO_CAMERA
                @ axis_rotation(yaw, "Y"))
    depth = rng.uniform(*ranges.distance_mm, size=n)
    half_view = depth[:, None] * (0.5 * size) / focal[:, None]
    shift = rng.uniform(-ranges.offset, ranges.offset, (n, 2)) * half_view
    translation = np.concatenate([shift, depth[:, None]], 1)
    return Cameras(rotation, translation, focal, centre, size)
