"""Frame -> people: the 2D detector, the COCO-18 -> H36M-17 conversion, the lifter, smoothing and placing
people in the room (posecast/world.py: root position, floor, foot contact).

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
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort

from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.history import KeypointHistory
from posecast.inference import DETECTOR, IN_PROCESS, LIFTER, PaddedDetectorSession, bucket_widths, open_backend
from posecast.lifter import Lifter, TemporalLifter
from posecast.records import person_record
from posecast.runtime import Device, provider_name
from posecast.skeleton import coco18_to_h36m17
from posecast.smoothing import OneEuroOptions, TrackSmoother
from posecast.world import World, WorldOptions

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
    scene: dict = field(default_factory=dict)  # stream-wide fields of the pose message: camera, floor


class FrameProcessor(Protocol):
    """One per video stream (it may track people across frames); called from one thread at a time."""

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        """frame_bgr HxWx3 uint8, t the frame's time in seconds (for smoothing)."""
        ...

    def set_fov(self, fov_deg: float) -> None:
        """The camera's horizontal field of view in degrees (ValueError outside posecast.root.FOV_RANGE_DEG)."""
        ...

    def set_height(self, height_cm: float | None) -> None:
        """The height of the people in view, cm (None: the options' size; ValueError outside HEIGHT_RANGE_CM)."""
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
    # "auto": the temporal lifter where its weights exist (LIVE_STREAM / VIDEO), else the per-frame one.
    lifter_kind: Literal["auto", "temporal", "frame"] = "auto"
    temporal_lifter_path: Path = paths.LIFTER_TEMPORAL_ONNX
    world: WorldOptions = WorldOptions()
    warmup_size: tuple[int, int] = (640, 480)  # a first run at this frame size, before any client
    inference: str = "onnxruntime"  # or "triton://HOST:PORT" (posecast/inference.py)
    # Detector input widths as aspects of input_height; inputs are padded up to the next one so that streams'
    # requests can batch (equal shapes). None = the backend's choice: exact widths in process, buckets on Triton.
    detector_aspects: tuple[float, ...] | None = None


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


class PoseEstimator:
    """weights/openpose.onnx + weights/lifter.onnx, each opened once, shared by every stream."""

    def __init__(self, options: PipelineOptions = PipelineOptions()) -> None:
        self.options = options
        self.smoothing = options.smoothing is not None
        threads = options.threads or default_threads()
        self.backend = open_backend(options.inference, options.device, threads)
        self.session = self.backend.open(options.detector_path, DETECTOR, hint="python -m export detector")
        aspects = self.backend.detector_aspects if options.detector_aspects is None else options.detector_aspects
        self.detector_widths = bucket_widths(options.input_height, aspects) if aspects else ()
        if self.detector_widths:
            self.session = PaddedDetectorSession(self.session, self.detector_widths)
        self.provider = provider_name(self.session)
        self.lifter = Lifter(options.lifter_path, session=self.backend.open(options.lifter_path, LIFTER,
                                                                           hint="python -m export lifter"))
        self.temporal_lifter = None  # the per-frame lifter stays loaded: IMAGE mode and the fallback
        if options.lifter_kind == "temporal" or (options.lifter_kind == "auto"
                                                 and options.temporal_lifter_path.is_file()):
            # Always in process (under 1 ms a person, and its windows are per stream); in process it
            # follows the detector: both on CUDA or both on the CPU.
            device = ("cuda" if self.provider == "CUDA" else "cpu") if options.inference == IN_PROCESS \
                else options.device
            self.temporal_lifter = TemporalLifter(options.temporal_lifter_path, device, threads=threads)
        self._detector_options = DetectorOptions(model_path=options.detector_path, input_height=options.input_height,
                                                 device=options.device, threads=threads)
        self.models = {"detector": {**model_summary(self.session, options.detector_path),
                                    "input_height": options.input_height,
                                    **({"input_widths": list(self.detector_widths)} if self.detector_widths else {})},
                       "lifter": model_summary(self.lifter.session, options.lifter_path)}
        if self.temporal_lifter is not None:
            self.models["lifter_temporal"] = {**model_summary(self.temporal_lifter.session,
                                                              options.temporal_lifter_path),
                                              "window": self.temporal_lifter.window}
        log.info("lifter: %s", "temporal (%d frames) in live/video modes" % self.temporal_lifter.window
                 if self.temporal_lifter is not None else "per frame")
        self._warm_up()

    def _warm_up(self) -> None:
        """One run at the usual frame size, so the first client does not pay for allocation (and cuDNN setup)."""
        w, h = self.options.warmup_size
        t0 = time.perf_counter()
        self.new_stream()(np.zeros((h, w, 3), np.uint8), 0.0)
        self.lifter(np.zeros((1, 17, 2), np.float32), np.ones((1, 17), np.float32))
        if self.temporal_lifter is not None:
            t = self.temporal_lifter.window
            self.temporal_lifter(np.zeros((1, t, 17, 2), np.float32), np.ones((1, t, 17), np.float32))
        log.info("models ready on %s (warm-up %.0f ms)", self.provider, (time.perf_counter() - t0) * 1e3)

    def new_stream(self, mode: RunningMode = RunningMode.LIVE_STREAM) -> PoseStream:
        """Per-stream state (tracking, filters) over the shared sessions."""
        temporal = mode is not RunningMode.IMAGE
        detector_options = replace(self._detector_options, track=temporal)
        smoother = TrackSmoother(self.options.smoothing) if self.options.smoothing and temporal else None
        history = (KeypointHistory(self.temporal_lifter.window)
                   if temporal and self.temporal_lifter is not None else None)
        return PoseStream(Detector(detector_options, session=self.session), self.lifter, smoother,
                          World(self.options.world, temporal=temporal), self.temporal_lifter, history)


class PoseStream:
    """The per-stream part: the detector's person tracking, keypoint history, smoothing filters and the room."""

    def __init__(self, detector: Detector, lifter: Lifter, smoother: TrackSmoother | None, world: World,
                 temporal_lifter: TemporalLifter | None = None, history: KeypointHistory | None = None) -> None:
        self.detector = detector
        self.lifter = lifter
        self.smoother = smoother
        self.world = world
        self.temporal_lifter = temporal_lifter if history is not None else None
        self.history = history

    def set_fov(self, fov_deg: float) -> None:
        self.world.set_fov(fov_deg)

    def set_height(self, height_cm: float | None) -> None:
        self.world.set_height(height_cm)

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        t0 = time.perf_counter()
        detection = self.detector(frame_bgr)
        t1 = time.perf_counter()
        people = detection.people
        ids = [int(p.id) for p in people]
        kp18 = np.stack([p.keypoints for p in people]).astype(np.float32) if people else np.zeros((0, 18, 2))
        cf18 = np.stack([p.confidence for p in people]).astype(np.float32) if people else np.zeros((0, 18))
        kp17, cf17 = coco18_to_h36m17(kp18, cf18)
        held = np.zeros(cf17.shape, bool)  # missing now, carried over from the window by the temporal lifter
        if self.history is not None:
            windows = self.history(ids, kp17, cf17, t)  # every frame, also with nobody in it: time goes on
            joints3d = self.temporal_lifter(*windows) if people else np.zeros((0, 17, 3), np.float32)
            held = (cf17 <= 0) & (windows[1].max(axis=1) > 0)
        else:
            joints3d = self.lifter(kp17, cf17)
        t2 = time.perf_counter()
        shown = np.zeros((len(people), 17, 3))
        for i, track_id in enumerate(ids):
            known = (cf17[i] > 0) | held[i]
            j3d = joints3d[i]
            if self.smoother is not None:
                j3d = self.smoother(track_id, j3d, known, t)
            shown[i] = np.where(known[:, None], j3d, 0.0)  # unknown joints have no position (person_record too)
        t3 = time.perf_counter()
        placed, shown, scene = self.world(ids, kp17, cf17, shown, (frame_bgr.shape[1], frame_bgr.shape[0]), t)
        out = [person_record(p.id, p.main, p.score, shown[i], kp17[i], cf17[i], kp18[i], cf18[i], held=held[i],
                             **placed[i]) for i, p in enumerate(people)]
        if self.smoother is not None:
            self.smoother.forget_stale(t)
        t4 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "lift": (t2 - t1) * 1e3, "smooth": (t3 - t2) * 1e3,
                   "world": (t4 - t3) * 1e3}
        timings.update({f"detect_{k}": v for k, v in getattr(detection, "timings", {}).items()})
        crop = tuple(float(v) for v in detection.crop) if detection.crop is not None else None
        return FrameResult(people=out, crop=crop, timings=timings, scene=scene)
