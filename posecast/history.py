"""Per-track windows of the last T keypoints, the temporal lifter's input.

The live server processes frames at an uneven rate; a window holds the last T frames this stream processed for
that person, oldest first. Frames before the person appeared (and frames they were missed in) carry confidence 0,
as the temporal lifter's contract asks (docs/lifter.md).
"""
from __future__ import annotations

import numpy as np


class KeypointHistory:
    def __init__(self, window: int, max_age: float = 1.0) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.window = window
        self.max_age = max_age
        self._tracks: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # id -> kp [T,17,2], cf [T,17], seen

    def __call__(self, ids: list[int], keypoints: np.ndarray, confidence: np.ndarray,
                 t: float) -> tuple[np.ndarray, np.ndarray]:
        """This frame's people (ids, [N,17,2] px, [N,17]) -> their windows [N,T,17,2], [N,T,17].

        Every track known to the stream moves on by one frame, so a person missed in a frame gets a frame of
        confidence 0 there, as in a window of the camera's frames."""
        for track_id, (kp, cf, seen) in list(self._tracks.items()):
            if not 0 <= t - seen <= self.max_age:
                del self._tracks[track_id]
                continue
            kp, cf = np.roll(kp, -1, axis=0), np.roll(cf, -1, axis=0)
            cf[-1] = 0  # missed in this frame, unless filled in below
            self._tracks[track_id] = (kp, cf, seen)
        n = len(ids)
        out_kp = np.zeros((n, self.window, 17, 2), np.float32)
        out_cf = np.zeros((n, self.window, 17), np.float32)
        for i, track_id in enumerate(ids):
            kp, cf, _ = self._tracks.get(track_id) or (np.zeros((self.window, 17, 2), np.float32),
                                                       np.zeros((self.window, 17), np.float32), t)
            kp[-1], cf[-1] = keypoints[i], confidence[i]
            self._tracks[track_id] = (kp, cf, t)
            out_kp[i], out_cf[i] = kp, cf
        return out_kp, out_cf

    def __len__(self) -> int:
        return len(self._tracks)
