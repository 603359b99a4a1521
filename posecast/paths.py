"""Where the project's files and the shared (never committed) data live."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
WEB = ROOT / "web"
DETECTOR_ONNX = WEIGHTS / "openpose_s3.onnx"   # default: the first 3 of 6 stages (docs/detector.md)
LIFTER_ONNX = WEIGHTS / "lifter.onnx"
LIFTER_TEMPORAL_ONNX = WEIGHTS / "lifter_temporal.onnx"


def shared_dir() -> Path:
    """The shared data folder: $POSECAST_SHARED, else ../shared beside the checkout."""
    return Path(os.environ.get("POSECAST_SHARED", ROOT.parent / "shared")).resolve()


def cache_dir() -> Path:
    """Scratch space for unpacked data and datasets: $POSECAST_CACHE, else ~/.cache/posecast."""
    path = Path(os.environ.get("POSECAST_CACHE", Path.home() / ".cache" / "posecast"))
    path.mkdir(parents=True, exist_ok=True)
    return path
