"""Where the networks run: in this process (onnxruntime, the default) or on a Triton Inference Server.

The pipeline only ever calls `session.run(output_names, feeds)` (and reads the provider and the model's
metadata), so a backend is something that opens one such session per model: `ort.InferenceSession` itself
in process, `TritonSession` for a model served by Triton over gRPC. Tracking, decoding, conversion and
smoothing stay in the caller; only the network calls move.

`--inference triton://HOST:PORT` names the server; the models are looked up by name (DETECTOR, LIFTER), as
`posecast triton` and `python -m export triton` name them.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from posecast.runtime import CPU, CUDA, Device, create_session, provider_name

log = logging.getLogger(__name__)

DETECTOR, LIFTER = "detector", "lifter"  # model names on a Triton server
IN_PROCESS = "onnxruntime"
TRITON_SCHEME = "triton"
DEFAULT_GRPC_PORT = 8001
REQUEST_TIMEOUT_S = 10.0  # a hung server fails the frame instead of holding a worker forever
# gRPC waits up to 2 minutes between reconnection attempts by default; a restarted Triton should be used
# within a second or two.
CHANNEL_ARGS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.min_reconnect_backoff_ms", 250),
                ("grpc.max_reconnect_backoff_ms", 1000), ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20)]
# Bucket aspects (width / height) for the detector input on a batching server: requests batch only when
# their shapes are equal, so each input is padded on the right up to the next bucket. 4/3 is a whole
# 640x480 frame, exactly; tracked person crops mostly fall at 0.5-1.
DEFAULT_DETECTOR_ASPECTS = (0.75, 1.0, 4 / 3, 2.0)


class Session(Protocol):
    """The part of onnxruntime.InferenceSession the pipeline uses; every backend's sessions have it."""

    def run(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def get_providers(self) -> list[str]: ...

    def get_modelmeta(self) -> Any: ...  # .custom_metadata_map: dict[str, str]


class InferenceUnavailableError(RuntimeError):
    """The inference server cannot be reached or does not serve a model: nothing is wrong with the frame,
    and the same call may succeed once the server is back."""

    code = "inference_unavailable"


class InferenceSetupError(RuntimeError):
    """A bad --inference value, or a missing client package: fix the command line or the install."""


@dataclass(frozen=True)
class Target:
    scheme: str          # IN_PROCESS or TRITON_SCHEME
    address: str = ""    # host:port for Triton


def parse_target(text: str) -> Target:
    """'onnxruntime' (or '') -> in process; 'triton://HOST[:PORT]' -> a Triton server's gRPC endpoint."""
    if text in ("", IN_PROCESS):
        return Target(IN_PROCESS)
    parts = urlsplit(text)
    if parts.scheme != TRITON_SCHEME or not parts.hostname or parts.path not in ("", "/"):
        raise InferenceSetupError(f"--inference {text!r}: expected '{IN_PROCESS}' or "
                                  f"'{TRITON_SCHEME}://HOST:PORT' (gRPC port, default {DEFAULT_GRPC_PORT})")
    try:
        port = parts.port or DEFAULT_GRPC_PORT
    except ValueError:
        raise InferenceSetupError(f"--inference {text!r}: the port is not a number") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Target(TRITON_SCHEME, f"{host}:{port}")


class Backend(Protocol):
    name: str          # "onnxruntime" | "triton"
    concurrency: int   # frames worth processing at once: 1 in process (they share the cores), more when remote
    detector_aspects: tuple[float, ...]  # default detector input buckets (PipelineOptions.detector_aspects)
    error: str | None  # the current failure of a remote backend, None while it answers

    def open(self, path: Path, model: str, hint: str) -> Session: ...

    def info(self) -> dict: ...


class InProcess:
    """onnxruntime in this process: today's behaviour."""
    name = IN_PROCESS
    concurrency = 1
    detector_aspects: tuple[float, ...] = ()  # nothing to batch with: the width follows the crop

    def __init__(self, device: Device = "auto", threads: int | None = None) -> None:
        self.device = device
        self.threads = threads
        self.provider = ""

    def open(self, path: Path, model: str, hint: str) -> Session:
        # Every model after the first follows it: both on CUDA or both on the CPU.
        device = self.device if not self.provider else ("cuda" if self.provider == "CUDA" else "cpu")
        session = create_session(path, device, threads=self.threads, hint=hint)
        self.provider = self.provider or provider_name(session)
        return session

    def info(self) -> dict:
        return {"backend": self.name, "provider": self.provider}

    @property
    def error(self) -> str | None:
        return None


class _Meta:
    def __init__(self, custom: dict[str, str]) -> None:
        self.custom_metadata_map = custom


class Triton:
    """A Triton server's models over gRPC; one client (thread-safe) shared by every stream's sessions."""
    name = TRITON_SCHEME
    detector_aspects = DEFAULT_DETECTOR_ASPECTS

    def __init__(self, address: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        try:
            import tritonclient.grpc as grpcclient
        except ImportError as exc:
            raise InferenceSetupError(f"the Triton client is not installed ({exc}): "
                                      "pip install 'posecast[triton]'") from None
        self.address = address
        self.timeout = timeout
        self.client = grpcclient.InferenceServerClient(address, channel_args=CHANNEL_ARGS)
        self.provider = ""
        self.concurrency = 1  # until the detector is open
        self._error: str | None = None
        self._lock = threading.Lock()
        try:
            live = self.client.is_server_live(client_timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own exception for every gRPC failure
            raise InferenceUnavailableError(self._unreachable(exc)) from None
        if not live:
            raise InferenceUnavailableError(f"the Triton server at {address} is not live yet")

    def _unreachable(self, exc: Exception) -> str:
        return (f"cannot reach Triton at {self.address} ({_message(exc)}); start one with `posecast triton` "
                f"or check --inference")

    def open(self, path: Path, model: str, hint: str) -> Session:
        """The model `model` on the server (`path` is the local file it came from: unused, named in errors)."""
        try:
            ready = self.client.is_model_ready(model, client_timeout=self.timeout)
            config = self.client.get_model_config(model, as_json=True, client_timeout=self.timeout)["config"] \
                if ready else None
        except Exception as exc:  # noqa: BLE001
            if "unavailable" in _message(exc).lower() or "failed to connect" in _message(exc).lower():
                raise InferenceUnavailableError(self._unreachable(exc)) from None
            config, ready = None, False
        if not ready or config is None:
            raise InferenceUnavailableError(
                f"Triton at {self.address} serves no ready model {model!r} ({self._model_list()}); serve the "
                f"models with `posecast triton` or a repository from `python -m export triton DIR`")
        session = TritonSession(self, model, config)
        self.provider = self.provider or session.provider
        if model == DETECTOR:
            # Frames worth having in flight: what Triton runs at once, plus one being prepared or decoded here.
            # More would only wait in Triton's queue, aging, while the peers' latest-frame slots hold newer ones.
            self.concurrency = max(1, session.max_batch) * session.instances + 1
        return session

    def _model_list(self) -> str:
        try:
            index = self.client.get_model_repository_index(as_json=True, client_timeout=self.timeout)
        except Exception:  # noqa: BLE001 - only for the message
            return "its model list is unavailable"
        models = [f"{m['name']} ({m.get('state', '?').lower()})" for m in index.get("models", [])]
        return "models: " + (", ".join(models) if models else "none")

    def failed(self, exc: Exception) -> InferenceUnavailableError:
        message = f"Triton at {self.address} failed: {_message(exc)}"
        with self._lock:
            first, self._error = self._error is None, message
        if first:
            log.warning("%s (frames are retried until it is back)", message)
        return InferenceUnavailableError(message)

    def succeeded(self) -> None:
        if self._error is None:  # the usual case: no lock taken
            return
        with self._lock:
            was, self._error = self._error, None
        if was is not None:
            log.info("Triton at %s answers again", self.address)

    @property
    def error(self) -> str | None:
        """The last failure while it lasts; None when the last call went through."""
        return self._error

    def info(self) -> dict:
        return {"backend": self.name, "url": f"{TRITON_SCHEME}://{self.address}", "provider": self.provider}


def _message(exc: Exception) -> str:
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    return (text or type(exc).__name__).strip()


class TritonSession:
    """One model on a Triton server, called like an onnxruntime session (blocking; safe from many threads)."""

    def __init__(self, triton: Triton, model: str, config: dict) -> None:
        import tritonclient.grpc as grpcclient
        self._grpc = grpcclient
        self.triton = triton
        self.model = model
        self.max_batch = int(config.get("max_batch_size", 0))
        self.inputs = {i["name"]: i["data_type"].removeprefix("TYPE_") for i in config.get("input", [])}
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self._meta = {"posecast": params["posecast"]} if "posecast" in params else {}
        groups = config.get("instance_group", [])
        kinds = {g.get("kind", "KIND_AUTO") for g in groups}
        # Copies that execute at once (per GPU for GPU groups; counted once here: a lower bound).
        self.instances = sum(int(g.get("count", 1)) for g in groups) or 1
        # A model's instances on a GPU, or onnxruntime's CUDA provider asked for by the python backend model.
        cuda = "KIND_GPU" in kinds or params.get("device") == "cuda"
        self.provider = "CUDA" if cuda else "CPU"

    def get_providers(self) -> list[str]:
        return [CUDA if self.provider == "CUDA" else CPU]

    def get_modelmeta(self) -> _Meta:
        return _Meta(self._meta)

    def run(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(input_feed.values())))
        step = self.max_batch if self.max_batch > 0 else n
        if n <= step:
            return self._infer(output_names, input_feed)
        # More rows than the server takes at once (e.g. many people for the lifter): in chunks.
        parts = [self._infer(output_names, {k: v[i:i + step] for k, v in input_feed.items()})
                 for i in range(0, n, step)]
        return [np.concatenate(p) for p in zip(*parts)]

    def _infer(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        g = self._grpc
        inputs = []
        for name, value in input_feed.items():
            value = np.ascontiguousarray(value)
            tensor = g.InferInput(name, list(value.shape), self.inputs.get(name, "FP32"))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        outputs = [g.InferRequestedOutput(name) for name in output_names] if output_names else None
        try:
            result = self.triton.client.infer(self.model, inputs, outputs=outputs,
                                              client_timeout=self.triton.timeout)
        except Exception as exc:  # noqa: BLE001 - every gRPC failure: server gone, restarting, model unloaded
            raise self.triton.failed(exc) from None
        self.triton.succeeded()
        names = output_names or [o.name for o in result.get_response().outputs]
        return [result.as_numpy(name) for name in names]


def open_backend(target: str | Target, device: Device = "auto", threads: int | None = None) -> Backend:
    target = parse_target(target) if isinstance(target, str) else target
    if target.scheme == IN_PROCESS:
        return InProcess(device, threads)
    return Triton(target.address)


def bucket_widths(height: int, aspects: tuple[float, ...]) -> tuple[int, ...]:
    """The network widths (multiples of 8) of the bucket aspects at this input height."""
    return tuple(sorted({max(8, int(round(height * a / 8)) * 8) for a in aspects}))


class PaddedDetectorSession:
    """Pads the detector input on the right up to the next bucket width and crops the maps back.

    The letterboxed image is already black around the crop, so this only adds more black beyond it; the
    maps of the real columns change a little near the right edge (the network sees further zeros there).
    """

    def __init__(self, session: Session, widths: tuple[int, ...]) -> None:
        self.session = session
        self.widths = tuple(sorted(widths))
        self.get_providers = session.get_providers
        self.get_modelmeta = session.get_modelmeta

    def run(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        image = input_feed["image"]
        w = image.shape[-1]
        target = next((b for b in self.widths if b >= w), w)
        if target == w:
            return self.session.run(output_names, input_feed)
        padded = np.zeros(image.shape[:-1] + (target,), image.dtype)
        padded[..., :w] = image
        maps = self.session.run(output_names, {**input_feed, "image": padded})
        return [m[..., :w // 8] for m in maps]  # the maps are at stride 8
