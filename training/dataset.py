"""The prepared dataset's files in the cache, and drawing fresh training samples from them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posecast import paths

from .data import MotionSet, SampleOptions, Samples, synthesize

MIN_SHARE = 0.05  # small rigs (CMU) still get this share of every batch


@dataclass
class DatasetFiles:
    root: Path

    @classmethod
    def default(cls) -> "DatasetFiles":
        return cls(paths.cache_dir() / "lifter-data")

    def motion(self, rig: str) -> Path:
        return self.root / f"motion-{rig}.npz"

    def validation(self, name: str) -> Path:
        return self.root / f"val-{name}.npz"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    def check(self) -> None:
        if not self.stats.is_file():
            raise FileNotFoundError(f"no prepared dataset in {self.root}: run `python -m training prepare` first")

    def load_motion(self) -> list[MotionSet]:
        return [MotionSet.load(p) for p in sorted(self.root.glob("motion-*.npz"))]

    def load_stats(self) -> dict:
        self.check()
        return json.loads(self.stats.read_text())

    def load_validation(self, name: str) -> tuple[Samples, np.ndarray] | None:
        """(samples, action per sample), or None when that set was not prepared."""
        path = self.validation(name)
        if not path.is_file():
            return None
        z = np.load(path)
        return Samples(z["keypoints"], z["confidence"], z["joints3d"]), z["actions"]


def sample_training(motions: list[MotionSet], n: int, rng: np.random.Generator,
                    opts: SampleOptions) -> Samples:
    """n fresh samples across rigs (by frame count, small rigs at least MIN_SHARE), shuffled."""
    frames = np.array([len(m.rot) for m in motions], float)
    share = np.maximum(frames / frames.sum(), MIN_SHARE)
    counts = rng.multinomial(n, share / share.sum())
    parts = [synthesize(m, rng.integers(len(m.rot), size=k), rng, opts)
             for m, k in zip(motions, counts) if k > 0]
    out = Samples.concat(parts)
    return out.take(rng.permutation(len(out)))
