"""Tiny generated inputs for the offline command's tests, and running the command as a user does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from posecast import paths


def run_process(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m posecast process ...` in a subprocess, one onnxruntime thread (the machine is shared)."""
    return subprocess.run([sys.executable, "-m", "posecast", "process", "--threads", "1", "--device", "cpu",
                           *map(str, args)], cwd=paths.ROOT, capture_output=True, text=True, timeout=timeout)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if " ERROR " in line]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, exactly one ERROR line holding every fragment, no traceback."""
    assert result.returncode != 0, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def leftovers(out: Path) -> list[str]:
    """Temporary files an interrupted or failed run would have left."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def plain_frames(n: int, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """Frames with nobody in them: a gradient and a moving box."""
    w, h = size
    out = []
    for i in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 1] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
        x = (i * 5) % (w - 16)
        cv2.rectangle(image, (x, h // 3), (x + 16, 2 * h // 3), (30, 30, 220), -1)
        out.append(image)
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25, faststart: bool = True) -> Path:
    """An MPEG-4 video; faststart puts the index first, so a copy cut short still opens (as from a crashed
    recorder writing fragments or a download that stopped)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded_frames(path: Path) -> int:
    """How many frames PyAV decodes from a file before it ends or fails."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except av.error.FFmpegError:
        pass
    return count
