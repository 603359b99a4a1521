"""Read a frozen TensorFlow GraphDef (.pb) with protobuf alone, no TensorFlow.

The message classes are built at import time from a hand-written descriptor that declares only the
fields a frozen inference graph needs. Field numbers are TensorFlow's (graph.proto, node_def.proto,
attr_value.proto, tensor.proto, tensor_shape.proto); unknown fields are skipped by protobuf.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# message name -> [(field name, number, type, label, message type name or None)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "Dim": [("size", 1, _F.TYPE_INT64, _OPTIONAL, None), ("name", 2, _F.TYPE_STRING, _OPTIONAL, None)],
    "TensorShapeProto": [("dim", 2, _F.TYPE_MESSAGE, _REPEATED, "Dim"),
                         ("unknown_rank", 3, _F.TYPE_BOOL, _OPTIONAL, None)],
    "TensorProto": [
        ("dtype", 1, _F.TYPE_INT32, _OPTIONAL, None),
        ("tensor_shape", 2, _F.TYPE_MESSAGE, _OPTIONAL, "TensorShapeProto"),
        ("tensor_content", 4, _F.TYPE_BYTES, _OPTIONAL, None),
        ("float_val", 5, _F.TYPE_FLOAT, _REPEATED, None),
        ("int_val", 7, _F.TYPE_INT32, _REPEATED, None),
        ("int64_val", 10, _F.TYPE_INT64, _REPEATED, None),
    ],
    "ListValue": [
        ("s", 2, _F.TYPE_BYTES, _REPEATED, None),
        ("i", 3, _F.TYPE_INT64, _REPEATED, None),
        ("f", 4, _F.TYPE_FLOAT, _REPEATED, None),
        ("b", 5, _F.TYPE_BOOL, _REPEATED, None),
        ("type", 6, _F.TYPE_INT32, _REPEATED, None),
    ],
    "AttrValue": [
        ("list", 1, _F.TYPE_MESSAGE, _OPTIONAL, "ListValue"),
        ("s", 2, _F.TYPE_BYTES, _OPTIONAL, None),
        ("i", 3, _F.TYPE_INT64, _OPTIONAL, None),
        ("f", 4, _F.TYPE_FLOAT, _OPTIONAL, None),
        ("b", 5, _F.TYPE_BOOL, _OPTIONAL, None),
        ("type", 6, _F.TYPE_INT32, _OPTIONAL, None),
        ("shape", 7, _F.TYPE_MESSAGE, _OPTIONAL, "TensorShapeProto"),
        ("tensor", 8, _F.TYPE_MESSAGE, _OPTIONAL, "TensorProto"),
    ],
    # map<string, AttrValue> is wire-identical to a repeated key/value message.
    "AttrEntry": [("key", 1, _F.TYPE_STRING, _OPTIONAL, None),
                  ("value", 2, _F.TYPE_MESSAGE, _OPTIONAL, "AttrValue")],
    "NodeDef": [
        ("name", 1, _F.TYPE_STRING, _OPTIONAL, None),
        ("op", 2, _F.TYPE_STRING, _OPTIONAL, None),
        ("input", 3, _F.TYPE_STRING, _REPEATED, None),
        ("attr", 5, _F.TYPE_MESSAGE, _REPEATED, "AttrEntry"),
    ],
    "GraphDef": [("node", 1, _F.TYPE_MESSAGE, _REPEATED, "NodeDef")],
}
_PACKAGE = "posecast_tf_subset"
# TensorFlow DataType enum values -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}


def _build_classes() -> dict[str, type]:
    file = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto2")
    for name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
            if label == _REPEATED and ftype not in (_F.TYPE_MESSAGE, _F.TYPE_STRING, _F.TYPE_BYTES):
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES}


_CLASSES = _build_classes()


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
