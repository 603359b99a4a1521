"""The live server end to end: real websockets, real aiortc peers, frames tagged with their ids.

The estimator is a test double here (fast, or deliberately slow) so that these tests are
about the transport and the frame pump; tests/test_server_models.py runs the real models.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import websockets

from posecast.skeleton import skeleton_info
from server.app import PoseServer
from server.client import PoseClient, TaggedVideoTrack, drawn_frames
from server.outbox import Outbox
from server.stress import FakeEstimator
from server_fixtures import serve, session_of, stream, ws_url  # noqa: F401 (serve is a fixture)


def peer_of(server: PoseServer):
    (session,) = server.sessions
    return session.peer


async def test_hello_describes_skeleton_models_and_limits(serve):
    server = await serve(FakeEstimator(), max_peers=3)
    async with websockets.connect(ws_url(server)) as ws:
        hello = json.loads(await ws.recv())
    assert hello["type"] == "hello" and hello["version"] == 3
    assert hello["skeleton"] == json.loads(json.dumps(skeleton_info()))
    assert hello["provider"] == "CPU"
    assert hello["models"]["detector"]["file"] == "test-double"
    assert hello["limits"]["max_peers"] == 3
    assert hello["limits"]["max_unread_replies"] > 0 and hello["limits"]["max_unread_bytes"] > 0
    assert hello["frametag"] == {"bits": 16, "cells": 18, "cells_per_width": 40}
    assert hello["smoothing"] is False


async def test_every_frame_gets_a_pose_message_with_its_latency(serve):
    server = await serve(FakeEstimator(0.005))
    client = await stream(server, 2.0)
    peer = peer_of(server)
    session = next(iter(server.sessions))
    client.track.stop()  # no more frames: let the last ones through before counting
    await asyncio.sleep(0.5)
    poses = client.poses
    # Every message the server sent arrived, and every received frame was processed or counted as dropped.
    assert len(poses) == peer.processed - session.outbox.replaced
    assert peer.received - peer.processed - peer.dropped in (0, 1)  # at most one frame in flight
    assert peer.processed >= 0.8 * peer.received, "a fast model should keep up with 30 fps"
    assert all(p.message["tagged"] for p in poses), "the frame tag must survive the video codec"
    frames = [p.frame for p in poses]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    latencies = [p.latency_ms for p in poses]
    assert all(lat is not None and 0 < lat < 1000 for lat in latencies)
    first = poses[0].message
    assert first["frame_size"] == [640, 480]
    assert set(first["timings"]) >= {"decode", "detect", "total"}
    assert first["people"][0]["main"] is True and len(first["people"][0]["joints3d"]) == 17
    assert first["received_ts"] <= first["server_ts"]
    await client.close()


async def test_latency_does_not_grow_when_inference_is_slower_than_the_camera(serve):
    # 80 ms per frame against 30 fps: 60% of the frames cannot be processed. Queued, latency
    # would grow by ~1.4 s per second; with the latest-frame slot it stays flat.
    server = await serve(FakeEstimator(0.08))
    client = await stream(server, 4.0)
    peer = peer_of(server)
    await client.close()
    poses = client.poses
    assert peer.dropped >= 0.4 * peer.received, f"stale frames must be dropped ({peer.dropped}/{peer.received})"
    assert poses[-1].message["dropped"] > 0
    third = len(poses) // 3
    early = statistics.median(p.latency_ms for p in poses[:third])
    late = statistics.median(p.latency_ms for p in poses[-third:])
    assert late < 1.3 * early + 30, f"latency grew: first third {early:.0f} ms, last third {late:.0f} ms"
    assert late < 80 + 33 + 150, f"latency {late:.0f} ms: more than one model run + one frame + transport"


async def test_two_clients_at_once_and_one_vanishing(serve):
    estimator = FakeEstimator(0.005)
    server = await serve(estimator)
    a, b = await asyncio.gather(stream(server, 1.0), stream(server, 1.0))
    assert len(server.sessions) == 2
    assert len(a.poses) > 10 and len(b.poses) > 10
    # Each client gets its own frames back, tagged with its own ids.
    assert all(p.latency_ms is not None and p.latency_ms < 1000 for p in a.poses + b.poses)
    peer_a = session_of(server, a).peer
    # a disappears without a goodbye: TCP connection cut, WebRTC peer left to time out.
    a.ws.transport.abort()
    a.track.stop()
    deadline = time.monotonic() + 10
    while len(server.sessions) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(server.sessions) == 1, "the vanished client's session was not cleaned up"
    assert peer_a.pc.connectionState == "closed"
    assert not peer_a._tasks, "the vanished client's reader and pump tasks are still running"
    before = len(b.poses)
    await asyncio.sleep(1.0)
    assert len(b.poses) > before + 10, "the remaining client stopped receiving poses"
    await a.close()
    await b.close()


async def test_frame_size_changing_mid_stream_including_odd_sizes(serve):
    def sizes() -> Iterator[np.ndarray]:
        for size in ((640, 480), (321, 241), (480, 640)):
            frames = drawn_frames(size)
            for _ in range(20):
                yield next(frames)

    server = await serve(FakeEstimator(0.0))
    client = PoseClient(ws_url(server))
    await client.connect()
    await client.start_video(TaggedVideoTrack(sizes(), 30))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(p.message["frame_size"] == [480, 640] for p in client.poses):
        await asyncio.sleep(0.1)
    seen = {tuple(p.message["frame_size"]) for p in client.poses}
    await client.close()
    assert {(640, 480), (480, 640)} <= seen
    # The codec may round an odd size to even; a frame of about that size must have come through.
    assert any(abs(w - 321) <= 1 and abs(h - 241) <= 1 for w, h in seen), seen


async def test_malformed_messages_get_errors_and_the_connection_stays_usable(serve):
    server = await serve(FakeEstimator(), max_message_bytes=4096, max_sdp_bytes=2048)
    client = PoseClient(ws_url(server))
    await client.connect()
    cases = [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        (json.dumps({"type": "dance"}), "bad_message"),
        (json.dumps({"type": "offer"}), "bad_offer"),
        (json.dumps({"type": "offer", "sdp": "v=0\r\nm=video garbage\r\n"}), "bad_offer"),
        (json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}), "bad_offer"),
        (json.dumps({"type": "offer", "sdp": "m=video " + "x" * 3000}), "too_large"),
        (json.dumps({"type": "ping", "pad": "x" * 5000}), "too_large"),
        ("[" * 1500 + "]" * 1500, "bad_json"),  # deeper than Python's json parser goes
        (json.dumps({"type": "x" * 3000}), "bad_message"),
        (b"\x00\x01", "bad_message"),
        (json.dumps({"type": "camera", "fov": "wide"}), "bad_message"),
        (json.dumps({"type": "camera", "fov": 500}), "bad_message"),
        (json.dumps({"type": "person", "height": "tall"}), "bad_message"),
        (json.dumps({"type": "person", "height": 1.8}), "bad_message"),  # metres, not centimetres
    ]
    for message, code in cases:
        await client.send(message)
        reply = await client.next_message()
        assert reply["type"] == "error" and reply["code"] == code, (message[:40], reply)
        assert 0 < len(reply["message"]) < 300, "errors say what is wrong without echoing the input"
    for t, echoed in ((123, 123), (1.5, 1.5), ("x" * 2000, None), ({"a": 1}, None), (True, None), (1e300, None)):
        await client.send({"type": "ping", "t": t})
        pong = await client.next_message()
        assert pong["type"] == "pong" and pong["t"] == echoed, "pong echoes only a number for t"
    # Still able to stream after all that.
    await client.start_video(TaggedVideoTrack(drawn_frames(), 30))
    await client.wait_for_poses(5, timeout=15)
    await client.close()
    assert len(client.poses) >= 5


async def test_the_pages_field_of_view_and_height_reach_its_stream(serve):
    estimator = FakeEstimator()
    server = await serve(estimator)
    client = PoseClient(ws_url(server))
    await client.connect()

    async def send(message: dict) -> None:
        await client.send(message)
        await client.send({"type": "ping", "t": 1})  # messages are handled in order: the pong comes after
        assert (await client.next_message())["type"] == "pong"

    await send({"type": "camera", "fov": 80})  # before the video: kept for the stream the offer creates
    await send({"type": "person", "height": 183})
    await client.start_video(TaggedVideoTrack(drawn_frames(), 30))
    await client.wait_for_poses(1, timeout=15)
    assert (estimator.streams[-1].fov, estimator.streams[-1].height) == (80, 183)
    await send({"type": "camera", "fov": 50.5})  # while streaming
    await send({"type": "person", "height": None})  # back to the server's default
    assert (estimator.streams[-1].fov, estimator.streams[-1].height) == (50.5, None)
    await client.close()


async def test_max_peers_refuses_with_a_clear_error(serve):
    server = await serve(FakeEstimator(), max_peers=1)
    async with websockets.connect(ws_url(server)) as first:
        assert json.loads(await first.recv())["type"] == "hello"
        async with websockets.connect(ws_url(server)) as second:
            refusal = json.loads(await second.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await second.recv()
        assert refusal["type"] == "error" and refusal["code"] == "too_many_peers"
        assert closed.value.rcvd.code == 1013
    # The slot frees up when the first client leaves.
    deadline = time.monotonic() + 5
    while server.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    async with websockets.connect(ws_url(server)) as third:
        assert json.loads(await third.recv())["type"] == "hello"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


async def test_static_files_local_three_and_healthz(serve, tmp_path: Path):
    web = tmp_path / "web"
    (web / "node_modules" / "three" / "build").mkdir(parents=True)
    (web / "package.json").write_text(json.dumps({"dependencies": {"three": "0.187.0"}}))
    (web / "index.html").write_text('<script type="importmap">{"imports": {"three": '
                                    '"https://cdn.jsdelivr.net/npm/three@0.187.0/build/three.module.js"}}</script>')
    (web / "main.js").write_text("export const x = 1;")
    (web / "node_modules" / "three" / "build" / "three.module.js").write_text("export const REVISION = '187';")
    (tmp_path / "secret.txt").write_text("not for the web")
    server = await serve(FakeEstimator(), web_root=web)
    base = f"http://127.0.0.1:{server.port}"

    async def get(path: str) -> tuple[int, str, bytes]:
        return await asyncio.to_thread(_get, base + path)

    status, ctype, body = await get("/")
    assert status == 200 and ctype.startswith("text/html")
    assert b'"three": "/vendor/three/build/three.module.js"' in body and b"cdn.jsdelivr" not in body
    status, ctype, body = await get("/vendor/three/build/three.module.js")
    assert status == 200 and ctype.startswith("text/javascript") and b"REVISION" in body
    status, ctype, _ = await get("/main.js?v=2")
    assert status == 200 and ctype.startswith("text/javascript")
    for bad in ("/../secret.txt", "/%2e%2e/secret.txt", "/vendor/three/..%2f..%2f..%2fsecret.txt",
                "/node_modules/three/build/three.module.js", "/missing.js"):
        status, _, body = await get(bad)
        assert status == 404 and b"not for the web" not in body, bad
    status, ctype, body = await get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "provider": "CPU", "peers": 0, "max_peers": 4}


async def test_a_slow_reader_gets_fresh_poses_and_control_messages_still_arrive():
    # A client that stops reading: the server's socket backs up, and instead of a growing backlog
    # the outbox keeps only the newest pose (the websockets broadcast example's approach).
    outboxes: list[Outbox] = []

    async def handler(ws):
        outboxes.append(Outbox(ws))
        writer = asyncio.create_task(outboxes[0].run())
        await ws.wait_closed()
        writer.cancel()

    async with websockets.serve(handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no autotuning to tens of MB
        sock.connect(("127.0.0.1", port))
        async with websockets.connect(f"ws://127.0.0.1:{port}", sock=sock, max_size=None) as client:
            while not outboxes:
                await asyncio.sleep(0.01)
            outbox = outboxes[0]
            client.transport.pause_reading()
            for i in range(300):  # 300 x 100 kB, incompressible: far more than the socket buffers hold
                outbox.send_pose(json.dumps({"type": "pose", "frame": i, "pad": secrets.token_hex(50_000)}))
                await asyncio.sleep(0.001)
            outbox.send({"type": "pong", "t": 1})
            assert outbox.replaced > 100, "poses should have been replaced while the client was not reading"
            client.transport.resume_reading()
            frames, got_pong = [], False
            while not (got_pong and frames and frames[-1] == 299):
                message = json.loads(await asyncio.wait_for(client.recv(), 10))
                if message["type"] == "pong":
                    got_pong = True
                else:
                    frames.append(message["frame"])
    assert frames == sorted(frames), "poses arrive in order"
    assert len(frames) == 300 - outbox.replaced, "every pose not replaced by a newer one arrived"


async def test_streams_on_a_machine_with_only_the_loopback_interface(serve, monkeypatch):
    import aioice.ice
    import ifaddr

    loopback_only = [ifaddr.Adapter("lo", "lo", [ifaddr.IP("127.0.0.1", 8, "lo"), ifaddr.IP(("::1", 0, 0), 128, "lo")])]
    monkeypatch.setattr(aioice.ice.ifaddr, "get_adapters", lambda: loopback_only)
    server = await serve(FakeEstimator(0.0))
    client = await stream(server, 0.5, drawn_frames())
    await client.close()
    assert "127.0.0.1" in client.pc.localDescription.sdp
    assert len(client.poses) >= 5
