"""`python -m training ablation-temporal`: short runs of temporal architectures, beside the per-frame lifter.

Every configuration trains on the same number of windows (not the same time: the machine is
shared), then its best checkpoint is scored on the validation tracks at live rates, as the
per-frame lifter with and without One-Euro is. Resumable: a rerun skips finished runs. Short
runs: read the table for large effects only. Each trained model is scored twice: as trained
(the hold of missing joints off, as it was trained; see temporal_model.hold_missing)
and with it on.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from posecast import paths
from posecast.lifter import Lifter
from posecast.smoothing import OneEuroOptions

from .fit_temporal import TemporalFitOptions, fit_temporal
from .prepare_temporal import SequenceFiles
from .temporal_eval import CONDITIONS, Method, evaluate_tracks, torch_window_predictor
from .temporal_model import TemporalOptions, load_temporal

log = logging.getLogger(__name__)
# name: (model, start from the per-frame lifter, first learning rate)
# Trained without the hold of missing joints (the architectures alone), scored without and with it.
CONFIGS: dict[str, tuple[TemporalOptions, bool, float]] = {
    "mlp-27-init": (TemporalOptions("mlp", 27, 1024, 2, hold_tau=0.0), True, 2.5e-5),
    "mlp-27-scratch": (TemporalOptions("mlp", 27, 1024, 2, hold_tau=0.0), False, 1e-3),
    "tcn-27-scratch": (TemporalOptions("tcn", 27, 512, 2, hold_tau=0.0), False, 1e-3),
    "mlp-9-init": (TemporalOptions("mlp", 9, 1024, 2, hold_tau=0.0), True, 2.5e-5),
}
HOLD_TAU = TemporalOptions().hold_tau


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=paths.ROOT / "runs" / "ablation-temporal")
    parser.add_argument("--data", type=Path, default=SequenceFiles.default().root)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of --samples windows per configuration")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--frames", type=int, default=3000, help="Bandai live frames scored (climbing: all)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))


def run(args: argparse.Namespace) -> int:
    files = SequenceFiles(args.data)
    per_frame = Lifter(paths.LIFTER_ONNX, device="cpu", threads=1)
    methods = {"per-frame": Method("per-frame", frames=per_frame),
               "per-frame + One-Euro": Method("per-frame + One-Euro", frames=per_frame, one_euro=OneEuroOptions())}
    results = {}
    for name in args.configs:
        model, init, lr = CONFIGS[name]
        opts = TemporalFitOptions(out=args.out / name, data=args.data, model=model,
                                  init=paths.LIFTER_ONNX if init else None, epochs=args.epochs,
                                  samples_per_epoch=args.samples, lr=lr, lr_final=lr / 20)
        ckpt = fit_temporal(opts)
        for hold in (0.0, HOLD_TAU):  # each model without and with holding missing joints
            net, _ = load_temporal(opts.out / "best.pt")
            net.opts = replace(net.opts, hold_tau=hold)
            label = f"{name} + hold" if hold else name
            methods[label] = Method(label, model.window, windows=torch_window_predictor(net))
        results[name] = {"minutes": round(ckpt["train_seconds"] / 60, 1), "epochs": ckpt["epoch"]}
        log.info("ablation %s trained", name)
    rows = {name: _score(method, files, args.frames) for name, method in methods.items()}
    table = format_ablation(rows, results)
    print(table)
    (args.out / "ablation.md").write_text(table + "\n")
    (args.out / "ablation.json").write_text(json.dumps({"rows": rows, "runs": results}, indent=1))
    return 0


def _score(method: Method, files: SequenceFiles, frames: int) -> list[dict]:
    return (evaluate_tracks(method, files, sets=("climb",), conditions=CONDITIONS)
            + evaluate_tracks(method, files, sets=("bandai",), conditions=CONDITIONS, frames=frames))


def format_ablation(results: dict[str, list[dict]], runs: dict[str, dict]) -> str:
    """Markdown: one row per method, live-rate figures (mm, degrees, mm/frame^2)."""
    def get(rows, set_name, condition, metric):
        return next((r[metric] for r in rows if r["set"] == set_name and r["condition"] == condition
                     and r["group"] == "all"), float("nan"))

    cols = [("climb", "exact", "p_mpjpe"), ("climb", "exact", "limb_deg"), ("climb", "noise5", "p_mpjpe"),
            ("climb", "legs_gone", "p_mpjpe"), ("climb", "no_legs", "p_mpjpe"), ("climb", "noise5", "accel"),
            ("climb", "noise5", "lag_mm"), ("bandai", "exact", "p_mpjpe"), ("bandai", "noise5", "accel"),
            ("bandai", "noise5", "lag_mm")]
    names = {"p_mpjpe": "P-MPJPE", "limb_deg": "limb °", "accel": "accel", "lag_mm": "lag mm"}
    head = "| method | minutes | " + " | ".join(f"{s} {c} {names[m]}" for s, c, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for name, rows in results.items():
        minutes = runs.get(name.removesuffix(" + hold"), {}).get("minutes", "-")
        lines.append(f"| {name} | {minutes} | " + " | ".join(f"{get(rows, *c):.1f}" for c in cols) + " |")
    return "\n".join(lines)
