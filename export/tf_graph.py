"""Read a frozen TensorFlow GraphDef (.pb) with protobuf alone, no TensorFlow.

The message classes declare only the fields a frozen inference graph needs (see protobuf_subset), with
TensorFlow's field numbers (graph.proto, node_def.proto, attr_value.proto, tensor.proto, tensor_shape.proto).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .protobuf_subset import OPTIONAL, REPEATED, F, Field, message_classes

_MESSAGES: dict[str, list[Field]] = {
    "Dim": [("size", 1, F.TYPE_INT64, OPTIONAL, None), ("name", 2, F.TYPE_STRING, OPTIONAL, None)],
    "TensorShapeProto": [("dim", 2, F.TYPE_MESSAGE, REPEATED, "Dim"),
                         ("unknown_rank", 3, F.TYPE_BOOL, OPTIONAL, None)],
    "TensorProto": [
        ("dtype", 1, F.TYPE_INT32, OPTIONAL, None),
        ("tensor_shape", 2, F.TYPE_MESSAGE, OPTIONAL, "TensorShapeProto"),
        ("tensor_content", 4, F.TYPE_BYTES, OPTIONAL, None),
        ("float_val", 5, F.TYPE_FLOAT, REPEATED, None),
        ("int_val", 7, F.TYPE_INT32, REPEATED, None),
        ("int64_val", 10, F.TYPE_INT64, REPEATED, None),
    ],
    "ListValue": [
        ("s", 2, F.TYPE_BYTES, REPEATED, None),
        ("i", 3, F.TYPE_INT64, REPEATED, None),
        ("f", 4, F.TYPE_FLOAT, REPEATED, None),
        ("b", 5, F.TYPE_BOOL, REPEATED, None),
        ("type", 6, F.TYPE_INT32, REPEATED, None),
    ],
    "AttrValue": [
        ("list", 1, F.TYPE_MESSAGE, OPTIONAL, "ListValue"),
        ("s", 2, F.TYPE_BYTES, OPTIONAL, None),
        ("i", 3, F.TYPE_INT64, OPTIONAL, None),
        ("f", 4, F.TYPE_FLOAT, OPTIONAL, None),
        ("b", 5, F.TYPE_BOOL, OPTIONAL, None),
        ("type", 6, F.TYPE_INT32, OPTIONAL, None),
        ("shape", 7, F.TYPE_MESSAGE, OPTIONAL, "TensorShapeProto"),
        ("tensor", 8, F.TYPE_MESSAGE, OPTIONAL, "TensorProto"),
    ],
    # map<string, AttrValue> is wire-identical to a repeated key/value message.
    "AttrEntry": [("key", 1, F.TYPE_STRING, OPTIONAL, None),
                  ("value", 2, F.TYPE_MESSAGE, OPTIONAL, "AttrValue")],
    "NodeDef": [
        ("name", 1, F.TYPE_STRING, OPTIONAL, None),
        ("op", 2, F.TYPE_STRING, OPTIONAL, None),
        ("input", 3, F.TYPE_STRING, REPEATED, None),
        ("attr", 5, F.TYPE_MESSAGE, REPEATED, "AttrEntry"),
    ],
    "GraphDef": [("node", 1, F.TYPE_MESSAGE, REPEATED, "NodeDef")],
}
_PACKAGE = "posecast_tf_subset"
# TensorFlow DataType enum values -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}


_CLASSES = message_classes(_PACKAGE, _MESSAGES)


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]                  # producer node names (":0" and control inputs stripped)
    attrs: dict[str, Any] = field(default_factory=dict)


def _tensor(t: Any) -> np.ndarray:
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise ValueError(f"unsupported tensor dtype enum {t.dtype}")
    shape = [d.size for d in t.tensor_shape.dim]
    if t.tensor_content:
        return np.frombuffer(t.tensor_content, dtype=dtype).reshape(shape).copy()
    values = t.float_val if dtype in (np.float32, np.float64) else t.int64_val if dtype == np.int64 else t.int_val
    arr = np.array(values, dtype=dtype)
    size = int(np.prod(shape)) if shape else 1
    return np.broadcast_to(arr if arr.size else np.zeros(1, dtype), (size,)).reshape(shape).copy()


def _attr(v: Any) -> Any:
    for desc, value in v.ListFields():  # the one field that is set
        kind = desc.name
        if kind == "tensor":
            return _tensor(value)
        if kind == "list":
            for d, items in value.ListFields():
                return [x.decode() if isinstance(x, bytes) else x for x in items]
            return []
        if kind == "shape":
            return [d.size for d in value.dim]
        if kind == "s":
            return value.decode()
        return value
    return None


def read_graph(path: str | Path) -> dict[str, Node]:
    """Nodes of a frozen GraphDef by name, in file order, with constants as numpy arrays."""
    graph = _CLASSES["GraphDef"]()
    graph.ParseFromString(Path(path).read_bytes())
    nodes: dict[str, Node] = {}
    for n in graph.node:
        inputs = [i.split(":")[0] for i in n.input if not i.startswith("^")]
        nodes[n.name] = Node(n.name, n.op, inputs, {a.key: _attr(a.value) for a in n.attr})
    return nodes
