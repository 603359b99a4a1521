"""The 2D detector at run time: frame -> people (COCO-18 keypoints in frame pixels), one object per stream.

preprocess (crop around the tracked main person, letterbox) -> session.run -> postprocess (peaks, PAF
grouping, back to frame pixels, duplicate suppression, tracking). The ONNX contract is in
export/onnx_graph.py; keypoints use continuous pixel coordinates (the top-left pixel's centre is (0.5, 0.5)).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from posecast import paths
from posecast.runtime import Device, create_session, provider_name
from posecast.skeleton import COCO18

from . import letterbox
from .letterbox import Box, Letterbox
from .paf import PafOptions, group
from .peaks import find_peaks
from .tracking import Tracker, TrackingOptions, crop_around, suppress_duplicates

log = logging.getLogger(__name__)

STRIDE = 8  # heatmap cell k covers network pixels [8k, 8k + 8): its centre is 8k + 4
Result = tuple[np.ndarray, np.ndarray, np.ndarray]   # people of one frame: [N,18,2] pixels, [N,18], [N] scores


@dataclass
class DetectorOptions:
    model_path: Path = paths.DETECTOR_ONNX
    input_height: int = 192          # tracked crops' network input height (multiple of 8); width follows the crop
    device: Device = "auto"
    threads: int | None = None
    peak_threshold: float = 0.1      # heatmap value a part candidate needs
    track: bool = True               # crop around the main person of the previous frame; False: search every frame
    # Two-pass search (track=False, or live_search): the whole frame at this input height finds people, then each
    # one's crop runs at search_crop_height. None: one pass over the whole frame at input_height. Measured on the COCO
    # photos (docs/detector.md): a whole-frame pass below 320 misses small people, which no crop brings back.
    search_height: int | None = 320
    search_crop_height: int = 320    # input height of the search's crop per person (higher than tracked crops:
    #                                  the search runs on still images and first frames, where accuracy comes first)
    # With tracking, frames with nobody tracked (the first, a lost track) get one whole-frame pass at input_height
    # unless this is set: on the clips the search raised p95 and CPU per frame and did not raise agreement.
    live_search: bool = False
    search_margin: float = 0.5       # search crop margin per side, as a fraction of the person's box size
    search_people: int = 8           # at most this many crops per search (the best-scored people)
    paf: PafOptions = field(default_factory=PafOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)


@dataclass
class Person:
    id: int                 # stable across frames while tracked
    score: float            # sum of keypoint confidences / 18: in [0, 1], high for a complete, clear person
    keypoints: np.ndarray   # [18, 2] float32, frame pixels, COCO-18 order; 0 where not found
    confidence: np.ndarray  # [18] float32, 0 = not found
    main: bool


@dataclass
class Detection:
    people: list[Person]                 # main person first; empty when nobody is in view
    crop: tuple[int, int, int, int]      # x0, y0, x1, y1: the frame region the network saw
    timings: dict[str, float]            # ms: "preprocess", "network", "decode"


def check_frame(frame: np.ndarray) -> None:
    """Clear errors for what cannot be a BGR frame (the only input we refuse)."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an HxWx3 uint8 BGR image, got {frame.dtype} {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty: {frame.shape}")


class Detector:
    def __init__(self, options: DetectorOptions = DetectorOptions(),
                 session: ort.InferenceSession | None = None) -> None:
        self.options = options
        self.session = session or create_session(options.model_path, options.device, threads=options.threads,
                                                 hint="python -m export detector")
        self.provider = provider_name(self.session)
        self.tracker = Tracker(options.tracking)
        self._frame_size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the people seen so far (a new stream or a scene cut)."""
        self.tracker.reset()
        self._frame_size = None

    def preprocess(self, frame: np.ndarray, crop: Box, height: int | None = None) -> tuple[np.ndarray, Letterbox]:
        box = letterbox.make(crop, height or self.options.input_height)
        image = letterbox.warp(frame, box)
        return image.transpose(2, 0, 1)[None].astype(np.float32), box

    def postprocess(self, heatmaps: np.ndarray, pafs: np.ndarray, box: Letterbox) -> Result:
        """Network maps -> people in frame pixels: ([N,18,2], [N,18], [N] scores)."""
        peaks = find_peaks(heatmaps[:len(COCO18)], self.options.peak_threshold)
        people = group(peaks, pafs, self.options.paf)
        found = people.confidence > 0
        net_xy = people.keypoints * STRIDE + STRIDE / 2
        keypoints = np.where(found[..., None], box.to_frame(net_xy), 0.0).astype(np.float32)
        confidence = people.confidence
        scores = confidence.sum(-1) / len(COCO18)
        keep = suppress_duplicates(keypoints, confidence, scores, self.options.tracking.duplicate_similarity)
        return keypoints[keep], confidence[keep], scores[keep]

    def _detect(self, frame: np.ndarray, crop: Box, timings: dict[str, float], height: int | None = None) -> Result:
        t0 = time.perf_counter()
        image, box = self.preprocess(frame, crop, height)
        t1 = time.perf_counter()
        heatmaps, pafs = self.session.run(["heatmaps", "pafs"], {"image": image})
        t2 = time.perf_counter()
        result = self.postprocess(heatmaps[0], pafs[0], box)
        t3 = time.perf_counter()
        for key, dt in (("preprocess", t1 - t0), ("network", t2 - t1), ("decode", t3 - t2)):
            timings[key] = timings.get(key, 0.0) + dt * 1e3
        return result

    def _search(self, frame: np.ndarray, timings: dict[str, float]) -> tuple[Box, Result]:
        """Nobody tracked: find people in the whole frame, then look again at each of them through a crop
        (a person who is small in the frame, lying or stretched out comes out much better). Returns the region the network saw (the crops' union) and the people."""
        h, w = frame.shape[:2]
        full: Box = (0, 0, w, h)
        o = self.options
        if o.search_height is None:
            return full, self._detect(frame, full, timings)
        coarse = self._detect(frame, full, timings, o.search_height)
        crops = []
        for i in np.argsort(-coarse[2], kind="stable")[:o.search_people]:
            crop = crop_around(coarse[0][i], coarse[1][i], (w, h), o.search_margin, o.tracking)
            if crop is None:             # this person fills most of the frame: look at all of it, once
                return full, self._detect(frame, full, timings, o.search_crop_height)
            crops.append((i, crop))
        parts = []
        for i, crop in crops:
            closer = self._detect(frame, crop, timings, o.search_crop_height)
            # a crop that sees less of the person than the whole frame did (it cut them, or split them into
            # fragments) gives way to the whole frame's keypoints
            if len(closer[0]) and (closer[1] > 0).sum(1).max() >= (coarse[1][i] > 0).sum():
                parts.append(closer)
            else:
                parts.append(tuple(a[[i]] for a in coarse))
        if not parts:
            return full, coarse
        keypoints, confidence, scores = (np.concatenate(a) for a in zip(*parts))
        keep = suppress_duplicates(keypoints, confidence, scores, o.tracking.duplicate_similarity)
        boxes = np.array([c for _, c in crops])
        union = (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))
        return union, (keypoints[keep], confidence[keep], scores[keep])

    def __call__(self, frame_bgr: np.ndarray) -> Detection:
        check_frame(frame_bgr)
        h, w = frame_bgr.shape[:2]
        if self._frame_size not in (None, (w, h)):
            self.tracker.rescale(w / self._frame_size[0], h / self._frame_size[1])
        self._frame_size = (w, h)
        timings: dict[str, float] = {}
        crop = self.tracker.crop((w, h)) if self.options.track else None
        if crop is not None:
            keypoints, confidence, scores = self._detect(frame_bgr, crop, timings)
            if len(keypoints) == 0:
                log.debug("nobody in the crop %s: searching the whole frame", crop)
                crop = None              # the person left the crop: search the whole frame at once
        if crop is None and (self.options.live_search or not self.options.track):
            crop, (keypoints, confidence, scores) = self._search(frame_bgr, timings)
        elif crop is None:
            crop = (0, 0, w, h)
            keypoints, confidence, scores = self._detect(frame_bgr, crop, timings)
        t0 = time.perf_counter()
        if self.options.track:
            ids, main = self.tracker.update(keypoints, confidence, scores, (w, h))
        else:
            ids, main = list(range(1, len(keypoints) + 1)), (0 if len(keypoints) else None)
        people = [Person(int(i), float(s), k, c, j == main)
                  for j, (i, s, k, c) in enumerate(zip(ids, scores, keypoints, confidence))]
        people.sort(key=lambda p: (not p.main, -p.score))
        timings["decode"] += (time.perf_counter() - t0) * 1e3
        return Detection(people, crop, timings)
