"""Causal temporal lifters: the last T frames of one person -> the newest frame's 3D pose.

Both architectures share the per-frame lifter's input handling (training/model.py): each frame
is normalised on its own (centred on its visible joints, divided by their RMS spread; missing
joints replaced before any arithmetic), standardised with the per-frame statistics, and given
with its visibility mask, so translation and pixel scale do not matter and a missing joint's
coordinates (even NaN) cannot reach the output. The output is the newest frame's pose in mm,
pelvis exactly 0, with the same 2D pass-through of the newest frame as the per-frame lifter.

- "mlp" (windowed MLP): the T frames' features side by side into the Martinez residual MLP.
  Initialised from the per-frame lifter (weights/lifter.onnx) with the older frames' input
  weights at zero, it starts out as exactly the per-frame model and learns what history adds.
- "tcn" (VideoPose3D's causal, strided TCN): temporal convolutions of kernel 3 and stride 3
  (27 -> 9 -> 3 -> 1 frames), residual connections taking the newest frame of each group.
- "refine": the per-frame lifter (its weights, frozen) on the newest frame's 2D, corrected by a
  small MLP that sees the whole window (a learnt causal 2D filter: jitter and short occlusions
  are 2D problems, and the pose prior stays the per-frame lifter's, trained much longer). The
  correction starts at zero, so the start is exactly the per-frame lifter.

No future frames enter: the output depends on the window's frames only, the newest last.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posecast.skeleton import H

from .model import JOINTS, Block, normalise_2d, pass_through, standardised_to_mm

FEATURES = JOINTS * 3  # per frame: 17 x (x, y) standardised + 17 visibility flags
ARCHITECTURES = ("mlp", "tcn", "refine")
REFINE_WIDTH = 256  # the 2D correction's hidden width: a filter, not a second pose model


@dataclass
class TemporalOptions:
    arch: str = "mlp"
    window: int = 27
    width: int = 1024
    blocks: int = 2
    dropout: float = 0.1
    # Joints missing in the newest frame but seen in the window are filled in from their latest
    # sightings (see hold_missing), weighted by exp(-frames ago / hold_tau); 0: off.
    hold_tau: float = 1.5

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHITECTURES}")
        if self.arch == "tcn" and 3 ** round(np.log(self.window) / np.log(3)) != self.window:
            raise ValueError(f"the strided TCN needs a window that is a power of 3, not {self.window}")


class TemporalNet(nn.Module):
    def __init__(self, stats: dict, opts: TemporalOptions = TemporalOptions()) -> None:
        super().__init__()
        self.opts = opts
        for name, shape in (("mean2d", (JOINTS, 2)), ("std2d", (JOINTS, 2)),
                            ("mean3d", (JOINTS - 1, 3)), ("std3d", (JOINTS - 1, 3))):
            self.register_buffer(name, torch.tensor(stats[name], dtype=torch.float32).reshape(shape))
        w, t = opts.width, opts.window
        if opts.arch in ("mlp", "refine"):
            inputs = FEATURES if opts.arch == "refine" else t * FEATURES
            self.stem = nn.Sequential(nn.Linear(inputs, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Dropout(opts.dropout))
            self.blocks = nn.Sequential(*(Block(w, opts.dropout) for _ in range(opts.blocks)))
            if opts.arch == "refine":
                h = REFINE_WIDTH
                self.refine = nn.Sequential(nn.Linear(t * FEATURES, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                            nn.Linear(h, JOINTS * 2))
                nn.init.zeros_(self.refine[-1].weight)
                nn.init.zeros_(self.refine[-1].bias)
        else:
            self.stem = nn.Sequential(nn.Conv1d(FEATURES, w, 3, stride=3), nn.BatchNorm1d(w), nn.ReLU(),
                                      nn.Dropout(opts.dropout))
            levels = round(np.log(t) / np.log(3)) - 1
            self.blocks = nn.ModuleList(ConvBlock(w, opts.dropout) for _ in range(levels))
        self.head = nn.Linear(w, (JOINTS - 1) * 3)
        self.pass_scale = nn.Linear(w, 1)
        nn.init.zeros_(self.pass_scale.weight)
        nn.init.zeros_(self.pass_scale.bias)
        if opts.arch == "refine":  # the per-frame lifter (init_from_per_frame) stays as it is: only refine learns
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("refine."))

    def train(self, mode: bool = True) -> "TemporalNet":
        """For the refiner, the frozen per-frame lifter always computes as at inference (no dropout)."""
        super().train(mode)
        if self.opts.arch == "refine":
            for part in (self.stem, self.blocks):
                part.eval()
        return self

    def standardised(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """[N,T,17,2] pixels + [N,T,17] -> standardised 3D of the newest frame's 16 non-pelvis joints [N,48]."""
        n, t = keypoints.shape[0], self.opts.window
        if self.opts.hold_tau > 0:
            held, seen = hold_missing(keypoints, confidence, self.opts.hold_tau)
            keypoints = torch.cat([keypoints[:, :-1], held.unsqueeze(1)], 1)
            confidence = torch.cat([confidence[:, :-1], seen.unsqueeze(1)], 1)
        pose, weight = normalise_2d(keypoints.reshape(-1, JOINTS, 2), confidence.reshape(-1, JOINTS))
        x = torch.where(weight.unsqueeze(-1) > 0, (pose - self.mean2d) / self.std2d, torch.zeros_like(pose))
        features = torch.cat([x.flatten(1), weight], 1).reshape(n, t, FEATURES)
        if self.opts.arch == "refine":
            # The newest frame's seen joints moved by the correction (standardised units), then lifted alone.
            newest = weight.reshape(n, t, JOINTS)[:, -1]
            delta = self.refine(features.flatten(1)).view(n, JOINTS, 2) * newest.unsqueeze(-1)
            x = x.reshape(n, t, JOINTS, 2)[:, -1] + delta
            pose = pose.reshape(n, t, JOINTS, 2).clone()
            pose[:, -1] = pose[:, -1] + delta * self.std2d
            hidden = self.blocks(self.stem(torch.cat([x.flatten(1), newest], 1)))
        elif self.opts.arch == "mlp":
            hidden = self.blocks(self.stem(features.flatten(1)))
        else:
            h = self.stem(features.transpose(1, 2))
            for block in self.blocks:
                h = block(h)
            hidden = h[:, :, -1]
        out = self.head(hidden)
        # The newest frame's 2D, passed through where the joint and the pelvis were seen (training/model.py).
        pose, weight = pose.reshape(n, t, JOINTS, 2)[:, -1], weight.reshape(n, t, JOINTS)[:, -1]
        return pass_through(out, pose, weight, self.pass_scale(hidden), self.std3d)

    def to_mm(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised_to_mm(standardised, self.std3d, self.mean3d)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """[N,T,17,2] pixels + [N,T,17] confidences (oldest first) -> [N,17,3] mm of the newest frame."""
        return self.to_mm(self.standardised(keypoints, confidence))

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float = 1.0) -> None:
        """Max-norm on the hidden layers (those followed by batch norm), as in the per-frame lifter."""
        refine = set(self.refine.modules()) if self.opts.arch == "refine" else set()
        for module in self.modules():
            if (isinstance(module, (nn.Linear, nn.Conv1d)) and module not in (self.head, self.pass_scale)
                    and module not in refine):
                flat = module.weight.view(module.weight.shape[0], -1)
                flat.copy_(torch.renorm(flat, 2, 0, max_norm))


HOLD_ANCHORS = ((H["r_hip"], H["l_hip"]), (H["r_shoulder"], H["l_shoulder"]))


def hold_missing(keypoints: torch.Tensor, confidence: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The newest frame [N,17,2], [N,17] with its missing joints filled in from the window.

    A joint missing now but seen in earlier frames is placed where it last was relative to the
    hips' midpoint (or the shoulders', when the hips are not seen now), carried to where that
    midpoint is now: the legs a person had a moment ago, not a guess. Sightings are weighted by
    exp(-frames ago / tau). Missing coordinates are replaced before any arithmetic, as everywhere."""
    t = keypoints.shape[1]
    vis = confidence > 0
    kp = torch.where(vis.unsqueeze(-1), keypoints, torch.zeros_like(keypoints))
    age = torch.arange(t - 1, -1, -1, dtype=kp.dtype, device=kp.device)
    decay = torch.exp(-age / tau).view(1, t, 1)
    held, seen = kp[:, -1], confidence[:, -1]
    for joints in HOLD_ANCHORS:
        anchor_seen = vis[:, :, list(joints)].all(-1)                    # [N,T]
        anchor = kp[:, :, list(joints)].mean(2)                         # [N,T,2]
        w = decay * (vis & anchor_seen.unsqueeze(-1)).to(kp.dtype)      # [N,T,17]
        total = w.sum(1)
        rel = (w.unsqueeze(-1) * (kp - anchor.unsqueeze(2))).sum(1) / total.clamp(min=1e-6).unsqueeze(-1)
        fill = (seen <= 0) & (total > 0) & anchor_seen[:, -1:]
        held = torch.where(fill.unsqueeze(-1), rel + anchor[:, -1].unsqueeze(1), held)
        seen = torch.where(fill, torch.ones_like(seen), seen)
    return held, seen


class ConvBlock(nn.Module):
    """Kernel 3, stride 3 over time, then 1x1; the residual is the newest frame of each group of 3."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(width, width, 3, stride=3), nn.BatchNorm1d(width), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Conv1d(width, width, 1), nn.BatchNorm1d(width),
                                  nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2::3] + self.body(x)


def per_frame_weights(onnx_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The per-frame lifter's statistics and (batch-norm folded) weights from its ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(onnx_path)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    stats = {k: weights[k].tolist() for k in ("mean2d", "std2d", "mean3d", "std3d")}
    return stats, weights


@torch.no_grad()
def init_from_per_frame(net: TemporalNet, weights: dict[str, np.ndarray], calibration: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Make a windowed MLP compute what the per-frame lifter computes on the newest frame.

    The ONNX file holds each Linear with its batch norm folded in. Each Linear gets the folded
    weights (the newest frame's columns of the stem; the older frames' at zero), each row scaled
    to the max-norm bound, and its batch norm is set to undo that scale around the layer's own
    training-mode statistics on `calibration` windows: exact in eval mode, and in training mode
    about what the per-frame lifter computed while it trained."""
    if net.opts.arch not in ("mlp", "refine"):
        raise ValueError("only the windowed MLP and the refiner can start from the per-frame lifter")
    t = net.opts.window
    pairs = [(net.stem[0], net.stem[1], "stem.0")]
    for i, block in enumerate(net.blocks):
        pairs += [(block.body[0], block.body[1], f"blocks.{i}.body.0"), (block.body[4], block.body[5], f"blocks.{i}.body.4")]
    scales = {}
    for linear, norm, name in pairs:
        w, b = torch.from_numpy(weights[f"{name}.weight"].copy()), torch.from_numpy(weights[f"{name}.bias"].copy())
        if linear.weight.shape != w.shape:  # the stem: [width, T*51] against the per-frame [width, 51]
            full = torch.zeros_like(linear.weight)
            full[:, (t - 1) * FEATURES:] = w
            w = full
        if linear.weight.shape != w.shape:
            raise ValueError(f"{name}: per-frame {tuple(w.shape)} does not fit {tuple(linear.weight.shape)}")
        # Rows at the max-norm bound, as training keeps them: the folded weights are much smaller,
        # and Adam's steps (the same size for any weight) would be large against them.
        scale = 1.0 / w.norm(dim=1).clamp(min=1e-6)
        linear.weight.copy_(w * scale[:, None])
        linear.bias.copy_(b * scale)
        scales[norm] = scale
        norm.reset_running_stats()
        norm.running_var.fill_(1.0 - norm.eps)
        norm.weight.copy_(1.0 / scale)  # undoes the scale in eval mode until calibrated
        norm.bias.zero_()
    for name in ("head", "pass_scale"):
        getattr(net, name).weight.copy_(torch.from_numpy(weights[f"{name}.weight"].copy()))
        getattr(net, name).bias.copy_(torch.from_numpy(weights[f"{name}.bias"].copy()))
    # Layer by layer in training mode (dropout on, batch statistics), as the per-frame lifter was
    # trained: its running statistics, and so its folded weights, are those of training mode.
    net.train()
    momentum = {norm: norm.momentum for norm in scales}
    for norm in scales:
        norm.momentum = 0.0  # the passes below must not move the statistics already set
    for norm, scale in scales.items():
        seen: list[torch.Tensor] = []
        hook = norm.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        net(*calibration)
        hook.remove()
        z = seen[0]
        mean, var = z.mean(0), z.var(0, unbiased=False)
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        norm.weight.copy_(torch.sqrt(var + norm.eps) / scale)
        norm.bias.copy_(mean / scale)
    for norm, value in momentum.items():
        norm.momentum = value
    net.eval()


def load_temporal(path: Path) -> tuple[TemporalNet, dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train with `python -m training fit-temporal`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = TemporalNet(ckpt["stats"], TemporalOptions(**ckpt["model_options"]))
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, ckpt
