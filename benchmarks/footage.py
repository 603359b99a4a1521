"""Real footage for the benchmarks: the shared clips and photos as 640x480 frames, like a webcam's."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from posecast import paths

FRAME = (640, 480)


def fit_frame(image: np.ndarray, size: tuple[int, int] = FRAME) -> np.ndarray:
    """The image scaled into a size x size frame, centred on grey (as a webcam frame would be)."""
    w, h = size
    s = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 114, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def mjpeg_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Frames of a concatenated-JPEG file (split at the JPEG start/end markers)."""
    data, frames, start = path.read_bytes(), [], 0
    while len(frames) < limit:
        begin = data.find(b"\xff\xd8", start)
        end = data.find(b"\xff\xd9", begin)
        if begin < 0 or end < 0:
            break
        frame = cv2.imdecode(np.frombuffer(data[begin:end + 2], np.uint8), cv2.IMREAD_COLOR)
        if frame is not None:
            frames.append(frame)
        start = end + 2
    return frames


def video_frames(path: Path, limit: int | None) -> list[np.ndarray]:
    """Decoded frames of a clip, fitted into 640x480 (aspect kept, grey bars) like a webcam's."""
    if path.suffix == ".mjpeg":
        return [f if f.shape[1::-1] == FRAME else fit_frame(f) for f in mjpeg_frames(path, limit or 10 ** 6)]
    capture, frames = cv2.VideoCapture(str(path)), []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame if frame.shape[1::-1] == FRAME else fit_frame(frame))
    capture.release()
    return frames


def anchor_clips() -> list[Path]:
    """Every clip of ../shared/media/clips, the dancer once (its 640x480 MJPEG, not the mp4 it came from)."""
    clips = sorted(p for p in (paths.shared_dir() / "media/clips").iterdir() if p.suffix in (".mp4", ".avi", ".mjpeg"))
    return [p for p in clips if not (p.suffix == ".mp4" and p.with_name(p.stem + "_640x480_30fps.mjpeg").exists())]
