"""`posecast process INPUT... --out DIR`: images, folders of images and videos to 3D poses (docs/offline.md).

Per input, into DIR, named after the input's stem: STEM.jsonl always (the schema of posecast/records.py),
STEM.csv (--csv), STEM.png per image or STEM.mp4 per video (--figure), STEM.bvh per video (--bvh).
Each input's files appear complete or not at all (posecast/offline/outputs.py).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from posecast import records
from posecast.bvh_export import write_bvh
from posecast.pipeline import Estimator, RunningMode
from posecast.pipeline_args import CannotStart, add_pipeline_arguments, describe, open_estimator

from . import media
from .figure import four_panels
from .media import Input, InputError
from .outputs import Background, CsvWriter, OutputError, PendingFiles, VideoWriter, check_out_dir, text_file
from .progress import Progress

log = logging.getLogger("posecast.process")
FIGURE_HEIGHT = 360  # pixels of each panel, as in the page's pipeline view


def _at_least(lowest: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be {lowest} or more")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="image files, folders of images (each folder is one sequence) or video files")
    p.add_argument("--out", "-o", type=Path, default=Path("."), metavar="DIR",
                   help="output folder, created if needed (default: the current folder); existing outputs of "
                        "the same names are replaced")
    p.add_argument("--csv", action="store_true", help="also STEM.csv: one row per frame and person")
    p.add_argument("--figure", action="store_true",
                   help="also the paper's four-panel figure: STEM.png per image, STEM.mp4 per video")
    p.add_argument("--figure-height", type=_at_least(120), default=FIGURE_HEIGHT, metavar="PX",
                   help=f"height of the figure's panels in pixels (default {FIGURE_HEIGHT})")
    p.add_argument("--bvh", action="store_true", help="also STEM.bvh of each video's main person")
    p.add_argument("--max-frames", type=_at_least(1), default=None, metavar="N",
                   help="only the first N frames of each video (or images of each folder)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_pipeline_arguments(p)


@dataclass
class Totals:
    frames: int = 0
    with_people: int = 0  # frames where someone was found
    people: int = 0       # people over all frames
    pipeline_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the whole process (decoding and figure threads too): what it costs, whatever the load
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: cut short, BVH refused, ...

    def add(self, other: Totals) -> None:
        for name in ("frames", "with_people", "people", "pipeline_s", "wall_s", "cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.written += other.written
        self.problems += other.problems

    def line(self) -> str:
        n = max(self.frames, 1)
        fps = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        return (f"{self.frames} frame{'s' * (self.frames != 1)}, someone found in {self.with_people} "
                f"({self.people} people in all), mean {1e3 * self.pipeline_s / n:.1f} ms per frame in the "
                f"pipeline, {fps:.1f} fps overall, {1e3 * self.cpu_s / n:.1f} ms CPU per frame")


def output_names(item: Input, args: argparse.Namespace) -> list[str]:
    """The files this input will write (for clashes between inputs, checked before any work)."""
    names = [f"{item.stem}.jsonl"] + ([f"{item.stem}.csv"] if args.csv else [])
    if args.figure:
        names += [f"{item.stem}.mp4"] if item.kind == "video" else [f"{p.stem}.png" for p in item.images]
    if args.bvh and item.kind == "video":
        names.append(f"{item.stem}.bvh")
    return names


def process_input(item: Input, estimator: Estimator, args: argparse.Namespace, options: dict) -> Totals:
    """Run one input through the pipeline and write its outputs. InputError when nothing could be read;
    a cut-short input or a refused BVH is a line in the result's `problems` (the complete files are written)."""
    video = item.kind == "video"
    mode = RunningMode.VIDEO if video else RunningMode.IMAGE
    stream = estimator.new_stream(mode)
    totals = Totals()
    problems = totals.problems
    start, cpu_start = time.perf_counter(), time.process_time()
    with PendingFiles(args.out) as files:
        jsonl = text_file(files.new(f"{item.stem}.jsonl"))
        header = records.header_record(estimator.models, {**options, "mode": mode.value}, item.describe())
        jsonl.write(records.dumps(header) + "\n")
        table = CsvWriter(files.new(f"{item.stem}.csv")) if args.csv else None
        movie = VideoWriter(files.new(f"{item.stem}.mp4"), item.fps) if args.figure and video else None
        panel_width = _video_panel_width(item, args.figure_height) if movie else None
        figures = Background(lambda image, crop, person: movie.write(
            four_panels(image, crop, person, args.figure_height, panel_width))) if movie else None
        recorded: list[dict] = []  # videos with --bvh: every frame's record
        total = item.expected_frames if video else len(item.images)
        if total and args.max_frames:
            total = min(total, args.max_frames)
        progress = Progress(item.path.name, total, enabled=not args.quiet and sys.stderr.isatty())
        try:
            for frame in media.frames(item, args.max_frames):
                t0 = time.perf_counter()
                result = stream(frame.image, frame.t if frame.t is not None else 0.0)
                totals.pipeline_s += time.perf_counter() - t0
                h, w = frame.image.shape[:2]
                extra = {"source": frame.source} if frame.source is not None else {}
                record = records.frame_record(frame.index, frame.t, (w, h), result.crop, result.people,
                                              result.scene, **extra)
                jsonl.write(records.dumps(record) + "\n")
                if table is not None:
                    table.write(record)
                person = records.main_person(result.people)
                if figures is not None:
                    figures.submit(frame.image, result.crop, person)
                elif args.figure:
                    _write_png(files.new(f"{Path(frame.source).stem}.png"),
                               four_panels(frame.image, result.crop, person, args.figure_height))
                if args.bvh and video:
                    recorded.append(record)
                totals.frames += 1
                totals.with_people += bool(result.people)
                totals.people += len(result.people)
                progress.update()
        finally:
            progress.close()
            for writer in (figures, jsonl, table, movie):  # the figures first: they still write to the movie
                if writer is not None:
                    writer.close()
        if totals.frames == 0:
            raise InputError(f"{item.path}: no frame could be read" + (f" ({item.problem})" if item.problem else ""))
        if item.problem:
            problems.append(f"{item.path}: {item.problem}; wrote the {totals.frames} frames read")
        totals.written = files.commit()
    if recorded:  # after the poses are safe; write_bvh itself writes through a temporary file
        bvh = args.out / f"{item.stem}.bvh"
        joints3d, valid, root = records.main_person_arrays(recorded)
        try:
            write_bvh(bvh, joints3d, valid, item.fps, root=root)
            totals.written.append(bvh)
        except ValueError as exc:  # nobody in the recording: no skeleton to export
            problems.append(f"{item.path}: no BVH written: {exc}")
    totals.wall_s = time.perf_counter() - start
    totals.cpu_s = time.process_time() - cpu_start
    return totals


def _video_panel_width(item: Input, height: int) -> int:
    """One panel size for every frame of a figure video: the frame's aspect, kept between portrait and 4:3
    (a crop around a person is letterboxed into it)."""
    w, h = item.size or (4, 3)
    return int(round(height * min(max(w / max(h, 1), 0.6), 4 / 3)))


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"cannot encode a PNG for {path.name}")
    path.write_bytes(data.tobytes())


def run(args: argparse.Namespace) -> int:
    failed = 0
    items: list[Input] = []
    for path in args.inputs:
        try:
            items.append(media.open_input(path))
        except InputError as exc:
            log.error("%s", exc)
            failed += 1
    if not items:
        return 1
    try:
        check_out_dir(args.out)
    except OutputError as exc:
        log.error("%s", exc)
        return 1
    if args.bvh and items and not any(i.kind == "video" for i in items):
        log.warning("--bvh: a BVH is written for videos only (images have no motion)")
    seen: dict[str, Path] = {}
    for item in items:
        for name in output_names(item, args):
            if name in seen:
                log.error("%s and %s would both write %s: process them with different --out folders",
                          seen[name], item.path, args.out / name)
                return 1
            seen[name] = item.path
    try:
        estimator = open_estimator(args)
    except CannotStart as exc:
        log.error("%s", exc)
        return 1
    options = {**describe(estimator.options), "max_frames": args.max_frames}
    totals = Totals()
    for item in items:
        try:
            done = process_input(item, estimator, args, options)
        except KeyboardInterrupt:  # this input's temporary files are already gone; the finished ones stay
            log.error("interrupted while processing %s: its files were not written", item.path)
            return 130
        except InputError as exc:
            log.error("%s", exc)
            failed += 1
            continue
        except OSError as exc:  # the output folder filled up or went away: that input's files are gone
            log.error("%s: writing into %s failed: %s", item.path, args.out, exc.strerror or exc)
            failed += 1
            continue
        log.info("%s: %s -> %s", item.path, done.line(), ", ".join(p.name for p in done.written[:4])
                 + (f" and {len(done.written) - 4} more" if len(done.written) > 4 else ""))
        for problem in done.problems:
            log.error("%s", problem)
        failed += bool(done.problems)
        totals.add(done)
    if len(args.inputs) > 1:
        log.info("all %d inputs: %s", len(args.inputs), totals.line())
        if failed:
            log.error("%d of %d inputs failed or are incomplete (see above)", failed, len(args.inputs))
    return 1 if failed else 0
