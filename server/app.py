"""The server: one port for the page's files, /healthz and the websocket at /ws.

Per websocket: a hello, then the page's WebRTC offer is answered (one peer connection per
socket; a new offer replaces it), then pose messages flow until either side goes away.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from posecast import frametag, paths
from posecast.skeleton import skeleton_info

from . import jitter, loopback
from . import sdp as offers
from .outbox import Outbox
from .peer import Peer, now_ms
from posecast.pipeline import Estimator, PipelineOptions, RunningMode
from posecast.pipeline_args import describe
from posecast.records import header_record
from posecast.root import FOV_RANGE_DEG, HEIGHT_RANGE_CM, check_fov, check_height
from .recording import MIME, Recorder, RecordingLimits, RecordingRefused, RecordingStore
from .static import (ALLOWED_METHODS, StaticFiles, json_response, method_not_allowed, response, text_response,
                     without_body)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 3
RECORDINGS = "/recordings/"
TOO_MANY_PEERS = 1013  # "try again later"


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_message_bytes: int = 256 * 1024
    max_sdp_bytes: int = 64 * 1024
    max_unread_replies: int = 64  # control replies (pong, error, ...) a client may leave unread,
    max_unread_bytes: int = 1 << 20  # and their bytes; past either its connection is closed (1008)
    answer_timeout_s: float = 15.0
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; none needed on a LAN or one machine
    web_root: Path = paths.WEB
    recording: RecordingLimits = RecordingLimits()


def client_time(t: object) -> float | int | None:
    """The `t` of a ping as the pong echoes it: a plain number (the client's clock), anything else None."""
    if isinstance(t, bool) or not isinstance(t, int | float):
        return None
    try:
        return t if math.isfinite(t) and abs(t) < 1e16 else None
    except OverflowError:  # an int too big for a float
        return None


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
        self.recordings = RecordingStore(options.recording)
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
        # max_queue: messages read but not yet handled (while an offer is answered): 4 x 1 MiB per client at most.
        self._server = await serve(self._handle, o.host, o.port, process_request=self._http,
                                   max_size=4 * o.max_message_bytes, max_queue=4)
        log.info("serving http://%s:%d (websocket at /ws), provider %s, three.js %s",
                 o.host, self.port, self.estimator.provider, "local" if self.static.local_three else "from CDN")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*(s.close() for s in list(self.sessions)), return_exceptions=True)
        await self.recordings.close()
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
        if request.method not in ALLOWED_METHODS:
            return method_not_allowed(request.method)
        response = await self._get(request)
        return without_body(response) if response is not None and request.method == "HEAD" else response

    async def _get(self, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws" and request.method == "GET":
            return None  # go on with the websocket handshake
        if request.headers.get("Upgrade", "").lower() == "websocket" or path == "/ws":
            return text_response(HTTPStatus.NOT_FOUND, "the websocket is at /ws")
        if path == "/healthz":
            health = self.health()  # 503 while the inference server is down: a load balancer skips us
            if health["status"] != "ok":
                return response(HTTPStatus.SERVICE_UNAVAILABLE, json.dumps(health).encode(), "application/json")
            return json_response(health)
        if path.startswith(RECORDINGS):
            return await asyncio.to_thread(self._download, path[len(RECORDINGS):])
        return await asyncio.to_thread(self.static.get, request.path)

    def _download(self, name: str) -> Response:
        """/recordings/TOKEN.FORMAT: the token is a key in a dict, never part of a path (blocking read)."""
        token, _, fmt = name.rpartition(".")
        found = self.recordings.get(token, fmt)
        if found is None:
            return text_response(HTTPStatus.NOT_FOUND, "no such recording: it expired, or the page that made it "
                                                       "has closed")
        recording, file = found
        try:
            body = file.read_bytes()
        except OSError:  # deleted meanwhile
            return text_response(HTTPStatus.NOT_FOUND, "no such recording: it was just deleted")
        return response(HTTPStatus.OK, body, MIME[fmt], cache="no-store", extra=(
            ("Content-Disposition", f'attachment; filename="{recording.name}.{fmt}"'),))

    def recording_header(self) -> dict:
        """A recording's first line: as `posecast process` writes it (posecast/records.py)."""
        options = getattr(self.estimator, "options", None)
        described = describe(options) if isinstance(options, PipelineOptions) else {}
        return header_record(self.estimator.models, {**described, "mode": RunningMode.LIVE_STREAM.value},
                             {"kind": "live", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def hello(self) -> dict:
        o = self.options
        inference = self.inference()
        return {"type": "hello", "version": PROTOCOL_VERSION, "skeleton": skeleton_info(),
                "provider": self.estimator.provider, **({"inference": inference} if inference else {}),
                "models": self.estimator.models,
                "frametag": {"bits": frametag.BITS, "cells": frametag.CELLS,
                             "cells_per_width": frametag.CELLS_PER_WIDTH},
                "limits": {"max_message_bytes": o.max_message_bytes, "max_sdp_bytes": o.max_sdp_bytes,
                           "max_peers": o.max_peers, "max_unread_replies": o.max_unread_replies,
                           "max_unread_bytes": o.max_unread_bytes,
                           "max_recording_seconds": o.recording.max_seconds,
                           "max_recording_bytes": o.recording.max_bytes, "recording_kept_s": o.recording.keep_s},
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
        self.outbox = Outbox(ws, server.options.max_unread_replies, server.options.max_unread_bytes)
        self.peer: Peer | None = None
        self.recorder = Recorder(server.recordings, self.outbox, server.recording_header)
        self.fov: float | None = None  # the page's field of view, once it sent one
        self.height: float | None = None  # the page's height of the people in view (None: the server's)

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
                    self.outbox.send({"type": "error", "code": "internal",
                                      "message": f"server error ({type(exc).__name__}, logged on the server)"})
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
        except (ValueError, RecursionError):  # a number of over 4300 digits, nesting too deep for the parser
            raise ClientError("bad_json", "JSON too deeply nested or with a number too long") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ClientError("bad_message", "a message must be a JSON object with a string 'type'")
        kind = data["type"]
        if kind == "ping":
            self.outbox.send({"type": "pong", "t": client_time(data.get("t")), "server_ts": round(now_ms(), 1)})
        elif kind == "offer":
            await self._on_offer(data.get("sdp"))
        elif kind == "record":
            self._on_record(data.get("action"))
        elif kind == "camera":
            await self._on_camera(data.get("fov"))
        elif kind == "person":
            await self._on_person(data.get("height"))
        else:
            raise ClientError("bad_message", f"unknown message type {offers.quote(kind)} (expected 'offer', "
                                             "'ping', 'record', 'camera' or 'person')")

    async def _on_camera(self, fov: object) -> None:
        try:
            self.fov = check_fov(fov)
        except ValueError:  # the client's value is not echoed back
            lo, hi = FOV_RANGE_DEG
            raise ClientError("bad_message", f"camera: 'fov' must be a number of degrees in [{lo:g}, {hi:g}]") from None
        if self.peer is not None:  # on the inference thread: never while a frame is being placed
            await self.server.run_blocking(self.peer.processor.set_fov, self.fov)

    async def _on_person(self, height: object) -> None:
        try:
            self.height = None if height is None else check_height(height)
        except ValueError:
            lo, hi = HEIGHT_RANGE_CM
            raise ClientError("bad_message", f"person: 'height' must be null or a number of centimetres in "
                                             f"[{lo:g}, {hi:g}]") from None
        if self.peer is not None:
            await self.server.run_blocking(self.peer.processor.set_height, self.height)

    def _on_record(self, action: object) -> None:
        try:
            if action == "start":
                self.recorder.start()
            elif action == "stop":
                self.recorder.stop()
            else:
                raise RecordingRefused("a record message needs 'action': 'start' or 'stop'")
        except RecordingRefused as exc:
            raise ClientError("bad_record", str(exc)) from None

    async def _on_offer(self, sdp: object) -> None:
        limit = self.server.options.max_sdp_bytes
        if not isinstance(sdp, str) or not sdp.strip():
            raise ClientError("bad_offer", "an offer needs an 'sdp' string")
        if len(sdp) > limit:
            raise ClientError("too_large", f"SDP of {len(sdp)} bytes exceeds the limit of {limit}")
        try:
            offers.check_offer(sdp)
        except offers.OfferError as exc:
            raise ClientError("bad_offer", str(exc)) from None
        if self.peer is not None:  # a new offer starts over
            await self.peer.close()
        server = self.server
        processor = server.estimator.new_stream()
        if self.fov is not None:
            processor.set_fov(self.fov)
        if self.height is not None:
            processor.set_height(self.height)
        self.peer = Peer(processor, server.run_blocking, self.outbox.send_pose,
                         server.estimator.provider, server.options.ice_servers, on_error=self.outbox.send)
        try:
            answer = await asyncio.wait_for(self.peer.answer(sdp), server.options.answer_timeout_s)
        except Exception as exc:  # noqa: BLE001 - aiortc raises many kinds on SDP it cannot use
            # Its texts are about its internals ("'NoneType' object has no attribute ..."): log, don't send.
            log.info("aiortc could not use an offer: %s: %s", type(exc).__name__, exc)
            await self.peer.close()
            self.peer = None
            reason = ("it was not answered within {:g} s".format(server.options.answer_timeout_s)
                      if isinstance(exc, asyncio.TimeoutError) else "WebRTC could not use its media description")
            raise ClientError("bad_offer", f"could not use the offer: {reason}") from None
        self.outbox.send({"type": "answer", "sdp": answer})

    async def close(self) -> None:
        self.recorder.close()
        if self.peer is not None:
            await self.peer.close()
            self.peer = None
