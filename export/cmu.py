"""The original CMU OpenPose body model (COCO-18, 6 stages) -> the detector ONNX.

One layer table describes the architecture (Cao et al. 2017, VGG-19 front end); weights come by layer name
from either of the files users have:
  * body_pose_model.pth: a PyTorch state dict with keys "<layer>.weight" / "<layer>.bias" (pytorch-openpose);
  * pose_iter_440000.caffemodel: Caffe's NetParameter, read with protobuf alone (see protobuf_subset).
`CmuBodyModel` is the same network in torch, used to check the conversion's parity on random weights.
Input normalisation (BGR / 256 - 0.5) is part of the ONNX, so it takes BGR 0-255 like every detector ONNX.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .onnx_graph import INPUT, GraphBuilder
from .protobuf_subset import OPTIONAL, REPEATED, F, message_classes

Weights = dict[str, tuple[np.ndarray, np.ndarray]]        # layer -> (weight OIHW, bias)
STAGES = 6


def _branch(stage: int, branch: int, in_ch: int) -> list[tuple[str, int, int, int, bool]]:
    """(name, in, out, kernel, relu) of one stage branch; L1 = PAFs (38), L2 = heatmaps (19)."""
    out = 38 if branch == 1 else 19
    if stage == 1:
        names = [f"conv5_{i}_CPM_L{branch}" for i in range(1, 6)]
        spec = [(in_ch, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 1), (512, out, 1)]
    else:
        names = [f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, 8)]
        spec = [(in_ch, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 128, 1), (128, out, 1)]
    return [(n, i, o, k, j < len(spec) - 1) for j, (n, (i, o, k)) in enumerate(zip(names, spec))]


# The VGG-19 front end: convolutions (name, in, out, 3x3, relu) and 2x2 max pools ("pool").
FRONT: list[tuple[str, int, int, int, bool] | str] = [
    ("conv1_1", 3, 64, 3, True), ("conv1_2", 64, 64, 3, True), "pool",
    ("conv2_1", 64, 128, 3, True), ("conv2_2", 128, 128, 3, True), "pool",
    ("conv3_1", 128, 256, 3, True), ("conv3_2", 256, 256, 3, True), ("conv3_3", 256, 256, 3, True),
    ("conv3_4", 256, 256, 3, True), "pool",
    ("conv4_1", 256, 512, 3, True), ("conv4_2", 512, 512, 3, True),
    ("conv4_3_CPM", 512, 256, 3, True), ("conv4_4_CPM", 256, 128, 3, True),
]
FEATURES = 128
STAGE_INPUT = 38 + 19 + FEATURES


def stages() -> list[tuple[list, list]]:
    """(PAF branch, heatmap branch) layer lists for stages 1..6."""
    return [(_branch(s, 1, FEATURES if s == 1 else STAGE_INPUT), _branch(s, 2, FEATURES if s == 1 else STAGE_INPUT))
            for s in range(1, STAGES + 1)]


def layer_names() -> list[str]:
    names = [layer[0] for layer in FRONT if layer != "pool"]
    for paf, heat in stages():
        names += [layer[0] for layer in paf + heat]
    return names


def build_onnx(weights: Weights, metadata: dict) -> onnx.ModelProto:
    missing = [n for n in layer_names() if n not in weights]
    if missing:
        raise ValueError(f"not a CMU body model: {len(missing)} layers missing, e.g. {missing[:3]}")
    b = GraphBuilder()

    def convs(x: str, layers: list) -> str:
        for layer in layers:
            if layer == "pool":
                x = b.op("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
                continue
            name, cin, cout, k, relu = layer
            w, bias = weights[name]
            if w.shape != (cout, cin, k, k):
                raise ValueError(f"{name}: weight shape {w.shape}, expected {(cout, cin, k, k)}")
            x = b.conv(x, w, bias, name, pad=k // 2)
            if relu:
                x = b.op("Relu", [x], f"{name}/relu")
        return x

    x = b.op("Mul", [INPUT, b.const("scale", np.array(1 / 256, np.float32))], "normalise_scale")
    x = b.op("Add", [x, b.const("shift", np.array(-0.5, np.float32))], "normalise_shift")
    features = convs(x, FRONT)
    stage_input = features
    for i, (paf_layers, heat_layers) in enumerate(stages()):
        pafs, heatmaps = convs(stage_input, paf_layers), convs(stage_input, heat_layers)
        if i < STAGES - 1:
            stage_input = b.op("Concat", [pafs, heatmaps, features], f"concat_stage{i + 2}", axis=1)
    return b.model(heatmaps, pafs, metadata)


def weights_from_state_dict(state: dict[str, Any]) -> Weights:
    """pytorch-openpose's body_pose_model.pth (also with a "model0."-style module prefix)."""
    flat = {k.split(".", 1)[1] if k.count(".") > 1 else k: v for k, v in state.items()}
    return {n: (np.asarray(flat[f"{n}.weight"], np.float32), np.asarray(flat[f"{n}.bias"], np.float32))
            for n in layer_names() if f"{n}.weight" in flat}


_CAFFE = message_classes("posecast_caffe_subset", {
    "BlobShape": [("dim", 1, F.TYPE_INT64, REPEATED, None)],
    "BlobProto": [("num", 1, F.TYPE_INT32, OPTIONAL, None), ("channels", 2, F.TYPE_INT32, OPTIONAL, None),
                  ("height", 3, F.TYPE_INT32, OPTIONAL, None), ("width", 4, F.TYPE_INT32, OPTIONAL, None),
                  ("data", 5, F.TYPE_FLOAT, REPEATED, None), ("shape", 7, F.TYPE_MESSAGE, OPTIONAL, "BlobShape")],
    "LayerParameter": [("name", 1, F.TYPE_STRING, OPTIONAL, None),
                       ("blobs", 7, F.TYPE_MESSAGE, REPEATED, "BlobProto")],
    "V1LayerParameter": [("name", 4, F.TYPE_STRING, OPTIONAL, None),
                         ("blobs", 6, F.TYPE_MESSAGE, REPEATED, "BlobProto")],
    "NetParameter": [("layers", 2, F.TYPE_MESSAGE, REPEATED, "V1LayerParameter"),
                     ("layer", 100, F.TYPE_MESSAGE, REPEATED, "LayerParameter")],
})


def _blob(blob: Any) -> np.ndarray:
    shape = list(blob.shape.dim) if blob.HasField("shape") else [blob.num, blob.channels, blob.height, blob.width]
    return np.array(blob.data, np.float32).reshape(shape)


def weights_from_caffemodel(data: bytes) -> Weights:
    net = _CAFFE["NetParameter"]()
    net.ParseFromString(data)
    out: Weights = {}
    for layer in list(net.layer) + list(net.layers):
        if len(layer.blobs) == 2:
            w, bias = (_blob(b) for b in layer.blobs)
            out[layer.name] = (w.reshape(w.shape[-4:]), bias.reshape(-1))
    return out


def caffemodel_bytes(weights: Weights) -> bytes:
    """A Caffe NetParameter holding these weights (what Caffe writes; used to test the reader)."""
    net = _CAFFE["NetParameter"]()
    for name, (w, bias) in weights.items():
        layer = net.layer.add(name=name)
        for array in (w, bias):
            blob = layer.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel().tolist())
    return net.SerializeToString()


def convert_file(path: Path, metadata: dict) -> onnx.ModelProto:
    """A .pth / .pt state dict or a .caffemodel -> the detector ONNX."""
    if path.suffix == ".caffemodel":
        weights = weights_from_caffemodel(path.read_bytes())
    else:
        import torch
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = weights_from_state_dict({k: v.numpy() for k, v in state.items()})
    return build_onnx(weights, metadata)


def torch_model():
    """The CMU body model in torch, layers named as in the original (for parity checks and .pth files)."""
    import torch
    from torch import nn

    class CmuBodyModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for layer in FRONT + [x for p, h in stages() for x in p + h]:
                if layer != "pool":
                    name, cin, cout, k, _ = layer
                    self.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2))

        def _run(self, x: torch.Tensor, layers: list) -> torch.Tensor:
            for layer in layers:
                if layer == "pool":
                    x = nn.functional.max_pool2d(x, 2, 2)
                else:
                    x = getattr(self, layer[0])(x)
                    x = torch.relu(x) if layer[4] else x
            return x

        def forward(self, bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """BGR 0-255 [N,3,H,W] -> (heatmaps [N,19,H/8,W/8], pafs [N,38,H/8,W/8])."""
            features = self._run(bgr / 256 - 0.5, FRONT)
            x = features
            for i, (paf_layers, heat_layers) in enumerate(stages()):
                pafs, heatmaps = self._run(x, paf_layers), self._run(x, heat_layers)
                x = torch.cat([pafs, heatmaps, features], 1)
            return heatmaps, pafs

    return CmuBodyModel()
