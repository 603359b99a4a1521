"""`python -m training prepare-temporal`: the sequence dataset for the temporal lifter.

Motion is kept at 30 fps (every frame of Bandai, every 4th of the 120 fps CMU takes), so
training can reach back at any live rate from 10 to 30 fps; the CMU floor package's sparse
pose sets are kept as single poses (fps 0). Training mix: Bandai training clips (the same
split by clip as `prepare`), CMU subjects 102/131, CMU salsa (subjects 60 and 61; the figure is
0.7 of adult size, which the leg-length scaling of training/rigs.py undoes) and CMU floor and
acrobatics (oversampled when windows are drawn). Validation tracks, whole clips through one
fixed virtual camera each, clean 2D at 30 fps: the Bandai held-out clips and the climbing set
(validation only, never trained on).
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.skeleton import coco18_to_h36m17

from .body import h36m17_from_coco3d, head_frame_from_body
from .cameras import random_cameras
from .data import MotionSet, SampleOptions, body_points, posed_landmarks, view
from .posespace import PoseAugment
from .prepare import bvh_files
from .sequences import PerWindow
from .sources import load_bvh_folder, load_climb, split_clips

log = logging.getLogger(__name__)
TRACK_SECONDS = 20.0  # longer clips become several tracks, each with its own camera


@dataclass
class TemporalPrepareOptions:
    out: Path
    bandai: Path
    cmu: Path | None
    salsa: Path | None
    floor: Path | None
    climb: Path | None
    seed: int = 0


@dataclass
class Tracks:
    """Validation sequences at 30 fps: clean 2D and 3D of every frame, one camera per track."""
    keypoints: np.ndarray   # [F,17,2] float32 pixels
    confidence: np.ndarray  # [F,17] float32 (in front of the camera)
    joints3d: np.ndarray    # [F,17,3] float32 mm, pelvis-relative camera axes
    track: np.ndarray       # [F] track index; frames of a track are consecutive
    fps: np.ndarray         # [tracks]
    groups: list[str]       # per track: the action or climbing clip

    def save(self, path: Path) -> None:
        np.savez(path, keypoints=self.keypoints, confidence=self.confidence, joints3d=self.joints3d,
                 track=self.track, fps=self.fps, groups=np.array(self.groups))

    @classmethod
    def load(cls, path: Path) -> "Tracks":
        z = np.load(path)
        return cls(z["keypoints"], z["confidence"], z["joints3d"], z["track"], z["fps"], z["groups"].tolist())

    def spans(self) -> list[slice]:
        edges = np.flatnonzero(np.r_[True, self.track[1:] != self.track[:-1], True])
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


@dataclass
class SequenceFiles:
    root: Path

    @classmethod
    def default(cls) -> "SequenceFiles":
        return cls(paths.cache_dir() / "lifter-seq-data")

    def motion(self, rig: str) -> Path:
        return self.root / f"motion-{rig}.npz"

    def tracks(self, name: str) -> Path:
        return self.root / f"tracks-{name}.npz"

    @property
    def info(self) -> Path:
        return self.root / "info.json"

    def load_motion(self) -> list[MotionSet]:
        if not self.info.is_file():
            raise FileNotFoundError(f"no sequence dataset in {self.root}: run `python -m training prepare-temporal`")
        return [MotionSet.load(p) for p in sorted(self.root.glob("motion-*.npz"))]

    def load_tracks(self, name: str) -> Tracks | None:
        path = self.tracks(name)
        return Tracks.load(path) if path.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = paths.shared_dir() / "data"
    parser.add_argument("--out", type=Path, default=SequenceFiles.default().root)
    parser.add_argument("--bandai", type=Path, default=data / "bandai-motion-bvh.tar.xz")
    for name, file in (("cmu", "cmu-extra-bvh.tar.xz"), ("salsa", "cmu-salsa-60-61-bvh.tar.xz"),
                       ("floor", "cmu-floor-bvh.tar.xz")):
        parser.add_argument(f"--{name}", type=Path, default=data / file, help="archive or folder ('none' to skip)")
    parser.add_argument("--climb", type=Path, default=data / "holosoma-climb", help="'none' to skip")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    opt = {k: None if str(getattr(args, k)).lower() == "none" else getattr(args, k)
           for k in ("cmu", "salsa", "floor", "climb")}
    prepare_temporal(TemporalPrepareOptions(args.out, args.bandai, seed=args.seed, **opt))
    return 0


def prepare_temporal(opts: TemporalPrepareOptions) -> SequenceFiles:
    files = SequenceFiles(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(opts.seed)
    sets = load_bvh_folder(bvh_files(opts.bandai, "bandai"), stride=1)  # 30 fps
    for source, name, stride in ((opts.cmu, "cmu", 4), (opts.salsa, "cmu-salsa", 4), (opts.floor, "cmu-floor", 1)):
        if source is not None:  # 120 fps takes to 30 fps; the floor clips are 30 fps or single poses
            for rig, motion in load_bvh_folder(bvh_files(source, name), stride).items():
                if rig in sets:
                    raise ValueError(f"rig {rig} in more than one source")
                sets[rig] = motion
    info: dict = {"options": {k: str(v) for k, v in asdict(opts).items()}, "rigs": {}}
    val_parts = []
    for rig, motion in sets.items():
        val_clip = split_clips(motion.clips, motion.actions) if rig == "bandai" else np.zeros(len(motion.clips), bool)
        is_val = val_clip[motion.clip]
        motion.subset(np.flatnonzero(~is_val)).save(files.motion(rig))
        info["rigs"][rig] = {"clips": len(motion.clips), "frames": int((~is_val).sum()),
                             "validation_clips": [c for c, v in zip(motion.clips, val_clip) if v],
                             "fps": sorted(set(np.round(motion.fps, 2).tolist()))}
        if is_val.any():
            val_parts.append(motion.subset(np.flatnonzero(is_val)))
        log.info("%s: %d clips (%d validation), %d frames", rig, len(motion.clips), val_clip.sum(), len(motion.rot))
    for val in val_parts:
        tracks = [(posed_landmarks(val, np.flatnonzero(val.clip == c), rng, PoseAugment.off()), val.fps[c],
                   val.actions[c]) for c in np.unique(val.clip)]
        _tracks(tracks, rng).save(files.tracks("bandai"))
    if opts.climb is not None:
        clips, landmarks = load_climb(opts.climb, stride=4)  # about 120 fps -> 30
        _tracks([((lm, *head_frame_from_body(lm)), 30.0, c) for c, lm in zip(clips, landmarks)], rng).save(
            files.tracks("climb"))
    files.info.write_text(json.dumps(info, indent=1))
    log.info("sequence dataset ready in %s", opts.out)
    return files


def _tracks(clips: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float, str]],
            rng: np.random.Generator) -> Tracks:
    """(landmarks, head up, head forward) per clip -> tracks, each through one evaluation camera."""
    so = SampleOptions.evaluation()
    kp, cf, y, track, fps, groups = [], [], [], [], [], []
    for (lm, up, forward), rate, group in clips:
        n = max(1, int(TRACK_SECONDS * rate))
        for a in range(0, len(lm), n):
            b = len(lm[a:a + n])
            if b < 2:
                continue
            one = PerWindow(rng, b)  # one camera, one set of definitions for the whole track
            coco = body_points(lm[a:a + n], up[a:a + n], forward[a:a + n], one, so)
            pixels, conf, cam = view(coco, random_cameras(b, one, so.cameras), so)
            k, c = coco18_to_h36m17(pixels, conf)
            kp.append(k)
            cf.append(c)
            y.append(h36m17_from_coco3d(cam).astype(np.float32))
            track.append(np.full(b, len(groups)))
            fps.append(rate)
            groups.append(group)
    return Tracks(np.concatenate(kp), np.concatenate(cf), np.concatenate(y), np.concatenate(track),
                  np.array(fps), groups)
