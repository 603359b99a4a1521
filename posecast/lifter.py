"""The 2D-to-3D lifter at run time: a thin wrapper around weights/lifter.onnx.

ONNX contract (see export/lifter.py):
  keypoints  float32 [N,17,2]  pixels (x right, y down), Human3.6M-17 order
  confidence float32 [N,17]    0 = missing (its coordinates are ignored)
  joints3d   float32 [N,17,3]  mm, pelvis-relative, camera axes (x right, y down, z away)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import paths
from .runtime import Device, create_session, provider_name


class Lifter:
    def __init__(self, model_path: str | Path = paths.LIFTER_ONNX, device: Device = "auto",
                 threads: int | None = None, session=None) -> None:
        """session: an already open session of the model (posecast.inference), instead of opening the file."""
        self.session = session or create_session(model_path, device, threads=threads,
                                                 hint="python -m export lifter")
        self.provider = provider_name(self.session)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info: dict = json.loads(meta.get("posecast", "{}"))

    def __call__(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """[N,17,2] pixels + [N,17] confidences -> [N,17,3] mm (N may be 0)."""
        kp = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(-1, 17, 2)
        cf = np.ascontiguousarray(confidence, dtype=np.float32).reshape(-1, 17)
        if len(kp) == 0:
            return np.zeros((0, 17, 3), np.float32)
        return self.session.run(["joints3d"], {"keypoints": kp, "confidence": cf})[0]
