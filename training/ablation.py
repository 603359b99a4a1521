"""`python -m training ablation`: short runs with pose-space augmentations switched off.

Two more rows change the model or its training, with all augmentation on: `no-passthrough`
trains the paper's plain MLP (no 2D pass-through, see model.py), `mse-loss` trains on the
paper's mean squared error instead of the mean joint distance (see fit.py).

Each configuration trains the same small model on the same number of samples (not the same
time: on a shared CPU that would not be fair; resumable: a rerun skips finished runs), then its
best checkpoint is scored; the table compares cross-dataset (climbing) and Bandai held-out
figures. Short runs: differences of a few mm are within run-to-run noise, so read the table
for large effects only.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from posecast import paths

from .dataset import DatasetFiles
from .evaluate import evaluate, load_predictor
from .fit import AUGMENTS, FitOptions, fit
from .model import ModelOptions

log = logging.getLogger(__name__)
CONFIGS: dict[str, tuple[str, ...]] = {
    "all": (),
    **{f"no-{name}": (name,) for name in AUGMENTS},
    "none": AUGMENTS,
    "no-passthrough": (),
    "mse-loss": (),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=paths.ROOT / "runs" / "ablation")
    parser.add_argument("--data", type=Path, default=DatasetFiles.default().root)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of 50,000 fresh samples per configuration")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))


def run(args: argparse.Namespace) -> int:
    rows = {}
    for name in args.configs:
        model = ModelOptions(args.width, args.blocks, passthrough=name != "no-passthrough")
        opts = FitOptions(out=args.out / name, data=args.data, model=model,
                          epochs=args.epochs, samples_per_epoch=50_000,
                          threads=args.threads, disable=CONFIGS[name], eval_limit=2000,
                          loss="mse" if name == "mse-loss" else FitOptions.loss)
        fit(opts)
        rows[name] = evaluate(load_predictor(opts.out / "best.pt"), DatasetFiles(args.data))
        log.info("ablation %s done", name)
    table = format_ablation(rows)
    print(table)
    (args.out / "ablation.md").write_text(table + "\n")
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=1))
    return 0


def format_ablation(results: dict[str, list[dict]]) -> str:
    """Markdown: one row per configuration, climbing and Bandai figures (mm, degrees)."""
    def get(rows, set_name, condition, metric):
        return next((r[metric] for r in rows if r["set"] == set_name and r["condition"] == condition
                     and r["group"] == "all"), float("nan"))

    cols = [("climb", "exact", "p_mpjpe"), ("climb", "exact", "bone_p_mpjpe"), ("climb", "exact", "limb_deg"),
            ("climb", "noise5", "p_mpjpe"), ("climb", "no_legs", "p_mpjpe"), ("bandai", "exact", "p_mpjpe"),
            ("bandai", "no_legs", "p_mpjpe")]
    names = {"p_mpjpe": "P-MPJPE", "bone_p_mpjpe": "bone-P-MPJPE", "limb_deg": "limb °"}
    head = "| configuration | " + " | ".join(f"{s} {c} {names[m]}" for s, c, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for config, rows in results.items():
        lines.append(f"| {config} | " + " | ".join(f"{get(rows, *c):.1f}" for c in cols) + " |")
    return "\n".join(lines)
