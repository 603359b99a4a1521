"""Protobuf message classes for a subset of a foreign schema (TensorFlow, Caffe), built at run time.

Declaring only the fields we read, with the schema's own field numbers, lets protobuf parse the files
without the framework installed; fields we do not declare are skipped.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED

# (field name, number, type, label, message type name or None)
Field = tuple[str, int, int, int, "str | None"]


def message_classes(package: str, messages: dict[str, list[Field]],
                    packed: bool = True) -> dict[str, type]:
    """Message classes by name. packed: how repeated numbers are written (proto3 and most proto2 files)."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto2")
    for name, fields in messages.items():
        msg = file.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{package}.{type_name}"
            if packed and label == REPEATED and ftype not in (F.TYPE_MESSAGE, F.TYPE_STRING, F.TYPE_BYTES):
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}
