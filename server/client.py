"""A Python client for the server: video out over WebRTC with frame tags, pose messages and latency back.

It does what the page does (websocket signalling, one video track, frame ids drawn into
the pixels, latency = pose arrival - draw time) and drives the latency benchmark and the
tests; it also exercises a server without a browser.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import websockets
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from posecast import frametag

from . import loopback

log = logging.getLogger(__name__)
CLOCK = Fraction(1, 90000)  # the RTP video clock


def clip_frames(path: Path, size: tuple[int, int] = (640, 480), loop: bool = True) -> Iterator[np.ndarray]:
    """BGR frames of a video file, resized to size (w, h), looped forever when loop is set."""
    while True:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="bgr24")
                yield cv2.resize(image, size, interpolation=cv2.INTER_AREA) if image.shape[1::-1] != size else image
        if not loop:
            return


def drawn_frames(size: tuple[int, int] = (640, 480)) -> Iterator[np.ndarray]:
    """Synthetic frames (a gradient and a moving box) for when no footage is at hand."""
    w, h = size
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(60, 160, h, dtype=np.uint8)[:, None]
    i = 0
    while True:
        image = base.copy()
        x = (i * 7) % max(1, w - w // 4)
        cv2.rectangle(image, (x, h // 3), (x + w // 4, 2 * h // 3), (30, 30, 220), -1)
        yield image
        i += 1


class TaggedVideoTrack(MediaStreamTrack):
    """Sends frames at a steady rate, each with its id drawn in; remembers when each id was sent."""
    kind = "video"

    def __init__(self, frames: Iterator[np.ndarray], fps: float = 30.0) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.count = 0
        self.sent: dict[int, float] = {}  # id mod 2**BITS -> wall clock ms when handed to the encoder
        self._next: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._next is None:
            self._next = now
        elif self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)  # no bursts after a stall
        try:
            image = np.array(next(self.frames), np.uint8)  # a copy: the tag is drawn into it
        except StopIteration:
            self.stop()
            raise MediaStreamError from None
        frametag.draw(image, self.count)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = round(self.count * 90000 / self.fps)
        frame.time_base = CLOCK
        self.sent[self.count % (1 << frametag.BITS)] = time.time() * 1e3
        self.count += 1
        return frame


@dataclass
class Received:
    frame: int
    latency_ms: float | None  # send -> receipt, None if the frame id was not one we sent
    arrived: float  # time.monotonic() at receipt
    message: dict


class PoseClient:
    def __init__(self, url: str, keep: int | None = None) -> None:
        """keep: hold only the latest `keep` pose messages (long runs; `received` still counts them all)."""
        self.url = url
        self.hello: dict | None = None
        self.poses: deque[Received] | list[Received] = deque(maxlen=keep) if keep else []
        self.received = 0  # pose messages so far
        self.track: TaggedVideoTrack | None = None
        self.pc: RTCPeerConnection | None = None
        self.ws: websockets.ClientConnection | None = None
        self._messages: asyncio.Queue[dict] = asyncio.Queue()  # everything but poses
        self._reader: asyncio.Task | None = None

    async def connect(self, **options) -> dict:
        """Open the websocket (options for websockets.connect, e.g. sock); returns the server's first message
        (hello, or an error when it is full)."""
        self.ws = await websockets.connect(self.url, max_size=None, **options)
        first = json.loads(await self.ws.recv())
        if first.get("type") == "hello":
            self.hello = first
        self._reader = asyncio.create_task(self._read())
        return first

    async def send(self, message: dict | str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def next_message(self, timeout: float = 10.0) -> dict:
        """The next non-pose message (answer, pong, error)."""
        return await asyncio.wait_for(self._messages.get(), timeout)

    async def start_video(self, track: TaggedVideoTrack, timeout: float = 15.0) -> None:
        """Offer the track, apply the server's answer; frames then flow."""
        loopback.install()
        self.track = track
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())  # waits for ICE gathering
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        reply = await self.next_message(timeout)
        if reply.get("type") != "answer":
            raise RuntimeError(f"expected an answer, got {reply}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for text in self.ws:
                message = json.loads(text)
                if message.get("type") != "pose":
                    self._messages.put_nowait(message)
                    continue
                now = time.time() * 1e3
                sent = self.track.sent.get(message["frame"]) if self.track and message.get("tagged") else None
                self.poses.append(Received(message["frame"], None if sent is None else now - sent,
                                           time.monotonic(), message))
                self.received += 1
        except websockets.ConnectionClosed:
            pass

    async def wait_for_poses(self, count: int, timeout: float = 20.0) -> None:
        """Until `count` pose messages have arrived in total."""
        deadline = time.monotonic() + timeout
        while self.received < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.received} of {count} pose messages within {timeout} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
