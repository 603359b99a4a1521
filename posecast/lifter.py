"""The 2D-to-3D lifters at run time: thin wrappers around weights/lifter.onnx (one frame) and
weights/lifter_temporal.onnx (the last T frames of one person, causal).

Per-frame ONNX contract (see export/lifter.py):
  keypoints  float32 [N,17,2]  pixels (x right, y down), Human3.6M-17 order
  confidence float32 [N,17]    0 = missing (its coordinates are ignored)
  joints3d   float32 [N,17,3]  mm, pelvis-relative, camera axes (x right, y down, z away)

Temporal contract: the same with a time axis on the inputs, oldest frame first, the newest
last; the output is the newest frame's pose (no future frames, so no added lag):
  keypoints  float32 [N,T,17,2], confidence float32 [N,T,17] (0 also for frames before the
  person appeared) -> joints3d float32 [N,17,3]. T and the frame rates it was trained for are
  in the manifest (`.info["temporal"]`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import paths
from .runtime import Device, create_session, provider_name


class _OnnxLifter:
    hint = "python -m export lifter"

    def __init__(self, model_path: str | Path, device: Device = "auto", threads: int | None = None,
                 session=None) -> None:
        """session: an already open session of the model (posecast.inference), instead of opening the file."""
        self.session = session or create_session(model_path, device, threads=threads, hint=self.hint)
        self.provider = provider_name(self.session)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info: dict = json.loads(meta.get("posecast", "{}"))

    def _run(self, kp: np.ndarray, cf: np.ndarray) -> np.ndarray:
        if len(kp) == 0:
            return np.zeros((0, 17, 3), np.float32)
        return self.session.run(["joints3d"], {"keypoints": kp, "confidence": cf})[0]


class Lifter(_OnnxLifter):
    def __init__(self, model_path: str | Path = paths.LIFTER_ONNX, device: Device = "auto",
                 threads: int | None = None, session=None) -> None:
        super().__init__(model_path, device, threads, session)

    def __call__(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """[N,17,2] pixels + [N,17] confidences -> [N,17,3] mm (N may be 0)."""
        kp = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(-1, 17, 2)
        cf = np.ascontiguousarray(confidence, dtype=np.float32).reshape(-1, 17)
        return self._run(kp, cf)


class TemporalLifter(_OnnxLifter):
    """The causal temporal lifter: the last `window` frames of each person -> the newest frame's pose."""
    hint = "python -m export lifter-temporal"

    def __init__(self, model_path: str | Path = paths.LIFTER_TEMPORAL_ONNX, device: Device = "auto",
                 threads: int | None = None) -> None:
        super().__init__(model_path, device, threads)
        shape = self.session.get_inputs()[0].shape  # [N, T, 17, 2]
        if len(shape) != 4 or not isinstance(shape[1], int):
            raise ValueError(f"{model_path} is not a temporal lifter (keypoints shape {shape}, "
                             "expected [N,T,17,2] with a fixed T)")
        self.window: int = shape[1]

    def __call__(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """[N,T,17,2] pixels + [N,T,17] confidences (oldest frame first) -> [N,17,3] mm of the newest frame."""
        kp = np.ascontiguousarray(keypoints, dtype=np.float32)
        cf = np.ascontiguousarray(confidence, dtype=np.float32)
        t = self.window
        if kp.shape[1:] != (t, 17, 2) or cf.shape != kp.shape[:-1]:
            raise ValueError(f"expected keypoints [N,{t},17,2] and confidence [N,{t},17], "
                             f"got {kp.shape} and {cf.shape} (pad missing history with confidence 0)")
        return self._run(kp, cf)
