"""`python -m training fit`: train the lifter; resumable, checkpoints every epoch.

Every epoch draws fresh samples (new frames, cameras, pose-space augmentation, noise and
dropout) from the prepared motion, trains on them (mean joint distance, see LOSSES; Adam,
exponential learning-rate decay, max-norm), then scores the Bandai held-out clips and the climbing set.
`last.pt` is written every epoch (a rerun with the same --out resumes from it); `best.pt` is
the epoch with the best cross-dataset score (see evaluate.SELECTION), not the best on Bandai.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from posecast import paths

from .body import DefinitionJitter
from .data import SampleOptions
from .dataset import DatasetFiles, sample_training
from .evaluate import evaluate, selection_score, torch_predictor
from .model import JOINTS, LifterNet, ModelOptions, load_checkpoint
from .posespace import PoseAugment

log = logging.getLogger(__name__)
# "mpjpe": mean joint distance in mm, what the figures score; where depth is ambiguous it leans
# to the likelier answer instead of the average of the candidates (with the legs unseen: Bandai
# 63 -> 52 mm, the climbing set the same). "mse": the paper's, on standardised coordinates.
LOSSES = ("mpjpe", "mse")
AUGMENTS = ("perturb", "recombine", "postures", "tilt", "abduct", "bone_scale", "proportions", "jitter")


@dataclass
class FitOptions:
    out: Path = paths.ROOT / "runs" / "lifter"
    data: Path = field(default_factory=lambda: DatasetFiles.default().root)
    model: ModelOptions = field(default_factory=ModelOptions)
    epochs: int = 100
    samples_per_epoch: int = 100_000
    batch: int = 256
    lr: float = 1e-3
    lr_final: float = 5e-5
    seed: int = 0
    threads: int | None = None
    minutes: float | None = None      # time budget: the schedule ends at epochs or minutes, whichever first
    eval_limit: int = 3000            # validation samples per set scored each epoch
    disable: tuple[str, ...] = ()     # augmentations switched off (ablation)
    init: Path | None = None          # start from this checkpoint's weights (fine-tuning)
    loss: str = "mpjpe"               # see LOSSES

    def sample_options(self) -> SampleOptions:
        pose = PoseAugment()
        for name in self.disable:
            if name == "bone_scale":
                pose.bone_scale, pose.body_scale = 0.0, (1.0, 1.0)
            elif name == "jitter":
                pose.torso_scale = (1.0, 1.0)
            else:
                setattr(pose, name, 0.0)
        return SampleOptions(pose=pose, jitter=None if "jitter" in self.disable else DefinitionJitter())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = FitOptions()
    parser.add_argument("--out", type=Path, default=d.out, help="run folder (checkpoints, log, curve)")
    parser.add_argument("--data", type=Path, default=d.data, help="prepared dataset folder")
    parser.add_argument("--width", type=int, default=d.model.width)
    parser.add_argument("--blocks", type=int, default=d.model.blocks)
    parser.add_argument("--dropout", type=float, default=d.model.dropout)
    parser.add_argument("--no-passthrough", dest="passthrough", action="store_false",
                        help="the paper's plain MLP, without the 2D pass-through (see training/model.py)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=d.samples_per_epoch)
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--lr-final", type=float, default=d.lr_final)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all)")
    parser.add_argument("--minutes", type=float,
                        help="time budget: the learning rate decays over it and training stops at its end")
    parser.add_argument("--eval-limit", type=int, default=d.eval_limit)
    parser.add_argument("--disable", nargs="*", default=[], choices=AUGMENTS,
                        help="switch pose-space augmentations off (ablation)")
    parser.add_argument("--loss", choices=LOSSES, default=d.loss)
    parser.add_argument("--init", type=Path, help="start a new run from this checkpoint's weights")


def run(args: argparse.Namespace) -> int:
    opts = FitOptions(out=args.out, data=args.data,
                      model=ModelOptions(args.width, args.blocks, args.dropout, args.passthrough),
                      epochs=args.epochs, samples_per_epoch=args.samples_per_epoch, batch=args.batch,
                      lr=args.lr, lr_final=args.lr_final, seed=args.seed, threads=args.threads,
                      minutes=args.minutes, eval_limit=args.eval_limit, disable=tuple(args.disable),
                      init=args.init, loss=args.loss)
    fit(opts)
    return 0


def fit(opts: FitOptions) -> dict:
    """Train (or resume) into opts.out; returns the last checkpoint's dict."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    files = DatasetFiles(opts.data)
    stats = files.load_stats()
    motions = files.load_motion()
    opts.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    net = LifterNet(stats, opts.model)
    optimiser = torch.optim.Adam(net.parameters(), lr=opts.lr)
    steps_per_epoch = math.ceil(opts.samples_per_epoch / opts.batch)
    state = {"epoch": 0, "history": [], "best_score": math.inf, "train_seconds": 0.0}
    last = opts.out / "last.pt"
    if opts.init and not last.is_file():
        missing, unexpected = net.load_state_dict(load_checkpoint(opts.init)[0].state_dict(), strict=False)
        if unexpected or any(not k.startswith("pass_") for k in missing):
            raise ValueError(f"{opts.init} does not fit this model: missing {missing}, unexpected {unexpected}")
        log.info("starting from the weights of %s", opts.init)
    if last.is_file():
        state = resume(last, net, optimiser, state)
        log.info("resuming %s after epoch %d", last, state["epoch"])
    sample_opts = opts.sample_options()
    started = time.monotonic() - state["train_seconds"]

    while state["epoch"] < opts.epochs and not out_of_time(opts, state["train_seconds"]):
        epoch = state["epoch"] + 1
        rng = np.random.default_rng([opts.seed, epoch])
        data = sample_training(motions, opts.samples_per_epoch, rng, sample_opts)
        kp, cf, y = (torch.from_numpy(a) for a in (data.keypoints, data.confidence, data.joints3d))
        net.train()
        total, count = 0.0, 0
        bar = tqdm(range(0, len(data), opts.batch), desc=f"epoch {epoch}/{opts.epochs}", unit="batch",
                   mininterval=10)
        for i in bar:
            step = (epoch - 1) * steps_per_epoch + i // opts.batch
            for group in optimiser.param_groups:
                group["lr"] = opts.lr * (opts.lr_final / opts.lr) ** progress(opts, step, started)
            sl = slice(i, i + opts.batch)
            if len(kp[sl]) < 2:  # batch norm needs two samples
                continue
            out = net.standardised(kp[sl], cf[sl])
            # Joint distances (mm) without the pelvis: it is 0 in both, and a norm has no gradient at 0.
            dist = (net.to_mm(out) - y[sl])[:, 1:].norm(dim=-1)
            if opts.loss == "mse":
                loss = torch.nn.functional.mse_loss(out, net.standardise_target(y[sl]))
            else:
                loss = dist.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            net.apply_max_norm()
            total += float(dist.detach().sum()) / JOINTS  # train MPJPE over all 17 joints
            count += len(out)
        rows = evaluate(torch_predictor(net), files, limit=opts.eval_limit)
        score = selection_score(rows)
        state["train_seconds"] = time.monotonic() - started
        record = {"epoch": epoch, "train_mpjpe": total / max(count, 1), "lr": optimiser.param_groups[0]["lr"],
                  "score": score, "minutes": state["train_seconds"] / 60, "rows": rows}
        state["history"].append(record)
        state["epoch"] = epoch
        better = not math.isnan(score) and score < state["best_score"]
        if better:
            state["best_score"] = score
        ckpt = {"state_dict": net.state_dict(), "optimiser": optimiser.state_dict(), "stats": stats,
                "model_options": asdict(opts.model), "fit_options": {k: str(v) for k, v in asdict(opts).items()},
                **state}
        torch.save(ckpt, opts.out / "last.tmp")
        (opts.out / "last.tmp").replace(last)
        if better or not (opts.out / "best.pt").exists():
            torch.save(ckpt, opts.out / "best.pt")
        log_epoch(opts.out, record, _brief(rows), better, log)
        plot_curve(state["history"], opts.out / "curve.png")
        if out_of_time(opts, state["train_seconds"]):
            log.info("time budget of %.0f min used up after epoch %d", opts.minutes, epoch)
    return torch.load(last, map_location="cpu", weights_only=False) if last.is_file() else {}


def resume(last: Path, net: torch.nn.Module, optimiser: torch.optim.Optimizer, state: dict) -> dict:
    """Restores net and optimiser from the checkpoint `last`; returns its values of state's keys."""
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    net.load_state_dict(ckpt["state_dict"])
    optimiser.load_state_dict(ckpt["optimiser"])
    return {k: ckpt[k] for k in state}


def log_epoch(out: Path, record: dict, summary: dict, better: bool, logger: logging.Logger) -> None:
    """An epoch's record (without its rows) as a line of out/log.jsonl, and its summary in the log."""
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in record.items() if k != "rows"} | {"summary": summary}) + "\n")
    logger.info("epoch %d: train MPJPE %.1f mm, %s, score %.1f%s (%.1f min)", record["epoch"], record["train_mpjpe"],
                summary, record["score"], " (best)" if better else "", record["minutes"])


def out_of_time(opts, seconds: float) -> bool:
    return bool(opts.minutes) and seconds >= opts.minutes * 60


def progress(opts, step: int, started: float) -> float:
    """How far through the schedule, 0..1: by steps, or by time when a budget is set (so a
    slower, shared machine still ends on a decayed learning rate)."""
    done = step / max(1, opts.epochs * math.ceil(opts.samples_per_epoch / opts.batch))
    if opts.minutes:
        done = max(done, (time.monotonic() - started) / (opts.minutes * 60))
    return min(done, 1.0)


def _brief(rows: list[dict]) -> dict:
    return {f"{r['set']}/{r['condition']}": [round(r["p_mpjpe"], 1), round(r["bone_p_mpjpe"], 1),
                                             round(r["limb_deg"], 1)]
            for r in rows if r["group"] == "all"}


def plot_curve(history: list[dict], path: Path) -> None:
    """Train and validation error per epoch (like the paper's Figure 9)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]

    def series(set_name: str, metric: str) -> list[float]:
        return [next((r[metric] for r in h["rows"] if r["set"] == set_name and r["condition"] == "exact"
                      and r["group"] == "all"), math.nan) for h in history]

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_mpjpe"] for h in history], "o-", label="train MPJPE (augmented)")
    ax.plot(epochs, series("bandai", "mpjpe"), "o-", label="Bandai held-out MPJPE")
    ax.plot(epochs, series("climb", "p_mpjpe"), "o-", label="climbing P-MPJPE")
    ax.plot(epochs, series("climb", "bone_p_mpjpe"), "o-", label="climbing bone-corrected P-MPJPE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (mm), exact 2D")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
