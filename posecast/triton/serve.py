"""`posecast triton`: a local Triton Inference Server serving both networks with dynamic batching.

The server binary is the one the `nvidia-pytriton` wheel ships (Triton 2.51, `pytriton/tritonserver/`). That
build has only Triton's Python backend, no ONNX Runtime backend, so each model is posecast/triton/model.py
running the ONNX file with this environment's onnxruntime (CPU, or CUDA with onnxruntime-gpu) inside the
backend's stub process; Triton's dynamic batcher still forms the batches. For the official server and its
ONNX Runtime backend, write a repository with `python -m export triton DIR` instead.

PyTriton's own Python API is not used: it pins NumPy < 2. Only its files are: the binary, the libraries
beside it, the Python backend and the stub built for this Python version.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from posecast.inference import DEFAULT_GRPC_PORT, DETECTOR, LIFTER
from posecast.runtime import DeviceUnavailableError, create_session, provider_name

from . import repository
from .repository import RepositoryOptions

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
# On the CPU a batch of frames costs more per frame than frames one by one (caches; and on a busy machine a
# long run gets only its fair share of the cores): measured in docs/scaling.md. Batching pays on a GPU.
CPU_MAX_BATCH = 1


class TritonNotInstalledError(RuntimeError):
    pass


def distribution() -> Path:
    """pytriton/tritonserver inside the installed nvidia-pytriton (its package is not imported)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalledError("the Triton server binary comes with nvidia-pytriton, which is not installed: "
                                      "pip install --no-deps nvidia-pytriton==0.7.0 (see docs/scaling.md)")
    root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise TritonNotInstalledError(f"no Triton server binary in {root}")
    return root


def resolve_device(device: str, detector_path: Path) -> str:
    """'auto' -> 'cuda' when onnxruntime really runs the detector on CUDA here, else 'cpu'."""
    if device != "auto":
        if device == "cuda":  # fail now with the in-process message rather than in the model's log
            create_session(detector_path, "cuda", threads=1, hint="python -m export detector")
        return device
    return "cuda" if provider_name(create_session(detector_path, "auto", threads=1)) == "CUDA" else "cpu"


class LocalTriton:
    """The bundled Triton server in a child process, bound to 127.0.0.1, with its repository in a temp dir."""

    def __init__(self, options: RepositoryOptions = RepositoryOptions(), grpc_port: int = DEFAULT_GRPC_PORT,
                 http_port: int = 8000, metrics_port: int = 8002, host: str = "127.0.0.1",
                 log_file: Path | None = None) -> None:
        self.options = options
        self.grpc_port, self.http_port, self.metrics_port = grpc_port, http_port, metrics_port
        self.host = host
        self.log_file = log_file
        self.process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"triton://{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def _prepare(self, work: Path) -> tuple[list[str], dict[str, str]]:
        dist = distribution()
        stub = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" \
            / "triton_python_backend_stub"
        if not stub.is_file():
            raise TritonNotInstalledError(f"nvidia-pytriton has no Python backend stub for Python "
                                          f"{sys.version_info[0]}.{sys.version_info[1]}")
        # Triton looks for the stub beside the backend library: a backend directory of links.
        backend = work / "backends" / "python"
        backend.mkdir(parents=True)
        for source in (*(dist / "backends" / "python").glob("*.*"), stub):
            if source.is_file():
                (backend / source.name).symlink_to(source)
        repo = work / "models"
        repository.write(repo, "python", self.options)
        cmd = [str(dist / "bin" / "tritonserver"), f"--model-repository={repo}",
               f"--backend-directory={work / 'backends'}", f"--cache-directory={dist / 'caches'}",
               f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
               f"--http-address={self.host}", f"--http-port={self.http_port}",
               f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
               f"--allow-gpu-metrics={'true' if self.options.device == 'cuda' else 'false'}",
               "--exit-timeout-secs=5", "--disable-auto-complete-config"]
        env = dict(os.environ)
        # The binary's own libraries, and this interpreter's libpython (the stub embeds Python)...
        libs = [str(dist.parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = ":".join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        # ...and the stub finds its Python (this venv, with onnxruntime and numpy) as `python3` on PATH.
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return cmd, env

    def _pick_free_ports(self) -> None:
        """Port 0 = any free one (kept for restarts). Triton cannot report what it bound, so we choose."""
        socks = []
        for attr in ("grpc_port", "http_port", "metrics_port"):
            if getattr(self, attr) == 0:
                s = socket.socket()
                s.bind((self.host, 0))
                socks.append(s)
                setattr(self, attr, s.getsockname()[1])
        for s in socks:
            s.close()

    def start(self, timeout: float = START_TIMEOUT_S) -> LocalTriton:
        self._pick_free_ports()
        self._workdir = tempfile.TemporaryDirectory(prefix="posecast-triton-")
        cmd, env = self._prepare(Path(self._workdir.name))
        # Triton's log: the given file, else one in the work dir (read back when it fails to start).
        self._log_path = self.log_file or Path(self._workdir.name) / "tritonserver.log"
        self._log = open(self._log_path, "ab")
        log.info("starting Triton: gRPC %s:%d, HTTP %d, metrics %d, %s, max batch %d, queue delay %d us",
                 self.host, self.grpc_port, self.http_port, self.metrics_port, self.options.device,
                 self.options.max_batch_size, self.options.queue_delay_us)
        self.process = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                reason = self._log_errors()
                self.stop()
                raise RuntimeError(f"Triton exited with code {code} while starting: {reason}")
            try:
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        log.info("Triton ready at %s (models %s, %s)", self.url, DETECTOR, LIFTER)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"Triton did not become ready within {timeout:.0f} s")

    def _log_errors(self, lines: int = 1) -> str:
        """The last error lines of Triton's log (the reason it stopped)."""
        self._log.flush()
        text = self._log_path.read_text(errors="replace").splitlines()
        errors = [line.strip() for line in text if line.startswith("E") or line.startswith("error")]
        return " | ".join(errors[-lines:]) or "no error in its log"

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as a crash would be: for tests."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group: Triton and its backend stubs
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = RepositoryOptions()
    p.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="gRPC port (default 8001): the "
                   "pose server's --inference triton://127.0.0.1:PORT")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where onnxruntime runs the models: auto = CUDA when really active (default auto)")
    p.add_argument("--max-batch-size", type=int, default=None,
                   help=f"most detector frames in one batch (default: {CPU_MAX_BATCH} on the CPU, where a batch "
                        f"costs more per frame than single frames, {d.max_batch_size} on CUDA; the lifter takes "
                        f"{repository.MAX_PEOPLE}x as many rows)")
    p.add_argument("--queue-delay-us", type=int, default=d.queue_delay_us,
                   help=f"how long a detector request may wait for others to join its batch, microseconds "
                        f"(default {d.queue_delay_us}; the lifter never waits)")
    p.add_argument("--instances", type=int, default=d.instances, help="copies of each model (default 1)")
    p.add_argument("--threads", type=int, default=d.threads, help="onnxruntime threads per copy (default 1)")
    p.add_argument("--detector", type=Path, default=d.detector_path, metavar="ONNX")
    p.add_argument("--lifter", type=Path, default=d.lifter_path, metavar="ONNX")
    p.add_argument("--log-file", type=Path, default=None, help="Triton's own log (default: discarded)")


def options_from(args: argparse.Namespace) -> RepositoryOptions:
    device = resolve_device(args.device, args.detector)
    max_batch = args.max_batch_size or (CPU_MAX_BATCH if device == "cpu" else RepositoryOptions.max_batch_size)
    return RepositoryOptions(detector_path=args.detector, lifter_path=args.lifter, max_batch_size=max_batch,
                             queue_delay_us=args.queue_delay_us, instances=args.instances, threads=args.threads,
                             device=device)


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from(args)
        triton = LocalTriton(options, args.grpc_port, args.http_port, args.metrics_port, args.host,
                             args.log_file).start()
    except (TritonNotInstalledError, DeviceUnavailableError, FileNotFoundError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving %s and %s on %s: run the pose server with --inference %s; metrics at %s",
             DETECTOR, LIFTER, options.device, triton.url, triton.metrics_url)
    try:
        while not stop.is_set():
            if triton.process.poll() is not None:
                log.error("Triton exited with code %s", triton.process.returncode)
                return 1
            stop.wait(1.0)
    finally:
        triton.stop()
    return 0

