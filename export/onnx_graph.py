"""A small ONNX graph builder for plain convolutional networks (both detector converters use it).

Every detector ONNX has the same contract, whatever network it came from:
  image    float32 [N,3,H,W]      BGR 0-255 (H, W multiples of 8; dynamic)
  heatmaps float32 [N,19,H/8,W/8] COCO-18 parts (posecast.skeleton.COCO18 order) + background
  pafs     float32 [N,38,H/8,W/8] 19 part-affinity fields, x/y pairs in COCO18_PAF_LIMBS order
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT, HEATMAPS, PAFS = "image", "heatmaps", "pafs"
OPSET = 17


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        base, i = name, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        out = self._unique(name)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, weight_oihw: np.ndarray, bias: np.ndarray | None, name: str, *,
             stride: int = 1, dilation: int = 1, group: int = 1, pad: int | str = "SAME_UPPER") -> str:
        """pad: an explicit symmetric pad, or an ONNX auto_pad ("SAME_UPPER" is TensorFlow's SAME)."""
        o, _, kh, kw = weight_oihw.shape
        inputs = [x, self.const(f"{name}/W", weight_oihw)]
        if bias is not None:
            inputs.append(self.const(f"{name}/B", bias.reshape(o)))
        attrs: dict[str, Any] = dict(kernel_shape=[kh, kw], strides=[stride, stride],
                                     dilations=[dilation, dilation], group=group)
        if isinstance(pad, str):
            attrs["auto_pad"] = pad
        else:
            attrs["pads"] = [pad] * 4
        return self.op("Conv", inputs, name, **attrs)

    def model(self, heatmaps: str, pafs: str, metadata: dict[str, Any]) -> onnx.ModelProto:
        """The finished model: our input/output names, dynamic sizes, metadata under key 'posecast'."""
        self.nodes.append(helper.make_node("Identity", [heatmaps], [HEATMAPS], name=HEATMAPS))
        self.nodes.append(helper.make_node("Identity", [pafs], [PAFS], name=PAFS))
        graph = helper.make_graph(
            self.nodes, "openpose",
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
            [helper.make_tensor_value_info(HEATMAPS, TensorProto.FLOAT, ["N", 19, "H/8", "W/8"]),
             helper.make_tensor_value_info(PAFS, TensorProto.FLOAT, ["N", 38, "H/8", "W/8"])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="posecast")
        model.ir_version = 8
        helper.set_model_props(model, {"posecast": json.dumps(metadata)})
        onnx.checker.check_model(model)
        return model
