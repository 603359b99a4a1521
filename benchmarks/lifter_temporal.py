"""`python -m benchmarks lifter-temporal`: the temporal lifter beside the per-frame lifter (+ One-Euro).

Latency (onnxruntime CPU, batch 1 and 1024) of both models, then the side-by-side table on the
held-out sequences of `python -m training prepare-temporal` at live rates (training/temporal_eval.py)
and the issue's goals. Prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.lifter import Lifter, TemporalLifter

from .lifter import _time

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=paths.LIFTER_TEMPORAL_ONNX)
    parser.add_argument("--per-frame", type=Path, default=paths.LIFTER_ONNX)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per latency measurement")
    parser.add_argument("--frames", type=int, default=4000,
                        help="live frames per set and rate (every k-th track; 0 = all tracks)")
    parser.add_argument("--rates", nargs="*", default=["30fps", "15fps", "live"])
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")


def run(args: argparse.Namespace) -> int:
    temporal = TemporalLifter(args.model, device="cpu", threads=args.threads)
    per_frame = Lifter(args.per_frame, device="cpu", threads=args.threads)
    t = temporal.window
    print(f"temporal lifter {args.model.name}: window {t}, on {temporal.provider}, {args.threads} threads")
    rng = np.random.default_rng(0)
    speed = {}
    for name, model, shape in (("per-frame", per_frame, ()), ("temporal", temporal, (t,))):
        for batch in (1, 1024):
            kp = rng.uniform(100, 600, (batch,) + shape + (17, 2)).astype(np.float32)
            cf = np.ones((batch,) + shape + (17,), np.float32)
            times = _time(lambda: model(kp, cf), args.seconds)
            p50, p99 = np.percentile(times, [50, 99]) * 1e3
            speed[(name, batch)] = p50
            print(f"{name:9} batch {batch:5d}: median {p50:.3f} ms, p99 {p99:.3f} ms, "
                  f"{batch / np.median(times):,.0f} poses/s")
    if args.no_accuracy:
        return 0
    from training.prepare_temporal import SequenceFiles
    from training.temporal_eval import CONDITIONS, Method, evaluate_tracks, format_rows

    files = SequenceFiles.default()
    if not files.info.is_file():
        print(f"(no accuracy table: no sequence dataset in {files.root}; run `python -m training prepare-temporal`)")
        return 0
    methods = [Method("per-frame", frames=per_frame), Method("per-frame + One-Euro", frames=per_frame, one_euro=True),
               Method("temporal", t, windows=temporal), Method("temporal + One-Euro", t, windows=temporal, one_euro=True)]
    rows = []
    for rate in args.rates:
        for method in methods:
            rows += evaluate_tracks(method, files, rates=(rate,), conditions=CONDITIONS, frames=args.frames or None)
    rows.sort(key=lambda r: (r["set"], args.rates.index(r["rate"]), CONDITIONS.index(r["condition"])))
    print(format_rows(rows))
    print(goals(rows, speed, "live" if "live" in args.rates else args.rates[0]))
    return 0


def goals(rows: list[dict], speed: dict, rate: str) -> str:
    """The issue's goals, at one rate: goal, per-frame (+ One-Euro) and temporal figures."""
    def get(method: str, set_name: str, condition: str, metric: str) -> float:
        return next((r[metric] for r in rows if r["method"] == method and r["set"] == set_name and r["rate"] == rate
                     and r["condition"] == condition and r["group"] == "all"), float("nan"))

    lines = [f"goals ({rate}):", f"{'goal':58} {'per-frame':>10} {'+One-Euro':>10} {'temporal':>9}"]

    def line(text: str, set_name: str, condition: str, metric: str, fmt: str = "{:10.1f}") -> None:
        vals = [get(m, set_name, condition, metric) for m in ("per-frame", "per-frame + One-Euro", "temporal")]
        lines.append(f"{text:58} " + " ".join(fmt.format(v) for v in vals))

    line("climbing exact P-MPJPE <= 40 mm", "climb", "exact", "p_mpjpe")
    line("climbing exact limb error <= 8.5 deg", "climb", "exact", "limb_deg")
    line("climbing knees/ankles gone over stretches <= 65 mm", "climb", "legs_gone", "p_mpjpe")
    line("climbing knees/ankles missing throughout (per-frame ~82)", "climb", "no_legs", "p_mpjpe")
    for set_name in ("climb", "bandai"):
        for condition in ("exact", "noise5"):
            line(f"{set_name} {condition} accel error (mm/frame^2) <= 1/2 of +One-Euro", set_name, condition, "accel",
                 "{:10.2f}")
            line(f"{set_name} {condition} lag at 1.5-2.5 m/s (mm) <= +One-Euro", set_name, condition, "lag_mm")
    line("Bandai held-out exact P-MPJPE <= 29 mm", "bandai", "exact", "p_mpjpe")
    lines.append(f"{'batch-1 latency < 1 ms':58} {speed[('per-frame', 1)]:10.3f} {'':>10} {speed[('temporal', 1)]:9.3f}")
    return "\n".join(lines)
