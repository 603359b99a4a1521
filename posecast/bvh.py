"""BVH motion capture: the project's one BVH reader (training data, tests of the exporter) and forward kinematics.

Any rig: joints with 3 or 6 channels in any order, end sites kept as joints of their own
(named `<parent>_end`, no channels). Rotations are intrinsic Euler angles in channel order,
so the local rotation is R = R_a(a) @ R_b(b) @ R_c(c) for channels "a b c".
Forward kinematics: G_j = G_parent @ L_j and p_j = p_parent + G_parent @ t_j, where t_j is the
joint's position channels when it has them, else its OFFSET.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_AXES = {"X": 0, "Y": 1, "Z": 2}
# World (BVH: Y up, Z towards the viewer) to camera axes (the lifter's: y down, z away): a proper rotation.
WORLD_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


class BvhError(ValueError):
    """The file is not a BVH this reader understands; the message says where."""


@dataclass
class Bvh:
    names: list[str]
    parents: np.ndarray          # [J] parent index, -1 for the root
    offsets: np.ndarray          # [J,3] rest offsets in the file's units
    channels: list[list[str]]    # per joint, e.g. ["Xposition", ..., "Zrotation"]; [] for end sites
    motion: np.ndarray           # [F, total channels] as in the file
    frame_time: float

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local rotations [F,J,3,3] and translations [F,J,3] (float64)."""
        frames, joints = len(self.motion), len(self.names)
        rot = np.broadcast_to(np.eye(3), (frames, joints, 3, 3)).copy()
        trans = np.broadcast_to(self.offsets, (frames, joints, 3)).copy()
        col = 0
        for j, chans in enumerate(self.channels):
            values = self.motion[:, col:col + len(chans)]
            col += len(chans)
            rot_chans = [(k, c[0]) for k, c in enumerate(chans) if c.endswith("rotation")]
            for k, c in enumerate(chans):
                if c.endswith("position"):
                    trans[:, j, _AXES[c[0]]] = values[:, k]
            if rot_chans:
                order = "".join(axis for _, axis in rot_chans)
                angles = values[:, [k for k, _ in rot_chans]]
                rot[:, j] = euler_to_matrix(np.radians(angles), order)
        return rot, trans


def axis_rotation(angle: np.ndarray, axis: str) -> np.ndarray:
    """Rotation matrices [...,3,3] by angle (radians) about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "X": ((o, z, z), (z, c, -s), (z, s, c)),
        "Y": ((c, z, s), (z, o, z), (-s, z, c)),
        "Z": ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles [...,k] (radians) in `order` (e.g. "ZXY") -> [...,3,3]."""
    out = axis_rotation(angles[..., 0], order[0])
    for k in range(1, len(order)):
        out = out @ axis_rotation(angles[..., k], order[k])
    return out


def forward_kinematics(parents: np.ndarray, rot: np.ndarray, trans: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations [...,J,3,3] and translations [...,J,3] -> world positions [...,J,3]
    and world rotations [...,J,3,3]. Parents must precede their children."""
    pos = np.empty(trans.shape, dtype=np.result_type(rot, trans))
    glob = np.empty(rot.shape, dtype=pos.dtype)
    for j, p in enumerate(parents):
        if p < 0:
            glob[..., j, :, :] = rot[..., j, :, :]
            pos[..., j, :] = trans[..., j, :]
        else:
            glob[..., j, :, :] = glob[..., p, :, :] @ rot[..., j, :, :]
            pos[..., j, :] = pos[..., p, :] + (glob[..., p, :, :] @ trans[..., j, :, None])[..., 0]
    return pos, glob


def parse_bvh(text: str, source: str = "<bvh>") -> Bvh:
    tokens = text.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    i = 0

    def fail(msg: str) -> BvhError:
        return BvhError(f"{source}: {msg} (token {i})")

    if not tokens or tokens[0] != "HIERARCHY":
        raise BvhError(f"{source}: does not start with HIERARCHY")
    i = 1
    pending: int | None = None
    while i < len(tokens) and tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            name = tokens[i + 1]
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            if not stack:
                raise fail("End Site outside a joint")
            names.append(f"{names[stack[-1]]}_end")
            parents.append(stack[-1])
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2  # "End Site"
        elif tok == "{":
            if pending is None:
                raise fail("unexpected '{'")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise fail("unbalanced '}'")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            try:
                offsets[stack[-1]] = [float(t) for t in tokens[i + 1:i + 4]]
            except (ValueError, IndexError) as exc:
                raise fail("bad OFFSET") from exc
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            chans = tokens[i + 2:i + 2 + n]
            if any(c[0] not in _AXES or c[1:] not in ("position", "rotation") for c in chans):
                raise fail(f"unknown channels {chans}")
            channels[stack[-1]] = chans
            i += 2 + n
        else:
            raise fail(f"unexpected token {tok!r}")
    if stack or not names:
        raise fail("hierarchy is incomplete")
    if i + 5 >= len(tokens) or tokens[i + 1] != "Frames:" or tokens[i + 3:i + 5] != ["Frame", "Time:"]:
        raise fail("MOTION header missing 'Frames:' / 'Frame Time:'")
    frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    width = sum(len(c) for c in channels)
    values = np.array(tokens[i + 6:], dtype=np.float64)
    if values.size < frames * width:
        raise BvhError(f"{source}: {values.size} motion values, expected {frames} x {width}")
    return Bvh(names, np.array(parents), np.array(offsets, dtype=np.float64), channels,
               values[:frames * width].reshape(frames, width), frame_time)


def read_bvh(path: str | Path) -> Bvh:
    path = Path(path)
    return parse_bvh(path.read_text(encoding="utf-8", errors="replace"), str(path))
