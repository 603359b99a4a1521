"""A small synthetic BVH rig with Bandai joint names, for tests that must not need ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (name, parent, offset in cm); Y up, facing +Z, the person's left is +X.
RIG = [
    ("Hips", None, (0, 95, 0)), ("Spine", "Hips", (0, 10, 0)), ("Chest", "Spine", (0, 15, 0)),
    ("Neck", "Chest", (0, 22, 0)), ("Head", "Neck", (0, 8, 0)),
    ("Shoulder_L", "Chest", (4, 18, 0)), ("UpperArm_L", "Shoulder_L", (14, 0, 0)),
    ("LowerArm_L", "UpperArm_L", (0, -28, 0)), ("Hand_L", "LowerArm_L", (0, -25, 0)),
    ("Shoulder_R", "Chest", (-4, 18, 0)), ("UpperArm_R", "Shoulder_R", (-14, 0, 0)),
    ("LowerArm_R", "UpperArm_R", (0, -28, 0)), ("Hand_R", "LowerArm_R", (0, -25, 0)),
    ("UpperLeg_L", "Hips", (9, -5, 0)), ("LowerLeg_L", "UpperLeg_L", (0, -40, 0)),
    ("Foot_L", "LowerLeg_L", (0, -41, 0)),
    ("UpperLeg_R", "Hips", (-9, -5, 0)), ("LowerLeg_R", "UpperLeg_R", (0, -40, 0)),
    ("Foot_R", "LowerLeg_R", (0, -41, 0)),
]


def write_bvh(path, frames: int, rng: np.random.Generator, heading: float | None = None) -> None:
    """A walker whose root heading is drawn every frame, or fixed (degrees) for smooth motion."""
    children = {}
    for name, parent, _ in RIG:
        children.setdefault(parent, []).append(name)
    offsets = {name: off for name, _, off in RIG}
    lines = ["HIERARCHY"]

    def joint(name: str, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(map(str, offsets[name]))}")
        chans = "Xposition Yposition Zposition " if depth == 0 else ""
        lines.append(f"{pad}  CHANNELS {6 if depth == 0 else 3} {chans}Zrotation Xrotation Yrotation")
        for child in children.get(name, []):
            joint(child, depth + 1)
        if name not in children:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 5 0", pad + "  }"])
        lines.append(pad + "}")

    joint("Hips", 0)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    phase = rng.uniform(0, 2 * np.pi)
    for f in range(frames):
        t = phase + f / 10
        values = [0.0, 95.0, f * 1.0, 0.0, 0.0, rng.uniform(-180, 180) if heading is None else heading]
        for name, _, _ in RIG[1:]:
            swing = 30 * np.sin(t + sum(map(ord, name)) % 7) if "Leg" in name or "Arm" in name else 5 * np.sin(t)
            values += [swing * 0.3, swing, swing * 0.2]
        lines.append(" ".join(f"{v:.4f}" for v in values))
    path.write_text("\n".join(lines) + "\n")


def write_bandai_named_clips(folder: Path, frames: int, rng: np.random.Generator,
                             random_heading: bool = False) -> Path:
    """Twenty walkers named as Bandai clips (walk and wave, 10 styles each), for the training data tests.
    random_heading: each clip turns smoothly about one heading drawn for it, instead of per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for action in ("walk", "wave"):
        for k in range(10):
            heading = float(rng.uniform(-180, 180)) if random_heading else None
            write_bvh(folder / f"dataset-1_{action}_style_{k:03d}.bvh", frames, rng, heading=heading)
    return folder
