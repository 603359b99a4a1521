"""A one-line progress bar on stderr: frames done, frames per second, time left. Silent when stderr is no terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_S = 0.2  # at most five redraws a second


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    def __init__(self, label: str, total: int | None, enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()
        self._drawn = 0.0

    @property
    def fps(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        fps = self.fps
        if self.total:
            width = 24
            filled = min(width, int(width * self.done / self.total))
            left = _clock((self.total - self.done) / fps) if fps > 0 and self.done < self.total else "0:00"
            return (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} frames "
                    f"{fps:.1f} fps {left} left")
        return f"{self.label} {self.done} frames {fps:.1f} fps"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self._drawn >= REDRAW_S:
            self._drawn = now
            self.stream.write("\r\x1b[K" + self.line())
            self.stream.flush()

    def close(self) -> None:
        """Clear the bar, so the log line that follows starts on a clean line."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
