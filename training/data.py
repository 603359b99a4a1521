"""Training samples: mocap rotations -> (augmented) FK -> virtual COCO-18 -> cameras -> lifter pairs.

A `MotionSet` holds one rig's frames as local rotations (what `training prepare` caches);
`synthesize` turns a batch of them into what the lifter sees live (2D pixels of the converted
Human3.6M-17 joints, confidences with dropout) and what it must answer (3D joints in camera
coordinates, mm, pelvis-relative). Position-only mocap (the climbing set) enters through
`from_landmarks`, the second half of the same path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posecast.skeleton import C, COCO18_MIRROR, H, coco18_to_h36m17

from .body import DefinitionJitter, coco18_points, h36m17_from_coco3d
from posecast.bvh import forward_kinematics
from .cameras import CameraRanges, Cameras, random_cameras
from .posespace import PoseAugment, RigParts, augment_rotations, tilt_bodies
from .rigs import L


@dataclass
class Noise2D:
    """Detector-like 2D errors, relative to the person's height in pixels."""
    sigma: float = 0.018         # per-sample sigma drawn in [0, sigma] x height
    floor_px: float = 3.0        # plus up to this many pixels
    outlier: float = 0.02        # probability that a point is badly off
    outlier_sigma: float = 0.08


@dataclass
class Dropout:
    """Joints marked missing (confidence 0) on the COCO-18 points, before conversion."""
    random: float = 0.25          # probability of per-joint random dropout (rate up to 0.2)
    legs: float = 0.2             # knees and ankles
    lower_body: float = 0.10      # hips, knees and ankles (seen from the waist up)
    arm: float = 0.05
    face: float = 0.05


@dataclass
class SampleOptions:
    pose: PoseAugment = field(default_factory=PoseAugment)
    jitter: DefinitionJitter | None = field(default_factory=DefinitionJitter)
    cameras: CameraRanges = field(default_factory=CameraRanges)
    noise: Noise2D | None = field(default_factory=Noise2D)
    dropout: Dropout | None = field(default_factory=Dropout)
    mirror: float = 0.5
    clip_to_image: bool = True    # joints outside the image are missing, as for the detector

    @classmethod
    def evaluation(cls) -> "SampleOptions":
        """Fixed, clean views: the whole body in front of a camera 2.5-5 m away."""
        return cls(pose=PoseAugment.off(), jitter=None, noise=None, dropout=None, mirror=0.0,
                   cameras=CameraRanges(distance_mm=(2500.0, 5000.0), offset=0.15),
                   clip_to_image=False)


@dataclass
class MotionSet:
    """One rig's frames: local rotations per frame, offsets and head calibration per clip."""
    rig: str
    parents: np.ndarray       # [J]
    landmarks: np.ndarray     # [14] joint index per landmark
    rot: np.ndarray           # [F,J,3,3] float32
    clip: np.ndarray          # [F] clip index
    offsets: np.ndarray       # [clips,J,3] mm, root motion removed
    head_local: np.ndarray    # [clips,2,3] head up / forward in the head joint's frame
    clips: list[str]
    actions: list[str]        # per clip
    # Frames per second per clip, for sequences (0: a set of single poses, not motion); None when
    # the frames were kept only as poses (the per-frame dataset).
    fps: np.ndarray | None = None

    def save(self, path: Path) -> None:
        extra = {} if self.fps is None else {"fps": self.fps}
        np.savez(path, rig=self.rig, parents=self.parents, landmarks=self.landmarks, rot=self.rot,
                 clip=self.clip, offsets=self.offsets, head_local=self.head_local,
                 clips=np.array(self.clips), actions=np.array(self.actions), **extra)

    @classmethod
    def load(cls, path: Path) -> "MotionSet":
        z = np.load(path)
        return cls(str(z["rig"]), z["parents"], z["landmarks"], z["rot"], z["clip"], z["offsets"],
                   z["head_local"], z["clips"].tolist(), z["actions"].tolist(),
                   z["fps"] if "fps" in z.files else None)

    def subset(self, frames: np.ndarray) -> "MotionSet":
        return MotionSet(self.rig, self.parents, self.landmarks, self.rot[frames], self.clip[frames],
                         self.offsets, self.head_local, self.clips, self.actions, self.fps)

    @property
    def parts(self) -> RigParts:
        return RigParts.of(self.parents, self.landmarks)


@dataclass
class Samples:
    keypoints: np.ndarray   # [N,17,2] float32 pixels
    confidence: np.ndarray  # [N,17] float32
    joints3d: np.ndarray    # [N,17,3] float32 mm, pelvis-relative camera coordinates

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def concat(cls, parts: list["Samples"]) -> "Samples":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("keypoints", "confidence", "joints3d")))

    def take(self, index: np.ndarray) -> "Samples":
        return Samples(self.keypoints[index], self.confidence[index], self.joints3d[index])


def synthesize(motion: MotionSet, frames: np.ndarray, rng: np.random.Generator,
               opts: SampleOptions) -> Samples:
    """Lifter samples from frames of one rig."""
    return from_landmarks(*posed_landmarks(motion, frames, rng, opts.pose), rng, opts)


def posed_landmarks(motion: MotionSet, frames: np.ndarray, rng: np.random.Generator,
                    pose: PoseAugment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of one rig -> pose-space augmented landmarks [B,14,3] mm and head (up, forward) [B,3]."""
    rot = motion.rot[frames].astype(np.float64)
    trans = motion.offsets[motion.clip[frames]].astype(np.float64)
    rot, trans = augment_rotations(rot, trans, motion.parts, pose, rng)
    pos, glob = forward_kinematics(motion.parents, rot, trans)
    head = glob[:, motion.parts.head]
    calib = motion.head_local[motion.clip[frames]]
    up = np.einsum("bij,bj->bi", head, calib[:, 0])
    forward = np.einsum("bij,bj->bi", head, calib[:, 1])
    return pos[:, motion.landmarks], up, forward


def body_points(landmarks: np.ndarray, head_up: np.ndarray, head_forward: np.ndarray,
                rng: np.random.Generator, opts: SampleOptions) -> np.ndarray:
    """Landmarks [B,14,3] mm (Y up) + head axes -> pelvis-centred COCO-18 points [B,18,3] mm
    (definition jitter, whole-body tilt, mirroring)."""
    coco = coco18_points(landmarks, head_up, head_forward, rng, opts.jitter)
    pelvis = 0.5 * (landmarks[:, L["l_hip"]] + landmarks[:, L["r_hip"]])
    coco = tilt_bodies(coco - pelvis[:, None], opts.pose.tilt, rng)
    flip = rng.random(len(coco)) < opts.mirror
    coco[flip] = coco[flip][:, COCO18_MIRROR] * np.array([-1.0, 1.0, 1.0])
    return coco


def view(coco: np.ndarray, cams: Cameras, opts: SampleOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO-18 points [B,18,3] through cameras -> pixels [B,18,2], in-view flags [B,18], camera points."""
    cam = cams.to_camera(coco)
    pixels = cams.project(cam)
    conf = cams.in_image(pixels, cam) if opts.clip_to_image else cam[..., 2] > 1.0
    return pixels, conf.astype(np.float32), cam


def from_landmarks(landmarks: np.ndarray, head_up: np.ndarray, head_forward: np.ndarray,
                   rng: np.random.Generator, opts: SampleOptions) -> Samples:
    """Landmarks [B,14,3] mm (Y up) + head axes -> lifter samples through random cameras."""
    b = len(landmarks)
    coco = body_points(landmarks, head_up, head_forward, rng, opts)
    pixels, conf, cam = view(coco, random_cameras(b, rng, opts.cameras), opts)
    if opts.noise is not None:
        pixels = pixels + detector_noise(pixels, opts.noise, rng)
    if opts.dropout is not None:
        conf *= _dropout_mask(b, opts.dropout, rng)
    keypoints, confidence = coco18_to_h36m17(pixels, conf)
    return Samples(keypoints, confidence, h36m17_from_coco3d(cam).astype(np.float32))


def detector_noise(pixels: np.ndarray, noise: Noise2D, rng: np.random.Generator,
                   level: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Noise [B,K,2] for pixels [B,K,2]. Each sample's sigma is level[0] x noise.sigma x its height
    + level[1] pixels, the two [B,1,1] drawn here when not given (in 0..1 and 0..floor_px)."""
    b, k = pixels.shape[:2]
    height = np.ptp(pixels[..., 1], axis=1)[:, None, None]
    if level is None:
        level = rng.uniform(0, 1, (b, 1, 1)), rng.uniform(0, noise.floor_px, (b, 1, 1))
    sigma = level[0] * noise.sigma * height + level[1]
    out = rng.normal(size=pixels.shape) * sigma
    bad = rng.random((b, k, 1)) < noise.outlier
    return out + bad * rng.normal(size=pixels.shape) * noise.outlier_sigma * height


GROUPS = {
    "legs": [C[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")],
    "lower_body": [C[n] for n in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")],
    "arm": [[C[n] for n in ("r_elbow", "r_wrist")], [C[n] for n in ("l_elbow", "l_wrist")]],
    "face": [C[n] for n in ("r_eye", "l_eye", "r_ear", "l_ear")],
}


def _dropout_mask(b: int, d: Dropout, rng: np.random.Generator) -> np.ndarray:
    keep = np.ones((b, 18), np.float32)
    rate = np.where(rng.random(b) < d.random, rng.uniform(0, 0.2, b), 0.0)
    keep[rng.random((b, 18)) < rate[:, None]] = 0
    for name in ("legs", "lower_body", "face"):
        keep[np.ix_(rng.random(b) < getattr(d, name), GROUPS[name])] = 0
    arm = rng.random(b) < d.arm
    side = rng.integers(2, size=b)
    for s in (0, 1):
        keep[np.ix_(arm & (side == s), GROUPS["arm"][s])] = 0
    return keep


# Evaluation conditions, applied to clean Human3.6M-17 2D.
CONDITIONS = ("exact", "noise5", "no_legs")
LEG_JOINTS = [H[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]


def apply_condition(samples: Samples, condition: str, seed: int = 0) -> Samples:
    """exact 2D; 5 px Gaussian noise; knees and ankles missing."""
    kp, cf = samples.keypoints.copy(), samples.confidence.copy()
    if condition == "noise5":
        kp += np.random.default_rng(seed).normal(0, 5.0, kp.shape).astype(np.float32)
    elif condition == "no_legs":
        cf[:, LEG_JOINTS] = 0
    elif condition != "exact":
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    return Samples(kp, cf, samples.joints3d)
