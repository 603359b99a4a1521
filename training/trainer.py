"""The training loop of the per-frame (fit.py) and the temporal (fit_temporal.py) lifter.

Each epoch draws fresh samples from its own seed ([seed, epoch]), so a resumed epoch sees the
same ones; trains on them in batches (the fit's optimiser, Adam, with the learning rate decaying
exponentially from lr to lr_final over the epochs or the time budget; max-norm after each
step); then the fit's evaluation scores the model. `last.pt` is written after every epoch and every
checkpoint_minutes within one (a rerun with the same out continues at the next step);
`best.pt` is the epoch with the best score. What differs between the fits (the samples, the
loss, the evaluation, what a checkpoint holds beside the weights) comes in a `Task`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .model import JOINTS


class TrainOptions(Protocol):
    """The options every fit has (FitOptions, TemporalFitOptions: dataclasses, saved as a checkpoint's fit_options)."""
    out: Path
    epochs: int
    samples_per_epoch: int
    batch: int
    lr: float
    lr_final: float
    seed: int
    threads: int | None               # torch CPU threads (None: all)
    minutes: float | None             # time budget: the schedule ends at epochs or minutes, whichever first
    checkpoint_minutes: float         # last.pt within an epoch this often


ARGUMENTS = ("epochs", "samples_per_epoch", "batch", "lr", "lr_final", "seed", "threads", "minutes",
             "checkpoint_minutes")


def add_training_arguments(parser: argparse.ArgumentParser, d: TrainOptions) -> None:
    """The command-line options of TrainOptions' ARGUMENTS, with d's values as the defaults."""
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=d.samples_per_epoch)
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--lr-final", type=float, default=d.lr_final)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads,
                        help=f"torch CPU threads (default: {d.threads or 'all'})")
    parser.add_argument("--minutes", type=float, default=d.minutes,
                        help="time budget: the learning rate decays over it and training stops at its end")
    parser.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes,
                        help="also write last.pt this often within an epoch")


def training_options(args: argparse.Namespace) -> dict:
    """The values of add_training_arguments' options, as keyword arguments of a fit's options."""
    return {name: getattr(args, name) for name in ARGUMENTS}


class Samples(Protocol):
    """An epoch's training samples: 2D input (one frame or a window of them) and the 3D pose in mm."""
    keypoints: np.ndarray
    confidence: np.ndarray
    joints3d: np.ndarray

    def __len__(self) -> int: ...


@dataclass
class Task:
    """What a fit supplies to `train`."""
    net: nn.Module                    # with standardised(), to_mm() and apply_max_norm(): LifterNet, TemporalNet
    optimiser: torch.optim.Optimizer
    sample: Callable[[np.random.Generator], Samples]  # an epoch's samples, drawn from the generator given
    evaluate: Callable[[], list[dict]]                # validation rows after an epoch
    score: Callable[[list[dict]], float]              # the rows' selection score: lower is better, NaN: none
    brief: Callable[[list[dict]], dict]               # the rows' summary for the log
    checkpoint: dict                                  # saved beside the weights (statistics, model options)
    # The loss of a batch from the net's standardised output and the target in mm; None: the mean joint distance.
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    max_norm: bool = True
    frozen_norm: bool = False                         # the batch norms keep their statistics (see train_mode)
    after_epoch: Callable[[list[dict]], None] | None = None  # called with the history, e.g. to plot it


def begin(opts: TrainOptions) -> None:
    """What a fit does before it builds its model: torch's threads, the run folder, torch's seed (the start weights)."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    opts.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)


def resumable(out: Path) -> bool:
    """Whether out holds a run that `train` continues (so a fit skips its initialisation)."""
    return (out / "last.pt").is_file()


def train(task: Task, opts: TrainOptions, log: logging.Logger) -> dict:
    """Train (or resume) into opts.out until opts.epochs or opts.minutes; returns the last checkpoint's dict."""
    net, optimiser, last = task.net, task.optimiser, opts.out / "last.pt"
    state = {"epoch": 0, "step_in_epoch": 0, "history": [], "best_score": math.inf, "train_seconds": 0.0}
    if last.is_file():
        state = resume(last, net, optimiser, state)
        log.info("resuming %s at epoch %d, step %d", last, state["epoch"] + 1, state["step_in_epoch"])
    steps_per_epoch = math.ceil(opts.samples_per_epoch / opts.batch)
    started = time.monotonic() - state["train_seconds"]

    def save(*paths: Path) -> None:
        state["train_seconds"] = time.monotonic() - started
        ckpt = {"state_dict": net.state_dict(), "optimiser": optimiser.state_dict(), **task.checkpoint,
                "fit_options": {k: str(v) for k, v in asdict(opts).items()}, **state}
        for path in paths:
            torch.save(ckpt, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)

    while state["epoch"] < opts.epochs and not out_of_time(opts, state["train_seconds"]):
        epoch = state["epoch"] + 1
        data = task.sample(np.random.default_rng([opts.seed, epoch]))
        kp, cf, y = (torch.from_numpy(a) for a in (data.keypoints, data.confidence, data.joints3d))
        train_mode(net, task.frozen_norm)
        total, count = 0.0, 0
        last_save = time.monotonic()
        for k in tqdm(range(state["step_in_epoch"], math.ceil(len(data) / opts.batch)),
                      desc=f"epoch {epoch}/{opts.epochs}", unit="batch", mininterval=10):
            step = (epoch - 1) * steps_per_epoch + k
            for group in optimiser.param_groups:
                group["lr"] = opts.lr * (opts.lr_final / opts.lr) ** progress(opts, step, started)
            sl = slice(k * opts.batch, (k + 1) * opts.batch)
            if len(kp[sl]) < 2:  # batch norm needs two samples
                continue
            out = net.standardised(kp[sl], cf[sl])
            # Joint distances (mm) without the pelvis: it is 0 in both, and a norm has no gradient at 0.
            # With the poses of several newest frames as targets ([N,K,17,3]), of the newest.
            newest = y[sl] if y.dim() == 3 else y[sl][:, -1]
            dist = (net.to_mm(out) - newest)[:, 1:].norm(dim=-1)
            loss = dist.mean() if task.loss is None else task.loss(out, y[sl])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if task.max_norm:
                net.apply_max_norm()
            total += float(dist.detach().sum()) / JOINTS  # train MPJPE over all 17 joints
            count += len(dist)
            if time.monotonic() - last_save > opts.checkpoint_minutes * 60:
                state["step_in_epoch"] = k + 1
                save(last)
                last_save = time.monotonic()
                log.info("epoch %d: step %d, train MPJPE %.1f mm (checkpoint)", epoch, k + 1, total / max(count, 1))
        rows = task.evaluate()
        score = task.score(rows)
        record = {"epoch": epoch, "train_mpjpe": total / max(count, 1), "lr": optimiser.param_groups[0]["lr"],
                  "score": score, "minutes": (time.monotonic() - started) / 60, "rows": rows}
        state["history"].append(record)
        state["epoch"], state["step_in_epoch"] = epoch, 0
        better = not math.isnan(score) and score < state["best_score"]
        if better:
            state["best_score"] = score
        save(last, *([opts.out / "best.pt"] if better or not (opts.out / "best.pt").exists() else []))
        log_epoch(opts.out, record, task.brief(rows), better, log)
        if task.after_epoch is not None:
            task.after_epoch(state["history"])
        if out_of_time(opts, state["train_seconds"]):
            log.info("time budget of %.0f min used up after epoch %d", opts.minutes, epoch)
    return torch.load(last, map_location="cpu", weights_only=False) if last.is_file() else {}


def train_mode(net: nn.Module, frozen_norm: bool) -> None:
    """Training mode; with frozen_norm the batch norms keep the statistics they started with (a
    model started from another one then computes exactly what it did, and training moves the
    weights only)."""
    net.train()
    if frozen_norm:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def resume(last: Path, net: nn.Module, optimiser: torch.optim.Optimizer, state: dict) -> dict:
    """Restores net and optimiser from the checkpoint `last`; returns its values of state's keys
    (state's own where it has none: per-frame checkpoints from before step_in_epoch)."""
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    net.load_state_dict(ckpt["state_dict"])
    optimiser.load_state_dict(ckpt["optimiser"])
    return {k: ckpt.get(k, v) for k, v in state.items()}


def log_epoch(out: Path, record: dict, summary: dict, better: bool, logger: logging.Logger) -> None:
    """An epoch's record (without its rows) as a line of out/log.jsonl, and its summary in the log."""
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in record.items() if k != "rows"} | {"summary": summary}) + "\n")
    logger.info("epoch %d: train MPJPE %.1f mm, %s, score %.1f%s (%.1f min)", record["epoch"], record["train_mpjpe"],
                summary, record["score"], " (best)" if better else "", record["minutes"])


def out_of_time(opts: TrainOptions, seconds: float) -> bool:
    return bool(opts.minutes) and seconds >= opts.minutes * 60


def progress(opts: TrainOptions, step: int, started: float) -> float:
    """How far through the schedule, 0..1: by steps, or by time when a budget is set (so a
    slower, shared machine still ends on a decayed learning rate)."""
    done = step / max(1, opts.epochs * math.ceil(opts.samples_per_epoch / opts.batch))
    if opts.minutes:
        done = max(done, (time.monotonic() - started) / (opts.minutes * 60))
    return min(done, 1.0)
