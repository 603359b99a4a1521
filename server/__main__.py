"""python -m server: the live server (see docs/server.md)."""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from posecast.inference import InferenceSetupError, InferenceUnavailableError
from posecast.logs import setup_logging
from posecast.runtime import DeviceUnavailableError, ModelNotFoundError
from posecast.smoothing import OneEuroOptions

from .app import PoseServer, ServerOptions
from posecast.pipeline import PipelineOptions, PoseEstimator

log = logging.getLogger("server")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d, s = ServerOptions(), OneEuroOptions()
    p = argparse.ArgumentParser(prog="python -m server", description="posecast live server: webcam frames in over "
                                "WebRTC, 3D poses out over a websocket, the page from web/.")
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}; 0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the models run: auto = CUDA when really active, else the CPU (default auto)")
    p.add_argument("--detector", type=Path, default=PipelineOptions.detector_path, metavar="ONNX",
                   help="2D detector model (default weights/openpose.onnx)")
    p.add_argument("--lifter", type=Path, default=PipelineOptions.lifter_path, metavar="ONNX",
                   help="2D-to-3D lifter model (default weights/lifter.onnx)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: half the cores)")
    p.add_argument("--inference", default=PipelineOptions.inference, metavar="BACKEND",
                   help="where the networks run: onnxruntime (in this process, default) or triton://HOST:PORT "
                        "(a Triton server's gRPC port, e.g. from `posecast triton`; docs/scaling.md)")
    p.add_argument("--detector-aspects", type=_aspects, default=None, metavar="A,B,...",
                   help="detector input widths as aspects of its height, inputs padded up to the next one so "
                        "streams batch on Triton; 'none' = the width follows the crop (default: none in process, "
                        "0.75,1,1.333,2 on Triton)")
    p.add_argument("--input-height", type=int, default=PipelineOptions.input_height,
                   help="detector input height in pixels: smaller is faster, larger finds smaller people "
                        f"(default {PipelineOptions.input_height})")
    p.add_argument("--no-smoothing", dest="smoothing", action="store_false", help="turn the One-Euro filter off")
    p.add_argument("--min-cutoff", type=float, default=s.min_cutoff,
                   help=f"One-Euro cutoff at rest, Hz: lower = steadier (default {s.min_cutoff})")
    p.add_argument("--beta", type=float, default=s.beta,
                   help=f"One-Euro speed coefficient per mm/s: higher = less lag when moving (default {s.beta})")
    p.add_argument("--d-cutoff", type=float, default=s.d_cutoff,
                   help=f"One-Euro cutoff of the speed estimate, Hz (default {s.d_cutoff})")
    p.add_argument("--max-peers", type=int, default=d.max_peers,
                   help=f"most clients served at once (default {d.max_peers})")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="STUN/TURN server, e.g. stun:stun.l.google.com:19302 (repeatable; default none, "
                        "enough on one machine or a LAN)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return p.parse_args(argv)


def _aspects(text: str) -> tuple[float, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'none' or aspects like 0.75,1,1.333,2, got {text!r}") from None
    if any(not 0.5 <= v <= 2.0 for v in values):
        raise argparse.ArgumentTypeError("aspects must lie in [0.5, 2] (the detector's width range)")
    return values


class CannotListen(Exception):
    pass


async def serve_until_stopped(server: PoseServer) -> None:
    try:
        await server.start()
    except OSError as exc:
        o = server.options
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(f"port {o.port} on {o.host} is already in use (another server running?); "
                               "choose one with --port") from None
        raise CannotListen(f"cannot listen on {o.host}:{o.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    if logging.getLogger().level > logging.DEBUG:  # one INFO line per HTTP request otherwise
        logging.getLogger("websockets").setLevel(logging.WARNING)
    smoothing = OneEuroOptions(args.min_cutoff, args.beta, args.d_cutoff) if args.smoothing else None
    try:
        estimator = PoseEstimator(PipelineOptions(
            detector_path=args.detector, lifter_path=args.lifter, device=args.device, threads=args.threads,
            input_height=args.input_height, smoothing=smoothing, inference=args.inference,
            detector_aspects=args.detector_aspects))
    except (ModelNotFoundError, DeviceUnavailableError, InferenceSetupError, InferenceUnavailableError) as exc:
        log.error("%s", exc)
        return 1
    options = ServerOptions(host=args.host, port=args.port, max_peers=args.max_peers,
                            ice_servers=tuple(args.ice_server))
    try:
        asyncio.run(serve_until_stopped(PoseServer(options, estimator)))
    except CannotListen as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
