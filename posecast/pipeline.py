"""Frame -> people: the 2D detector, the COCO-18 -> H36M-17 conversion, the lifter and smoothing.

The one pipeline every front end runs (the live server, `posecast process`), in one of three running modes, as
in MediaPipe Tasks: LIVE_STREAM and VIDEO track people across frames and smooth them over time; IMAGE treats every
frame on its own. Front ends only know the two protocols below, so the estimator is injectable: the real ONNX
pipeline here, or (in tests and the latency benchmark) something else.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.lifter import Lifter
from posecast.runtime import Device, create_session, provider_name
from posecast.skeleton import coco18_to_h36m17
from posecast.smoothing import OneEuroOptions, TrackSmoother

log = logging.getLogger(__name__)


class RunningMode(str, Enum):
    LIVE_STREAM = "live_stream"  # frames from a camera, some dropped when inference is busy: track and smooth
    VIDEO = "video"              # every frame of a recording, in order: track and smooth
    IMAGE = "image"              # unrelated images: no tracking, no smoothing


@dataclass
class FrameResult:
    """What an estimator found in one frame; `people` are JSON-ready dicts as in docs/protocol.md."""
    people: list[dict] = field(default_factory=list)
    crop: tuple[float, float, float, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage


class FrameProcessor(Protocol):
    """One per video stream (it may track people across frames); called from one thread at a time."""

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        """frame_bgr HxWx3 uint8, t the frame's time in seconds (for smoothing)."""
        ...


class Estimator(Protocol):
    """Models loaded once and shared by all streams."""
    provider: str  # "CPU" | "CUDA"
    models: dict  # model info for the hello message
    smoothing: bool  # whether the streams smooth their output

    def new_stream(self, mode: RunningMode = RunningMode.LIVE_STREAM) -> FrameProcessor: ...


@dataclass(frozen=True)
class PipelineOptions:
    detector_path: Path = paths.DETECTOR_ONNX
    lifter_path: Path = paths.LIFTER_ONNX
    device: Device = "auto"
    threads: int | None = None  # onnxruntime intra-op threads; None = half the cores (see default_threads)
    # Detector input height of the tracked crops: the detector's own default (192: the fastest setting that keeps
    # its accuracy, docs/detector.md); pass 224+ where cores or a GPU allow.
    input_height: int = DetectorOptions.input_height
    smoothing: OneEuroOptions | None = OneEuroOptions()  # None = off
    warmup_size: tuple[int, int] = (640, 480)  # a first run at this frame size, before any client


def default_threads() -> int:
    """Half the cores: the rest decode the video, run the event loop and (often) the browser itself.
    On 2 busy cores one thread ran the detector ~1.7x faster than two (docs/server.md)."""
    return max(1, (os.cpu_count() or 2) // 2)


def model_summary(session: ort.InferenceSession, path: Path) -> dict:
    """File name, provider and the `posecast` manifest the exporters write into ONNX metadata."""
    meta = session.get_modelmeta().custom_metadata_map
    try:
        manifest = json.loads(meta.get("posecast", "{}"))
    except json.JSONDecodeError:
        manifest = {}
    return {"file": path.name, "provider": provider_name(session), **manifest}


def _round(a: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


class PoseEstimator:
    """weights/openpose.onnx + weights/lifter.onnx, each opened once, shared by every stream."""

    def __init__(self, options: PipelineOptions = PipelineOptions()) -> None:
        self.options = options
        self.smoothing = options.smoothing is not None
        threads = options.threads or default_threads()
        self.session = create_session(options.detector_path, options.device, threads=threads,
                                      hint="python -m export detector")
        self.provider = provider_name(self.session)
        # The lifter follows the detector: both on CUDA or both on the CPU.
        self.lifter = Lifter(options.lifter_path, "cuda" if self.provider == "CUDA" else "cpu", threads=threads)
        self._detector_options = DetectorOptions(model_path=options.detector_path, input_height=options.input_height,
                                                 device=options.device, threads=threads)
        self.models = {"detector": {**model_summary(self.session, options.detector_path),
                                    "input_height": options.input_height},
                       "lifter": model_summary(self.lifter.session, options.lifter_path)}
        self._warm_up()

    def _warm_up(self) -> None:
        """One run at the usual frame size, so the first client does not pay for allocation (and cuDNN setup)."""
        w, h = self.options.warmup_size
        t0 = time.perf_counter()
        self.new_stream()(np.zeros((h, w, 3), np.uint8), 0.0)
        self.lifter(np.zeros((1, 17, 2), np.float32), np.ones((1, 17), np.float32))
        log.info("models ready on %s (warm-up %.0f ms)", self.provider, (time.perf_counter() - t0) * 1e3)

    def new_stream(self, mode: RunningMode = RunningMode.LIVE_STREAM) -> PoseStream:
        """Per-stream state (tracking, filters) over the shared sessions."""
        temporal = mode is not RunningMode.IMAGE
        detector_options = replace(self._detector_options, track=temporal)
        smoother = TrackSmoother(self.options.smoothing) if self.options.smoothing and temporal else None
        return PoseStream(Detector(detector_options, session=self.session), self.lifter, smoother)


class PoseStream:
    """The per-stream part: the detector's person tracking and the smoothing filters."""

    def __init__(self, detector: Detector, lifter: Lifter, smoother: TrackSmoother | None) -> None:
        self.detector = detector
        self.lifter = lifter
        self.smoother = smoother

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        t0 = time.perf_counter()
        detection = self.detector(frame_bgr)
        t1 = time.perf_counter()
        people = detection.people
        if people:
            kp18 = np.stack([p.keypoints for p in people]).astype(np.float32)
            cf18 = np.stack([p.confidence for p in people]).astype(np.float32)
            kp17, cf17 = coco18_to_h36m17(kp18, cf18)
            joints3d = self.lifter(kp17, cf17)
        t2 = time.perf_counter()
        out = []
        for i, person in enumerate(people):
            valid = cf17[i] > 0
            j3d = joints3d[i]
            if self.smoother is not None:
                j3d = self.smoother(int(person.id), j3d, valid, t)
            # Missing joints carry no position: zeros, with confidence 0 telling the page to hide them.
            j3d = np.where(valid[:, None], j3d, 0.0)
            out.append({
                "id": int(person.id), "main": bool(person.main), "score": round(float(person.score), 3),
                "joints3d": _round(j3d, 1),
                "keypoints": _round(kp17[i], 1),
                "confidence": _round(cf17[i], 3),
                "coco18": _round(np.concatenate([kp18[i], cf18[i][:, None]], axis=1), 3),
            })
        if self.smoother is not None:
            self.smoother.forget_stale(t)
        t3 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "lift": (t2 - t1) * 1e3, "smooth": (t3 - t2) * 1e3}
        timings.update({f"detect_{k}": v for k, v in getattr(detection, "timings", {}).items()})
        crop = tuple(float(v) for v in detection.crop) if detection.crop is not None else None
        return FrameResult(people=out, crop=crop, timings=timings)
