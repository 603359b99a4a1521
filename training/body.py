"""Virtual COCO-18 points from body landmarks, so training sees what the detector gives.

The detector reports COCO-18 points (nose, eyes, ears, the OpenPose neck between the
shoulders, limb joints); `coco18_to_h36m17` turns them into the lifter's Human3.6M-17
input live. Training builds the same COCO-18 points in 3D from the mocap landmarks and the
head's frame, projects them, and converts both the 2D and the 3D with that same function:
pelvis = mid-hips, thorax = COCO neck, spine = their midpoint, neck_nose = nose,
head = a head-top point beyond the ears. Definition jitter (issue 7) moves the hips,
shoulders, neck and face points the way other datasets and detectors place them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecast.skeleton import C, coco18_to_h36m17

from .rigs import LEG_MM, L, body_axes, unit

# Face points in the head frame (up, forward, left), mm, origin at the skull base, for an
# adult with LEG_MM legs.
FACE_MM = {
    "nose": (45.0, 105.0, 0.0),
    "r_eye": (75.0, 85.0, -32.0), "l_eye": (75.0, 85.0, 32.0),
    "r_ear": (40.0, -5.0, -75.0), "l_ear": (40.0, -5.0, 75.0),
}
_LIMB_POINTS = ("r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")


@dataclass
class DefinitionJitter:
    """Ranges of the per-sample joint-definition jitter (issue 7).

    Widths are drawn as absolute distances (for a body with LEG_MM legs) because rigs disagree
    widely: Bandai's shoulder joints are 200 mm apart, CMU's and the climbing set's 310-400 mm,
    and the detector's COCO shoulders and hips sit on the body's outline, wider still.

    Most of a shoulder's move is the body's build, not only where a rig puts the joint: the arm
    goes with it (a share drawn in arm_carry). Moving the shoulder points alone would tilt every
    hanging upper arm inwards, and the lifter learnt to hold real people's arms too close in."""
    hip_width_mm: tuple[float, float] = (120.0, 300.0)
    hip_raise_mm: tuple[float, float] = (-20.0, 60.0)
    shoulder_width_mm: tuple[float, float] = (180.0, 420.0)
    shoulder_raise_mm: tuple[float, float] = (-20.0, 30.0)
    neck_raise_mm: tuple[float, float] = (-10.0, 40.0)
    head_raise_mm: tuple[float, float] = (-10.0, 110.0)  # where the skull base sits above the head joint
    head_size: tuple[float, float] = (0.85, 1.2)
    face_mm: float = 15.0
    arm_carry: tuple[float, float] = (0.6, 1.0)


def head_frame_from_body(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head (up, forward) for position-only mocap: up along the neck, forward from the torso."""
    up = unit(landmarks[..., L["head"], :] - landmarks[..., L["neck"], :])
    _, forward, _ = body_axes(landmarks)
    return up, unit(forward - up * np.sum(forward * up, -1, keepdims=True))


def coco18_points(landmarks: np.ndarray, head_up: np.ndarray, head_forward: np.ndarray,
                  rng: np.random.Generator | None = None,
                  jitter: DefinitionJitter | None = None) -> np.ndarray:
    """Landmarks [B,14,3] mm + head axes [B,3] -> COCO-18 points [B,18,3] mm.

    With rng and jitter, each sample gets its own joint definitions."""
    b = landmarks.shape[0]

    def draw(lo_hi: tuple[float, float], nominal: float) -> np.ndarray:
        if jitter is None or rng is None:
            return np.full((b, 1), nominal)
        return rng.uniform(*lo_hi, size=(b, 1))

    j = jitter or DefinitionJitter()
    up, _, _ = body_axes(landmarks)
    legs = (np.linalg.norm(landmarks[:, L["l_knee"]] - landmarks[:, L["l_hip"]], axis=-1)
            + np.linalg.norm(landmarks[:, L["l_ankle"]] - landmarks[:, L["l_knee"]], axis=-1))
    body = (legs / LEG_MM)[:, None]
    out = np.zeros((b, 18, 3))
    for name in _LIMB_POINTS:
        out[:, C[name]] = landmarks[:, L[name]]

    for side, width, raise_mm in (("hip", j.hip_width_mm, j.hip_raise_mm),
                                  ("shoulder", j.shoulder_width_mm, j.shoulder_raise_mm)):
        lp, rp = out[:, C["l_" + side]], out[:, C["r_" + side]]
        mid, half = 0.5 * (lp + rp), 0.5 * (lp - rp)
        if jitter is None or rng is None:
            w = 1.0
        else:  # the drawn width over the rig's own
            own = np.maximum(2 * np.linalg.norm(half, axis=-1, keepdims=True), 1e-6)
            w = rng.uniform(*width, size=(b, 1)) * body / own
        r = draw(raise_mm, 0.0) * up
        moves = {"l": (w - 1) * half + r, "r": (1 - w) * half + r}
        for name, move in moves.items():
            out[:, C[f"{name}_{side}"]] += move
        if side == "shoulder":  # the arms go along, mostly (see DefinitionJitter)
            carry = draw(j.arm_carry, 0.0)
            for name, move in moves.items():
                out[:, [C[f"{name}_elbow"], C[f"{name}_wrist"]]] += (carry * move)[:, None]
    out[:, C["neck"]] = 0.5 * (out[:, C["l_shoulder"]] + out[:, C["r_shoulder"]]) + draw(j.neck_raise_mm, 0.0) * up

    size = body * draw(j.head_size, 1.0)
    left = np.cross(head_up, head_forward)
    origin = landmarks[:, L["head"]] + draw(j.head_raise_mm, 0.0) * head_up
    for name, (u, f, s) in FACE_MM.items():
        offset = np.array([u, f, s]) + (rng.normal(0, j.face_mm, (b, 3)) if jitter and rng is not None else 0)
        out[:, C[name]] = origin + size * (offset[..., :1] * head_up + offset[..., 1:2] * head_forward
                                           + offset[..., 2:] * left)
    return out


def h36m17_from_coco3d(coco: np.ndarray) -> np.ndarray:
    """Pelvis-relative Human3.6M-17 3D joints [B,17,3] from complete COCO-18 3D points."""
    joints, _ = coco18_to_h36m17(coco, np.ones(coco.shape[:-1], np.float32))
    return joints - joints[:, :1]
