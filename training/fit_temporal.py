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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from posecast import paths

from .prepare_temporal import SequenceFiles
from .sequences import WindowOptions, sample_windows
from .temporal_eval import evaluate_tracks, selection_score, torch_window_predictor
from .temporal_model import ARCHITECTURES, TemporalNet, TemporalOptions, init_from_per_frame, per_frame_weights
from .trainer import Task, add_training_arguments, begin, resumable, train, training_options

log = logging.getLogger(__name__)
# The floor and acrobatics poses are 0.1 % of the frames: give them a fixed share of every epoch.
SHARES = {"cmu-mb": 0.04, "cmu-daz-salsa": 0.08}
SMOOTH_FRAMES = 3  # consecutive outputs an acceleration takes


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
    # Weight of the acceleration error of SMOOTH_FRAMES consecutive outputs (mm/frame^2, against the truth's)
    # beside the joint distance; 0: the newest frame's joint distance alone.
    smooth: float = 0.0

    def window_options(self) -> WindowOptions:
        extra = SMOOTH_FRAMES - 1 if self.smooth > 0 else 0
        opts = WindowOptions(window=self.model.window + extra, targets=1 + extra)
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
    add_training_arguments(parser, d)
    parser.add_argument("--eval-frames", type=int, default=d.eval_frames)
    parser.add_argument("--noise-px", type=float, help="2D noise floor, pixels (default: the per-frame recipe's 3)")
    parser.add_argument("--static-noise", type=float, help="largest share of the noise fixed over a window (default 0.6)")
    parser.add_argument("--legs", type=float, help="probability of knees/ankles gone over a stretch (default 0.3)")
    parser.add_argument("--smooth", type=float, default=d.smooth,
                        help="weight of the acceleration error of 3 consecutive outputs beside the joint distance")
    parser.add_argument("--history-only", action="store_true",
                        help="train only the older frames' input weights of a model started from the per-frame lifter")


def run(args: argparse.Namespace) -> int:
    init = None if str(args.init).lower() == "none" else Path(args.init)
    opts = TemporalFitOptions(out=args.out, data=args.data,
                              model=TemporalOptions(args.arch, args.window, args.width, args.blocks, args.dropout),
                              init=init, eval_frames=args.eval_frames, history_only=args.history_only,
                              noise_px=args.noise_px, static_noise=args.static_noise, legs=args.legs,
                              smooth=args.smooth,
                              **training_options(args))
    fit_temporal(opts)
    return 0


def fit_temporal(opts: TemporalFitOptions) -> dict:
    """Train (or resume) into opts.out; returns the last checkpoint's dict."""
    files = SequenceFiles(opts.data)
    motions = files.load_motion()
    stats, per_frame = per_frame_weights(opts.init or paths.LIFTER_ONNX)
    begin(opts)
    wopts = opts.window_options()
    net = TemporalNet(stats, opts.model)
    if opts.init is not None and not resumable(opts.out):
        calib = sample_windows(motions, 4096, np.random.default_rng([opts.seed, 10**6]), wopts)
        t = opts.model.window
        init_from_per_frame(net, per_frame, (torch.from_numpy(calib.keypoints[:, -t:]),
                                             torch.from_numpy(calib.confidence[:, -t:])))
        log.info("windowed MLP starts as the per-frame lifter %s", opts.init)
    if opts.history_only:
        freeze_all_but_history(net)
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=opts.lr)
    smooth = opts.smooth > 0
    task = Task(Consecutive(net, SMOOTH_FRAMES) if smooth else net, optimiser,
                sample=lambda rng: sample_windows(motions, opts.samples_per_epoch, rng, wopts, SHARES),
                evaluate=lambda: evaluate_tracks(torch_window_predictor(net), files, frames=opts.eval_frames,
                                                 window=opts.model.window),
                score=selection_score, brief=_brief,
                checkpoint={"stats": stats, "model_options": asdict(opts.model),
                            "window_options": _plain(asdict(wopts))},
                loss=(lambda out, y: smooth_loss(net, out, y, opts.smooth)) if smooth else None,
                max_norm=not opts.history_only,
                # A model started from the per-frame lifter carries that lifter's statistics. Letting
                # new data (the floor poses, salsa, the windows' history) move them changed the
                # function for every pose at once: one epoch at a learning rate of ~0 cost 3 mm on
                # Bandai. Frozen, the start is exactly the per-frame lifter.
                frozen_norm=opts.init is not None)
    return train(task, opts, log)


class Consecutive:
    """A TemporalNet as the trainer sees it on windows k-1 frames longer than its own: its standardised outputs
    for each of the k newest frames [N,k,48] (each from the window ending there), mm of the newest."""

    def __init__(self, net: TemporalNet, k: int) -> None:
        self.net, self.k = net, k

    def __getattr__(self, name: str):  # weights, modes, max-norm: the net's own (checkpoints stay loadable)
        return getattr(self.net, name)

    def standardised(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        t = self.net.opts.window
        return torch.stack([self.net.standardised(keypoints[:, j:j + t], confidence[:, j:j + t])
                            for j in range(self.k)], 1)

    def to_mm(self, standardised: torch.Tensor) -> torch.Tensor:
        return self.net.to_mm(standardised[:, -1])


def smooth_loss(net: TemporalNet, out: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """Mean joint distance over the k frames plus weight x the acceleration error (mm/frame^2) of the three
    newest: jitter is what a per-frame loss does not see. out [N,k,48] standardised, target [N,k,17,3] mm
    (NaN: a frame before the person appeared, left out)."""
    n, k = out.shape[:2]
    pred = net.to_mm(out.flatten(0, 1)).view(n, k, -1, 3)[:, :, 1:]  # without the pelvis (0 in both)
    seen = ~torch.isnan(target[:, :, 0, 0])                          # [N,k]
    truth = torch.nan_to_num(target)[:, :, 1:]
    dist = (pred - truth).norm(dim=-1).mean(-1)                       # [N,k]
    loss = (dist * seen).sum() / seen.sum().clamp(min=1)
    accel = lambda p: p[:, -1] - 2 * p[:, -2] + p[:, -3]  # noqa: E731
    all3 = seen[:, -3:].all(1)
    err = (accel(pred) - accel(truth)).norm(dim=-1).mean(-1)         # [N]
    return loss + weight * (err * all3).sum() / all3.sum().clamp(min=1)


def freeze_all_but_history(net: TemporalNet) -> None:
    """Only the stem's columns of the older frames learn; the newest frame's path stays the per-frame lifter's."""
    for p in net.parameters():
        p.requires_grad_(False)
    weight = net.stem[0].weight
    weight.requires_grad_(True)
    newest = torch.zeros_like(weight, dtype=torch.bool)
    newest[:, -(weight.shape[1] // net.opts.window):] = True
    weight.register_hook(lambda g: g.masked_fill(newest, 0.0))


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _brief(rows: list[dict]) -> dict:
    return {f"{r['set']}/{r['condition']}": [round(r["p_mpjpe"], 1), round(r["limb_deg"], 1)]
            for r in rows if r["group"] == "all"}
