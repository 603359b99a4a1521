"""`python -m training prepare`: build the dataset cache from BVH mocap and virtual cameras.

In the spirit of Martinez et al.'s files: the motion (as joint rotations, so training can
augment in pose space and draw fresh cameras every epoch), the train/validation split by clip,
fixed validation 2D/3D sets (Bandai held-out clips and the climbing set, each through seeded
virtual cameras) and the 2D/3D normalisation statistics.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from posecast import paths

from .body import head_frame_from_body
from .cameras import CameraRanges
from .data import SampleOptions, Samples, from_landmarks, synthesize
from .dataset import DatasetFiles, sample_training
from .model import normalise_2d
from .sources import load_bvh_folder, load_climb, split_clips, unpack

log = logging.getLogger(__name__)


@dataclass
class PrepareOptions:
    bandai: Path
    cmu: Path | None
    climb: Path | None
    out: Path
    stride: int = 3          # Bandai is 30 fps: keep every 3rd frame
    cmu_stride: int = 2      # CMU is 120 fps; a small set, so keep more of it
    climb_stride: int = 8    # the climbing set is about 120 fps
    val_stride: int = 3      # of the kept validation frames, use every 3rd as fixed samples
    stats_samples: int = 50_000
    seed: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = paths.shared_dir() / "data"
    parser.add_argument("--bandai", type=Path, default=data / "bandai-motion-bvh.tar.xz",
                        help="Bandai BVH archive (.tar.xz, unpacked once into the cache) or folder")
    parser.add_argument("--cmu", type=Path, default=data / "cmu-extra-bvh.tar.xz",
                        help="CMU extra BVH archive or folder ('none' to skip)")
    parser.add_argument("--climb", type=Path, default=data / "holosoma-climb",
                        help="holosoma climbing folder for cross-dataset validation ('none' to skip)")
    parser.add_argument("--out", type=Path, default=DatasetFiles.default().root)
    parser.add_argument("--stride", type=int, default=PrepareOptions.stride)
    parser.add_argument("--cmu-stride", type=int, default=PrepareOptions.cmu_stride)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    prepare(PrepareOptions(args.bandai, _optional(args.cmu), _optional(args.climb), args.out,
                           stride=args.stride, cmu_stride=args.cmu_stride, seed=args.seed))
    return 0


def _optional(path: Path) -> Path | None:
    return None if str(path).lower() == "none" else path


def bvh_files(source: Path, name: str) -> list[Path]:
    if not source.exists():
        raise FileNotFoundError(f"{source} not found (see ../shared/README.md)")
    folder = unpack(source, paths.cache_dir() / name) if source.is_file() else source
    files = sorted(folder.rglob("*.bvh"))
    if not files:
        raise FileNotFoundError(f"no .bvh files under {folder}")
    return files


def prepare(opts: PrepareOptions) -> DatasetFiles:
    files = DatasetFiles(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(opts.seed)

    sets = load_bvh_folder(bvh_files(opts.bandai, "bandai"), opts.stride)
    if opts.cmu is not None:
        sets.update(load_bvh_folder(bvh_files(opts.cmu, "cmu"), opts.cmu_stride))
    split = {}
    val_sets = []
    for name, motion in sets.items():
        # Only Bandai is large enough to hold clips out; the small CMU set all trains.
        val_clip = split_clips(motion.clips, motion.actions) if name == "bandai" else np.zeros(len(motion.clips), bool)
        split[name] = {"train": [c for c, v in zip(motion.clips, val_clip) if not v],
                       "validation": [c for c, v in zip(motion.clips, val_clip) if v]}
        is_val = val_clip[motion.clip]
        motion.subset(np.flatnonzero(~is_val)).save(files.motion(name))
        if is_val.any():
            val = motion.subset(np.flatnonzero(is_val)[::opts.val_stride])
            samples = synthesize(val, np.arange(len(val.rot)), rng, SampleOptions.evaluation())
            actions = np.array([val.actions[c] for c in val.clip])
            val_sets.append(("bandai", samples, actions))
        log.info("%s: %d clips (%d validation), %d frames", name, len(motion.clips), val_clip.sum(), len(motion.rot))
    if opts.climb is not None:
        clips, landmarks = load_climb(opts.climb, opts.climb_stride)
        parts = []
        for clip, lm in zip(clips, landmarks):
            up, forward = head_frame_from_body(lm)
            parts.append(from_landmarks(lm, up, forward, rng, SampleOptions.evaluation()))
        actions = np.concatenate([[c] * len(lm) for c, lm in zip(clips, landmarks)])
        val_sets.append(("climb", Samples.concat(parts), actions))
    for name, samples, actions in val_sets:
        np.savez(files.validation(name), keypoints=samples.keypoints, confidence=samples.confidence,
                 joints3d=samples.joints3d, actions=actions)
        log.info("validation set %s: %d samples", name, len(samples))

    train = sample_training(files.load_motion(), opts.stats_samples, np.random.default_rng(opts.seed + 1), SampleOptions())
    stats = statistics(train)
    cameras = {"training": asdict(CameraRanges()), "validation": asdict(SampleOptions.evaluation().cameras)}
    files.stats.write_text(json.dumps({**stats, "cameras": cameras, "split": split, "options": {
        k: str(v) for k, v in asdict(opts).items()}}, indent=1))
    log.info("dataset cache ready in %s", opts.out)
    return files


def statistics(samples: Samples) -> dict:
    """Mean / std of the normalised 2D inputs (visible joints) and of the 3D targets."""
    import torch

    with torch.no_grad():
        x, vis = normalise_2d(torch.from_numpy(samples.keypoints), torch.from_numpy(samples.confidence))
    x, vis = x.numpy(), vis.numpy()[..., None]
    n = np.maximum(vis.sum(0), 1)
    mean2d = (x * vis).sum(0) / n
    std2d = np.sqrt((((x - mean2d) ** 2) * vis).sum(0) / n)
    y = samples.joints3d[:, 1:]
    return {"mean2d": mean2d.tolist(), "std2d": np.maximum(std2d, 1e-3).tolist(),
            "mean3d": y.mean(0).tolist(), "std3d": np.maximum(y.std(0), 1e-3).tolist()}
