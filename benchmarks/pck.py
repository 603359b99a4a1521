"""Keypoint accuracy, measured one way for every detector configuration.

PCK@0.2, torso-normalised: a reference joint counts as hit when one of our keypoints lies within 0.2 x the
torso diameter (the longer shoulder-to-opposite-hip diagonal of the reference) of it; a joint we did not find
is a miss. References are COCO ground truth or MediaPipe's keypoints; only joints both define are counted
(COCO-18 without the neck). Each reference person is matched one-to-one to the detected person that hits most.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posecast.skeleton import C, COCO18

ALPHA = 0.2
COMPARED = np.array([i for i, name in enumerate(COCO18) if name != "neck"])
LIMBS = np.array([C[f"{s}_{j}"] for s in "lr" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")])
_DIAGONALS = ((C["l_shoulder"], C["r_hip"]), (C["r_shoulder"], C["l_hip"]))
FOUND_PCK = 0.5   # a reference person counts as found when their best match hits at least half their joints

Pose = tuple[np.ndarray, np.ndarray]   # [18, 2] pixels, [18] > 0 where defined


def torso(keypoints: np.ndarray, defined: np.ndarray) -> float | None:
    lengths = [float(np.linalg.norm(keypoints[a] - keypoints[b])) for a, b in _DIAGONALS if defined[a] and defined[b]]
    return max(lengths) if lengths else None


def hits(reference: Pose, candidate: Pose, threshold: float) -> np.ndarray:
    """[18] bool: reference joints (compared ones) that the candidate places within the threshold."""
    (rk, rd), (ck, cc) = reference, candidate
    near = np.linalg.norm(rk - ck, axis=1) < threshold
    out = np.zeros(len(COCO18), bool)
    out[COMPARED] = (rd[COMPARED] > 0) & (cc[COMPARED] > 0) & near[COMPARED]
    return out


@dataclass
class Tally:
    hit: int = 0
    joints: int = 0
    people: int = 0
    found: int = 0
    limb_joints: int = 0
    limbs_missing: int = 0
    hit_found: int = 0       # hits and joints of the people found only (MediaPipe finds one person per image)
    joints_found: int = 0

    def add(self, references: list[Pose], candidates: list[Pose]) -> None:
        """One image or frame: reference people (skipped when they have no torso) against ours."""
        refs = [(r, t) for r in references if (t := torso(*r)) is not None]
        table = np.array([[hits(r, c, ALPHA * t) for c in candidates] for r, t in refs]).reshape(
            len(refs), len(candidates), len(COCO18))
        counts = table.sum(-1)
        match: dict[int, int] = {}
        for flat in np.argsort(-counts, axis=None, kind="stable"):
            ri, ci = divmod(int(flat), max(len(candidates), 1))
            if counts[ri, ci] == 0:
                break
            if ri not in match and ci not in match.values():
                match[ri] = ci
        for ri, ((rk, rd), _) in enumerate(refs):
            defined = np.zeros(len(COCO18), bool)
            defined[COMPARED] = rd[COMPARED] > 0
            hit = table[ri, match[ri]] if ri in match else np.zeros(len(COCO18), bool)
            ours = candidates[match[ri]][1] > 0 if ri in match else np.zeros(len(COCO18), bool)
            self.hit += int(hit.sum())
            self.joints += int(defined.sum())
            self.people += 1
            found = bool(hit.sum() >= FOUND_PCK * defined.sum())
            self.found += found
            self.hit_found += int(hit.sum()) * found
            self.joints_found += int(defined.sum()) * found
            self.limb_joints += int(defined[LIMBS].sum())
            self.limbs_missing += int((defined[LIMBS] & ~ours[LIMBS]).sum())

    @property
    def pck(self) -> float:
        return self.hit / max(self.joints, 1)

    def summary(self) -> str:
        return (f"PCK {self.pck:.3f} ({self.hit_found / max(self.joints_found, 1):.3f} found), "
                f"found {self.found}/{self.people}, limb joints missing {self.limbs_missing / max(self.limb_joints, 1):.1%}")


COCO17_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
                "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
COCO17_TO_18 = np.array([C[n] for n in COCO17_NAMES])


@dataclass
class CocoImage:
    path: Path
    people: list[Pose]          # COCO-18 layout, neck undefined
    boxes: list[list[float]]    # x, y, w, h per person


def coco_ground_truth(annotations: Path, min_keypoints: int = 1) -> list[CocoImage]:
    """The images of a COCO keypoint file (beside it, named mmpose_coco_<id>.jpg) and their people."""
    data = json.loads(annotations.read_text())
    names = tuple(n.replace("left_", "l_").replace("right_", "r_") for n in data["categories"][0]["keypoints"])
    if names != COCO17_NAMES:
        raise ValueError(f"{annotations}: unexpected keypoint layout {names}")
    images = []
    for image in data["images"]:
        people, boxes = [], []
        for ann in data["annotations"]:
            if ann["image_id"] != image["id"] or ann["num_keypoints"] < min_keypoints:
                continue
            gt = np.array(ann["keypoints"], np.float32).reshape(17, 3)
            kp, defined = np.zeros((len(COCO18), 2), np.float32), np.zeros(len(COCO18), np.float32)
            kp[COCO17_TO_18], defined[COCO17_TO_18] = gt[:, :2], (gt[:, 2] > 0)
            people.append((kp, defined))
            boxes.append(ann["bbox"])
        images.append(CocoImage(annotations.parent / f"mmpose_coco_{image['id']:012d}.jpg", people, boxes))
    return images
