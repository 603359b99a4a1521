"""Joint layouts: the one definition of COCO-18 and Human3.6M-17 used everywhere.

Training, export, the server and (through the server's hello message) the page take
joint names, skeleton edges, sides and mirror permutations from here, never a copy.
"""
from __future__ import annotations

import numpy as np

# OpenPose / CMU order of the 18 COCO keypoints (with the synthetic neck at 1).
COCO18: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)

# Human3.6M 17-joint order used by Martinez et al. (2017) and by the lifter.
H36M17: tuple[str, ...] = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "spine", "thorax", "neck_nose", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)

C = {name: i for i, name in enumerate(COCO18)}
H = {name: i for i, name in enumerate(H36M17)}


def _edges(index: dict[str, int], pairs: str) -> tuple[tuple[int, int], ...]:
    return tuple((index[a], index[b]) for a, b in (p.split("-") for p in pairs.split()))


# The 19 limbs of the CMU model, in the order of its 19 part-affinity fields
# (PAF channel pair k is x = 2k, y = 2k + 1 after the 19 heatmap channels).
# The first 17 are the drawn skeleton; the last two (ear-shoulder) only help grouping.
COCO18_PAF_LIMBS = _edges(C, (
    "neck-r_hip r_hip-r_knee r_knee-r_ankle neck-l_hip l_hip-l_knee l_knee-l_ankle "
    "neck-r_shoulder r_shoulder-r_elbow r_elbow-r_wrist r_shoulder-r_ear "
    "neck-l_shoulder l_shoulder-l_elbow l_elbow-l_wrist l_shoulder-l_ear "
    "neck-nose nose-r_eye nose-l_eye r_eye-r_ear l_eye-l_ear"
))
COCO18_EDGES = tuple(e for e in COCO18_PAF_LIMBS
                     if {COCO18[e[0]], COCO18[e[1]]} not in ({"r_shoulder", "r_ear"}, {"l_shoulder", "l_ear"}))

H36M17_EDGES = _edges(H, (
    "pelvis-r_hip r_hip-r_knee r_knee-r_ankle pelvis-l_hip l_hip-l_knee l_knee-l_ankle "
    "pelvis-spine spine-thorax thorax-neck_nose neck_nose-head "
    "thorax-l_shoulder l_shoulder-l_elbow l_elbow-l_wrist "
    "thorax-r_shoulder r_shoulder-r_elbow r_elbow-r_wrist"
))

# The eight limb bones whose directions we score (upper/lower arms and legs).
H36M17_LIMBS = _edges(H, (
    "r_hip-r_knee r_knee-r_ankle l_hip-l_knee l_knee-l_ankle "
    "l_shoulder-l_elbow l_elbow-l_wrist r_shoulder-r_elbow r_elbow-r_wrist"
))


def _side(name: str) -> str:
    return "left" if name.startswith("l_") else "right" if name.startswith("r_") else "centre"


def sides(names: tuple[str, ...]) -> tuple[str, ...]:
    """'left', 'right' or 'centre' for each joint, from the person's point of view."""
    return tuple(_side(n) for n in names)


def edge_sides(names: tuple[str, ...], edges: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    """An edge belongs to a side when either end does (pelvis-r_hip is a right bone)."""
    out = []
    for a, b in edges:
        s = {_side(names[a]), _side(names[b])} - {"centre"}
        out.append(s.pop() if s else "centre")
    return tuple(out)


def mirror_permutation(names: tuple[str, ...]) -> np.ndarray:
    """Index array that swaps left and right joints: mirrored[i] = joints[perm[i]]."""
    index = {n: i for i, n in enumerate(names)}
    swap = {"l_": "r_", "r_": "l_"}
    return np.array([index[swap[n[:2]] + n[2:]] if n[:2] in swap else i
                     for i, n in enumerate(names)], dtype=np.int64)


COCO18_MIRROR = mirror_permutation(COCO18)
H36M17_MIRROR = mirror_permutation(H36M17)

# Head top sits this far beyond the centre of the eyes/ears, along the thorax->head-centre
# direction, as a fraction of that distance. Training builds its 2D the same way.
HEAD_TOP_EXTENSION = 0.5


def coco18_to_h36m17(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert COCO-18 keypoints to the Human3.6M-17 layout.

    keypoints [..., 18, D] (D = 2 for pixels, 3 for 3D), confidence [..., 18] in [0, 1].
    Returns ([..., 17, D], [..., 17]). A joint that cannot be formed gets confidence 0
    and coordinates 0: callers must read confidence, never treat zeros as positions.
    Used by the detector live and by training on virtual COCO points, so the lifter
    learns exactly what it will be given.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    cf = np.asarray(confidence, dtype=np.float32)
    ok = cf > 0
    out = np.zeros(kp.shape[:-2] + (17, kp.shape[-1]), np.float32)
    oc = np.zeros(cf.shape[:-1] + (17,), np.float32)

    def put(j: int, xy: np.ndarray, c: np.ndarray) -> None:
        out[..., j, :] = np.where(c[..., None] > 0, xy, 0.0)
        oc[..., j] = c

    def pick(name: str) -> tuple[np.ndarray, np.ndarray]:
        return kp[..., C[name], :], np.where(ok[..., C[name]], cf[..., C[name]], 0.0)

    def mean_of(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean of the available points among names, their mean confidence, and whether all were there."""
        w = np.stack([ok[..., C[n]] for n in names], -1).astype(np.float32)
        pts = np.stack([kp[..., C[n], :] for n in names], -2)
        n = w.sum(-1)
        xy = (pts * w[..., None]).sum(-2) / np.maximum(n, 1)[..., None]
        c = np.stack([cf[..., C[n]] for n in names], -1)
        return xy, (c * w).sum(-1) / np.maximum(n, 1), n == len(names)

    for name in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
                 "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"):
        put(H[name], *pick(name))

    pelvis, pc, both_hips = mean_of(("r_hip", "l_hip"))
    pc = np.where(both_hips, pc, 0.0)  # one hip alone would put the pelvis on the side
    put(H["pelvis"], pelvis, pc)
    thorax, tc = pick("neck")
    put(H["thorax"], thorax, tc)
    put(H["spine"], 0.5 * (pelvis + thorax), np.minimum(pc, tc))
    put(H["neck_nose"], *pick("nose"))

    # Head top: beyond the centre of the ears (else eyes), away from the thorax.
    ears, ec, _ = mean_of(("r_ear", "l_ear"))
    eyes, yc, _ = mean_of(("r_eye", "l_eye"))
    have_ears = ec > 0
    centre = np.where(have_ears[..., None], ears, eyes)
    cc = np.where(have_ears, ec, yc)
    put(H["head"], centre + HEAD_TOP_EXTENSION * (centre - thorax), np.minimum(cc, tc))
    return out, oc


def skeleton_info() -> dict:
    """The layouts as plain JSON-able data, for the page and for model manifests."""
    def layout(names, edges):
        return {"joints": list(names), "edges": [list(e) for e in edges],
                "sides": list(sides(names)), "edge_sides": list(edge_sides(names, edges)),
                "mirror": mirror_permutation(names).tolist()}
    return {"h36m17": layout(H36M17, H36M17_EDGES), "coco18": layout(COCO18, COCO18_EDGES)}
