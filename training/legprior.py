"""`python -m training legprior`: how well can unseen legs be guessed on the climbing set at all?

With knees and ankles missing, a lifter has to guess the legs from the rest of the body. This
gives that guess the best prior at hand, climbing itself: for each frame, the legs of the k
frames of the *other* climbing clips whose upper body best matches the lifter's (after a
rigid fit), averaged and carried into the lifter's frame; the upper body stays the lifter's.
What that scores is a practical floor for a per-frame lifter that never saw climbing: a
lifter trained on other motion should not be expected to guess climbers' legs better.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from posecast import paths

from .data import LEG_JOINTS, apply_condition
from .dataset import DatasetFiles
from .evaluate import load_predictor
from .metrics import best_fit, p_mpjpe, trunk_pitch

UPPER = [j for j in range(17) if j not in LEG_JOINTS]
PITCH_BINS = ((0, 40), (40, 90), (90, 180))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", type=Path, default=paths.LIFTER_ONNX,
                        help="a checkpoint (.pt) or an ONNX file (default: weights/lifter.onnx)")
    parser.add_argument("--data", type=Path, default=DatasetFiles.default().root)
    parser.add_argument("-k", type=int, nargs="+", default=[1, 50, 200, 1000],
                        help="how many matching frames' legs to average")


def run(args: argparse.Namespace) -> int:
    loaded = DatasetFiles(args.data).load_validation("climb")
    if loaded is None:
        raise SystemExit(f"no climbing set in {args.data}: run `python -m training prepare` with ../shared present")
    samples, clips = loaded
    missing = apply_condition(samples, "no_legs")
    pred = load_predictor(args.model)(missing.keypoints, missing.confidence).astype(np.float64)
    gt = samples.joints3d.astype(np.float64)
    rows = [("the lifter's own legs", p_mpjpe(pred, gt))]
    rows += [(f"legs of {k} other-clip frames", p_mpjpe(borrowed_legs(pred, gt, clips, k), gt)) for k in args.k]
    pitch = trunk_pitch(gt)
    bins = [(pitch >= lo) & (pitch < hi) for lo, hi in PITCH_BINS]
    head = f"{'climbing, knees and ankles missing':34} {'P-MPJPE':>8} " + " ".join(
        f"{f'pitch {lo}-{hi}°':>13}" for lo, hi in PITCH_BINS)
    print(head, "-" * len(head), sep="\n")
    print(f"{'frames':34} {len(gt):8d} " + " ".join(f"{int(m.sum()):13d}" for m in bins))
    for name, err in rows:
        print(f"{name:34} {err.mean():8.1f} " + " ".join(f"{err[m].mean():13.1f}" for m in bins))
    return 0


def borrowed_legs(pred: np.ndarray, gt: np.ndarray, clips: np.ndarray, k: int) -> np.ndarray:
    """pred [N,17,3] with its knees and ankles replaced by the mean legs of the k frames of other
    clips (true poses, gt) whose upper bodies fit pred's best."""
    out = pred.copy()
    for i in range(len(pred)):
        donors = gt[clips != clips[i]]
        target = np.broadcast_to(pred[i, UPPER], donors[:, UPPER].shape)
        rot, _, cs, cd = best_fit(donors[:, UPPER], target, scale=False)
        fit = np.linalg.norm((donors[:, UPPER] - cs) @ rot + cd - target, axis=-1).mean(1)
        best = np.argsort(fit)[:k]
        out[i, LEG_JOINTS] = ((donors[best][:, LEG_JOINTS] - cs[best]) @ rot[best] + cd[best]).mean(0)
    return out
