"""python -m server: the live server (see docs/server.md)."""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Sequence

from posecast.logs import setup_logging
from posecast.pipeline_args import CannotStart, add_pipeline_arguments, open_estimator

from .app import PoseServer, ServerOptions

log = logging.getLogger("server")
DESCRIPTION = ("posecast live server: webcam frames in over WebRTC, 3D poses out over a websocket, "
               "the page from web/.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The server's options (shared by `python -m server` and `posecast serve`)."""
    d = ServerOptions()
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}; 0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    add_pipeline_arguments(p)
    p.add_argument("--max-peers", type=int, default=d.max_peers,
                   help=f"most clients served at once (default {d.max_peers})")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="STUN/TURN server, e.g. stun:stun.l.google.com:19302 (repeatable; default none, "
                        "enough on one machine or a LAN)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m server", description=DESCRIPTION)
    add_arguments(p)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return p.parse_args(argv)


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


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; logging is already set up."""
    if logging.getLogger().level > logging.DEBUG:  # one INFO line per HTTP request otherwise
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        estimator = open_estimator(args)
    except CannotStart as exc:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
