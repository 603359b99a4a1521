"""`python -m export triton DIR`: a model repository the official Triton Inference Server loads as it is.

    DIR/detector/config.pbtxt   DIR/detector/1/model.onnx
    DIR/lifter/config.pbtxt     DIR/lifter/1/model.onnx

ONNX Runtime backend, dynamic batching (max batch size and queue delay as options), instance groups:
KIND_AUTO by default, i.e. GPU instances with CUDA where the server has a GPU, else CPU ones; `--device`
pins either. Serve it with e.g. `tritonserver --model-repository DIR` (the NGC container) and point pose
servers at it with `python -m server --inference triton://HOST:8001` (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from posecast import paths
from posecast.triton import repository
from posecast.triton.repository import RepositoryOptions

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = RepositoryOptions()
    p.add_argument("directory", type=Path, help="the model repository to write (created; our models replaced)")
    p.add_argument("--detector", type=Path, default=paths.DETECTOR_ONNX, metavar="ONNX")
    p.add_argument("--lifter", type=Path, default=paths.LIFTER_ONNX, metavar="ONNX")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="instance kind: auto = a GPU where the server has one (KIND_AUTO), cpu, cuda (KIND_GPU)")
    p.add_argument("--instances", type=int, default=d.instances,
                   help=f"model copies per GPU (or on the CPU) (default {d.instances})")
    p.add_argument("--max-batch-size", type=int, default=16,
                   help=f"most detector frames in one batch (default 16; the lifter takes {repository.MAX_PEOPLE}x "
                        "as many rows)")
    p.add_argument("--queue-delay-us", type=int, default=d.queue_delay_us,
                   help=f"how long a detector request may wait for others to join its batch, microseconds "
                        f"(default {d.queue_delay_us}; the lifter never waits)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"onnxruntime intra-op threads per CPU instance (default {d.threads})")


def run(args: argparse.Namespace) -> int:
    options = RepositoryOptions(detector_path=args.detector, lifter_path=args.lifter,
                                max_batch_size=args.max_batch_size, queue_delay_us=args.queue_delay_us,
                                instances=args.instances, device=args.device, threads=args.threads)
    try:
        written = repository.write(args.directory, "onnxruntime", options)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 1
    for config in written:
        log.info("wrote %s", config)
    log.info("serve it with: tritonserver --model-repository %s; then python -m server --inference "
             "triton://HOST:8001", args.directory.resolve())
    return 0
