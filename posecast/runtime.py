"""One onnxruntime session factory for every model: provider choice, threads, clear errors."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import onnxruntime as ort

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelNotFoundError(FileNotFoundError):
    """A model file is missing; the message says how to build it."""


class DeviceUnavailableError(RuntimeError):
    """CUDA was asked for but onnxruntime could not make it active."""


def _options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    # Idle workers spin by default; on a few shared cores that steals CPU from the other model,
    # the WebRTC decoder and the other peers (measured: 3x slower network under load).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _try_cuda(path: Path, opts: ort.SessionOptions) -> ort.InferenceSession | None:
    """A CUDA session if CUDA really is active, else None (GPU-less noise kept quiet)."""
    if CUDA not in ort.get_available_providers():
        return None
    # onnxruntime-gpu logs loud errors when it cannot load CUDA; hide them while we try.
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(
            str(path), opts,
            providers=[(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU])
    except Exception as exc:  # noqa: BLE001 - any CUDA failure means "use the CPU"
        log.debug("CUDA session failed: %s", exc)
        return None
    finally:
        ort.set_default_logger_severity(2)
    return session if session.get_providers()[0] == CUDA else None


def create_session(path: str | Path, device: Device = "auto", *, threads: int | None = None,
                   hint: str = "") -> ort.InferenceSession:
    """Open an ONNX model on CUDA when it is active (or required), else on the CPU.

    hint: the command that builds the model, quoted when the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}" + (f" (build it with: {hint})" if hint else ""))
    opts = _options(threads)
    if device in ("auto", "cuda"):
        session = _try_cuda(path, opts)
        if session is not None:
            log.info("%s on %s", path.name, CUDA)
            return session
        if device == "cuda":
            raise DeviceUnavailableError(
                "CUDA was requested but onnxruntime cannot use it here "
                f"(available providers: {', '.join(ort.get_available_providers())}); use --device cpu")
        log.info("%s on CPU (no active CUDA device)", path.name)
    session = ort.InferenceSession(str(path), opts, providers=[CPU])
    return session


def provider_name(session: ort.InferenceSession) -> str:
    """'CUDA' or 'CPU': the provider that runs the session's first node."""
    return "CUDA" if session.get_providers()[0] == CUDA else "CPU"
