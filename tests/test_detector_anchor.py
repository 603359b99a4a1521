"""The MediaPipe reference of `python -m benchmarks detector --anchor` (skipped without the `anchor` extra)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.pck import Tally
from posecast.detector import Detector, DetectorOptions
from posecast.skeleton import C
from tests.conftest import shared_path


def test_mediapipe_and_our_detector_agree_on_a_clear_photo():
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (the optional `anchor` extra)")
    from benchmarks.anchor import VISIBLE, MediaPipePose
    image = cv2.imread(str(shared_path("media/images/opencv_messi5.jpg")))
    mediapipe = MediaPipePose(tracking=False)
    keypoints, visibility = mediapipe(image)
    mediapipe.close()
    h, w = image.shape[:2]
    seen = visibility > VISIBLE
    assert seen.sum() >= 12 and visibility[C["neck"]] == 0          # MediaPipe has no neck
    assert np.all((keypoints[seen] >= 0) & (keypoints[seen] <= [w, h]))
    ours = Detector(DetectorOptions(device="cpu", track=False))(image).people
    tally = Tally()
    tally.add([(keypoints, seen.astype(np.float32))], [(p.keypoints, p.confidence) for p in ours])
    assert tally.found == 1 and tally.pck >= 0.8, tally.summary()
