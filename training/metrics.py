"""3D pose errors (mm, degrees), per sample, numpy.

MPJPE: mean joint distance of pelvis-relative poses. P-MPJPE: after the best similarity
transform (rotation, scale, translation; Procrustes). Bone-corrected P-MPJPE: the prediction is
first rebuilt along the skeleton tree with the true bone lengths, keeping its bone directions,
so that only the pose is scored, not the dataset's joint definitions. Limb angle: the angle
between predicted and true directions of the eight limb bones, in camera coordinates.
"""
from __future__ import annotations

import numpy as np

from posecast.skeleton import H, H36M17_EDGES, H36M17_LIMBS

from .rigs import unit


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1).mean(-1)


def best_fit(src: np.ndarray, dst: np.ndarray, scale: bool = True
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rotations R [N,3,3], scales k [N,1,1] and centroids cs, cd such that
    k * (src - cs) @ R + cd best matches dst ([N,K,3] each; k = 1 unless scale)."""
    cs, cd = src.mean(1, keepdims=True), dst.mean(1, keepdims=True)
    p, g = src - cs, dst - cd
    u, s, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ g)
    d = np.sign(np.linalg.det(u @ vt))
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    k = s.sum(1) / np.maximum((p ** 2).sum((1, 2)), 1e-12) if scale else np.ones(len(src))
    return u @ vt, k[:, None, None], cs, cd


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pred [N,K,3] moved onto gt by the best rotation, scale and translation."""
    rot, k, cp, cg = best_fit(pred, gt)
    return k * ((pred - cp) @ rot) + cg


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return mpjpe(procrustes_align(pred, gt), gt)


def with_true_bones(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The prediction's bone directions with the ground truth's bone lengths."""
    out = np.zeros_like(pred)
    out[:, 0] = pred[:, 0]
    for a, b in H36M17_EDGES:  # parents come before children
        out[:, b] = out[:, a] + unit(pred[:, b] - pred[:, a]) * np.linalg.norm(gt[:, b] - gt[:, a], axis=-1, keepdims=True)
    return out


def bone_p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return p_mpjpe(with_true_bones(pred, gt), gt)


def limb_angle(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean angle (degrees) between predicted and true limb-bone directions, per sample."""
    idx = np.array(H36M17_LIMBS)
    dp = pred[:, idx[:, 1]] - pred[:, idx[:, 0]]
    dg = gt[:, idx[:, 1]] - gt[:, idx[:, 0]]
    cos = (dp * dg).sum(-1) / np.maximum(np.linalg.norm(dp, axis=-1) * np.linalg.norm(dg, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(-1)


# Posture groups by the true trunk's angle from the camera's up (degrees, trunk_pitch): where the errors are.
POSTURES = {"trunk < 45°": (0, 45), "trunk 45-70°": (45, 70), "trunk >= 70°": (70, 181)}


def trunk_pitch(joints: np.ndarray) -> np.ndarray:
    """Degrees between the pelvis-to-thorax direction and the camera's up (y points down): about 0
    standing, 90 lying or on all fours (camera-relative, so a camera looking down adds its pitch)."""
    trunk = joints[:, H["thorax"]] - joints[:, H["pelvis"]]
    return np.degrees(np.arccos(np.clip(-trunk[:, 1] / np.linalg.norm(trunk, axis=-1), -1, 1)))


METRICS = {"mpjpe": mpjpe, "p_mpjpe": p_mpjpe, "bone_p_mpjpe": bone_p_mpjpe, "limb_deg": limb_angle}


def all_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    pred, gt = pred.astype(np.float64), gt.astype(np.float64)
    return {name: fn(pred, gt) for name, fn in METRICS.items()}
