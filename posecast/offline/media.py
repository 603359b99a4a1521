"""Inputs of `posecast process`: image files, folders of images and videos, as frames.

Every problem a user can meet (missing, empty, unreadable, cut short) becomes an InputError or a `problem`
with a one-line reason; nothing here raises a decoder's traceback at the user.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
INDEXED_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp")  # their index usually comes last: a cut-short file won't open
DEFAULT_FPS = 30.0  # when a video does not say (e.g. a bare MJPEG stream)
PREFETCH = 8  # decoded frames waiting for the pipeline: decoding runs beside inference, on the other core


class InputError(Exception):
    """Why an input cannot be processed at all, in one line."""


@dataclass
class Frame:
    index: int               # 0-based, every decoded frame (or image) in order
    t: float | None          # seconds from the video's start; None for images
    image: np.ndarray        # HxWx3 uint8 BGR
    source: str | None = None  # the image's file name, for a folder of images


@dataclass
class Input:
    path: Path
    kind: str                        # "video" | "images"
    images: list[Path] = field(default_factory=list)
    fps: float | None = None         # videos: the stream's frame rate
    expected_frames: int | None = None  # videos: what the container announces (None when unknown)
    size: tuple[int, int] | None = None  # videos: (w, h)
    problem: str | None = None       # set while reading when the input was cut short or an image failed

    @property
    def stem(self) -> str:
        return self.path.stem if self.kind == "video" or self.path.is_file() else self.path.name

    def describe(self) -> dict:
        """For a recording's header."""
        out: dict = {"file": self.path.name, "kind": self.kind}
        if self.kind == "video":
            out.update(fps=self.fps, frames=self.expected_frames, size=list(self.size) if self.size else None)
        else:
            out.update(images=len(self.images))
        return out


def open_input(path: Path) -> Input:
    """Classify and check an input; InputError with the reason when it cannot be used."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            others = [p.name for p in sorted(path.iterdir()) if p.is_file()]
            hint = f"; other files, e.g. {others[0]}, are read only when named as inputs" if others else ""
            raise InputError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)}; subfolders are not "
                             f"read){hint}")
        return Input(path, "images", images=images)
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Input(path, "images", images=[path])
    return _probe_video(path)


_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE, 270: cv2.ROTATE_90_CLOCKWISE,
           180: cv2.ROTATE_180, -180: cv2.ROTATE_180}


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """A frame as players show it: `rotation` is the display matrix's counter-clockwise turn in degrees
    (phones record portrait video as landscape plus this matrix), applied as ffmpeg's own autorotate does."""
    code = _ROTATE.get(int(round(rotation)))
    return image if code is None else cv2.rotate(image, code)


def _probe_video(path: Path) -> Input:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.name in ("ansi", "tty"):  # ffmpeg shows text files as 'video'
                raise InputError(f"{path}: not an image or a video (text)")
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else DEFAULT_FPS
            expected = int(stream.frames) or None
            if expected is None and container.duration:
                expected = round(container.duration / 1e6 * fps)
            w, h = stream.codec_context.width, stream.codec_context.height
            first = next(container.decode(stream), None)  # its display matrix says whether it is turned
            if first is not None and int(round(first.rotation)) % 180 == 90:
                w, h = h, w
            return Input(path, "video", fps=fps, expected_frames=expected, size=(w, h))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = f"ffmpeg: {getattr(exc, 'strerror', None) or exc}"
        if path.suffix.lower() in INDEXED_SUFFIXES:
            reason += f"; a {path.suffix} cut short before its index was written cannot be opened"
        raise InputError(f"{path}: not an image or a video that can be read ({reason})") from None
    except PermissionError as exc:  # av raises it as its own subclass too: keep it one line
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # EXIF orientation applied
    if image is None:
        raise InputError(f"{path}: cannot be read as an image (damaged, or not an image)")
    return image


def frames(item: Input, max_frames: int | None = None) -> Iterator[Frame]:
    """The input's frames in order. A cut-short video or an unreadable image in a folder ends up in item.problem
    (the frames before it are still yielded); a single image that cannot be read raises InputError."""
    if item.kind == "images":
        yield from _image_frames(item, max_frames)
    else:
        yield from _video_frames(item, max_frames)


def _image_frames(item: Input, max_frames: int | None) -> Iterator[Frame]:
    index = 0
    for path in item.images[:max_frames]:
        try:
            image = read_image(path)
        except InputError as exc:
            if len(item.images) == 1:
                raise
            log.warning("%s (skipped)", exc)
            item.problem = f"{path.name} could not be read"
            continue
        yield Frame(index, None, image, path.name)
        index += 1


_END = object()


def _video_frames(item: Input, max_frames: int | None) -> Iterator[Frame]:
    """Decoded in a thread (PyAV releases the GIL) so decoding overlaps inference; ends early on a decode error."""
    frames_q: queue.Queue = queue.Queue(PREFETCH)
    stop = threading.Event()
    errors: list[str] = []

    def put(x) -> bool:
        while not stop.is_set():
            try:
                frames_q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            with av.open(str(item.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                start = stream.start_time or 0
                base = stream.time_base or Fraction(1, 1)
                last_t = None
                for index, frame in enumerate(container.decode(stream)):
                    if max_frames is not None and index >= max_frames:
                        break
                    t = float((frame.pts - start) * base) if frame.pts is not None else index / item.fps
                    if last_t is not None and t <= last_t:  # repeated or missing stamps: keep time moving
                        t = last_t + 1.0 / item.fps
                    last_t = t
                    if not put(Frame(index, t, upright(frame.to_ndarray(format="bgr24"), frame.rotation))):
                        return
        except av.error.FFmpegError as exc:
            errors.append(getattr(exc, "strerror", None) or str(exc))
        except Exception as exc:  # noqa: BLE001 - reported below, in the caller's thread
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            put(_END)

    thread = threading.Thread(target=decode, name=f"decode {item.path.name}", daemon=True)
    thread.start()
    count = 0
    try:
        while (frame := frames_q.get()) is not _END:
            count += 1
            yield frame
    finally:
        stop.set()
        thread.join()
    limit = item.expected_frames if max_frames is None else min(max_frames, item.expected_frames or max_frames)
    if errors:
        item.problem = f"decoding stopped after {count} frames: {errors[0]}"
    elif item.expected_frames and count < limit - 1:  # one frame of slack for rounded durations
        item.problem = f"cut short: {count} of the {item.expected_frames} frames it announces could be decoded"
