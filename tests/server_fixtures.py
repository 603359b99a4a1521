"""What the server tests share: an in-process server on a free port, and clients streaming to it."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from posecast import paths
from server.app import PoseServer, ServerOptions
from server.client import PoseClient, TaggedVideoTrack, clip_frames, drawn_frames

CLIP = paths.shared_dir() / "media" / "clips" / "dance_facing_camera.mp4"


@pytest.fixture
async def serve():
    """serve(estimator, **options) -> a running PoseServer on a free port; stopped after the test."""
    servers: list[PoseServer] = []

    async def start(estimator, **options) -> PoseServer:
        server = PoseServer(ServerOptions(port=0, **options), estimator)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def ws_url(server: PoseServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


def footage(size: tuple[int, int] = (640, 480)) -> Iterator[np.ndarray]:
    """Real footage when ../shared is there, else drawn frames (the transport does not care)."""
    return clip_frames(CLIP, size) if CLIP.is_file() else drawn_frames(size)


async def stream(server: PoseServer, seconds: float, frames: Iterator[np.ndarray] | None = None,
                 fps: float = 30.0, keep: int | None = None) -> PoseClient:
    """A client that connected, started its video and has had poses for `seconds`."""
    client = PoseClient(ws_url(server), keep)
    hello = await client.connect()
    assert hello["type"] == "hello"
    await client.start_video(TaggedVideoTrack(frames or footage(), fps))
    await client.wait_for_poses(1, timeout=15)
    await asyncio.sleep(seconds)
    return client


def session_of(server: PoseServer, client: PoseClient):
    """The server's Session for this client's websocket."""
    port = client.ws.local_address[1]
    return next(s for s in server.sessions if s.ws.remote_address[1] == port)
