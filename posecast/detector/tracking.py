"""People across frames: stable ids, one robust main person, duplicate suppression, the next crop.

Matching uses an OKS-like keypoint similarity (shared joints only, relative to the person's size),
so a second person walking in, a partial or doubled skeleton, or a missed frame does not steal the
main person's id: the main person stays main while it is matched, and a lost track keeps its id for
a few frames in case it comes back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .letterbox import Box


@dataclass
class TrackingOptions:
    min_similarity: float = 0.3      # keypoint similarity needed to continue a track
    max_age: int = 15                # frames a lost track keeps its id
    main_grace: int = 5              # frames the lost main person is waited for before another becomes main
    reclaim_iou: float = 0.3         # an unmatched person overlapping the lost main's box this much is the main
    duplicate_similarity: float = 0.6  # a weaker person this similar to a stronger one is the same body
    crop_margin: float = 0.35        # crop margin on each side, as a fraction of the person's box size
    min_crop: float = 0.3            # smallest crop side, as a fraction of the frame's shorter side
    full_frame_area: float = 0.6     # crops covering more of the frame than this become the full frame


@dataclass
class Track:
    id: int
    keypoints: np.ndarray            # [18, 2] frame pixels
    confidence: np.ndarray           # [18]
    age: int = 0                     # frames since last matched


def box_of(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray | None:
    """[x0, y0, x1, y1] around the found keypoints, or None when there are none."""
    found = confidence > 0
    if not found.any():
        return None
    pts = keypoints[found]
    return np.concatenate([pts.min(0), pts.max(0)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes (degenerate boxes count as 1-pixel wide)."""
    a = np.array([a[0], a[1], max(a[2], a[0] + 1), max(a[3], a[1] + 1)])
    b = np.array([b[0], b[1], max(b[2], b[0] + 1), max(b[3], b[1] + 1)])
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def similarity(a_kp: np.ndarray, a_cf: np.ndarray, b_kp: np.ndarray, b_cf: np.ndarray) -> float:
    """OKS-like similarity in [0, 1] over the joints both have (0 when fewer than two are shared)."""
    both = (a_cf > 0) & (b_cf > 0)
    if both.sum() < 2:
        return 0.0
    box = box_of(a_kp, a_cf)
    scale = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 16.0)
    d2 = ((a_kp[both] - b_kp[both]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * (0.1 * scale) ** 2)).mean())


def suppress_duplicates(keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray,
                        threshold: float) -> np.ndarray:
    """Indices of the people to keep: drops a person whose keypoints mostly sit on a stronger one's."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if all(similarity(keypoints[j], confidence[j], keypoints[i], confidence[i]) < threshold for j in kept):
            kept.append(int(i))
    return np.array(sorted(kept), dtype=np.int64)


@dataclass
class Tracker:
    options: TrackingOptions = field(default_factory=TrackingOptions)
    tracks: list[Track] = field(default_factory=list)
    main_id: int | None = None
    next_id: int = 1

    def reset(self) -> None:
        self.tracks.clear()
        self.main_id = None
        self.next_id = 1

    def main_track(self) -> Track | None:
        return next((t for t in self.tracks if t.id == self.main_id), None)

    def update(self, keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray,
               frame_size: tuple[int, int]) -> tuple[list[int], int | None]:
        """People of this frame ([N,18,2] frame pixels, [N,18], [N]) -> their ids and the main one's index."""
        n = len(keypoints)
        sims = np.array([[similarity(t.keypoints, t.confidence, keypoints[i], confidence[i]) for i in range(n)]
                         for t in self.tracks]).reshape(len(self.tracks), n)
        ids: list[int | None] = [None] * n
        matched: set[int] = set()
        for flat in np.argsort(-sims, axis=None, kind="stable"):
            ti, pi = divmod(int(flat), n)
            if sims[ti, pi] < self.options.min_similarity:
                break
            if ti in matched or ids[pi] is not None:
                continue
            matched.add(ti)
            ids[pi] = self.tracks[ti].id
        self._reclaim_main(ids, keypoints, confidence, matched)
        for ti, track in enumerate(self.tracks):
            track.age = 0 if ti in matched else track.age + 1
        for pi in range(n):
            if ids[pi] is None:
                ids[pi] = self.next_id
                self.tracks.append(Track(self.next_id, keypoints[pi], confidence[pi]))
                self.next_id += 1
        by_id = {t.id: t for t in self.tracks}
        for pi, pid in enumerate(ids):
            by_id[pid].keypoints, by_id[pid].confidence = keypoints[pi].copy(), confidence[pi].copy()
        self.tracks = [t for t in self.tracks if t.age <= self.options.max_age]
        main = self._choose_main(ids, keypoints, confidence, scores, frame_size)
        if main is not None:
            self.main_id = ids[main]
        elif self.main_track() is None:
            self.main_id = None
        return ids, main  # type: ignore[return-value]

    def _reclaim_main(self, ids: list[int | None], keypoints: np.ndarray, confidence: np.ndarray,
                      matched: set[int]) -> None:
        """A lost main person whose pose changed too fast to match (a jump, a turn) keeps its id when an
        unmatched person overlaps its last box."""
        main = self.main_track()
        if main is None or self.tracks.index(main) in matched:
            return
        last = box_of(main.keypoints, main.confidence)
        best, best_iou = None, self.options.reclaim_iou
        for pi, pid in enumerate(ids):
            box = box_of(keypoints[pi], confidence[pi])
            if pid is None and box is not None and (v := iou(last, box)) >= best_iou:
                best, best_iou = pi, v
        if best is not None:
            ids[best] = main.id
            matched.add(self.tracks.index(main))

    def _choose_main(self, ids: list[int], keypoints: np.ndarray, confidence: np.ndarray,
                     scores: np.ndarray, frame_size: tuple[int, int]) -> int | None:
        """The main person while matched; none while it is briefly lost (so a bystander does not take
        over for a frame); else the biggest, most confident person."""
        if not ids:
            return None
        if self.main_id in ids:
            return ids.index(self.main_id)
        lost = self.main_track()
        if lost is not None and lost.age <= self.options.main_grace:
            return None
        diagonal = float(np.hypot(*frame_size))
        merit = []
        for kp, cf, s in zip(keypoints, confidence, scores):
            box = box_of(kp, cf)
            size = np.hypot(box[2] - box[0], box[3] - box[1]) / diagonal
            merit.append(size * s)
        return int(np.argmax(merit))

    def crop(self, frame_size: tuple[int, int]) -> Box | None:
        """Where to look in the next frame: around the main person if seen last frame, else None (all)."""
        track = self.main_track()
        if track is None or track.age > 0:
            return None
        w, h = frame_size
        box = box_of(track.keypoints, track.confidence)
        side = max(box[2] - box[0], box[3] - box[1])
        margin = self.options.crop_margin * side
        min_side = self.options.min_crop * min(w, h)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_w = max(box[2] - box[0] + 2 * margin, min_side) / 2
        half_h = max(box[3] - box[1] + 2 * margin, min_side) / 2
        x0, x1 = int(max(0, np.floor(cx - half_w))), int(min(w, np.ceil(cx + half_w)))
        y0, y1 = int(max(0, np.floor(cy - half_h))), int(min(h, np.ceil(cy + half_h)))
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > self.options.full_frame_area * w * h:
            return None
        return x0, y0, x1, y1
