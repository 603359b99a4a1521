"""Part-affinity-field decoding: score candidate limbs by line integrals, then group greedily into people.

This is OpenPose's bottom-up association (Cao et al. 2017): every candidate pair of every limb type is
scored in one numpy batch; the greedy matching and the assembly into people are small Python loops over
the few accepted connections.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecast.skeleton import COCO18, COCO18_PAF_LIMBS

from .peaks import Peaks

N_PARTS = len(COCO18)
# The last two limbs (ear-shoulder) only confirm people; they never start one (as in OpenPose).
_STARTS_PERSON = len(COCO18_PAF_LIMBS) - 2


@dataclass
class PafOptions:
    samples: int = 10                 # points along a limb for the line integral
    min_alignment: float = 0.05       # a sample counts when the PAF agrees with the limb at least this much
    min_aligned_fraction: float = 0.8  # share of samples that must count
    min_keypoints: int = 4            # smaller groups are dropped
    min_mean_score: float = 0.4       # OpenPose's per-part score floor for a person


@dataclass
class People:
    """Decoded people in heatmap cells."""
    keypoints: np.ndarray   # [N, 18, 2] float32
    confidence: np.ndarray  # [N, 18] float32 (0 = not found)
    score: np.ndarray       # [N] float32: the OpenPose score (peak + limb scores) per found part


def bilinear(field: np.ndarray, xy: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """field [C, h, w] sampled at xy [P, S, 2] (cells, clamped to the map) in channels [P, K] -> [P, S, K]."""
    _, h, w = field.shape
    x = np.clip(xy[..., 0], 0, w - 1)
    y = np.clip(xy[..., 1], 0, h - 1)
    x0 = np.minimum(x.astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int64), max(h - 2, 0))
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    c = channels[:, None, :]                          # [P, 1, K] against [P, S, 1] positions
    top = field[c, y0[..., None], x0[..., None]] * (1 - fx) + field[c, y0[..., None], x1[..., None]] * fx
    bottom = field[c, y1[..., None], x0[..., None]] * (1 - fx) + field[c, y1[..., None], x1[..., None]] * fx
    return top * (1 - fy) + bottom * fy


def candidate_pairs(peaks: Peaks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (limb, peak a, peak b) pair whose parts fit the limb, for all limbs at once."""
    limbs, first, second = [], [], []
    for k, (pa, pb) in enumerate(COCO18_PAF_LIMBS):
        ia, ib = peaks.of(pa), peaks.of(pb)
        if len(ia) and len(ib):
            a, b = np.meshgrid(ia, ib, indexing="ij")
            limbs.append(np.full(a.size, k))
            first.append(a.ravel())
            second.append(b.ravel())
    if not limbs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(limbs), np.concatenate(first), np.concatenate(second)


def score_pairs(a: np.ndarray, b: np.ndarray, limb: np.ndarray, pafs: np.ndarray,
                opt: PafOptions) -> np.ndarray:
    """Line-integral scores of limbs from a [P,2] to b [P,2] (cells) in field `limb` [P] of pafs
    [38,h,w] -> [P] (-inf where a pair fails OpenPose's criteria). Limbs longer than half the map
    height are penalised, as in OpenPose."""
    _, h, w = pafs.shape
    d = b - a
    norm = np.maximum(np.linalg.norm(d, axis=-1), 1e-6)
    unit = d / norm[:, None]
    t = np.linspace(0.0, 1.0, opt.samples, dtype=np.float32)
    points = a[:, None, :] + d[:, None, :] * t[:, None]               # [P, S, 2]
    channels = np.stack([2 * limb, 2 * limb + 1], axis=1)              # [P, 2]
    field = bilinear(pafs, points, channels)                           # [P, S, 2]
    alignment = (field * unit[:, None, :]).sum(-1)
    score = alignment.mean(-1) + np.minimum(0.5 * h / norm - 1.0, 0.0)
    ok = ((alignment > opt.min_alignment).sum(-1) > opt.min_aligned_fraction * opt.samples) & (score > 0)
    return np.where(ok, score, -np.inf)


def connections(peaks: Peaks, pafs: np.ndarray, opt: PafOptions) -> list[tuple[int, int, int, float]]:
    """Accepted limbs [(limb, peak a, peak b, score)] in limb order: per limb type a greedy one-to-one
    matching, best score first."""
    limb, ia, ib = candidate_pairs(peaks)
    if len(limb) == 0:
        return []
    score = score_pairs(peaks.xy[ia], peaks.xy[ib], limb, pafs, opt)
    valid = np.isfinite(score)
    limb, ia, ib, score = limb[valid], ia[valid], ib[valid], score[valid]
    order = np.lexsort((-score, limb))
    used: set[tuple[int, int]] = set()      # (limb, peak) already connected by that limb type
    out = []
    for k, a, b, s in zip(limb[order].tolist(), ia[order].tolist(), ib[order].tolist(), score[order].tolist()):
        if (k, a) not in used and (k, b) not in used:
            used.add((k, a))
            used.add((k, b))
            out.append((k, a, b, s))
    return out


def group(peaks: Peaks, pafs: np.ndarray, opt: PafOptions = PafOptions()) -> People:
    """Peaks + PAFs [38, h, w] -> people, most confident first."""
    # a person: peak index per part (-1 = none), then [total score, number of parts]
    rows: list[list[float]] = []
    owner: dict[int, int] = {}                                 # peak -> person row
    peak_score = peaks.score.tolist()
    for k, a, b, s in connections(peaks, pafs, opt):
        pa, pb = COCO18_PAF_LIMBS[k]
        ra, rb = owner.get(a, -1), owner.get(b, -1)
        if ra >= 0 and rb >= 0:
            if ra == rb:
                continue
            # two partial people joined by this limb: merge them when they share no part
            row_a, row_b = rows[ra], rows[rb]
            if all(x < 0 or y < 0 for x, y in zip(row_a[:N_PARTS], row_b[:N_PARTS])):
                for j in range(N_PARTS):
                    if row_b[j] >= 0:
                        row_a[j] = row_b[j]
                        owner[int(row_b[j])] = ra
                row_a[N_PARTS] += row_b[N_PARTS] + s
                row_a[N_PARTS + 1] += row_b[N_PARTS + 1]
                rows[rb] = [-1.0] * N_PARTS + [0.0, 0.0]
        elif ra >= 0 or rb >= 0:
            row_index, new, part = (ra, b, pb) if ra >= 0 else (rb, a, pa)
            row = rows[row_index]
            if row[part] < 0:
                row[part] = new
                row[N_PARTS] += peak_score[new] + s
                row[N_PARTS + 1] += 1
                owner[new] = row_index
        elif k < _STARTS_PERSON:
            row = [-1.0] * N_PARTS + [peak_score[a] + peak_score[b] + s, 2.0]
            row[pa], row[pb] = a, b
            owner[a] = owner[b] = len(rows)
            rows.append(row)
    return _people(peaks, rows, opt)


def _people(peaks: Peaks, rows: list[list[float]], opt: PafOptions) -> People:
    table = np.array(rows).reshape(-1, N_PARTS + 2)
    count, total = table[:, N_PARTS + 1], table[:, N_PARTS]
    keep = (count >= opt.min_keypoints) & (total / np.maximum(count, 1) >= opt.min_mean_score)
    table = table[keep]
    table = table[np.argsort(-table[:, N_PARTS], kind="stable")]
    index = table[:, :N_PARTS].astype(np.int64)
    found = index >= 0
    safe = np.where(found, index, 0)
    keypoints = np.where(found[..., None], peaks.xy[safe] if len(peaks.score) else 0.0, 0.0)
    confidence = np.where(found, peaks.score[safe] if len(peaks.score) else 0.0, 0.0)
    score = table[:, N_PARTS] / np.maximum(table[:, N_PARTS + 1], 1)
    return People(keypoints.astype(np.float32).reshape(-1, N_PARTS, 2),
                  confidence.astype(np.float32).reshape(-1, N_PARTS), score.astype(np.float32))
