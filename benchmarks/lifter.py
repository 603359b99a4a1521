"""`python -m benchmarks lifter`: onnxruntime CPU latency (batch 1), throughput (batch 1024), accuracy.

Prints figures and asserts nothing. The accuracy table needs the prepared dataset
(`python -m training prepare`); without it only the speed figures are printed.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.lifter import Lifter

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=paths.LIFTER_ONNX)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")


def run(args: argparse.Namespace) -> int:
    lifter = Lifter(args.model, device="cpu", threads=args.threads)
    rng = np.random.default_rng(0)
    print(f"lifter {args.model.name} on {lifter.provider}, {args.threads} threads")
    for batch in (1, 1024):
        kp = rng.uniform(100, 600, (batch, 17, 2)).astype(np.float32)
        cf = np.ones((batch, 17), np.float32)
        times = _time(lambda: lifter(kp, cf), args.seconds)
        p50, p99 = np.percentile(times, [50, 99]) * 1e3
        print(f"batch {batch:5d}: median {p50:.3f} ms, p99 {p99:.3f} ms, {batch / np.median(times):,.0f} poses/s")
    if not args.no_accuracy:
        from training.dataset import DatasetFiles
        from training.evaluate import evaluate, format_table

        files = DatasetFiles.default()
        if files.stats.is_file():
            print(format_table(evaluate(lifter, files, per_group=True)))
        else:
            print(f"(no accuracy table: no prepared dataset in {files.root}; run `python -m training prepare`)")
    return 0


def _time(fn, seconds: float) -> np.ndarray:
    for _ in range(20):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return np.array(times)
