"""One-Euro filtering of joint positions (Casiez et al., CHI 2012).

A low-pass filter whose cutoff rises with speed: strong smoothing when a joint is still
(jitter gone), little when it moves fast (no lag). Timestamps may be irregular (frames
are dropped when inference is slower than the camera), so each step uses the real dt.

Missing joints stay missing: a joint flagged invalid is passed through untouched and its
filter state is forgotten, so when it reappears it starts fresh rather than being pulled
towards where it was seconds ago.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroOptions:
    """Defaults are for joints in mm at ~30 fps: 10 mm jitter at rest drops to a third, and a
    joint moving at 2 m/s trails by under 30 mm (a fixed 1 Hz low-pass would trail by ~300 mm)."""
    min_cutoff: float = 0.5  # Hz: cutoff at rest; lower = smoother but laggier when slow
    beta: float = 0.004  # per (unit / s): how fast the cutoff rises with speed; higher = less lag
    d_cutoff: float = 1.0  # Hz: cutoff for the speed estimate itself


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Smooths J points of D dimensions ([J, D]) over time; a joint's speed is its vector norm."""

    def __init__(self, options: OneEuroOptions = OneEuroOptions()) -> None:
        self.options = options
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._valid: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, valid: np.ndarray, t: float) -> np.ndarray:
        """x [J, D], valid [J] bool, t seconds -> filtered [J, D] (invalid joints returned as given)."""
        x = np.asarray(x, np.float64)
        valid = np.asarray(valid, bool)
        if self._t is None or t <= self._t or self._x is None or self._x.shape != x.shape:
            # First sample, a clock jump backwards, or a new layout: start over.
            self._x, self._dx, self._valid, self._t = x.copy(), np.zeros_like(x), valid.copy(), t
            return x.astype(np.float32)
        o = self.options
        dt = t - self._t
        dx = (x - self._x) / dt
        dx_hat = _alpha(o.d_cutoff, dt) * dx + (1.0 - _alpha(o.d_cutoff, dt)) * self._dx
        cutoff = o.min_cutoff + o.beta * np.linalg.norm(dx_hat, axis=-1)
        a = _alpha(cutoff, dt)[:, None]
        x_hat = a * x + (1.0 - a) * self._x
        keep = (valid & self._valid)[:, None]  # filter only joints seen now and last time
        out = np.where(keep, x_hat, x)
        self._x = out
        self._dx = np.where(keep, dx_hat, 0.0)
        self._valid = valid.copy()
        self._t = t
        return out.astype(np.float32)


class TrackSmoother:
    """One filter per tracked person id; filters of people unseen for `max_age` seconds are dropped."""

    def __init__(self, options: OneEuroOptions = OneEuroOptions(), max_age: float = 1.0) -> None:
        self.options = options
        self.max_age = max_age
        self._filters: dict[int, tuple[OneEuroFilter, float]] = {}

    def __call__(self, track_id: int, x: np.ndarray, valid: np.ndarray, t: float) -> np.ndarray:
        entry = self._filters.get(track_id)
        f = entry[0] if entry else OneEuroFilter(self.options)
        self._filters[track_id] = (f, t)
        return f(x, valid, t)

    def forget_stale(self, t: float) -> None:
        """Drop filters of people not seen within max_age of t (or seen 'after' t: a clock reset)."""
        self._filters = {k: (f, seen) for k, (f, seen) in self._filters.items() if 0 <= t - seen <= self.max_age}

    def reset(self) -> None:
        self._filters.clear()

    def __len__(self) -> int:
        return len(self._filters)
