"""MediaPipe Pose (full, tracking mode) as the reference the detector is measured against.

Optional: `pip install --no-deps mediapipe==0.10.14 absl-py attrs` (the `anchor` extra). 0.10.14 is the last wheel
that ships the full pose model inside it (newer ones download it at run time, which fails here). Its declared
dependencies cannot be installed as they are beside ours: it pins protobuf<5 (onnx needs >= 6) and pulls in
opencv-contrib-python, which overwrites our headless cv2. Without them it runs, given two shims below.
"""
from __future__ import annotations

import cv2
import numpy as np

from posecast.skeleton import C, COCO18

# MediaPipe's 33 landmarks -> COCO-18 (the neck has no landmark of its own: it is left out)
MP33_TO_COCO18 = {"nose": 0, "l_eye": 2, "r_eye": 5, "l_ear": 7, "r_ear": 8, "l_shoulder": 11, "r_shoulder": 12,
                  "l_elbow": 13, "r_elbow": 14, "l_wrist": 15, "r_wrist": 16, "l_hip": 23, "r_hip": 24,
                  "l_knee": 25, "r_knee": 26, "l_ankle": 27, "r_ankle": 28}
VISIBLE = 0.5   # MediaPipe always places all 33 landmarks; below this visibility a joint counts as not seen


def _protobuf_shims() -> None:
    """mediapipe 0.10.14 calls MessageFactory/SymbolDatabase.GetPrototype, removed in protobuf 5."""
    from google.protobuf import message_factory, symbol_database
    for cls in (message_factory.MessageFactory, symbol_database.SymbolDatabase):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(descriptor)


class MediaPipePose:
    """MediaPipe Pose full (model_complexity 1) on BGR frames -> COCO-18 keypoints in frame pixels.

    tracking=True is its video mode (landmarks of the previous frame give the next region, the person
    detector runs only when the track is lost); False runs the person detector on every image.
    """

    def __init__(self, tracking: bool = True) -> None:
        try:
            _protobuf_shims()
            from mediapipe.python.solution_base import SolutionBase
            from mediapipe.python.solutions import pose
        except ImportError as exc:
            raise ImportError("MediaPipe is not installed: pip install --no-deps mediapipe==0.10.14 absl-py "
                              "attrs (see benchmarks/anchor.py)") from exc
        # Pose() itself also sets its two thresholds through calculator_params, which reads a descriptor field
        # protobuf 7 removed; both are 0.5, the graph's own defaults, so the graph is built without them.
        self._graph = SolutionBase(
            binary_graph_path=pose._BINARYPB_FILE_PATH,
            side_inputs={"model_complexity": 1, "smooth_landmarks": tracking, "enable_segmentation": False,
                         "smooth_segmentation": tracking, "use_prev_landmarks": tracking},
            outputs=["pose_landmarks"])

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """([18, 2] pixels, [18] visibility; 0 for joints MediaPipe lacks) or None when nobody is found."""
        h, w = frame_bgr.shape[:2]
        result = self._graph.process({"image": cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)})
        if result.pose_landmarks is None:
            return None
        marks = result.pose_landmarks.landmark
        keypoints = np.zeros((len(COCO18), 2), np.float32)
        visibility = np.zeros(len(COCO18), np.float32)
        for name, i in MP33_TO_COCO18.items():
            keypoints[C[name]] = (marks[i].x * w, marks[i].y * h)
            visibility[C[name]] = marks[i].visibility
        return keypoints, visibility

    def close(self) -> None:
        self._graph.close()
