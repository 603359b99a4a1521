"""Soak: the robustness suite's hostile clients for longer, with what the server holds sampled over time.

In one process, a server with the stand-in estimator (server/stress.py; `--real-models` for the ONNX
pipeline) and, in turn: many fuzzed offers, many vanishing clients, clients that ping but never read,
then N clients streaming for `--minutes` while threads, file descriptors, memory and peer
connections are sampled. Prints figures; asserts nothing (tests/test_robustness.py does, briefly).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import Counter

from posecast import paths
from posecast.pipeline import PipelineOptions, PoseEstimator
from server.app import PoseServer, ServerOptions
from server.client import PoseClient, TaggedVideoTrack, clip_frames, drawn_frames
from server.stress import VANISH_WAYS, FakeEstimator, Resources, offer_mutations, real_offer, vanish

log = logging.getLogger(__name__)
CLIP = paths.shared_dir() / "media" / "clips" / "dance_facing_camera.mp4"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fuzz", type=int, default=2000, help="fuzzed offers (default 2000)")
    p.add_argument("--vanish", type=int, default=50, help="clients that stream and vanish (default 50)")
    p.add_argument("--pingers", type=int, default=5, help="clients that ping but never read, one after another")
    p.add_argument("--clients", type=int, default=4, help="clients streaming at once in the long run (default 4)")
    p.add_argument("--minutes", type=float, default=2.0, help="length of the long run (default 2)")
    p.add_argument("--real-models", action="store_true", help="the ONNX pipeline instead of the stand-in")


def frames():
    return clip_frames(CLIP) if CLIP.is_file() else drawn_frames()


async def fuzz(url: str, count: int) -> None:
    client = PoseClient(url)
    await client.connect()
    offer = await real_offer()
    replies: Counter[str] = Counter()
    started = time.monotonic()
    for _, sdp in offer_mutations(offer, count, seed=1):
        await client.send({"type": "offer", "sdp": sdp})
        reply = await client.next_message(20)
        generic = "WebRTC could not use" in reply.get("message", "")
        replies["answer" if reply["type"] == "answer" else "aiortc refused" if generic else "refused by check"] += 1
    await client.close()
    log.info("fuzzed offers: %d in %.1f s: %s", count, time.monotonic() - started, dict(replies))


async def vanishing(server: PoseServer, url: str, count: int) -> None:
    await vanish(url, "socket cut", frames())  # first use: codecs, the inference thread
    before = await Resources.now(settle_s=0.5)
    for i in range(count):
        await vanish(url, VANISH_WAYS[i % len(VANISH_WAYS)], frames())
    while server.sessions:
        await asyncio.sleep(0.1)
    log.info("%d vanished clients: growth %s", count, (await Resources.now(settle_s=1.0)).growth(before))


async def pingers(server: PoseServer, url: str, count: int) -> None:
    before = await Resources.now()
    closed: Counter[int | None] = Counter()
    for _ in range(count):
        client = PoseClient(url, keep=10)
        await client.connect(compression=None)
        await client.start_video(TaggedVideoTrack(frames(), 30))
        await client.wait_for_poses(1)
        port = client.ws.local_address[1]
        outbox = next(s.outbox for s in server.sessions if s.ws.remote_address[1] == port)
        client.ws.transport.pause_reading()
        started = time.monotonic()
        while not outbox.overflowed and time.monotonic() - started < 60:
            await client.send({"type": "ping", "t": "x" * 200_000})
            await asyncio.sleep(0.005)
        client.ws.transport.resume_reading()  # to read the close frame
        await asyncio.sleep(0.5)
        closed[client.ws.close_code] += 1
        await client.close()
    del client  # our own peer connection, not the server's
    log.info("%d pingers that did not read: close codes %s, growth %s", count, dict(closed),
             (await Resources.now(settle_s=0.5)).growth(before))


async def long_run(url: str, clients: int, minutes: float) -> None:
    streams = [PoseClient(url, keep=1) for _ in range(clients)]  # what clients keep is not the server's
    for client in streams:
        await client.connect()
        await client.start_video(TaggedVideoTrack(frames(), 30))
    first = None
    log.info("%d clients for %.1f min; every 10 s: seconds, rss MB, fds, threads, peer connections, poses/s each",
             clients, minutes)
    started, counts = time.monotonic(), [0] * clients
    while time.monotonic() - started < minutes * 60:
        await asyncio.sleep(10)
        now = await Resources.now()
        rates = [(c.received - n) / 10 for c, n in zip(streams, counts)]
        counts = [c.received for c in streams]
        first = first or now  # from the first sample on: the streams' buffers and codecs are set up
        log.info("%5.0f s  %6.1f MB  %3d fds  %2d threads  %2d peers  %s", time.monotonic() - started, now.rss_mb,
                 now.fds, now.threads, now.peer_connections, " ".join(f"{r:.1f}" for r in rates))
    log.info("long run: growth from first to last sample %s", (await Resources.now()).growth(first))
    for client in streams:
        await client.close()


async def soak(args: argparse.Namespace) -> None:
    # The stand-in finds 20 people: big messages, so that a client that does not read fills its buffers soon.
    estimator = PoseEstimator(PipelineOptions(device="cpu")) if args.real_models else FakeEstimator(0.02, people=20)
    server = PoseServer(ServerOptions(port=0, max_peers=max(4, args.clients)), estimator)
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/ws"
    start = await Resources.now()
    try:
        await fuzz(url, args.fuzz)
        await vanishing(server, url, args.vanish)
        await pingers(server, url, args.pingers)
        await long_run(url, args.clients, args.minutes)
    finally:
        await server.stop()
    log.info("whole soak: growth %s", (await Resources.now(settle_s=1.0)).growth(start))


def run(args: argparse.Namespace) -> int:
    for noisy in ("websockets", "server", "aioice", "aiortc"):  # per-client lines: hundreds of them
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(soak(args))
    return 0
