"""`python -m training evaluate`: error tables on Bandai held-out clips and the climbing set.

Three conditions: exact 2D, 5 px Gaussian noise, knees and ankles missing. A checkpoint
(.pt) is run in PyTorch, an .onnx file through onnxruntime (the shipped model by default).
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posecast import paths

from .data import CONDITIONS, apply_condition
from .dataset import DatasetFiles
from .metrics import METRICS, all_metrics

log = logging.getLogger(__name__)
Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
SETS = ("bandai", "climb")
SELECTION = "climb bone_p_mpjpe, mean of the three conditions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", type=Path, default=paths.LIFTER_ONNX,
                        help="a checkpoint (.pt), an ONNX file (default: weights/lifter.onnx), or 'flat' "
                             "for the depth-less reference (the 2D pose itself, z = 0; only the aligned "
                             "figures mean anything)")
    parser.add_argument("--data", type=Path, default=DatasetFiles.default().root)
    parser.add_argument("--per-group", action="store_true", help="also rows per action / climbing clip")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")


def run(args: argparse.Namespace) -> int:
    predict = load_predictor(args.model)
    results = evaluate(predict, DatasetFiles(args.data), per_group=args.per_group)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(summary(results), indent=1))
    return 0


def load_predictor(model: Path) -> Predict:
    if str(model) == "flat":
        return flat_predictor
    if model.suffix == ".onnx":
        from posecast.lifter import Lifter
        return Lifter(model, device="cpu")
    from .model import load_checkpoint
    net = load_checkpoint(model)[0]
    return torch_predictor(net)


def flat_predictor(kp: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """A flat, depth-less guess: the 2D pose (pixels) at z = 0, pelvis at the origin."""
    out = np.concatenate([kp, np.zeros(kp.shape[:-1] + (1,), kp.dtype)], -1)
    return out - out[:, :1]


def torch_predictor(net, batch: int = 8192) -> Predict:
    import torch

    def predict(kp: np.ndarray, cf: np.ndarray) -> np.ndarray:
        was = net.training
        net.eval()
        with torch.no_grad():
            out = [net(torch.from_numpy(kp[i:i + batch]), torch.from_numpy(cf[i:i + batch])).numpy()
                   for i in range(0, len(kp), batch)]
        net.train(was)
        return np.concatenate(out) if out else np.zeros((0, 17, 3), np.float32)
    return predict


Results = list[dict]


def evaluate(predict: Predict, files: DatasetFiles, sets: tuple[str, ...] = SETS,
             per_group: bool = False, limit: int | None = None) -> Results:
    """Rows {set, group, condition, n, metric: mean mm / degrees}."""
    rows = []
    for name in sets:
        loaded = files.load_validation(name)
        if loaded is None:
            log.warning("no %s validation set in %s", name, files.root)
            continue
        samples, groups = loaded
        if limit:
            step = max(1, len(samples) // limit)
            samples, groups = samples.take(np.arange(0, len(samples), step)), groups[::step]
        for condition in CONDITIONS:
            s = apply_condition(samples, condition)
            errors = all_metrics(predict(s.keypoints, s.confidence), s.joints3d)
            selections = [("all", np.ones(len(groups), bool))]
            if per_group:
                selections += [(g, groups == g) for g in sorted(set(groups.tolist()))]
            for group, mask in selections:
                rows.append({"set": name, "group": group, "condition": condition, "n": int(mask.sum()),
                             **{m: float(v[mask].mean()) for m, v in errors.items()}})
    return rows


def selection_score(rows: Results) -> float:
    """What picks the model: cross-dataset (climbing) bone-corrected P-MPJPE."""
    vals = [r["bone_p_mpjpe"] for r in rows if r["set"] == "climb" and r["group"] == "all"]
    return float(np.mean(vals)) if vals else float("nan")


def summary(rows: Results) -> dict:
    """{set: {condition: {metric: value}}} for the 'all' rows (manifest metrics)."""
    out: dict = {}
    for r in rows:
        if r["group"] == "all":
            out.setdefault(r["set"], {})[r["condition"]] = {m: round(r[m], 1) for m in METRICS}
    return out


def format_table(rows: Results) -> str:
    head = f"{'set':7} {'group':34} {'condition':9} {'n':>6} {'MPJPE':>7} {'P-MPJPE':>8} {'bone-P':>7} {'limb°':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['set']:7} {r['group'][:34]:34} {r['condition']:9} {r['n']:6d} {r['mpjpe']:7.1f} "
                     f"{r['p_mpjpe']:8.1f} {r['bone_p_mpjpe']:7.1f} {r['limb_deg']:6.1f}")
    return "\n".join(lines)
