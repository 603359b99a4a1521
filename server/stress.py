"""Hostile and broken clients, and what the server holds: for tests/test_robustness.py and `benchmarks soak`.

- `offer_mutations`: a real offer mangled the ways a fuzzer (or a broken client) would.
- `vanish`: a client that streams and then goes away (TCP cut, WebRTC first, before its answer, ...).
- `FakeEstimator`: a stand-in for the models, a fixed crowd after a fixed delay, where inference is not the point.
- `Resources`: threads, file descriptors, memory, live peer connections and tasks of this process.
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from aiortc import RTCPeerConnection

from posecast.pipeline import FrameResult

from .client import PoseClient, TaggedVideoTrack, drawn_frames

NUMBER = re.compile(r"\d+")
HOSTILE_NUMBERS = ("-1", "0", "65536", "70000", "4294967296", "18446744073709551616", "9" * 40, "1e9", "0x10", "")
HOSTILE_TEXT = ("\x00", "\x7f", "é", "\u202e", "%s%n", "'\"<>", " " * 50, "a=" * 30, "\r", "\t")
HOSTILE_ADDRESSES = ("0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "999.1.1.1", "example.com",
                     "a" * 300 + ".local", "fe80::1%eth0", "127.0.0.1")


VANISH_WAYS = ("socket cut", "video first", "goodbye", "before the answer", "before its offer")


async def vanish(url: str, how: str, frames: Iterator[np.ndarray] | None = None) -> None:
    """A client of the server at url that streams, then goes away in one of VANISH_WAYS."""
    client = PoseClient(url)
    await client.connect()
    if how == "before its offer":
        client.ws.transport.abort()
        return
    if how == "before the answer":
        client.pc = RTCPeerConnection()
        client.pc.addTransceiver(TaggedVideoTrack(drawn_frames()), direction="sendonly")
        await client.pc.setLocalDescription(await client.pc.createOffer())
        await client.send({"type": "offer", "sdp": client.pc.localDescription.sdp})
        client.ws.transport.abort()
        await client.pc.close()
        return
    await client.start_video(TaggedVideoTrack(frames or drawn_frames(), 30))
    await client.wait_for_poses(5)
    if how == "socket cut":  # TCP gone, the video still flowing until the server closes its side
        client.ws.transport.abort()
        await asyncio.sleep(0.3)
    elif how == "video first":  # the WebRTC peer closed, the websocket left open, then cut
        await client.pc.close()
        await asyncio.sleep(0.3)
        client.ws.transport.abort()
    elif how == "goodbye":
        await client.ws.close()
    await client.close()


async def real_offer() -> str:
    """A fresh offer SDP from a real aiortc peer (video, send-only), as the page or server/client.py sends."""
    pc = RTCPeerConnection()
    pc.addTransceiver(TaggedVideoTrack(drawn_frames((64, 48))), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def _candidate(rng: random.Random, lines: list[str]) -> list[str]:
    """Mangle one field of an ICE candidate line (or add one, if there is none)."""
    i = next((i for i, line in enumerate(lines) if line.startswith("a=candidate:")), None)
    base = lines[i] if i is not None else "a=candidate:1 1 udp 2130706431 127.0.0.1 9999 typ host"
    fields = base.split(" ")
    field = rng.randrange(1, len(fields))
    fields[field] = rng.choice(HOSTILE_ADDRESSES if field == 4 else HOSTILE_NUMBERS + HOSTILE_TEXT)
    out = list(lines)
    out[i if i is not None else len(out) - 1] = " ".join(fields)
    return out


def mutate(sdp: str, rng: random.Random) -> tuple[str, str]:
    """One mangled copy of sdp and what was done to it."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    kind = rng.choice(("drop", "duplicate", "swap", "number", "text", "candidate", "truncate", "flood",
                       "bytes", "candidate"))
    i = rng.randrange(len(lines))
    if kind == "drop":
        lines.pop(i)
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "number":
        numbers = list(NUMBER.finditer(lines[i]))
        if numbers:
            m = rng.choice(numbers)
            lines[i] = lines[i][:m.start()] + rng.choice(HOSTILE_NUMBERS) + lines[i][m.end():]
    elif kind == "text":
        at = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:at] + rng.choice(HOSTILE_TEXT) + lines[i][at:]
    elif kind == "candidate":
        lines = _candidate(rng, lines)
    elif kind == "truncate":
        text = "\r\n".join(lines)
        return f"truncated at {i}", text[: rng.randrange(len(text))]
    elif kind == "flood":  # many candidates, or many media sections
        extra = "a=candidate:{0} 1 udp 2130706431 127.0.0.1 {1} typ host" if rng.random() < 0.5 else "m=video 9 x 1"
        lines[i:i] = [extra.format(n, 10000 + n) for n in range(rng.choice((10, 40, 200)))]
    elif kind == "bytes":
        text = bytearray("\r\n".join(lines).encode())
        for _ in range(rng.randint(1, 8)):
            text[rng.randrange(len(text))] = rng.randrange(256)
        return "random bytes", text.decode("utf-8", errors="replace")
    return f"{kind} at line {i}", "\r\n".join(lines) + "\r\n"


def offer_mutations(sdp: str, count: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(sdp, rng)


# A person standing, arms half down (Human3.6M-17 order, mm, camera axes: x right, y down, pelvis at 0).
STANDING_MM = np.array([
    (0, 0, 0), (-100, 0, 0), (-100, 420, 0), (-100, 830, 0), (100, 0, 0), (100, 420, 0), (100, 830, 0),
    (0, -200, 0), (0, -450, 0), (0, -560, -40), (0, -680, 0), (150, -450, 0), (330, -280, 0), (420, -80, 0),
    (-150, -450, 0), (-330, -280, 0), (-420, -80, 0)], np.float64)


class CrowdProcessor:
    """Takes `delay` seconds per frame and finds `people` people standing and waving (a big crowd makes big
    messages; nobody makes a recording without a BVH)."""

    def __init__(self, delay: float, people: int) -> None:
        self.delay = delay
        self.people = people
        self.calls = 0
        self.fov: float | None = None  # the last field of view set (the page's `camera` message)
        self.height: float | None = None  # the last height set (the page's `person` message)

    def set_fov(self, fov_deg: float) -> None:
        self.fov = fov_deg

    def set_height(self, height_cm: float | None) -> None:
        self.height = height_cm

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        h, w = frame_bgr.shape[:2]
        joints = STANDING_MM.copy()
        joints[[13, 16], 1] -= 300 * abs(np.sin(self.calls / 10))  # both wrists go up and down
        joints3d = np.round(joints, 1).tolist()
        people = [{"id": i + 1, "main": i == 0, "score": 0.9, "joints3d": joints3d,
                   "keypoints": [[w / 2, h / 2]] * 17, "confidence": [1.0] * 17, "coco18": [[w / 2, h / 2, 1.0]] * 18}
                  for i in range(self.people)]
        return FrameResult(people=people, crop=(0, 0, w, h), timings={"detect": self.delay * 1e3})


class FakeEstimator:
    """The Estimator protocol without models: for tests and soak runs about the server, not inference."""
    provider = "CPU"
    models = {"detector": {"file": "test-double"}, "lifter": {"file": "test-double"}}
    smoothing = False

    def __init__(self, delay: float = 0.0, people: int = 1) -> None:
        self.delay = delay
        self.people = people
        self.streams: list[CrowdProcessor] = []

    def new_stream(self, mode: object = None) -> CrowdProcessor:
        self.streams.append(CrowdProcessor(self.delay, self.people))
        return self.streams[-1]


try:
    _libc: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _libc = None


@dataclass(frozen=True)
class Resources:
    threads: int
    fds: int
    rss_mb: float
    peer_connections: int  # RTCPeerConnection objects alive (server's and clients' in this process)
    tasks: int

    @classmethod
    async def now(cls, settle_s: float = 0.0) -> Resources:
        """A snapshot after settle_s and a garbage collection (what is still referenced, not what awaits GC)."""
        await asyncio.sleep(settle_s)
        gc.collect()
        if _libc is not None:  # hand freed heap back to the system: RSS then shows what is held, not the peak
            _libc.malloc_trim(0)
        with open("/proc/self/statm") as f:
            rss_pages = int(f.read().split()[1])
        return cls(threads=threading.active_count(), fds=len(os.listdir("/proc/self/fd")),
                   rss_mb=rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
                   # type(), not isinstance(): the objects include weak proxies to dead ones
                   peer_connections=sum(type(o) is RTCPeerConnection for o in gc.get_objects()),
                   tasks=len(asyncio.all_tasks()))

    def growth(self, before: Resources) -> dict[str, float]:
        return {k: round(getattr(self, k) - getattr(before, k), 1) for k in self.__dataclass_fields__}
