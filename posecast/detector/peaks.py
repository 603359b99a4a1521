"""Part candidates: local maxima of the heatmaps with subpixel refinement, all parts at once in numpy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Peaks:
    """All candidates of all parts, grouped by part (part is non-decreasing)."""
    part: np.ndarray      # [K] int, COCO-18 index
    xy: np.ndarray        # [K, 2] float32, heatmap cells (cell centres at integers)
    score: np.ndarray     # [K] float32, heatmap value at the peak

    def of(self, part: int) -> np.ndarray:
        """Indices (into this object's arrays) of the candidates of one part."""
        lo, hi = np.searchsorted(self.part, [part, part + 1])
        return np.arange(lo, hi)


def find_peaks(heatmaps: np.ndarray, threshold: float) -> Peaks:
    """heatmaps [P, h, w] -> the strict 3x3 local maxima above threshold, refined to subpixel positions.

    Ties on a plateau keep one pixel: a peak must beat its earlier neighbours (up/left) strictly and
    its later ones (down/right) or equal them. The refinement fits a parabola through the peak and its
    two neighbours on each axis (offset clipped to half a cell).
    """
    p, h, w = heatmaps.shape
    padded = np.pad(heatmaps, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=-np.inf)
    centre = padded[:, 1:-1, 1:-1]
    mask = centre > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            neighbour = padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            earlier = dy < 0 or (dy == 0 and dx < 0)
            mask &= (centre > neighbour) if earlier else (centre >= neighbour)
    part, y, x = np.nonzero(mask)
    score = centre[part, y, x]
    # neighbours through the padded array (edges are -inf: no refinement towards outside)
    left, right = padded[part, y + 1, x], padded[part, y + 1, x + 2]
    up, down = padded[part, y, x + 1], padded[part, y + 2, x + 1]
    xy = np.stack([x, y], axis=1).astype(np.float32)
    xy[:, 0] += _vertex(left, score, right)
    xy[:, 1] += _vertex(up, score, down)
    return Peaks(part, xy, score.astype(np.float32))


def _vertex(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Offset of the parabola's vertex through (-1, a), (0, b), (1, c); 0 where it is undefined."""
    finite = np.isfinite(a) & np.isfinite(c)
    a, c = np.where(finite, a, b), np.where(finite, c, b)
    curvature = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (a - c) / curvature, 0.0)
    return np.clip(offset, -0.5, 0.5).astype(np.float32)
