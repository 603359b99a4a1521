"""Loading the motion sources: BVH folders into `MotionSet`s, and the climbing set's landmarks."""
from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .body import head_frame_from_body
from posecast.bvh import forward_kinematics, read_bvh
from .data import MotionSet
from .rigs import HOLOSOMA, LANDMARKS, LEG_MM, L, RigMap, find_rig, landmark_indices

log = logging.getLogger(__name__)


def unpack(archive: Path, into: Path) -> Path:
    """Unpack a .tar.xz once into the cache; returns the folder."""
    done = into / ".unpacked"
    if not done.exists():
        log.info("unpacking %s into %s", archive, into)
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        done.touch()
    return into


def clip_action(path: Path) -> str:
    """Bandai clips are dataset-N_<content>_<style>_<nnn>.bvh; others use their file stem."""
    m = re.match(r"dataset-\d_([^_]+)_", path.name)
    return m.group(1) if m else path.stem


def split_clips(clips: list[str], actions: list[str], every: int = 10) -> np.ndarray:
    """Validation flag per clip: every `every`-th clip of each action (sorted by name).

    Splitting by clip, never by frame, keeps near-identical neighbouring frames out of
    validation."""
    val = np.zeros(len(clips), bool)
    for action in set(actions):
        members = sorted((c, i) for i, (c, a) in enumerate(zip(clips, actions)) if a == action)
        for k, (_, i) in enumerate(members):
            val[i] = k % every == every // 2
    return val


# A BVH whose frames are further apart than this is a set of single poses, not motion (the CMU
# floor package's sparse pose sets carry a nominal Frame Time): its fps is recorded as 0.
MAX_MOTION_FRAME_TIME = 0.1


def load_bvh_folder(paths: list[Path], stride: int) -> dict[str, MotionSet]:
    """BVH files -> one MotionSet per rig, every `stride`-th frame, millimetres, with each clip's fps."""
    per_rig: dict[str, dict[str, list]] = {}
    for path in tqdm(paths, desc="BVH", unit="clip"):
        bvh = read_bvh(path)
        rig = find_rig(bvh.names)
        rot, trans = bvh.local_transforms()
        rot, trans = rot[::stride], trans[::stride]
        if len(rot) == 0:
            continue
        lm = landmark_indices(rig, bvh.names)
        offsets = _offsets_mm(trans, rig, lm, bvh.parents)
        pos, glob = forward_kinematics(bvh.parents, rot, np.broadcast_to(offsets, trans.shape))
        group = per_rig.setdefault(rig.name, {"rot": [], "clip": [], "offsets": [], "head": [],
                                              "clips": [], "actions": [], "fps": [],
                                              "parents": bvh.parents, "landmarks": lm})
        if len(group["parents"]) != len(bvh.parents) or (group["parents"] != bvh.parents).any():
            raise ValueError(f"{path}: rig {rig.name} with a different hierarchy than earlier clips")
        group["rot"].append(rot.astype(np.float32))
        group["clip"].append(np.full(len(rot), len(group["clips"])))
        group["offsets"].append(offsets)
        group["head"].append(_head_calibration(pos[:, lm], glob[:, lm[L["head"]]]))
        group["clips"].append(path.stem)
        group["actions"].append(clip_action(path))
        group["fps"].append(0.0 if bvh.frame_time > MAX_MOTION_FRAME_TIME else 1.0 / (bvh.frame_time * stride))
    return {name: MotionSet(name, g["parents"], g["landmarks"], np.concatenate(g["rot"]),
                            np.concatenate(g["clip"]), np.stack(g["offsets"]).astype(np.float32),
                            np.stack(g["head"]), g["clips"], g["actions"], np.array(g["fps"]))
            for name, g in per_rig.items()}


def _offsets_mm(trans: np.ndarray, rig: RigMap, lm: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """The clip's bone offsets in mm; translations that move (root motion) become 0."""
    offsets = trans[0].copy()
    offsets[np.ptp(trans, axis=0).max(1) > 1e-3] = 0.0
    offsets[parents < 0] = 0.0
    scale = rig.mm_per_unit
    if scale is None:
        leg = np.linalg.norm(offsets[lm[L["l_knee"]]]) + np.linalg.norm(offsets[lm[L["l_ankle"]]])
        scale = LEG_MM / leg
    return offsets * scale


def _head_calibration(landmarks: np.ndarray, head_rot: np.ndarray) -> np.ndarray:
    """Head up / forward in the head joint's own frame, averaged over the clip: [2,3]."""
    up, forward = head_frame_from_body(landmarks)
    local = np.stack([np.einsum("fji,fj->fi", head_rot, v).mean(0) for v in (up, forward)])
    local[0] /= np.linalg.norm(local[0])
    local[1] -= local[0] * (local[1] @ local[0])
    local[1] /= np.linalg.norm(local[1])
    return local


def load_climb(folder: Path, stride: int) -> tuple[list[str], list[np.ndarray]]:
    """holosoma climbing clips -> names and landmarks [F,14,3] in mm, Y up."""
    names = (folder / "joint_names.txt").read_text().split()
    index = [names.index(HOLOSOMA.joints[name]) for name in LANDMARKS]
    clips, out = [], []
    for path in sorted(folder.glob("*_joint_positions_*.npy")):
        xyz = np.load(path)[::stride][:, index].astype(np.float64) * HOLOSOMA.mm_per_unit
        out.append(np.stack([xyz[..., 0], xyz[..., 2], -xyz[..., 1]], -1))  # Z up -> Y up
        clips.append(path.stem.split("_joint_positions")[0])
    if not out:
        raise FileNotFoundError(f"no *_joint_positions_*.npy clips in {folder}")
    return clips, out
