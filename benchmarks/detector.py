"""`python -m benchmarks detector`: speed and accuracy of the 2D detector.

`--anchor`: the detector stage as the server runs it (tracking on, one thread) beside MediaPipe Pose full in
tracking mode, on the same decoded 640x480 frames of every clip in ../shared/media/clips, in one process: wall
p50/p95 ms, CPU ms per frame, the ratio ours/theirs, and accuracy (benchmarks/pck.py) against MediaPipe on every
frame and against the COCO ground truth of ../shared/media/images (first frames: no tracking). One row per
configuration (--models x --sizes).

Without --anchor, two workloads on 640x480 frames from ../shared/media:
  * photos (letterboxed to 640x480), full frame each time, no tracking: people found per photo;
  * a clip (the dancer, 640x480 MJPEG) as the server sees it: tracking on, so the network mostly sees a
    crop around the dancer: main-person coverage and id changes.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.pipeline import PipelineOptions
from posecast.runtime import create_session

from .footage import FRAME, anchor_clips, fit_frame, mjpeg_frames, video_frames
from .pck import Tally, coco_ground_truth

log = logging.getLogger(__name__)
CLIP = "media/clips/dance_facing_camera_640x480_30fps.mjpeg"


def stats(values: list[float]) -> str:
    return f"{np.median(values):5.1f} /{np.percentile(values, 90):5.1f} /{np.min(values):5.1f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="network input heights (default: 256 320 368; with --anchor the server's default)")
    parser.add_argument("--model", type=Path, default=paths.DETECTOR_ONNX)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per photo")
    parser.add_argument("--frames", type=int, default=None,
                        help="clip frames (default: 150 without --anchor, every frame of every clip with it)")
    parser.add_argument("--anchor", action="store_true",
                        help="side by side with MediaPipe Pose full (tracking) on every clip, with accuracy")
    parser.add_argument("--models", type=Path, nargs="+", default=None,
                        help="--anchor: detector models to compare (default: --model)")
    parser.add_argument("--crop-margin", type=float, default=None, help="--anchor: tracked crop margin override")
    parser.add_argument("--search-heights", type=int, nargs="+", default=[DetectorOptions.search_height or 0],
                        help="--anchor: input heights of the whole-frame search pass when nobody is tracked "
                             "(0: one whole-frame pass at the input height, no crops)")


@dataclass
class Row:
    """One configuration's figures over all clips."""
    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    vs_mediapipe: Tally = field(default_factory=Tally)
    coco: Tally = field(default_factory=Tally)


def _timed(call, frame):
    t, c = time.perf_counter(), time.process_time()
    out = call(frame)
    return out, (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3


def run_anchor(args: argparse.Namespace) -> int:
    from .anchor import VISIBLE, MediaPipePose
    clips = anchor_clips()
    coco = coco_ground_truth(paths.shared_dir() / "media/images/mmpose_test_coco.json")
    models = args.models or [args.model]
    sizes = args.sizes or [PipelineOptions.input_height]
    threads = args.threads or 1
    configs = []
    for model, height, search in itertools.product(models, sizes, args.search_heights):
        options = DetectorOptions(model_path=model, input_height=height, device="cpu", threads=threads,
                                  search_height=search or None)
        if args.crop_margin is not None:
            options = replace(options, tracking=replace(options.tracking, crop_margin=args.crop_margin))
        name = f"{model.stem} {height}h " + (f"search {search}" if search else "one pass")
        configs.append((Row(name), options, create_session(model, "cpu", threads=threads)))
    reference = Row("MediaPipe Pose full")
    print(f"{len(clips)} clips, frames fitted into {FRAME[0]}x{FRAME[1]}; ours: {threads} onnxruntime thread(s), "
          f"tracking on; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    warm = np.full((FRAME[1], FRAME[0], 3), 114, np.uint8)
    try:
        MediaPipePose(tracking=False).close()
    except ImportError as exc:
        log.error("%s", exc)
        return 1
    for clip in clips:
        frames = video_frames(clip, args.frames)
        mediapipe = MediaPipePose(tracking=True)
        _timed(mediapipe, warm)
        theirs = []
        for frame in frames:
            pose, wall, cpu = _timed(mediapipe, frame)
            reference.wall.append(wall)
            reference.cpu.append(cpu)
            theirs.append(None if pose is None else (pose[0], (pose[1] > VISIBLE).astype(np.float32)))
        mediapipe.close()
        for row, options, session in configs:
            detector = Detector(options, session=session)
            _timed(detector, frames[0])
            detector.reset()
            for frame, ref in zip(frames, theirs):
                detection, wall, cpu = _timed(detector, frame)
                row.wall.append(wall)
                row.cpu.append(cpu)
                if ref is not None:
                    row.vs_mediapipe.add([ref], [(p.keypoints, p.confidence) for p in detection.people])
        print(f"  {clip.name}: {len(frames)} frames, MediaPipe found someone in {sum(t is not None for t in theirs)}")
    still = MediaPipePose(tracking=False)
    for image in coco:
        frame = cv2.imread(str(image.path))
        pose = still(frame)
        reference.coco.add(image.people, [] if pose is None else [(pose[0], (pose[1] > VISIBLE).astype(np.float32))])
        for row, options, session in configs:
            detection = Detector(replace(options, track=False), session=session)(frame)
            row.coco.add(image.people, [(p.keypoints, p.confidence) for p in detection.people])
    still.close()
    base = float(np.median(reference.wall))
    print(f"\n{'configuration':<36} {'p50':>6} {'p95':>6} {'cpu/frame':>9} {'ratio':>6}   "
          f"{'vs MediaPipe on the clips':<66} COCO ground truth (first frames)")
    for row in [reference] + [c[0] for c in configs]:
        p50 = float(np.median(row.wall))
        vs = "(reference)" if row is reference else row.vs_mediapipe.summary()
        print(f"{row.name:<36} {p50:6.1f} {np.percentile(row.wall, 95):6.1f} {np.mean(row.cpu):9.1f} "
              f"{p50 / base:6.2f}   {vs:<66} {row.coco.summary()}")
    print("\n(ms per frame; ratio = p50 / MediaPipe's p50; PCK over every reference person, in brackets over "
          "those found; MediaPipe finds one person per image)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.anchor:
        return run_anchor(args)
    args.frames = args.frames or 150
    args.sizes = args.sizes or [256, 320, 368]
    shared = paths.shared_dir()
    photos = sorted((shared / "media/images").glob("*.jpg"))
    clip = shared / CLIP
    if not photos:
        log.error("no photos in %s (set POSECAST_SHARED)", shared / "media/images")
        return 1
    session = create_session(args.model, args.device, threads=args.threads, hint="python -m export detector")
    frames = {p.stem: fit_frame(cv2.imread(str(p))) for p in photos}
    clip_frames = mjpeg_frames(clip, args.frames) if clip.is_file() else []
    print(f"detector {args.model.name} on {session.get_providers()[0]}, threads={args.threads or 'all'}, "
          f"frames {FRAME[0]}x{FRAME[1]}; times in ms, median / p90 / min; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    found_table: dict[str, list[int]] = {}
    rows = []
    for height in args.sizes:
        options = DetectorOptions(model_path=args.model, input_height=height, device=args.device, track=False)
        detector = Detector(options, session=session)
        times: dict[str, list[float]] = {"preprocess": [], "network": [], "decode": []}
        detector(next(iter(frames.values())))                       # warm-up for this input shape
        for name, frame in frames.items():
            for _ in range(args.repeat):
                detection = detector(frame)
                for key in times:
                    times[key].append(detection.timings[key])
            found_table.setdefault(name, []).append(len(detection.people))
        rows.append((height, "photos, full frame", times, ""))
        if clip_frames:
            detector = Detector(DetectorOptions(model_path=args.model, input_height=height, device=args.device),
                                session=session)
            times = {"preprocess": [], "network": [], "decode": []}
            main_ids = []
            for frame in clip_frames:
                detection = detector(frame)
                for key in times:
                    times[key].append(detection.timings[key])
                main_ids.append(detection.people[0].id if detection.people and detection.people[0].main else None)
            seen = [i for i in main_ids if i is not None]
            changes = sum(a != b for a, b in zip(seen, seen[1:]))
            rows.append((height, "clip, tracked crop", times,
                         f"main person in {len(seen)}/{len(main_ids)} frames, {changes} id changes"))
    print(f"\n{'input':>5}  {'workload':<20} {'network':>18} {'decode':>18} {'preprocess':>18}  notes")
    for height, workload, times, note in rows:
        w = f"{height}h"
        print(f"{w:>5}  {workload:<20} {stats(times['network']):>18} {stats(times['decode']):>18} "
              f"{stats(times['preprocess']):>18}  {note}")
    print(f"\npeople found per photo at input height {' / '.join(map(str, args.sizes))}:")
    for name, counts in found_table.items():
        print(f"  {name:<32} {' / '.join(map(str, counts))}")
    return 0
