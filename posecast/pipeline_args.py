"""The pipeline's command-line options, one definition for every front end (`posecast serve`, `posecast process`)."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from posecast.inference import InferenceSetupError, InferenceUnavailableError
from posecast.pipeline import PipelineOptions, PoseEstimator, default_threads
from posecast.root import ADULT_LEG_MM, LEG_SHARE_OF_HEIGHT, check_fov, leg_mm_for_height
from posecast.runtime import DeviceUnavailableError, ModelNotFoundError
from posecast.smoothing import OneEuroOptions
from posecast.world import WorldOptions


class CannotStart(Exception):
    """The pipeline cannot start with these options (a model missing, no CUDA, a bad value): one line."""


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """--device, --detector, --lifter(s), --threads, --input-height, the One-Euro options and --fov."""
    s = OneEuroOptions()
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the models run: auto = CUDA when really active, else the CPU (default auto)")
    p.add_argument("--detector", type=Path, default=PipelineOptions.detector_path, metavar="ONNX",
                   help=f"2D detector model (default weights/{PipelineOptions.detector_path.name}; the full "
                        "6-stage model: weights/openpose.onnx)")
    p.add_argument("--lifter", type=Path, default=PipelineOptions.lifter_path, metavar="ONNX",
                   help="2D-to-3D lifter model (default weights/lifter.onnx)")
    p.add_argument("--temporal-lifter", type=Path, default=PipelineOptions.temporal_lifter_path, metavar="ONNX",
                   help="causal temporal lifter (default weights/lifter_temporal.onnx)")
    p.add_argument("--lifter-kind", choices=("auto", "temporal", "frame"), default=PipelineOptions.lifter_kind,
                   help="auto = the temporal lifter for videos and the live stream when its file exists, else the "
                        "per-frame one (default auto)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: half the cores)")
    p.add_argument("--inference", default=PipelineOptions.inference, metavar="BACKEND",
                   help="where the networks run: onnxruntime (in this process, default) or triton://HOST:PORT "
                        "(a Triton server's gRPC port, e.g. from `posecast triton`; docs/scaling.md)")
    p.add_argument("--detector-aspects", type=_aspects, default=None, metavar="A,B,...",
                   help="detector input widths as aspects of its height, inputs padded up to the next one so "
                        "streams batch on Triton; 'none' = the width follows the crop (default: none in process, "
                        "0.75,1,1.333,2 on Triton)")
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
    p.add_argument("--fov", type=float, default=WorldOptions.fov_deg, metavar="DEGREES",
                   help="the camera's horizontal field of view, for placing people in the room (default "
                        f"{WorldOptions.fov_deg:g}, a typical webcam; the page can change it)")
    p.add_argument("--height", type=float, default=None, metavar="CM",
                   help="the height of the people in view, for placing them at the right distance (default: an "
                        f"adult's legs of {ADULT_LEG_MM:g} mm, someone "
                        f"{ADULT_LEG_MM / LEG_SHARE_OF_HEIGHT / 10:.0f} cm tall; 10 %% taller is placed 10 %% "
                        "too near)")


def _aspects(text: str) -> tuple[float, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'none' or aspects like 0.75,1,1.333,2, got {text!r}") from None
    if any(not 0.5 <= v <= 2.0 for v in values):
        raise argparse.ArgumentTypeError("aspects must lie in [0.5, 2] (the detector's width range)")
    return values


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    smoothing = OneEuroOptions(args.min_cutoff, args.beta, args.d_cutoff) if args.smoothing else None
    return PipelineOptions(detector_path=args.detector, lifter_path=args.lifter, device=args.device,
                           threads=args.threads, input_height=args.input_height, smoothing=smoothing,
                           lifter_kind=args.lifter_kind, temporal_lifter_path=args.temporal_lifter,
                           world=WorldOptions(fov_deg=check_fov(args.fov), leg_mm=_leg_mm(args.height)),
                           inference=args.inference,
                           detector_aspects=args.detector_aspects)


def _leg_mm(height_cm: float | None) -> float:
    return ADULT_LEG_MM if height_cm is None else leg_mm_for_height(height_cm)


def open_estimator(args: argparse.Namespace) -> PoseEstimator:
    """The estimator for these options; CannotStart with the reason when it cannot be opened."""
    try:
        return PoseEstimator(pipeline_options(args))
    except (ModelNotFoundError, DeviceUnavailableError, InferenceSetupError, InferenceUnavailableError,
            ValueError) as exc:
        raise CannotStart(str(exc)) from None


def describe(options: PipelineOptions) -> dict:
    """The options as JSON-able data, for a recording's header (model files by name: paths are the machine's)."""
    return {"device": options.device, "threads": options.threads or default_threads(),
            "input_height": options.input_height,
            "smoothing": asdict(options.smoothing) if options.smoothing is not None else None,
            "detector": Path(options.detector_path).name, "lifter": Path(options.lifter_path).name,
            "lifter_kind": options.lifter_kind, "temporal_lifter": Path(options.temporal_lifter_path).name,
            "fov": options.world.fov_deg, "leg_mm": options.world.leg_mm, "inference": options.inference}
