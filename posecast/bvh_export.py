"""BVH export: 3D joints (Human3.6M-17, camera axes) -> a BVH skeleton that Blender and other tools play.

A BVH has fixed bone lengths and moves only by joint rotations, while the lifter gives positions whose
bone lengths vary a little from frame to frame. So the export fits a skeleton (docs/bvh.md):
- rest pose: a T-pose with each bone's median length over the recording;
- per frame, each bone's rotation: the swing that points it along the recorded bone, starting from a
  frame of the body that fixes the twist (hips line for the pelvis and legs, shoulders line for the
  chest and arms, the parent bone for forearms, shins and head);
- one BVH joint per bone, at the bone's start, so every bone turns on its own: joints where the body
  branches get an extra zero-length joint (lower_back, l_/r_clavicle), as in CMU's BVH files;
- bones whose ends are missing in a frame keep their last good local rotation (before the first good
  one: the first good one; a bone never seen stays in the rest pose).
Axes: camera (x right, y down, z away) -> BVH (X the person's left when facing the camera, Y up, Z
towards the camera), the same proper rotation the training data uses (posecast.bvh.WORLD_TO_CAMERA).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posecast.files import write_text_atomically
from posecast.skeleton import H, H36M17, H36M17_EDGES, H36M17_MIRROR
from posecast.bvh import forward_kinematics
from posecast.bvh import WORLD_TO_CAMERA

log = logging.getLogger(__name__)

UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}   # millimetres per file unit

_LEFT, _RIGHT, _UP, _DOWN = (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0)
# Rest (T-pose) direction of every Human3.6M-17 bone, in BVH axes.
REST_DIRECTION: dict[tuple[str, str], tuple[float, float, float]] = {
    ("pelvis", "r_hip"): _RIGHT, ("r_hip", "r_knee"): _DOWN, ("r_knee", "r_ankle"): _DOWN,
    ("pelvis", "l_hip"): _LEFT, ("l_hip", "l_knee"): _DOWN, ("l_knee", "l_ankle"): _DOWN,
    ("pelvis", "spine"): _UP, ("spine", "thorax"): _UP, ("thorax", "neck_nose"): _UP, ("neck_nose", "head"): _UP,
    ("thorax", "l_shoulder"): _LEFT, ("l_shoulder", "l_elbow"): _LEFT, ("l_elbow", "l_wrist"): _LEFT,
    ("thorax", "r_shoulder"): _RIGHT, ("r_shoulder", "r_elbow"): _RIGHT, ("r_elbow", "r_wrist"): _RIGHT,
}
assert set(REST_DIRECTION) == {(H36M17[a], H36M17[b]) for a, b in H36M17_EDGES}

# Only for a bone the recording never saw (e.g. legs below a desk): the Bandai actors' lengths (the
# lifter's training data) under the same joint definitions, mm.
FALLBACK_LENGTH_MM = {
    "pelvis-r_hip": 65.0, "r_hip-r_knee": 390.0, "r_knee-r_ankle": 410.0,
    "pelvis-spine": 195.0, "spine-thorax": 195.0, "thorax-neck_nose": 180.0, "neck_nose-head": 130.0,
    "thorax-r_shoulder": 105.0, "r_shoulder-r_elbow": 245.0, "r_elbow-r_wrist": 225.0,
}


@dataclass(frozen=True)
class BvhJoint:
    name: str
    parent: str | None
    at: str            # the Human3.6M-17 joint this BVH joint sits at
    to: str | None     # the joint its bone points to (None: the root, turned by the hips frame)
    ref: str | None    # the BVH joint whose rotation the bone swings from (sets its twist)


# Parents and twist references come before the joints that use them.
JOINTS: tuple[BvhJoint, ...] = (
    BvhJoint("pelvis", None, "pelvis", None, None),
    BvhJoint("l_hip", "pelvis", "l_hip", "l_knee", "pelvis"),
    BvhJoint("l_knee", "l_hip", "l_knee", "l_ankle", "l_hip"),
    BvhJoint("r_hip", "pelvis", "r_hip", "r_knee", "pelvis"),
    BvhJoint("r_knee", "r_hip", "r_knee", "r_ankle", "r_hip"),
    BvhJoint("lower_back", "pelvis", "pelvis", "spine", "pelvis"),
    BvhJoint("spine", "lower_back", "spine", "thorax", "lower_back"),   # twist: the shoulders line
    BvhJoint("thorax", "spine", "thorax", "neck_nose", "spine"),
    BvhJoint("neck_nose", "thorax", "neck_nose", "head", "thorax"),
    BvhJoint("l_clavicle", "thorax", "thorax", "l_shoulder", "spine"),
    BvhJoint("l_shoulder", "l_clavicle", "l_shoulder", "l_elbow", "spine"),
    BvhJoint("l_elbow", "l_shoulder", "l_elbow", "l_wrist", "l_shoulder"),
    BvhJoint("r_clavicle", "thorax", "thorax", "r_shoulder", "spine"),
    BvhJoint("r_shoulder", "r_clavicle", "r_shoulder", "r_elbow", "spine"),
    BvhJoint("r_elbow", "r_shoulder", "r_elbow", "r_wrist", "r_shoulder"),
)
_INDEX = {j.name: k for k, j in enumerate(JOINTS)}


def _rotation_order(joint: BvhJoint) -> str:
    """Euler order with the bone's own (twist) axis in the middle, which stays small: no gimbal lock
    for bends up to and beyond 90 degrees. The root keeps the common ZXY (heading last)."""
    if joint.to is None:
        return "ZXY"
    return "ZXY" if abs(REST_DIRECTION[(joint.at, joint.to)][0]) > 0.5 else "ZYX"


@dataclass(frozen=True)
class Node:
    """A joint or end site of the written file, in file order (end sites named `<parent>_end`)."""
    name: str
    parent: int           # index into the node list, -1 for the root
    joint: int            # Human3.6M-17 index of where it sits
    offset: tuple[str, str] | None   # the bone its OFFSET spans, None for a zero offset
    channels: tuple[str, ...]


def nodes() -> list[Node]:
    """The file's hierarchy, depth first, as the reader in posecast/bvh.py lists it."""
    out: list[Node] = []

    def visit(k: int, parent: int) -> None:
        j = JOINTS[k]
        p = JOINTS[_INDEX[j.parent]] if j.parent else None
        offset = (p.at, j.at) if p and p.at != j.at else None
        order = [f"{a}rotation" for a in _rotation_order(j)]
        chans = tuple(["Xposition", "Yposition", "Zposition"] * (p is None) + order)
        out.append(Node(j.name, parent, H[j.at], offset, chans))
        me = len(out) - 1
        children = [c for c, child in enumerate(JOINTS) if child.parent == j.name]
        for c in children:
            visit(c, me)
        if j.to and not any(JOINTS[c].at == j.to for c in children):
            out.append(Node(f"{j.name}_end", me, H[j.to], (j.at, j.to), ()))

    visit(0, -1)
    return out


@dataclass
class BvhReport:
    frames: int
    fps: float
    units: str
    bones: tuple[str, ...]                   # BVH joints with channels, in file order
    rest_length_mm: dict[str, float]         # per Human3.6M-17 bone "a-b": the median length used
    length_std_mm: dict[str, float]          # how much the input's length of that bone varied
    length_max_deviation_mm: dict[str, float]
    unmeasured: tuple[str, ...]              # bones never seen: fallback length, rest pose
    held_frames: dict[str, int]              # per BVH joint: frames that kept the last good rotation
    position_error_mean_mm: float            # fitted skeleton vs the input joints (pelvis-relative)
    position_error_max_mm: float

    def summary(self) -> str:
        worst = max(self.length_std_mm, key=self.length_std_mm.get)
        fit = (f"fitted joints off by {self.position_error_mean_mm:.1f} mm on average, "
               f"{self.position_error_max_mm:.1f} mm at most" if np.isfinite(self.position_error_mean_mm)
               else "no frame with a pelvis or thorax to compare the fit")
        return (f"BVH: {self.frames} frames at {self.fps:g} fps, {len(self.bones)} joints; bone lengths "
                f"varied by up to {self.length_std_mm[worst]:.1f} mm (std, {worst}); {fit}")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc rotations [...,3,3] taking unit vectors a to unit vectors b."""
    v = np.cross(a, b)
    c = np.sum(a * b, -1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    flip = c < -1 + 1e-9
    out = np.eye(3) + k + (k @ k) / np.maximum(1 + c, 1e-9)[..., None, None]
    if flip.any():  # opposite: half a turn about any axis perpendicular to a
        helper = np.where(np.abs(a[flip][:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        axis = _unit(np.cross(a[flip], helper))
        out[flip] = 2 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return out


def matrix_to_euler(r: np.ndarray, order: str) -> np.ndarray:
    """Rotations [...,3,3] -> intrinsic Euler angles [...,3] in radians, the inverse of
    posecast.bvh.euler_to_matrix: r = R_order[0](a0) @ R_order[1](a1) @ R_order[2](a2)."""
    i, j, k = ("XYZ".index(a) for a in order)
    e = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    middle = np.arcsin(np.clip(e * r[..., i, k], -1.0, 1.0))
    first = np.arctan2(-e * r[..., j, k], r[..., k, k])
    last = np.arctan2(-e * r[..., i, j], r[..., i, i])
    locked = np.cos(middle) < 1e-6   # middle angle at +-90 degrees: only first + last is defined
    first = np.where(locked, np.arctan2(e * r[..., k, j], r[..., j, j]), first)
    last = np.where(locked, 0.0, last)
    return np.stack([first, middle, last], -1)


def _held(values: np.ndarray, ok: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """values[f] where ok[f], else the last good value (before the first good one: the first)."""
    if not ok.any():
        return np.broadcast_to(rest, values.shape).copy()
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = np.argmax(ok)
    return values[idx]


def _frame(primary: np.ndarray, secondary: np.ndarray, primary_axis: int) -> np.ndarray:
    """Rotation [...,3,3] whose axis `primary_axis` (0 = X, 1 = Y) is `primary` and whose other of X/Y
    lies in the plane of both; columns are the rotated X, Y, Z axes."""
    p = _unit(primary)
    s = _unit(secondary - p * np.sum(secondary * p, -1, keepdims=True))
    x, y = (p, s) if primary_axis == 0 else (s, p)
    return np.stack([x, y, np.cross(x, y)], -1)


def _check(joints3d, valid, fps, root) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    p = np.asarray(joints3d, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (17, 3):
        raise ValueError(f"joints3d must be [frames, 17, 3] (Human3.6M-17, mm), got shape {p.shape}")
    ok = np.asarray(valid)
    if ok.shape != p.shape[:2]:
        raise ValueError(f"valid must be [frames, 17] like joints3d, got shape {ok.shape}")
    ok = ok.astype(bool) & np.isfinite(p).all(-1)
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    if root is not None:
        root = np.asarray(root, dtype=np.float64)
        if root.shape != (len(p), 3):
            raise ValueError(f"root must be [frames, 3] (mm, camera axes), got shape {root.shape}")
    return p, ok, fps, root


def fit(joints3d: np.ndarray, valid: np.ndarray, fps: float, root: np.ndarray | None = None
        ) -> tuple[np.ndarray, np.ndarray, dict[tuple[str, str], float], BvhReport]:
    """The fitted skeleton: local rotations [F,J,3,3] (J = len(JOINTS)), root positions [F,3] mm in
    BVH axes, rest bone lengths (mm) and the report (its `units` left to the writer)."""
    p, ok, fps, root = _check(joints3d, valid, fps, root)
    frames = len(p)
    edges = [(H36M17[a], H36M17[b]) for a, b in H36M17_EDGES]
    x = p @ WORLD_TO_CAMERA.T   # camera -> BVH axes (the matrix is its own inverse)
    bone_ok = {(a, b): ok[:, H[a]] & ok[:, H[b]] & (np.linalg.norm(x[:, H[b]] - x[:, H[a]], axis=-1) > 1e-3)
               for a, b in edges}
    if not any(v.any() for v in bone_ok.values()):
        raise ValueError(f"no person in any of the {frames} frames: there is no motion to write as BVH")

    lengths, std, dev, unmeasured = {}, {}, {}, []
    for a, b in edges:
        measured = np.linalg.norm(x[:, H[b]] - x[:, H[a]], axis=-1)[bone_ok[(a, b)]]
        if len(measured):
            lengths[(a, b)] = float(np.median(measured))
            std[f"{a}-{b}"] = float(measured.std())
            dev[f"{a}-{b}"] = float(np.abs(measured - lengths[(a, b)]).max())
    for a, b in edges:
        if (a, b) not in lengths:
            mirror = (H36M17[H36M17_MIRROR[H[a]]], H36M17[H36M17_MIRROR[H[b]]])
            right = f"{a}-{b}" if f"{a}-{b}" in FALLBACK_LENGTH_MM else f"{mirror[0]}-{mirror[1]}"
            lengths[(a, b)] = lengths.get(mirror, FALLBACK_LENGTH_MM[right])
            unmeasured.append(f"{a}-{b}")

    glob = np.empty((frames, len(JOINTS), 3, 3))
    local = np.empty_like(glob)
    held = {}
    for k, j in enumerate(JOINTS):
        parent = glob[:, _INDEX[j.parent]] if j.parent else np.eye(3)
        if j.to is None:  # the root: the hips line is its X axis, the lower back its Y axis
            good = ok[:, [H["pelvis"], H["l_hip"], H["r_hip"], H["spine"]]].all(1)
            raw = _frame(x[:, H["l_hip"]] - x[:, H["r_hip"]], x[:, H["spine"]] - x[:, H["pelvis"]], 0)
        else:
            good = bone_ok[(j.at, j.to)]
            bone = _unit(x[:, H[j.to]] - x[:, H[j.at]])
            ref = glob[:, _INDEX[j.ref]]
            raw = swing(ref @ np.array(REST_DIRECTION[(j.at, j.to)]), bone) @ ref
            if j.name == "spine":  # the chest: its twist from the shoulders line
                shoulders = ok[:, H["l_shoulder"]] & ok[:, H["r_shoulder"]]
                chest = _frame(bone, x[:, H["l_shoulder"]] - x[:, H["r_shoulder"]], 1)
                raw = np.where(shoulders[:, None, None], chest, raw)
        local[:, k] = _held(np.swapaxes(parent, -1, -2) @ raw, good, np.eye(3))
        glob[:, k] = parent @ local[:, k]
        held[j.name] = int(frames - good.sum())

    if root is None:  # rest-pose ankles on the floor (Y = 0)
        height = max(lengths[("l_hip", "l_knee")] + lengths[("l_knee", "l_ankle")],
                     lengths[("r_hip", "r_knee")] + lengths[("r_knee", "r_ankle")])
        position = np.tile([0.0, height, 0.0], (frames, 1))
    else:
        here = np.isfinite(root).all(1)
        at = np.where(here[:, None], root, 0.0) + np.where(ok[:, :1], p[:, H["pelvis"]], 0.0)
        position = _held(at @ WORLD_TO_CAMERA.T, here & ok[:, H["pelvis"]], np.zeros(3))

    report = BvhReport(frames, fps, "mm", tuple(j.name for j in JOINTS),
                       {f"{a}-{b}": lengths[(a, b)] for a, b in edges}, std, dev, tuple(unmeasured), held,
                       *_position_error(x, ok, local, position, lengths))
    return local, position, lengths, report


def skeleton_positions(local: np.ndarray, position: np.ndarray,
                       lengths: dict[tuple[str, str], float]) -> tuple[list[Node], np.ndarray]:
    """Forward kinematics of the fitted skeleton: the file's nodes and their positions [F,N,3], mm."""
    tree = nodes()
    rot = np.broadcast_to(np.eye(3), (len(local), len(tree), 3, 3)).copy()
    trans = np.zeros((len(local), len(tree), 3))
    for n, node in enumerate(tree):
        if node.channels:
            rot[:, n] = local[:, _INDEX[node.name]]
        if node.offset:
            trans[:, n] = np.array(REST_DIRECTION[node.offset]) * lengths[node.offset]
    trans[:, 0] = position
    pos, _ = forward_kinematics(np.array([n.parent for n in tree]), rot, trans)
    return tree, pos


def _position_error(x, ok, local, position, lengths) -> tuple[float, float]:
    """Fitted vs input joints, each relative to the pelvis (frames without one: to the thorax, from
    which the upper body hangs then), over the joints the input has."""
    tree, pos = skeleton_positions(local, position, lengths)
    first = {}
    for n, node in enumerate(tree):
        first.setdefault(node.joint, n)
    fitted = pos[:, [first[j] for j in range(17)]]
    base = np.where(ok[:, H["pelvis"]], H["pelvis"], H["thorax"])
    has_base = ok[np.arange(len(ok)), base]
    rows = np.arange(len(ok))[:, None]
    err = np.linalg.norm((fitted - fitted[rows, base[:, None]]) - (x - x[rows, base[:, None]]), axis=-1)
    err = err[ok & has_base[:, None]]
    return (float(err.mean()), float(err.max())) if len(err) else (float("nan"), float("nan"))


def bvh_text(joints3d: np.ndarray, valid: np.ndarray, fps: float, root: np.ndarray | None = None,
             *, units: str = "cm") -> tuple[str, BvhReport]:
    """The BVH file for a recording of one person, and what the fit did.

    joints3d [F,17,3] mm, Human3.6M-17, camera axes, pelvis-relative (as the lifter gives them);
    valid [F,17] bool (False: missing); fps the recording's frame rate; root [F,3] mm, the pelvis in
    camera space (non-finite rows: hold the last), or None: the pelvis stays put with the rest pose's
    ankles on the floor. units: "cm" (the usual BVH unit; Blender: import with Scale 0.01), "mm" or "m".
    Raises ValueError (a message for the user) for bad shapes or when no frame has a person."""
    if units not in UNITS_MM:
        raise ValueError(f"units must be one of {sorted(UNITS_MM)}, got {units!r}")
    local, position, lengths, report = fit(joints3d, valid, fps, root)
    report.units = units
    scale = 1.0 / UNITS_MM[units]
    tree = nodes()
    lines = ["HIERARCHY"]

    def write(n: int, depth: int) -> None:
        node, pad = tree[n], "  " * depth
        off = np.array(REST_DIRECTION[node.offset]) * lengths[node.offset] * scale if node.offset else np.zeros(3)
        lines.extend([f"{pad}{'ROOT' if n == 0 else 'JOINT'} {node.name}" if node.channels else f"{pad}End Site",
                      pad + "{", f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}"])
        if node.channels:
            lines.append(f"{pad}  CHANNELS {len(node.channels)} {' '.join(node.channels)}")
        for c, child in enumerate(tree):
            if child.parent == n:
                write(c, depth + 1)
        lines.append(pad + "}")

    write(0, 0)
    columns = [position * scale]
    for node in tree:
        if node.channels:
            order = "".join(c[0] for c in node.channels if c.endswith("rotation"))
            angles = matrix_to_euler(local[:, _INDEX[node.name]], order)
            columns.append(np.degrees(np.unwrap(angles, axis=0)))  # no 360-degree jumps between frames
    motion = np.concatenate(columns, 1)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{v:.5f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n", report


def write_bvh(path: str | Path, joints3d: np.ndarray, valid: np.ndarray, fps: float,
              root: np.ndarray | None = None, *, units: str = "cm") -> BvhReport:
    """Write bvh_text(...) to path (through a temporary file: a failed write leaves nothing)."""
    text, report = bvh_text(joints3d, valid, fps, root, units=units)
    path = Path(path)
    write_text_atomically(path, text, encoding="ascii")
    log.info("%s: %s", path, report.summary())
    return report
