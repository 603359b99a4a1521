"""Frame tags: a frame id drawn into the top-left corner of a video frame.

WebRTC does not carry a sender's frame ids, so the sender (the page, or a test client)
draws one into the pixels and the server reads it back. The sender records when it drew
each id; the pose message echoes the id, and the sender gets capture-to-pose latency.

Layout, relative to the frame width so it survives the encoder rescaling the video:
a row of CELLS square cells of side width / 40 at the top-left corner. Cell 0 is white
and cell 1 black (a reference for the threshold); cells 2.. hold BITS bits of the id,
most significant first, white = 1. The page draws the same layout (web/frametag.js).
"""
from __future__ import annotations

import numpy as np

BITS = 16
CELLS = BITS + 2
CELLS_PER_WIDTH = 40
MIN_CONTRAST = 60  # luma difference between the marker cells for a tag to count


def cell_size(width: int) -> int:
    return max(2, width // CELLS_PER_WIDTH)


def draw(image: np.ndarray, frame_id: int) -> np.ndarray:
    """Draw frame_id (mod 2**BITS) into an HxWx3 uint8 image, in place; returns it."""
    s = cell_size(image.shape[1])
    bits = [1, 0] + [(frame_id >> (BITS - 1 - i)) & 1 for i in range(BITS)]
    for i, bit in enumerate(bits):
        image[:s, i * s:(i + 1) * s] = 255 if bit else 0
    return image


def read(luma: np.ndarray) -> int | None:
    """The id in a frame's luma plane (HxW, or HxWx3 of any colour order), or None if untagged."""
    if luma.ndim == 3:
        luma = luma.mean(axis=2)
    s = cell_size(luma.shape[1])
    if luma.shape[0] < s or luma.shape[1] < CELLS * s:
        return None
    q = s // 4  # sample the centre of each cell: edges blur in the codec
    row = luma[q:s - q, : CELLS * s].astype(np.float32)
    values = row.reshape(row.shape[0], CELLS, s)[:, :, q:s - q].mean(axis=(0, 2))
    white, black = values[0], values[1]
    if white - black < MIN_CONTRAST:
        return None
    bits = values[2:] > (white + black) / 2
    return int(sum(int(b) << (BITS - 1 - i) for i, b in enumerate(bits)))
