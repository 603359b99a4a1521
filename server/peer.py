"""One browser's WebRTC connection and its frame pump.

aiortc's remote track queues every decoded frame without limit; if we processed them in
order, latency would grow for as long as inference is slower than the camera. So one
reader task drains `track.recv()` into a single latest-frame slot (a frame still waiting
when a newer one arrives is dropped and counted), and one pump task has the estimator run
off the event loop on whatever is in the slot when a worker is free, and emits one pose
message per processed frame.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from posecast import frametag, records
from posecast.inference import InferenceUnavailableError
from posecast.pipeline import FrameProcessor

log = logging.getLogger(__name__)

# A pose message's own fields; the rest are the frame fields a line of a recording has too (server/recording.py).
LIVE_FIELDS = frozenset({"type", "frame", "tagged", "pts", "received_ts", "server_ts", "timings", "dropped",
                         "provider"})

# Runs a blocking function off the event loop (the server's shared inference executor).
RunBlocking = Callable[..., Awaitable[Any]]
INFERENCE_RETRY_S = 0.5  # while the inference server is down: one frame tried every so often


def now_ms() -> float:
    return time.time() * 1e3


class Peer:
    def __init__(self, processor: FrameProcessor, run_blocking: RunBlocking, emit: Callable[[str], None],
                 provider: str, ice_servers: tuple[str, ...] = (),
                 on_error: Callable[[dict], None] | None = None) -> None:
        self.processor = processor
        self.on_error = on_error  # takes an error message for the page (docs/protocol.md)
        self._unavailable = False  # the inference server failed the last frame
        self.run_blocking = run_blocking
        self.emit = emit  # takes a pose message, already JSON-encoded
        self.provider = provider
        self.received = self.processed = self.dropped = 0
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in ice_servers]))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._slot: tuple[av.VideoFrame, float] | None = None  # written by the reader, taken by a worker
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._ended = False
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def answer(self, offer_sdp: str) -> str:
        """Apply the browser's offer; returns the answer SDP once ICE gathering is complete."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # waits for gathering
        return self.pc.localDescription.sdp

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._spawn(self._read(track))
            self._spawn(self._pump())
        else:  # not expected from the page; drain it so its queue cannot grow
            self._spawn(self._discard(track))

    async def _on_state(self) -> None:
        log.info("peer connection %s", self.pc.connectionState)
        if self.pc.connectionState == "failed":
            await self.close()

    async def _discard(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            pass

    async def _read(self, track: MediaStreamTrack) -> None:
        """Keep only the newest frame: the one still in the slot is stale."""
        try:
            while True:
                frame = await track.recv()
                self.received += 1
                with self._lock:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (frame, now_ms())
                self._ready.set()
        except MediaStreamError:
            pass
        finally:
            self._ended = True
            self._ready.set()

    async def _pump(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._slot is None:
                if self._ended:
                    return
                continue
            try:
                message = await self.run_blocking(self._process_latest)
            except InferenceUnavailableError as exc:  # logged by the backend; the page is told once per outage
                if not self._unavailable and self.on_error is not None:
                    self.on_error({"type": "error", "code": exc.code, "message": str(exc)})
                self._unavailable = True
                await asyncio.sleep(INFERENCE_RETRY_S)  # then the newest frame is tried
                continue
            except Exception:  # noqa: BLE001 - one bad frame must not end the stream
                log.exception("processing a frame failed")
                continue
            self._unavailable = False
            if message is not None:
                self.processed += 1
                self.emit(message)

    def _process_latest(self) -> str | None:
        """In the executor. The frame is taken only now, when a worker is free: with several peers
        queued for the one worker, a frame picked at submission would have aged while waiting."""
        with self._lock:
            taken, self._slot = self._slot, None
        return None if taken is None else self._process(*taken)

    def _process(self, frame: av.VideoFrame, received_ts: float) -> str:
        """Convert, read the frame tag, estimate, encode the message."""
        t0 = time.perf_counter()
        bgr = frame.to_ndarray(format="bgr24")
        decode_ms = (time.perf_counter() - t0) * 1e3
        tag = frametag.read(bgr[: frametag.cell_size(bgr.shape[1])])
        pts = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        result = self.processor(bgr, pts if pts is not None else time.monotonic())
        timings = {"decode": decode_ms, **result.timings, "total": (time.perf_counter() - t0) * 1e3}
        live = {
            "type": "pose",
            "frame": tag if tag is not None else self.processed,
            "tagged": tag is not None,
            "pts": pts,
            "received_ts": round(received_ts, 1),
            "server_ts": round(now_ms(), 1),
            "timings": {k: round(v, 2) for k, v in timings.items()},
            "dropped": self.dropped,
            "provider": self.provider,
        }
        assert live.keys() == LIVE_FIELDS
        # Then the same frame fields (and people) as a line of a recording: one schema (posecast/records.py).
        frame = records.frame_fields((bgr.shape[1], bgr.shape[0]), result.crop, result.people, result.scene)
        return records.dumps({**live, **frame})

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
        log.info("peer closed: %d frames received, %d processed, %d dropped as stale",
                 self.received, self.processed, self.dropped)

