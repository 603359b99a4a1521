"""`python -m benchmarks detector`: network and decoding time of the 2D detector at several input sizes.

Two workloads on 640x480 frames from ../shared/media:
  * photos (letterboxed to 640x480), full frame each time, no tracking: people found per photo;
  * a clip (the dancer, 640x480 MJPEG) as the server sees it: tracking on, so the network mostly sees a
    crop around the dancer: main-person coverage and id changes.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.runtime import create_session

log = logging.getLogger(__name__)
FRAME = (640, 480)
CLIP = "media/clips/dance_facing_camera_640x480_30fps.mjpeg"


def fit_frame(image: np.ndarray, size: tuple[int, int] = FRAME) -> np.ndarray:
    """The image scaled into a size x size frame, centred on grey (as a webcam frame would be)."""
    w, h = size
    s = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 114, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def mjpeg_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Frames of a concatenated-JPEG file (split at the JPEG start/end markers)."""
    data, frames, start = path.read_bytes(), [], 0
    while len(frames) < limit:
        begin = data.find(b"\xff\xd8", start)
        end = data.find(b"\xff\xd9", begin)
        if begin < 0 or end < 0:
            break
        frame = cv2.imdecode(np.frombuffer(data[begin:end + 2], np.uint8), cv2.IMREAD_COLOR)
        if frame is not None:
            frames.append(frame)
        start = end + 2
    return frames


def stats(values: list[float]) -> str:
    return f"{np.median(values):5.1f} /{np.percentile(values, 90):5.1f} /{np.min(values):5.1f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 368], help="network input heights")
    parser.add_argument("--model", type=Path, default=paths.DETECTOR_ONNX)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per photo")
    parser.add_argument("--frames", type=int, default=150, help="clip frames")


def run(args: argparse.Namespace) -> int:
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
