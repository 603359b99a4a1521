"""What the page tests point the browser at: the real server, or a plain file server for the page alone.

The file server is a test double for the states where no posecast server answers (camera refused,
server down): it serves web/ and refuses /ws, counting the page's attempts to connect.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from posecast import paths

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT_S = 90  # loading the models on a busy CI machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def real_server(log_dir: Path, port: int | None = None, args: tuple[str, ...] = ()) -> Iterator[RunningServer]:
    """`python -m server` on port (default: a free one), up once /healthz answers; stopped afterwards.
    args: more command-line options for the server."""
    port = port or free_port()
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "server", "--port", str(port), *args],
                                   cwd=paths.ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = RunningServer(f"http://127.0.0.1:{port}/", port, process, log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(server.url + "healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server did not answer in {SERVER_START_TIMEOUT_S} s:\n"
                                         f"{server.log_tail()}") from None
                time.sleep(0.25)
        yield server
    finally:
        server.stop()
        log.info("server log (tail):\n%s", server.log_tail())


@dataclass
class StaticSite:
    url: str
    websocket_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(SimpleHTTPRequestHandler):
    site: StaticSite

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] == "/ws":
            with self.site.lock:
                self.site.websocket_attempts += 1
            self.send_error(404, "no posecast server here")
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        log.debug("static site: " + format, *args)


@contextmanager
def static_site() -> Iterator[StaticSite]:
    """web/ over plain HTTP on a free port, with no websocket behind /ws."""
    site = StaticSite("")
    handler = partial(type("Handler", (_Handler,), {"site": site}), directory=str(paths.WEB))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    site.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()


def blank_video(folder: Path, width: int = 640, height: int = 480, frames: int = 30) -> Path:
    """A grey .y4m clip with nobody in it, for Chromium's fake camera."""
    path = folder / "empty_room.y4m"
    luma = np.full(width * height, 128, np.uint8).tobytes()
    chroma = np.full(width * height // 2, 128, np.uint8).tobytes()  # 4:2:0, both planes
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + luma + chroma)
    return path
