"""`python -m benchmarks lifter-temporal`: the temporal lifter beside the per-frame lifter (+ One-Euro).

Latency (onnxruntime CPU, batch 1 and 1024) of both models, then the side-by-side table on the
held-out sequences of `python -m training prepare-temporal` at live rates (training/temporal_eval.py)
and the issue's goals; with --where, the exact-2D errors per clip group and posture (which motion the
averages hide); with --one-euro-sweep, what One-Euro settings other than the server's trade
between jitter and lag (how far any setting gets towards the jitter goal). Prints figures and
asserts nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.lifter import Lifter, TemporalLifter
from posecast.smoothing import OneEuroOptions

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
    parser.add_argument("--where", action="store_true",
                        help="instead of the table: where the error is, exact 2D at the live rate, per clip group and "
                             "by posture (the trunk's angle from the camera's up), per-frame against temporal")
    parser.add_argument("--one-euro-sweep", action="store_true",
                        help="instead of the table: One-Euro's jitter against lag over a grid of its options "
                             "(5 px noise, live rate), after either lifter")


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
    if args.one_euro_sweep:
        print(one_euro_sweep(per_frame, temporal, files, args.frames or None))
        return 0
    if args.where:
        print(where(per_frame, temporal, files, args.frames or None))
        return 0
    server = OneEuroOptions()
    methods = [Method("per-frame", frames=per_frame), Method("per-frame + One-Euro", frames=per_frame, one_euro=server),
               Method("temporal", t, windows=temporal), Method("temporal + One-Euro", t, windows=temporal, one_euro=server)]
    rows = []
    for rate in args.rates:
        for method in methods:
            rows += evaluate_tracks(method, files, rates=(rate,), conditions=CONDITIONS, frames=args.frames or None)
    rows.sort(key=lambda r: (r["set"], args.rates.index(r["rate"]), CONDITIONS.index(r["condition"])))
    print(format_rows(rows))
    print(goals(rows, speed, "live" if "live" in args.rates else args.rates[0]))
    return 0


def goals(rows: list[dict], speed: dict, rate: str) -> str:
    """The issue's goals, at one rate: goal, per-frame (+ One-Euro) and temporal (+ One-Euro) figures."""
    def get(method: str, set_name: str, condition: str, metric: str) -> float:
        return next((r[metric] for r in rows if r["method"] == method and r["set"] == set_name and r["rate"] == rate
                     and r["condition"] == condition and r["group"] == "all"), float("nan"))

    lines = [f"goals ({rate}):",
             f"{'goal':58} {'per-frame':>10} {'+One-Euro':>10} {'temporal':>10} {'+One-Euro':>10}"]

    def line(text: str, set_name: str, condition: str, metric: str, fmt: str = "{:10.1f}") -> None:
        vals = [get(m, set_name, condition, metric)
                for m in ("per-frame", "per-frame + One-Euro", "temporal", "temporal + One-Euro")]
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
    lines.append(f"{'batch-1 latency < 1 ms':58} {speed[('per-frame', 1)]:10.3f} {'':>10} {speed[('temporal', 1)]:10.3f}")
    return "\n".join(lines)


def where(per_frame: Lifter, temporal: TemporalLifter, files, frames: int | None) -> str:
    """P-MPJPE and limb error per clip group and posture, exact 2D, live rate: which motion the averages hide."""
    from training.temporal_eval import Method, evaluate_tracks

    rows = {m.name: evaluate_tracks(m, files, conditions=("exact",), frames=frames, per_group=True)
            for m in (Method("per-frame", frames=per_frame), Method("temporal", temporal.window, windows=temporal))}
    lines = [f"{'set':6} {'group':28} {'frames':>6}   {'per-frame P-MPJPE / limb°':>25}   {'temporal P-MPJPE / limb°':>24}"]
    for a, b in zip(rows["per-frame"], rows["temporal"]):
        lines.append(f"{a['set']:6} {a['group'][:28]:28} {a['n']:6d}   {a['p_mpjpe']:17.1f} / {a['limb_deg']:5.1f}"
                     f"   {b['p_mpjpe']:16.1f} / {b['limb_deg']:5.1f}")
    return "\n".join(lines)


SWEEP_MIN_CUTOFF = (0.2, 0.5, 1.0)  # Hz
SWEEP_BETA = (0.002, 0.004, 0.008, 0.016)


def _remembered(predict):
    """The lifter, answering inputs it has seen from memory: every filter setting is measured on the same frames,
    so each lifter runs once and only the filtering is repeated."""
    memo: dict[bytes, np.ndarray] = {}

    def cached(kp: np.ndarray, cf: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(kp).tobytes() + np.ascontiguousarray(cf).tobytes()).digest()
        if key not in memo:
            memo[key] = predict(kp, cf)
        return memo[key]
    return cached


def one_euro_sweep(per_frame: Lifter, temporal: TemporalLifter, files, frames: int | None) -> str:
    """Accel error and lag of each lifter + One-Euro over a grid of options, 5 px noise at the live rate.

    The jitter goal asks for half the accel error of per-frame + One-Euro (server options) at no more lag: this
    shows how far re-tuning the filter alone gets along that trade-off."""
    from training.temporal_eval import Method, evaluate_tracks

    lifters = {"per-frame": {"frames": _remembered(per_frame)},
               "temporal": {"window": temporal.window, "windows": _remembered(temporal)}}
    rows = []
    for lifter, how in lifters.items():
        for options in [None] + [OneEuroOptions(m, b) for m in SWEEP_MIN_CUTOFF for b in SWEEP_BETA]:
            method = Method(lifter, one_euro=options, **how)
            for r in evaluate_tracks(method, files, rates=("live",), conditions=("noise5",), frames=frames):
                rows.append({**r, "options": options})
    server = OneEuroOptions()
    lines = [f"{'lifter':9} {'min_cutoff':>10} {'beta':>6} {'set':6} {'P-MPJPE':>7} {'accel':>6} {'lag mm':>6}"]
    for r in rows:
        o = r["options"]
        mark = " (server)" if o == server else ""
        cutoff, beta = ("-", "-") if o is None else (f"{o.min_cutoff:g}", f"{o.beta:g}")
        lines.append(f"{r['method']:9} {cutoff:>10} {beta:>6} {r['set']:6} {r['p_mpjpe']:7.1f} {r['accel']:6.2f} "
                     f"{r['lag_mm']:6.1f}{mark}")
    for set_name in sorted({r["set"] for r in rows}):
        ref = next(r for r in rows if r["set"] == set_name and r["method"] == "per-frame" and r["options"] == server)
        fair = [r for r in rows if r["set"] == set_name and r["options"] is not None and r["lag_mm"] <= ref["lag_mm"]]
        goal = f"{set_name}: goal accel <= {ref['accel'] / 2:.2f} at lag <= {ref['lag_mm']:.1f} mm; lowest accel at no more lag: "
        if not fair:  # (NaN lag: no joint moved at 1.5-2.5 m/s)
            lines.append(goal + "none")
            continue
        best = min(fair, key=lambda r: r["accel"])
        lines.append(goal + f"{best['accel']:.2f} ({best['method']}, min_cutoff {best['options'].min_cutoff:g}, "
                     f"beta {best['options'].beta:g}, lag {best['lag_mm']:.1f} mm)")
    return "\n".join(lines)
