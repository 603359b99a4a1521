"""`python -m training fit-temporal`: train the causal temporal lifter on sequence windows; resumable.

Like `fit`: every epoch draws fresh windows (training/sequences.py) from the 30 fps motion of
`prepare-temporal`, trains on them (mean joint distance of the newest frame, Adam, exponential
learning-rate decay over the epochs or --minutes, max-norm), then scores the validation tracks
at live rates (training/temporal_eval.py). A checkpoint is written every --checkpoint-minutes
within an epoch as well as after it, so a restart (same --out) loses little; `best.pt` is the
epoch with the best climbing score (as for the per-frame lifter, cross-dataset).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from posecast import paths

from .fit import log_epoch, out_of_time, progress, resume
from .model import JOINTS
from .prepare_temporal import SequenceFiles
from .sequences import WindowOptions, sample_windows
from .temporal_eval import evaluate_tracks, selection_score, torch_window_predictor
from .temporal_model import ARCHITECTURES, TemporalNet, TemporalOptions, init_from_per_frame, per_frame_weights

log = logging.getLogger(__name__)
# The floor and acrobatics poses are 0.1 % of the frames: give them a fixed share of every epoch.
SHARES = {"cmu-mb": 0.04, "cmu-daz-salsa": 0.08}


@dataclass
class TemporalFitOptions:
    out: Path = paths.ROOT / "runs" / "lifter-temporal"
    data: Path = field(default_factory=lambda: SequenceFiles.default().root)
    model: TemporalOptions = field(default_factory=TemporalOptions)
    init: Path | None = paths.LIFTER_ONNX   # per-frame lifter to start the windowed MLP from (None: scratch)
    epochs: int = 200
    samples_per_epoch: int = 40_000
    batch: int = 256
    # Low: from the per-frame lifter, 1e-4 cost 3-5 mm on the climbing set within an epoch
    # (the older frames' weights, learnt fast, fit the training motion), 2e-5 about 1 mm.
    lr: float = 2.5e-5
    lr_final: float = 2.5e-6
    seed: int = 0
    threads: int | None = 1
    minutes: float | None = None
    checkpoint_minutes: float = 4.0
    eval_frames: int = 1500           # live frames per validation set and condition scored each epoch
    history_only: bool = False        # train only the older frames' input weights (the rest stays per-frame)
    noise_px: float | None = None     # detector noise floor (px, per window up to this); None: the per-frame recipe's
    static_noise: float | None = None  # None: WindowOptions' default
    legs: float | None = None         # probability of knees/ankles gone over a stretch; None: the default

    def window_options(self) -> WindowOptions:
        opts = WindowOptions(window=self.model.window)
        if self.noise_px is not None:
            opts.sample.noise = replace(opts.sample.noise, floor_px=self.noise_px)
        if self.static_noise is not None:
            opts.static_noise = self.static_noise
        if self.legs is not None:
            opts.dropout = replace(opts.dropout, legs=self.legs)
        return opts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TemporalFitOptions()
    parser.add_argument("--out", type=Path, default=d.out)
    parser.add_argument("--data", type=Path, default=d.data)
    parser.add_argument("--arch", choices=ARCHITECTURES, default=d.model.arch)
    parser.add_argument("--window", type=int, default=d.model.window)
    parser.add_argument("--width", type=int, default=d.model.width)
    parser.add_argument("--blocks", type=int, default=d.model.blocks)
    parser.add_argument("--dropout", type=float, default=d.model.dropout)
    parser.add_argument("--init", default=str(d.init),
                        help="per-frame lifter ONNX to start the windowed MLP from, or 'none' (from scratch)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=d.samples_per_epoch)
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--lr-final", type=float, default=d.lr_final)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--minutes", type=float, help="time budget: the learning rate decays over it")
    parser.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes)
    parser.add_argument("--eval-frames", type=int, default=d.eval_frames)
    parser.add_argument("--noise-px", type=float, help="2D noise floor, pixels (default: the per-frame recipe's 3)")
    parser.add_argument("--static-noise", type=float, help="largest share of the noise fixed over a window (default 0.6)")
    parser.add_argument("--legs", type=float, help="probability of knees/ankles gone over a stretch (default 0.3)")
    parser.add_argument("--history-only", action="store_true",
                        help="train only the older frames' input weights of a model started from the per-frame lifter")


def run(args: argparse.Namespace) -> int:
    init = None if str(args.init).lower() == "none" else Path(args.init)
    opts = TemporalFitOptions(args.out, args.data, TemporalOptions(args.arch, args.window, args.width, args.blocks,
                                                                   args.dropout),
                              init, args.epochs, args.samples_per_epoch, args.batch, args.lr, args.lr_final,
                              args.seed, args.threads, args.minutes, args.checkpoint_minutes, args.eval_frames,
                              args.history_only, args.noise_px, args.static_noise, args.legs)
    fit_temporal(opts)
    return 0


def fit_temporal(opts: TemporalFitOptions) -> dict:
    """Train (or resume) into opts.out; returns the last checkpoint's dict."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    files = SequenceFiles(opts.data)
    motions = files.load_motion()
    stats, per_frame = per_frame_weights(opts.init or paths.LIFTER_ONNX)
    opts.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    wopts = opts.window_options()
    net = TemporalNet(stats, opts.model)
    last = opts.out / "last.pt"
    state = {"epoch": 0, "step_in_epoch": 0, "history": [], "best_score": math.inf, "train_seconds": 0.0}
    if opts.init is not None and not last.is_file():
        calib = sample_windows(motions, 4096, np.random.default_rng([opts.seed, 10**6]), wopts)
        init_from_per_frame(net, per_frame, (torch.from_numpy(calib.keypoints), torch.from_numpy(calib.confidence)))
        log.info("windowed MLP starts as the per-frame lifter %s", opts.init)
    if opts.history_only:
        freeze_all_but_history(net)
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=opts.lr)
    if last.is_file():
        state = resume(last, net, optimiser, state)
        log.info("resuming %s at epoch %d, step %d", last, state["epoch"] + 1, state["step_in_epoch"])
    steps_per_epoch = math.ceil(opts.samples_per_epoch / opts.batch)
    started = time.monotonic() - state["train_seconds"]

    def save(path: Path) -> None:
        state["train_seconds"] = time.monotonic() - started
        ckpt = {"state_dict": net.state_dict(), "optimiser": optimiser.state_dict(), "stats": stats,
                "model_options": asdict(opts.model), "window_options": _plain(asdict(wopts)),
                "fit_options": {k: str(v) for k, v in asdict(opts).items()}, **state}
        torch.save(ckpt, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    while state["epoch"] < opts.epochs and not out_of_time(opts, state["train_seconds"]):
        epoch = state["epoch"] + 1
        # The epoch's windows are drawn from its own seed, so a resumed epoch sees the same ones.
        data = sample_windows(motions, opts.samples_per_epoch, np.random.default_rng([opts.seed, epoch]), wopts,
                              SHARES)
        kp, cf, y = (torch.from_numpy(a) for a in (data.keypoints, data.confidence, data.joints3d))
        train_mode(net, frozen_norm=opts.init is not None)
        total, count = 0.0, 0
        last_save = time.monotonic()
        for k in range(state["step_in_epoch"], math.ceil(len(data) / opts.batch)):
            step = (epoch - 1) * steps_per_epoch + k
            for group in optimiser.param_groups:
                group["lr"] = opts.lr * (opts.lr_final / opts.lr) ** progress(opts, step, started)
            sl = slice(k * opts.batch, (k + 1) * opts.batch)
            if len(kp[sl]) < 2:
                continue
            dist = (net(kp[sl], cf[sl]) - y[sl])[:, 1:].norm(dim=-1)
            loss = dist.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if not opts.history_only:
                net.apply_max_norm()
            total += float(dist.detach().sum()) / JOINTS
            count += len(dist)
            if time.monotonic() - last_save > opts.checkpoint_minutes * 60:
                state["step_in_epoch"] = k + 1
                save(last)
                last_save = time.monotonic()
                log.info("epoch %d: step %d, train MPJPE %.1f mm (checkpoint)", epoch, k + 1, total / max(count, 1))
        rows = evaluate_tracks(torch_window_predictor(net), files, frames=opts.eval_frames, window=opts.model.window)
        score = selection_score(rows)
        record = {"epoch": epoch, "train_mpjpe": total / max(count, 1), "lr": optimiser.param_groups[0]["lr"],
                  "score": score, "minutes": (time.monotonic() - started) / 60, "rows": rows}
        state["history"].append(record)
        state["epoch"], state["step_in_epoch"] = epoch, 0
        better = not math.isnan(score) and score < state["best_score"]
        if better:
            state["best_score"] = score
        save(last)
        if better or not (opts.out / "best.pt").exists():
            save(opts.out / "best.pt")
        log_epoch(opts.out, record, _brief(rows), better, log)
    return torch.load(last, map_location="cpu", weights_only=False) if last.is_file() else {}


def freeze_all_but_history(net: TemporalNet) -> None:
    """Only the stem's columns of the older frames learn; the newest frame's path stays the per-frame lifter's."""
    for p in net.parameters():
        p.requires_grad_(False)
    weight = net.stem[0].weight
    weight.requires_grad_(True)
    newest = torch.zeros_like(weight, dtype=torch.bool)
    newest[:, -(weight.shape[1] // net.opts.window):] = True
    weight.register_hook(lambda g: g.masked_fill(newest, 0.0))


def train_mode(net: TemporalNet, frozen_norm: bool) -> None:
    """Training mode; with frozen_norm the batch norms keep the statistics they started with.

    A model started from the per-frame lifter carries that lifter's statistics. Letting new data
    (the floor poses, salsa, the windows' history) move them changed the function for every pose
    at once: one epoch at a learning rate of ~0 cost 3 mm on Bandai. Frozen, the start is exactly
    the per-frame lifter and training moves the weights only."""
    net.train()
    if frozen_norm:
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _brief(rows: list[dict]) -> dict:
    return {f"{r['set']}/{r['condition']}": [round(r["p_mpjpe"], 1), round(r["limb_deg"], 1)]
            for r in rows if r["group"] == "all"}
