"""python -m server as a user runs it: one-line errors, and a clean start and stop."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from posecast import paths
from tests.conftest import model_path


def run_server(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=paths.ROOT, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("option, build", [("--detector", "python -m export detector"),
                                           ("--lifter", "python -m export lifter")])
def test_missing_model_file_names_the_build_command(tmp_path, option, build):
    missing = tmp_path / "missing.onnx"
    if option == "--lifter":
        model_path(paths.DETECTOR_ONNX, "python -m export detector")  # the detector is opened first
    assert_one_line_error(run_server(option, str(missing)), str(missing), build)


def test_cuda_requested_without_cuda_is_a_clear_error():
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    assert_one_line_error(run_server("--device", "cuda"), "CUDA was requested", "--device cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use_is_a_clear_error():
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    model_path(paths.LIFTER_ONNX, "python -m export lifter")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(run_server("--port", str(port)), f"port {port}", "already in use", "--port")


def test_starts_serves_and_stops_on_sigterm():
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    model_path(paths.LIFTER_ONNX, "python -m export lifter")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--port", str(port), "--device", "cpu"],
                            cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the server did not come up within 60 s"
                time.sleep(0.2)
        assert health == {"status": "ok", "provider": "CPU", "peers": 0, "max_peers": 4,
                          "inference": {"backend": "onnxruntime", "provider": "CPU", "error": None}}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
