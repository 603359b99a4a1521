"""The pipeline's command-line options, one definition for every front end (`posecast serve`, `posecast process`)."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from posecast.pipeline import PipelineOptions, PoseEstimator, default_threads
from posecast.runtime import DeviceUnavailableError, ModelNotFoundError
from posecast.smoothing import OneEuroOptions


class CannotStart(Exception):
    """The pipeline cannot start with these options (a model missing, no CUDA, a bad value): one line."""


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """--device, --detector, --lifter, --threads, --input-height and the One-Euro options."""
    s = OneEuroOptions()
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the models run: auto = CUDA when really active, else the CPU (default auto)")
    p.add_argument("--detector", type=Path, default=PipelineOptions.detector_path, metavar="ONNX",
                   help="2D detector model (default weights/openpose.onnx)")
    p.add_argument("--lifter", type=Path, default=PipelineOptions.lifter_path, metavar="ONNX",
                   help="2D-to-3D lifter model (default weights/lifter.onnx)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: half the cores)")
    p.add_argument("--input-height", type=int, default=PipelineOptions.input_height,
                   help="detector input height in pixels: smaller is faster, larger finds smaller people "
                        f"(default {PipelineOptions.input_height})")
    p.add_argument("--no-smoothing", dest="smoothing", action="store_false", help="turn the One-Euro filter off")
    p.add_argument("--min-cutoff", type=float, default=s.min_cutoff,
                   help=f"One-Euro cutoff at rest, Hz: lower = steadier (default {s.min_cutoff})")
    p.add_argument("--beta", type=float, default=s.beta,
                   help=f"One-Euro speed coefficient per mm/s: higher = less lag when moving (default {s.beta})")
    p.add_argument("--d-cutoff", type=float, default=s.d_cutoff,
                   help=f"One-Euro cutoff of the speed estimate, Hz (default {s.d_cutoff})")


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    smoothing = OneEuroOptions(args.min_cutoff, args.beta, args.d_cutoff) if args.smoothing else None
    return PipelineOptions(detector_path=args.detector, lifter_path=args.lifter, device=args.device,
                           threads=args.threads, input_height=args.input_height, smoothing=smoothing)


def open_estimator(args: argparse.Namespace) -> PoseEstimator:
    """The estimator for these options; CannotStart with the reason when it cannot be opened."""
    try:
        return PoseEstimator(pipeline_options(args))
    except (ModelNotFoundError, DeviceUnavailableError, ValueError) as exc:
        raise CannotStart(str(exc)) from None


def describe(options: PipelineOptions) -> dict:
    """The options as JSON-able data, for a recording's header (model files by name: paths are the machine's)."""
    return {"device": options.device, "threads": options.threads or default_threads(),
            "input_height": options.input_height,
            "smoothing": asdict(options.smoothing) if options.smoothing is not None else None,
            "detector": Path(options.detector_path).name, "lifter": Path(options.lifter_path).name}
