"""The lifter network: Martinez et al. (2017) residual MLP with the ONNX contract built in.

The module takes raw pixels and confidences and returns millimetres, so the exported graph
needs no outside pre- or post-processing:
  - missing joints (confidence 0) are replaced with `where` before any arithmetic, so their
    coordinates (even NaN or huge) cannot reach the output; the visibility mask is an input
    feature, so the network knows what it was not told;
  - the 2D pose is centred on its visible joints' mean and divided by their RMS spread:
    the same pose anywhere in the image and at any pixel size gives the same input;
  - 16 joints are predicted (standardised, as in the paper) and the pelvis is set to exactly 0;
  - a 2D pass-through (optional, on for new models): each joint's x and y also get its input
    position relative to the pelvis times a scale the network predicts (mm per normalised unit).
    The MLP then only predicts depth and a correction in the image plane, instead of re-drawing
    the 2D it was given (the in-plane part of the limb-direction error).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

JOINTS = 17


@dataclass
class ModelOptions:
    width: int = 1024
    blocks: int = 2
    # Lower than the paper's 0.5: every epoch draws fresh samples, so the net underfits rather than
    # overfits (fine-tunes of the same start: Bandai P-MPJPE 28.0-28.6 mm with 0.1, 29.2-29.7 with 0.25).
    dropout: float = 0.1
    passthrough: bool = True


PASS_MM = 500.0  # the pass-through's scale unit, about the RMS spread of a body in mm


def normalise_2d(keypoints: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N,17,2] pixels, [N,17] confidences -> pose-normalised [N,17,2] (0 where missing), mask [N,17]."""
    visible = confidence > 0
    vis = visible.unsqueeze(-1)
    kp = torch.where(vis, keypoints, torch.zeros_like(keypoints))
    weight = visible.to(keypoints.dtype)
    count = weight.sum(1).clamp(min=1.0)
    centre = kp.sum(1) / count.unsqueeze(-1)
    offset = torch.where(vis, kp - centre.unsqueeze(1), torch.zeros_like(kp))
    scale = torch.sqrt((offset * offset).sum((1, 2)) / count).clamp(min=1e-6)
    return offset / scale.view(-1, 1, 1), weight


def pass_through(out: torch.Tensor, pose: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                 std3d: torch.Tensor) -> torch.Tensor:
    """Adds the 2D pass-through to the MLP's standardised output: x, y of each joint = scale x its input position
    relative to the pelvis, only where both the joint and the pelvis were seen (otherwise the MLP alone answers).
    pose [N,17,2] normalised, weight [N,17], scale [N] -> [N,48]."""
    seen = (weight[:, 1:] * weight[:, :1]).unsqueeze(-1)
    planar = (pose[:, 1:] - pose[:, :1]) * seen * (PASS_MM * scale).unsqueeze(-1)
    out = out.view(-1, JOINTS - 1, 3)
    return torch.cat([out[..., :2] + planar / std3d[:, :2], out[..., 2:]], -1).flatten(1)


def standardised_to_mm(standardised: torch.Tensor, std3d: torch.Tensor, mean3d: torch.Tensor) -> torch.Tensor:
    """[N,48] standardised non-pelvis joints -> [N,17,3] mm with the pelvis at the origin."""
    joints = standardised.view(-1, JOINTS - 1, 3) * std3d + mean3d
    return torch.cat([torch.zeros_like(joints[:, :1]), joints], 1)


class Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(*(layer for _ in range(2) for layer in (
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LifterNet(nn.Module):
    def __init__(self, stats: dict, opts: ModelOptions = ModelOptions()) -> None:
        super().__init__()
        self.opts = opts
        for name, shape in (("mean2d", (JOINTS, 2)), ("std2d", (JOINTS, 2)),
                            ("mean3d", (JOINTS - 1, 3)), ("std3d", (JOINTS - 1, 3))):
            self.register_buffer(name, torch.tensor(stats[name], dtype=torch.float32).reshape(shape))
        self.stem = nn.Sequential(nn.Linear(JOINTS * 3, opts.width), nn.BatchNorm1d(opts.width),
                                  nn.ReLU(), nn.Dropout(opts.dropout))
        self.blocks = nn.Sequential(*(Block(opts.width, opts.dropout) for _ in range(opts.blocks)))
        self.head = nn.Linear(opts.width, (JOINTS - 1) * 3)
        if opts.passthrough:
            # Zero-initialised, so a model fine-tuned from one without it starts out identical.
            self.pass_scale = nn.Linear(opts.width, 1)
            nn.init.zeros_(self.pass_scale.weight)
            nn.init.zeros_(self.pass_scale.bias)

    def standardised(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """The network's own output: standardised 3D of the 16 non-pelvis joints [N,48]."""
        pose, weight = normalise_2d(keypoints, confidence)
        x = torch.where(weight.unsqueeze(-1) > 0, (pose - self.mean2d) / self.std2d, torch.zeros_like(pose))
        features = torch.cat([x.flatten(1), weight], 1)
        hidden = self.blocks(self.stem(features))
        out = self.head(hidden)
        if not self.opts.passthrough:
            return out
        return pass_through(out, pose, weight, self.pass_scale(hidden), self.std3d)

    def to_mm(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised_to_mm(standardised, self.std3d, self.mean3d)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """[N,17,2] pixels + [N,17] confidences -> [N,17,3] mm, pelvis-relative camera axes."""
        return self.to_mm(self.standardised(keypoints, confidence))

    def standardise_target(self, joints3d: torch.Tensor) -> torch.Tensor:
        return ((joints3d[:, 1:] - self.mean3d) / self.std3d).flatten(1)

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float = 1.0) -> None:
        """Max-norm on the hidden layers (those followed by batch norm), as in the paper."""
        outputs = (self.head, getattr(self, "pass_scale", None))
        for module in self.modules():
            if isinstance(module, nn.Linear) and module not in outputs:
                module.weight.copy_(torch.renorm(module.weight, 2, 0, max_norm))


def load_checkpoint(path: Path) -> tuple[LifterNet, dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train with `python -m training fit`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    # Checkpoints from before the 2D pass-through have no such option: they were made without it.
    net = LifterNet(ckpt["stats"], ModelOptions(**{"passthrough": False, **ckpt["model_options"]}))
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, ckpt
