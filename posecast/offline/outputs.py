"""Output files that appear whole or not at all: written under a temporary name, renamed when the input is done."""
from __future__ import annotations

import csv
import io
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from posecast.files import FILE_MODE
from posecast.skeleton import H36M17

log = logging.getLogger(__name__)


class OutputError(Exception):
    """The output folder cannot be used, in one line."""


def check_out_dir(out: Path) -> None:
    """Create the folder if needed and prove it takes files, before any model is loaded."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None


class PendingFiles:
    """Temporary files in the output folder, renamed to their final names by commit(), deleted by discard().
    A crash leaves at most hidden `.NAME.*.part` files, never a half-written file under a real name."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._pending: list[tuple[Path, Path]] = []

    def new(self, name: str) -> Path:
        """A temporary path for the output `name`."""
        final = self.out / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.out)
        os.close(fd)
        os.chmod(tmp, FILE_MODE)
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> list[Path]:
        done = []
        for tmp, final in self._pending:
            os.replace(tmp, final)
            done.append(final)
        self._pending = []
        return done

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []

    def __enter__(self) -> PendingFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()  # whatever was not committed


def csv_header() -> list[str]:
    """The person's root (mm, when placed in the room), then one column per joint coordinate: 3D (mm),
    2D (frame pixels) and confidence of each H36M-17 joint."""
    cols = ["index", "t", "source", "person", "main", "score", "root_x", "root_y", "root_z"]
    for name in H36M17:
        cols += [f"{name}_x", f"{name}_y", f"{name}_z", f"{name}_u", f"{name}_v", f"{name}_conf"]
    return cols


def csv_rows(record: dict) -> list[list]:
    """One row per person in a frame record; a missing joint's coordinates are empty cells."""
    rows = []
    for person in record["people"]:
        root = person.get("root")  # where the pipeline places people in the room; None or absent otherwise
        row = [record["index"], "" if record["t"] is None else record["t"], record.get("source", ""),
               person["id"], int(person["main"]), person["score"], *(root if root is not None else ["", "", ""])]
        for (x, y, z), (u, v), c in zip(person["joints3d"], person["keypoints"], person["confidence"]):
            row += [x, y, z, u, v, c] if c > 0 else ["", "", "", "", "", 0]
        rows.append(row)
    return rows


class CsvWriter:
    def __init__(self, path: Path) -> None:
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(csv_header())

    def write(self, record: dict) -> None:
        self._csv.writerows(csv_rows(record))

    def close(self) -> None:
        self._file.close()


class VideoWriter:
    """H.264 MP4 at the input's frame rate (PyAV); frames of any size, padded to even sizes for yuv420p."""

    def __init__(self, path: Path, fps: float) -> None:
        self._container = av.open(str(path), "w", format="mp4")
        self._rate = Fraction(fps).limit_denominator(1001)
        self._stream = None

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self._rate)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"preset": "veryfast", "crf": "23"}
        if (w + w % 2, h + h % 2) != (self._stream.width, self._stream.height):
            raise ValueError("all frames of a figure video must have one size")
        if w % 2 or h % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()


class Background:
    """Runs fn(*args) for each submitted item, in order, in one thread: drawing and encoding a figure video
    overlaps inference (OpenCV and PyAV release the GIL). The first error is raised again by close()."""

    def __init__(self, fn: Callable[..., None], depth: int = 8) -> None:
        self._fn = fn
        self._items: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="figure writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._items.get()) is not None:
            if self._error is None:
                try:
                    self._fn(*item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller in close()
                    self._error = exc

    def submit(self, *args) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(args)

    def close(self) -> None:
        self._items.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def text_file(path: Path) -> io.TextIOWrapper:
    return open(path, "w", encoding="utf-8", newline="\n")
