"""The server: one port for the page's files, /healthz and the websocket at /ws.

Per websocket: a hello, then the page's WebRTC offer is answered (one peer connection per
socket; a new offer replaces it), then pose messages flow until either side goes away.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from posecast import frametag, paths
from posecast.skeleton import skeleton_info

from . import jitter, loopback
from .outbox import Outbox
from .peer import Peer, now_ms
from posecast.pipeline import Estimator
from .static import StaticFiles, json_response, response, text_response

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
TOO_MANY_PEERS = 1013  # "try again later"


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_message_bytes: int = 256 * 1024
    max_sdp_bytes: int = 64 * 1024
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; none needed on a LAN or one machine
    web_root: Path = paths.WEB


class ClientError(Exception):
    """A bad message from the page: answered with an error message, the connection stays up."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PoseServer:
    def __init__(self, options: ServerOptions, estimator: Estimator) -> None:
        self.options = options
        self.estimator = estimator
        self.static = StaticFiles(options.web_root)
        self.sessions: set[Session] = set()
        # One inference worker: peers take turns. Two workers on 2 cores gave 4 clients 2.7 instead
        # of 2.5 fps each but p50 latency 350 instead of 210 ms: parallel runs fight over the cores.
        # A remote backend (Triton) runs the networks elsewhere: several peers' frames are in flight at once,
        # as many as it can batch and run (posecast/inference.py, Triton.concurrency).
        self.backend = getattr(estimator, "backend", None)  # test doubles have none
        workers = min(options.max_peers, self.backend.concurrency) if self.backend else 1
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="inference")
        self._server: Server | None = None
        loopback.install()
        jitter.install()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        o = self.options
        # websockets itself closes (1009) beyond 4x our limit; up to that we answer `too_large` and carry on.
        self._server = await serve(self._handle, o.host, o.port, process_request=self._http,
                                   max_size=4 * o.max_message_bytes, max_queue=16)
        log.info("serving http://%s:%d (websocket at /ws), provider %s, three.js %s",
                 o.host, self.port, self.estimator.provider, "local" if self.static.local_three else "from CDN")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*(s.close() for s in list(self.sessions)), return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    def inference(self) -> dict:
        """Which backend and provider serve the models, and (remote) what fails while it does not answer;
        {} for an estimator without one (the test doubles)."""
        return {**self.backend.info(), "error": self.backend.error} if self.backend is not None else {}

    def health(self) -> dict:
        inference = self.inference()
        health = {"status": "inference_unavailable" if inference.get("error") else "ok",
                  "provider": self.estimator.provider, "peers": len(self.sessions),
                  "max_peers": self.options.max_peers}
        return {**health, "inference": inference} if inference else health

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None  # go on with the websocket handshake
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return text_response(HTTPStatus.NOT_FOUND, "the websocket is at /ws")
        if path == "/healthz":
            health = self.health()  # 503 while the inference server is down: a load balancer skips us
            if health["status"] != "ok":
                return response(HTTPStatus.SERVICE_UNAVAILABLE, json.dumps(health).encode(), "application/json")
            return json_response(health)
        return await asyncio.to_thread(self.static.get, request.path)

    def hello(self) -> dict:
        o = self.options
        inference = self.inference()
        return {"type": "hello", "version": PROTOCOL_VERSION, "skeleton": skeleton_info(),
                "provider": self.estimator.provider, **({"inference": inference} if inference else {}),
                "models": self.estimator.models,
                "frametag": {"bits": frametag.BITS, "cells": frametag.CELLS,
                             "cells_per_width": frametag.CELLS_PER_WIDTH},
                "limits": {"max_message_bytes": o.max_message_bytes, "max_sdp_bytes": o.max_sdp_bytes,
                           "max_peers": o.max_peers},
                "smoothing": self.estimator.smoothing}

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self.sessions) >= self.options.max_peers:
            log.warning("refused a client: %d peers already connected", len(self.sessions))
            await ws.send(json.dumps({"type": "error", "code": "too_many_peers",
                                      "message": f"the server is full ({self.options.max_peers} clients); "
                                                 "try again later"}))
            await ws.close(TOO_MANY_PEERS, "too many peers")
            return
        session = Session(self, ws)
        self.sessions.add(session)
        log.info("client connected from %s (%d/%d)", ws.remote_address, len(self.sessions), self.options.max_peers)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            await session.close()
            log.info("client gone (%d left)", len(self.sessions))


class Session:
    """One websocket and (after its offer) one peer connection."""

    def __init__(self, server: PoseServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.outbox = Outbox(ws)
        self.peer: Peer | None = None

    async def run(self) -> None:
        writer = asyncio.create_task(self.outbox.run())
        self.outbox.send(self.server.hello())
        try:
            async for message in self.ws:
                try:
                    await self._on_message(message)
                except ClientError as exc:
                    log.info("client error %s: %s", exc.code, exc)
                    self.outbox.send({"type": "error", "code": exc.code, "message": str(exc)})
                except Exception as exc:  # noqa: BLE001 - report it, keep the connection
                    log.exception("handling a message failed")
                    self.outbox.send({"type": "error", "code": "internal", "message": f"server error: {exc}"})
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()

    async def _on_message(self, message: str | bytes) -> None:
        limits = self.server.options
        if isinstance(message, bytes):
            raise ClientError("bad_message", "binary messages are not supported; send JSON text")
        if len(message) > limits.max_message_bytes:
            raise ClientError("too_large", f"message of {len(message)} bytes exceeds the limit of "
                                           f"{limits.max_message_bytes}")
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ClientError("bad_json", f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ClientError("bad_message", "a message must be a JSON object with a string 'type'")
        kind = data["type"]
        if kind == "ping":
            self.outbox.send({"type": "pong", "t": data.get("t"), "server_ts": round(now_ms(), 1)})
        elif kind == "offer":
            await self._on_offer(data.get("sdp"))
        else:
            raise ClientError("bad_message", f"unknown message type {kind!r} (expected 'offer' or 'ping')")

    async def _on_offer(self, sdp: object) -> None:
        limit = self.server.options.max_sdp_bytes
        if not isinstance(sdp, str) or not sdp.strip():
            raise ClientError("bad_offer", "an offer needs an 'sdp' string")
        if len(sdp) > limit:
            raise ClientError("too_large", f"SDP of {len(sdp)} bytes exceeds the limit of {limit}")
        if "m=video" not in sdp:
            raise ClientError("bad_offer", "the offer has no video track")
        if self.peer is not None:  # a new offer starts over
            await self.peer.close()
        server = self.server
        self.peer = Peer(server.estimator.new_stream(), server.run_blocking, self.outbox.send_pose,
                         server.estimator.provider, server.options.ice_servers, on_error=self.outbox.send)
        try:
            answer = await self.peer.answer(sdp)
        except Exception as exc:  # noqa: BLE001 - aiortc raises many kinds on bad SDP
            await self.peer.close()
            self.peer = None
            raise ClientError("bad_offer", f"could not use the offer: {str(exc) or type(exc).__name__}") from None
        self.outbox.send({"type": "answer", "sdp": answer})

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()
            self.peer = None
