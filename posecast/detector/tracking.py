"""People across frames: stable ids, one robust main person, duplicate suppression, the next crop.

Matching uses an OKS-like keypoint similarity (relative to the person's size, weighted by joint coverage),
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
    hits: int = 1                    # frames matched


def box_of(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray | None:
    """[x0, y0, x1, y1] around the found keypoints, or None when there are none."""
    found = confidence > 0
    if not found.any():
        return None
    pts = keypoints[found]
    return np.concatenate([pts.min(0), pts.max(0)])


def _area(box: np.ndarray) -> float:
    return max(float(box[2] - box[0]), 1.0) * max(float(box[3] - box[1]), 1.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap area of two boxes, degenerate boxes counted as 1 pixel wide."""
    w = min(a[0] + max(a[2] - a[0], 1), b[0] + max(b[2] - b[0], 1)) - max(a[0], b[0])
    h = min(a[1] + max(a[3] - a[1], 1), b[1] + max(b[3] - b[1], 1)) - max(a[1], b[1])
    return max(float(w), 0.0) * max(float(h), 0.0)


def grow(box: np.ndarray, fraction: float) -> np.ndarray:
    """The box grown on each side by a fraction of its longer side."""
    margin = fraction * max(box[2] - box[0], box[3] - box[1])
    return np.concatenate([box[:2] - margin, box[2:] + margin])


def inside(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box a that lies within box b."""
    return _intersection(a, b) / _area(a)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    inter = _intersection(a, b)
    return inter / (_area(a) + _area(b) - inter)


def similarity(a_kp: np.ndarray, a_cf: np.ndarray, b_kp: np.ndarray, b_cf: np.ndarray,
               coverage: bool = False) -> float:
    """OKS-like similarity in [0, 1] over the joints both have (0 when fewer than two are shared).

    coverage: also scale by shared joints / joints of the more complete one, so that a fragment (a few
    joints split off a body by the grouping) matches a track less well than the rest of that body.
    """
    both = (a_cf > 0) & (b_cf > 0)
    shared = int(both.sum())
    if shared < 2:
        return 0.0
    box = box_of(a_kp, a_cf)
    scale = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 16.0)
    d2 = ((a_kp[both] - b_kp[both]) ** 2).sum(-1)
    oks = float(np.exp(-d2 / (2 * (0.1 * scale) ** 2)).mean())
    return oks * shared / max(int((a_cf > 0).sum()), int((b_cf > 0).sum())) if coverage else oks


def suppress_duplicates(keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray,
                        threshold: float, fragment_keypoints: int = 5) -> np.ndarray:
    """Indices of the people to keep, dropping (weakest first) doubled skeletons, whose keypoints mostly
    sit on a stronger person's, and fragments: people of few keypoints lying within a fuller person's box
    (grown by 20 % of its size: a split-off arm sticks out of the rest of the body)."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        box = box_of(keypoints[i], confidence[i])
        fragment = (confidence[i] > 0).sum() <= fragment_keypoints
        for j in kept:
            if similarity(keypoints[j], confidence[j], keypoints[i], confidence[i]) >= threshold:
                break
            if fragment and (confidence[j] > 0).sum() > fragment_keypoints and \
                    inside(box, grow(box_of(keypoints[j], confidence[j]), 0.2)) >= 0.6:
                break
        else:
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

    def rescale(self, sx: float, sy: float) -> None:
        """The frame was resized (e.g. the video's resolution changed): move the tracks with it."""
        for t in self.tracks:
            t.keypoints = t.keypoints * np.float32([sx, sy])

    def main_track(self) -> Track | None:
        return next((t for t in self.tracks if t.id == self.main_id), None)

    def update(self, keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray,
               frame_size: tuple[int, int]) -> tuple[list[int], int | None]:
        """People of this frame ([N,18,2] frame pixels, [N,18], [N]) -> their ids and the main one's index."""
        n = len(keypoints)
        sims = np.array([[similarity(t.keypoints, t.confidence, keypoints[i], confidence[i], coverage=True)
                          for i in range(n)]
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
        absorbed = self._reclaim_main(ids, keypoints, confidence, matched)
        for ti, track in enumerate(self.tracks):
            track.age = 0 if ti in matched else track.age + 1
            track.hits += ti in matched
        self.tracks = [t for t in self.tracks if t.id != absorbed]
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
                      matched: set[int]) -> int | None:
        """A lost main person whose pose changed too fast to match (a jump, a turn, a half-found body)
        keeps its id: an unmatched person, or one tracked only since the main was lost, overlapping its last
        box (IoU, or lying mostly inside it) takes the main id. Returns the id of a track so absorbed."""
        main = self.main_track()
        if main is None or self.tracks.index(main) in matched:
            return None
        young = {t.id: ti for ti, t in enumerate(self.tracks) if t is not main and t.hits <= main.age}
        last = box_of(main.keypoints, main.confidence)
        best, best_overlap = None, 0.0
        for pi, pid in enumerate(ids):
            box = box_of(keypoints[pi], confidence[pi])
            if box is None or not (pid is None or pid in young):
                continue
            overlap = iou(last, box)
            if (overlap >= self.options.reclaim_iou or inside(box, last) >= 0.8) and overlap >= best_overlap:
                best, best_overlap = pi, overlap
        if best is None:
            return None
        absorbed = ids[best]
        if absorbed is not None:
            matched.discard(young[absorbed])
        ids[best] = main.id
        matched.add(self.tracks.index(main))
        return absorbed

    def _choose_main(self, ids: list[int], keypoints: np.ndarray, confidence: np.ndarray,
                     scores: np.ndarray, frame_size: tuple[int, int]) -> int | None:
        """The main person while matched; none while it is briefly lost (so a bystander does not take
        over for a frame); else the person with the best size x sqrt(score) x centrality."""
        if not ids:
            return None
        if self.main_id in ids:
            return ids.index(self.main_id)
        lost = self.main_track()
        if lost is not None and lost.age <= self.options.main_grace:
            return None
        w, h = frame_size
        diagonal = float(np.hypot(w, h))
        merit = []
        for kp, cf, s in zip(keypoints, confidence, scores):
            box = box_of(kp, cf)
            size = np.hypot(box[2] - box[0], box[3] - box[1]) / diagonal
            # a webcam's subject is usually near the middle: off-centre people count up to half less
            off_centre = np.hypot((box[0] + box[2]) / 2 - w / 2, (box[1] + box[3]) / 2 - h / 2) / (diagonal / 2)
            merit.append(size * np.sqrt(s) * (1 - 0.5 * min(off_centre, 1.0)))
        return int(np.argmax(merit))

    def crop(self, frame_size: tuple[int, int]) -> Box | None:
        """Where to look in the next frame: around the main person if seen last frame, else None (all)."""
        track = self.main_track()
        if track is None or track.age > 0:
            return None
        return crop_around(track.keypoints, track.confidence, frame_size, self.options.crop_margin, self.options)


def crop_around(keypoints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int], margin: float,
                options: TrackingOptions) -> Box | None:
    """The frame region around a person's keypoints plus `margin` x their box's longer side on each side (at
    least options.min_crop of the frame's shorter side), clipped to the frame; None when that region would
    cover most of the frame anyway (then the whole frame is the better view)."""
    w, h = frame_size
    box = box_of(keypoints, confidence)
    if box is None:
        return None
    pad = margin * max(box[2] - box[0], box[3] - box[1])
    min_side = options.min_crop * min(w, h)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w = max(box[2] - box[0] + 2 * pad, min_side) / 2
    half_h = max(box[3] - box[1] + 2 * pad, min_side) / 2
    x0, x1 = int(max(0, np.floor(cx - half_w))), int(min(w, np.ceil(cx + half_w)))
    y0, y1 = int(max(0, np.floor(cy - half_h))), int(min(h, np.ceil(cy + half_h)))
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > options.full_frame_area * w * h:
        return None
    return x0, y0, x1, y1
