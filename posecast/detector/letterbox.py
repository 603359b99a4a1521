"""Crop a frame region and letterbox it to the network size, keeping the exact way back to frame pixels.

Coordinates are continuous pixel coordinates: pixel (row i, column j) covers [j, j+1) x [i, i+1), so the
centre of the top-left pixel is (0.5, 0.5). The crop is resized to a whole number of pixels and pasted at
a whole-pixel offset, so frame -> network is exactly
    net = scale * frame + offset        (per axis)
which is what cv2.resize does in this convention; `to_frame(to_net(p)) == p` up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]          # x0, y0, x1, y1 in frame pixels (x1, y1 exclusive)


@dataclass(frozen=True)
class Letterbox:
    crop: Box
    size: tuple[int, int]                # network input (width, height)
    resized: tuple[int, int]             # the crop's size inside the network input (width, height)
    pad: tuple[int, int]                 # where the resized crop's top-left corner sits

    @property
    def scale(self) -> np.ndarray:
        x0, y0, x1, y1 = self.crop
        return np.array([self.resized[0] / (x1 - x0), self.resized[1] / (y1 - y0)])

    @property
    def offset(self) -> np.ndarray:
        return np.array(self.pad, np.float64) - self.scale * self.crop[:2]

    def to_net(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float64) * self.scale + self.offset).astype(np.float32)

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        return ((np.asarray(xy, np.float64) - self.offset) / self.scale).astype(np.float32)


def network_size(crop_w: int, crop_h: int, height: int, max_aspect: float = 2.0) -> tuple[int, int]:
    """(width, height) of the network input: the given height and a width following the crop's aspect,
    both multiples of 8; the aspect is clamped to [1/max_aspect, max_aspect] (the rest is padding)."""
    height = max(8, int(round(height / 8)) * 8)
    aspect = min(max(crop_w / max(crop_h, 1), 1.0 / max_aspect), max_aspect)
    return max(8, int(round(height * aspect / 8)) * 8), height


def make(crop: Box, height: int) -> Letterbox:
    """The letterbox that fits `crop` into a network input of the given height, centred, aspect kept."""
    x0, y0, x1, y1 = crop
    cw, ch = x1 - x0, y1 - y0
    if cw <= 0 or ch <= 0:
        raise ValueError(f"empty crop {crop}")
    w, h = network_size(cw, ch, height)
    s = min(w / cw, h / ch)
    rw, rh = min(w, max(1, round(cw * s))), min(h, max(1, round(ch * s)))
    return Letterbox(crop, (w, h), (rw, rh), ((w - rw) // 2, (h - rh) // 2))


def warp(frame: np.ndarray, box: Letterbox) -> np.ndarray:
    """The network's view: [H, W, 3] uint8, the crop resized into a black canvas."""
    x0, y0, x1, y1 = box.crop
    rw, rh = box.resized
    shrink = rw < x1 - x0 or rh < y1 - y0
    resized = cv2.resize(frame[y0:y1, x0:x1], box.resized,
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    w, h = box.size
    px, py = box.pad
    if (rw, rh) == (w, h):
        return resized
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[py:py + rh, px:px + rw] = resized
    return canvas
