"""Part-affinity-field decoding: score candidate limbs by line integrals, then group greedily into people.

This is OpenPose's bottom-up association (Cao et al. 2017): for every limb type, all candidate pairs are
scored at once in numpy; the greedy matching and the assembly into people are small Python loops over the
few accepted connections.
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


def bilinear(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """field [C, h, w] sampled at xy [..., 2] (cells, clamped to the map) -> [..., C]."""
    _, h, w = field.shape
    x = np.clip(xy[..., 0], 0, w - 1)
    y = np.clip(xy[..., 1], 0, h - 1)
    x0 = np.minimum(x.astype(np.int32), w - 2) if w > 1 else np.zeros_like(x, np.int32)
    y0 = np.minimum(y.astype(np.int32), h - 2) if h > 1 else np.zeros_like(y, np.int32)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    f = np.moveaxis(field, 0, -1)                    # [h, w, C] view
    top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
    bottom = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def score_limb(a: np.ndarray, b: np.ndarray, paf_xy: np.ndarray, map_height: int,
               opt: PafOptions) -> np.ndarray:
    """Line-integral scores of all pairs: a [na,2], b [nb,2] cells, paf_xy [2,h,w] -> [na, nb]
    (-inf where a pair fails OpenPose's criteria). Long limbs are penalised relative to the map height."""
    d = b[None, :, :] - a[:, None, :]                           # [na, nb, 2]
    norm = np.linalg.norm(d, axis=-1)
    unit = d / np.maximum(norm, 1e-6)[..., None]
    t = np.linspace(0.0, 1.0, opt.samples, dtype=np.float32)
    points = a[:, None, None, :] + d[:, :, None, :] * t[:, None]  # [na, nb, S, 2]
    field = bilinear(paf_xy, points)                           # [na, nb, S, 2]
    alignment = np.einsum("abst,abt->abs", field, unit)
    prior = np.minimum(0.5 * map_height / np.maximum(norm, 1e-6) - 1.0, 0.0)
    score = alignment.mean(-1) + prior
    ok = ((alignment > opt.min_alignment).sum(-1) > opt.min_aligned_fraction * opt.samples) & (score > 0)
    return np.where(ok, score, -np.inf)


def _match(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, best score first: [(row, column, score)]."""
    rows, cols = np.nonzero(np.isfinite(scores))
    order = np.argsort(-scores[rows, cols], kind="stable")
    used_a, used_b, out = set(), set(), []
    for i in order:
        r, c = int(rows[i]), int(cols[i])
        if r not in used_a and c not in used_b:
            used_a.add(r)
            used_b.add(c)
            out.append((r, c, float(scores[r, c])))
    return out


def group(peaks: Peaks, pafs: np.ndarray, opt: PafOptions = PafOptions()) -> People:
    """Peaks + PAFs [38, h, w] -> people, most confident first."""
    map_height = pafs.shape[1]
    # a person: peak index per part (-1 = none), plus [total score, number of parts]
    rows: list[np.ndarray] = []
    owner = np.full(len(peaks.score), -1)                      # person row of each peak
    for k, (pa, pb) in enumerate(COCO18_PAF_LIMBS):
        ia, ib = peaks.of(pa), peaks.of(pb)
        if len(ia) == 0 or len(ib) == 0:
            continue
        scores = score_limb(peaks.xy[ia], peaks.xy[ib], pafs[2 * k:2 * k + 2], map_height, opt)
        for r, c, s in _match(scores):
            a, b = int(ia[r]), int(ib[c])
            ra, rb = owner[a], owner[b]
            if ra >= 0 and rb >= 0 and ra != rb:
                # two partial people joined by this limb: merge them when they share no part
                pa_row, pb_row = rows[ra], rows[rb]
                if np.all((pa_row[:N_PARTS] < 0) | (pb_row[:N_PARTS] < 0)):
                    taken = pb_row[:N_PARTS] >= 0
                    pa_row[:N_PARTS][taken] = pb_row[:N_PARTS][taken]
                    pa_row[N_PARTS:] += pb_row[N_PARTS:]
                    pa_row[N_PARTS] += s
                    owner[owner == rb] = ra
                    pb_row[:] = -1
                    pb_row[N_PARTS:] = 0
            elif ra >= 0 or rb >= 0:
                row_index, new, part = (ra, b, pb) if ra >= 0 else (rb, a, pa)
                row = rows[row_index]
                if row[part] < 0:
                    row[part] = new
                    row[N_PARTS] += peaks.score[new] + s
                    row[N_PARTS + 1] += 1
                    owner[new] = row_index
            elif k < _STARTS_PERSON:
                row = np.full(N_PARTS + 2, -1.0)
                row[pa], row[pb] = a, b
                row[N_PARTS] = peaks.score[a] + peaks.score[b] + s
                row[N_PARTS + 1] = 2
                owner[a] = owner[b] = len(rows)
                rows.append(row)
    return _people(peaks, rows, opt)


def _people(peaks: Peaks, rows: list[np.ndarray], opt: PafOptions) -> People:
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
