"""Joint maps: from each motion-capture rig to the common body landmarks.

Every source is reduced to the same 14 anatomical landmarks (LANDMARKS, millimetres, Y up)
plus a head frame; `training.body` then builds virtual COCO-18 points from them exactly the
way the detector sees a person, and the Human3.6M-17 joints follow from
`posecast.skeleton.coco18_to_h36m17`. Landmark definitions (the same for every rig):

  r_/l_hip       hip joint centre (head of the femur): the thigh bone's root joint
  r_/l_knee      knee joint centre: the shin bone's root joint
  r_/l_ankle     ankle joint centre: the foot bone's root joint
  r_/l_shoulder  gleno-humeral joint: the upper-arm bone's root (not the clavicle's)
  r_/l_elbow     elbow joint centre: the forearm's root joint
  r_/l_wrist     wrist joint centre: the hand bone's root joint
  neck           base of the neck: the root of the lowest neck bone
  head           top of the neck / base of the skull: the head bone's root joint

Rigs whose units are not known (the CMU conversions use arbitrary scales) are scaled so
that thigh + shin measure LEG_MM, the Bandai actors' leg length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANDMARKS: tuple[str, ...] = (
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "neck", "head",
)
L = {name: i for i, name in enumerate(LANDMARKS)}
LEG_MM = 800.0


@dataclass(frozen=True)
class RigMap:
    name: str
    joints: dict[str, str]           # landmark -> the rig's joint name
    mm_per_unit: float | None = None  # None: scale so that thigh + shin = LEG_MM

    def matches(self, names: list[str]) -> bool:
        return all(j in names for j in self.joints.values())


def _lr(template: dict[str, str], left: str, right: str) -> dict[str, str]:
    """Expand {"hip": "UpperLeg_{s}"}-style templates for both sides."""
    out = {}
    for landmark, joint in template.items():
        if "{s}" in joint:
            out["l_" + landmark] = joint.format(s=left)
            out["r_" + landmark] = joint.format(s=right)
        else:
            out[landmark] = joint
    return out


# MotionBuilder-style names (LeftUpLeg, LeftArm, ...): the CMU floor takes and the climbing set.
_MB_NAMES = _lr({"hip": "{s}UpLeg", "knee": "{s}Leg", "ankle": "{s}Foot", "shoulder": "{s}Arm",
                 "elbow": "{s}ForeArm", "wrist": "{s}Hand", "neck": "Neck", "head": "Head"}, "Left", "Right")

RIGS: tuple[RigMap, ...] = (
    # Bandai Namco Research Motion Dataset 1 and 2: centimetres, Y up.
    RigMap("bandai", _lr({"hip": "UpperLeg_{s}", "knee": "LowerLeg_{s}", "ankle": "Foot_{s}",
                          "shoulder": "UpperArm_{s}", "elbow": "LowerArm_{s}", "wrist": "Hand_{s}",
                          "neck": "Neck", "head": "Head"}, "L", "R"), mm_per_unit=10.0),
    # CMU subject 131 (cgspeed 3dsMax-friendly naming).
    RigMap("cmu-max", _lr({"hip": "{s}Hip", "knee": "{s}Knee", "ankle": "{s}Ankle",
                           "shoulder": "{s}Shoulder", "elbow": "{s}Elbow", "wrist": "{s}Wrist",
                           "neck": "lowerneck", "head": "Head"}, "Left", "Right")),
    # CMU subject 102 (cgspeed Daz-friendly naming, lower case).
    RigMap("cmu-daz", _lr({"hip": "{s}hip", "knee": "{s}knee", "ankle": "{s}foot",
                           "shoulder": "{s}shoulder", "elbow": "{s}elbow", "wrist": "{s}hand",
                           "neck": "neck", "head": "head"}, "l", "r")),
    # CMU subjects 60 and 61, salsa (cgspeed Daz-friendly naming, camel case; a figure scaled to
    # about 0.7 of adult size: the units are left to the leg-length scaling).
    RigMap("cmu-daz-salsa", _lr({"hip": "{s}Thigh", "knee": "{s}Shin", "ankle": "{s}Foot",
                                 "shoulder": "{s}Shldr", "elbow": "{s}ForeArm", "wrist": "{s}Hand",
                                 "neck": "neck", "head": "head"}, "l", "r")),
    # CMU floor and acrobatic takes (cgspeed MotionBuilder-friendly naming, CMU length units).
    RigMap("cmu-mb", _MB_NAMES),
)

# holosoma-retargeting climbing mocap (joint positions only, metres, Z up): cross-dataset check.
HOLOSOMA = RigMap("holosoma", _MB_NAMES, mm_per_unit=1000.0)


def find_rig(names: list[str]) -> RigMap:
    for rig in RIGS:
        if rig.matches(names):
            return rig
    raise ValueError(f"no joint map fits this rig (joints: {', '.join(names[:12])}, ...); add one to training/rigs.py")


def landmark_indices(rig: RigMap, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[rig.joints[name]] for name in LANDMARKS])


def body_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit (up, forward, left) vectors of the torso from landmarks [...,14,3] (Y up or not)."""
    hips = 0.5 * (points[..., L["l_hip"], :] + points[..., L["r_hip"], :])
    shoulders = 0.5 * (points[..., L["l_shoulder"], :] + points[..., L["r_shoulder"], :])
    up = unit(shoulders - hips)
    left = points[..., L["l_shoulder"], :] - points[..., L["r_shoulder"], :] \
        + points[..., L["l_hip"], :] - points[..., L["r_hip"], :]
    left = unit(left - up * np.sum(left * up, -1, keepdims=True))
    return up, np.cross(left, up), left


def unit(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis (zero vectors stay finite)."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
