"""Triton model repositories for the two networks: one config.pbtxt writer for both kinds.

- "onnxruntime": Triton's ONNX Runtime backend runs model.onnx (the official server, `python -m export triton`).
- "python": Triton's Python backend runs posecast/triton/model.py, which runs the ONNX file with onnxruntime
  (the server nvidia-pytriton bundles has only the Python backend; `posecast triton`).

Either way Triton's dynamic batcher gathers requests from many streams into one batch (requests batch only
when their shapes are equal: see posecast.inference.PaddedDetectorSession), and the manifest the exporters
store in the ONNX metadata rides along as the model parameter `posecast`, for the pose server's hello.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from posecast import paths
from posecast.inference import DETECTOR, LIFTER

Kind = Literal["onnxruntime", "python"]
MODEL_PY = Path(__file__).with_name("model.py")


@dataclass(frozen=True)
class Tensor:
    name: str
    dims: tuple[int, ...]  # without the batch dimension; -1 = any size


# The ONNX contracts (export/onnx_graph.py, posecast/lifter.py), batch dimension left out.
SIGNATURES: dict[str, tuple[tuple[Tensor, ...], tuple[Tensor, ...]]] = {
    DETECTOR: ((Tensor("image", (3, -1, -1)),),
               (Tensor("heatmaps", (19, -1, -1)), Tensor("pafs", (38, -1, -1)))),
    LIFTER: ((Tensor("keypoints", (17, 2)), Tensor("confidence", (17,))),
             (Tensor("joints3d", (17, 3)),)),
}


@dataclass(frozen=True)
class RepositoryOptions:
    detector_path: Path = paths.DETECTOR_ONNX
    lifter_path: Path = paths.LIFTER_ONNX
    max_batch_size: int = 8           # detector; the lifter takes MAX_PEOPLE times as many rows
    queue_delay_us: int = 2000        # how long the detector's batcher waits for more requests before running
    instances: int = 1                # model copies per device; each takes one batch at a time
    device: Literal["auto", "cpu", "cuda"] = "cpu"  # auto: Triton's KIND_AUTO, a GPU where it has one
    threads: int = 1                  # onnxruntime intra-op threads per instance


MAX_PEOPLE = 8  # lifter rows per detector frame the lifter's batch is sized for


def read_manifest(path: Path) -> dict:
    """The `posecast` manifest stored in an ONNX file's metadata ({} when there is none)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    meta = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).get_modelmeta()
    try:
        return json.loads(meta.custom_metadata_map.get("posecast", "{}"))
    except json.JSONDecodeError:
        return {}


def _tensors(kind: str, tensors: tuple[Tensor, ...]) -> str:
    rows = [f'  {{ name: "{t.name}" data_type: TYPE_FP32 dims: [ {", ".join(map(str, t.dims))} ] }}'
            for t in tensors]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]"


def _parameter(key: str, value: str) -> str:
    return f"parameters {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}"


def config_text(name: str, kind: Kind, o: RepositoryOptions, manifest: dict, onnx_path: Path | None = None) -> str:
    """config.pbtxt of one model. onnx_path: for the python kind, the ONNX file its model.py opens."""
    inputs, outputs = SIGNATURES[name]
    max_batch = o.max_batch_size * (MAX_PEOPLE if name == LIFTER else 1)
    # The lifter computes in about a millisecond: waiting for company would cost more than batching saves.
    # Its requests still batch when they queue behind a running one.
    delay = o.queue_delay_us if name == DETECTOR else 0
    kind_of_instance = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "cuda": "KIND_GPU"}[o.device]
    if kind == "python":  # model.py picks onnxruntime's provider itself; its instances are processes
        kind_of_instance = "KIND_CPU"
    lines = [f'name: "{name}"', f'backend: "{kind}"', f"max_batch_size: {max_batch}",
             _tensors("input", inputs), _tensors("output", outputs),
             f"dynamic_batching {{ max_queue_delay_microseconds: {delay} }}",
             f"instance_group [ {{ kind: {kind_of_instance} count: {o.instances} }} ]",
             _parameter("posecast", json.dumps(manifest, separators=(",", ":")))]
    if kind == "onnxruntime":
        # The backend's own knobs (its README): one intra-op pool per instance, sized like the pose server's.
        lines += [_parameter("intra_op_thread_count", str(o.threads)), _parameter("inter_op_thread_count", "1")]
        # On a GPU instance the backend uses CUDA; its default cuDNN search (exhaustive) costs seconds per new
        # input shape. 1 = HEURISTIC, as in process (posecast/runtime.py).
        lines.append(_parameter("cudnn_conv_algo_search", "1"))
    else:
        assert onnx_path is not None
        assert o.device != "auto", "resolve the device before writing a python-backend model"
        lines += [_parameter("onnx_path", str(onnx_path.resolve())), _parameter("device", o.device),
                  _parameter("threads", str(o.threads))]
    return "\n".join(lines) + "\n"


def write(directory: Path, kind: Kind, options: RepositoryOptions = RepositoryOptions()) -> list[Path]:
    """A model repository in `directory` (created; existing models of the same names replaced).
    Returns the config files written."""
    written = []
    for name, path in ((DETECTOR, options.detector_path), (LIFTER, options.lifter_path)):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path} (build it with: python -m export {name})")
        model_dir = directory / name
        if model_dir.exists():
            shutil.rmtree(model_dir)
        (model_dir / "1").mkdir(parents=True)
        if kind == "onnxruntime":
            shutil.copyfile(path, model_dir / "1" / "model.onnx")
            text = config_text(name, kind, options, read_manifest(path))
        else:
            shutil.copyfile(MODEL_PY, model_dir / "1" / "model.py")
            text = config_text(name, kind, options, read_manifest(path), onnx_path=path)
        (model_dir / "config.pbtxt").write_text(text)
        written.append(model_dir / "config.pbtxt")
    return written
