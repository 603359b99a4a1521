"""Recordings over the websocket: start, stop, download as JSON Lines and BVH, limits, privacy, clean-up.

Real websockets and aiortc peers against an in-process server; the stand-in estimator where the
BVH is not the point, the real models on the dancer clip where it is. The page's button: test_page.py.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from posecast import paths, records
from posecast.pipeline import PipelineOptions, PoseEstimator
from server.app import PoseServer
from server.client import PoseClient, clip_frames, drawn_frames
from server.recording import RecordingLimits
from server.stress import FakeEstimator
from server_fixtures import serve, stream  # noqa: F401 (serve is a fixture)
from tests.conftest import model_path, shared_path
from posecast.bvh import parse_bvh

CLIP = "media/clips/dance_facing_camera.mp4"


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def get(server: PoseServer, path: str) -> tuple[int, dict, bytes]:
    """An HTTP GET from a thread (the server answers on this event loop)."""
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{server.port}{path}")


async def recording_reply(client: PoseClient, state: str, timeout: float = 30) -> dict:
    """The next `recording` message in `state` (an error fails the test)."""
    while True:
        message = await client.next_message(timeout)
        assert message["type"] != "error", message
        if message["type"] == "recording" and message["state"] == state:
            return message


def poses_between(client: PoseClient, first: dict, last: dict) -> list[dict]:
    """The pose messages the client received after message `first` and before `last`."""
    count = {id(m): n for n, m in client.others}
    return [p.message for p in list(client.poses)[count[id(first)]:count[id(last)]]]


async def record(client: PoseClient, seconds: float) -> tuple[list[dict], dict, dict]:
    """Record for `seconds`; the poses received while recording, the `stopped` and the `ready` messages."""
    await client.send({"type": "record", "action": "start"})
    started = await recording_reply(client, "recording")
    await asyncio.sleep(seconds)
    await client.send({"type": "record", "action": "stop"})
    stopped = await recording_reply(client, "stopped")
    ready = await recording_reply(client, "ready")
    return poses_between(client, started, stopped), stopped, ready


def jsonl_lines(body: bytes) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in body.decode().splitlines()]
    return lines[0], lines[1:]


@pytest.fixture(scope="module")
def estimator() -> PoseEstimator:
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    model_path(paths.LIFTER_ONNX, "python -m export lifter")
    return PoseEstimator(PipelineOptions(device="cpu", threads=1))


async def test_a_recording_of_the_dancer_downloads_as_jsonl_and_bvh(serve, estimator):
    clip = shared_path(CLIP)
    server = await serve(estimator)
    client = await stream(server, 0.5, clip_frames(clip))
    sent, stopped, ready = await record(client, 3.0)
    assert stopped["reason"] == "requested" and stopped["frames"] == len(sent) > 10

    status, headers, body = await get(server, ready["downloads"]["jsonl"])
    assert status == 200 and headers["Content-Disposition"].startswith("attachment; filename=\"posecast-")
    assert headers["Cache-Control"] == "no-store"
    header, lines = jsonl_lines(body)
    # The offline command's schema: the same header fields, and one line per pose message sent while recording.
    assert header["format"] == records.FORMAT and header["skeleton"] == client.hello["skeleton"]
    assert header["models"] == client.hello["models"] and header["options"]["mode"] == "live_stream"
    assert [line["index"] for line in lines] == list(range(len(sent)))
    assert [line["people"] for line in lines] == [m["people"] for m in sent]
    assert [line["frame_size"] for line in lines] == [m["frame_size"] for m in sent]
    t = [line["t"] for line in lines]
    assert t[0] == 0 and all(b > a for a, b in zip(t, t[1:])) and t[-1] < 5

    status, _, body = await get(server, ready["downloads"]["bvh"])
    assert status == 200 and ready["bvh_error"] is None
    bvh = parse_bvh(body.decode("ascii"))
    assert len(bvh.motion) == len(sent), "one BVH frame per recorded pose"
    assert bvh.frame_time == pytest.approx(t[-1] / (len(t) - 1), rel=0.01)
    assert np.isfinite(bvh.motion).all()
    await client.close()


async def test_nobody_in_view_gives_a_jsonl_and_says_why_there_is_no_bvh(serve):
    server = await serve(FakeEstimator(people=0))
    client = await stream(server, 0.3, drawn_frames())
    sent, stopped, ready = await record(client, 1.0)
    assert ready["downloads"]["bvh"] is None and "no person" in ready["bvh_error"]
    _, _, body = await get(server, ready["downloads"]["jsonl"])
    _, lines = jsonl_lines(body)
    assert len(lines) == len(sent) == stopped["frames"] and all(line["people"] == [] for line in lines)
    await client.close()


async def test_limits_stop_a_recording_by_themselves(serve):
    server = await serve(FakeEstimator(0.005), recording=RecordingLimits(max_seconds=1.0))
    client = await stream(server, 0.3)
    assert client.hello["limits"]["max_recording_seconds"] == 1.0
    await client.send({"type": "record", "action": "start"})
    started = await recording_reply(client, "recording")
    t0 = time.monotonic()
    stopped = await recording_reply(client, "stopped", timeout=5)
    waited = time.monotonic() - t0
    assert stopped["reason"] == "time_limit" and 0.9 < waited < 2.0 and stopped["seconds"] <= 1.5, (waited, stopped)
    assert stopped["frames"] == len(poses_between(client, started, stopped))
    await client.close()

    server = await serve(FakeEstimator(0.005), recording=RecordingLimits(max_bytes=20_000))
    client = await stream(server, 0.3)
    await client.send({"type": "record", "action": "start"})
    await recording_reply(client, "recording")
    stopped = await recording_reply(client, "stopped", timeout=5)
    ready = await recording_reply(client, "ready")
    line = len(json.dumps(client.poses[-1].message))  # about one line's worth
    assert stopped["reason"] == "size_limit" and 20_000 <= stopped["bytes"] < 20_000 + 2 * line
    assert len((await get(server, ready["downloads"]["jsonl"]))[2]) == stopped["bytes"]
    await client.close()


async def test_downloads_are_private_expire_and_leave_nothing_behind(serve):
    server = await serve(FakeEstimator(0.005), recording=RecordingLimits(keep_s=1.5))
    owner = await stream(server, 0.3)
    # Out of order: each refused with what is wrong, the connection stays usable.
    await owner.send({"type": "record", "action": "stop"})
    assert (await owner.next_message())["code"] == "bad_record"
    await owner.send({"type": "record", "action": "rewind"})
    assert (await owner.next_message())["code"] == "bad_record"
    _, _, ready = await record(owner, 0.5)
    folder = server.recordings._folder
    jsonl = ready["downloads"]["jsonl"]
    token = jsonl.split("/")[-1].split(".")[0]
    assert len(token) >= 40, "an unguessable token"
    assert (await get(server, jsonl))[0] == 200
    assert sorted(p.suffix for p in folder.iterdir()) == [".bvh", ".jsonl"], "files only in the server's folder"
    assert not any(token in p.name for p in folder.iterdir()), "the URL's token is not a file name"
    for guess in (f"/recordings/{token[:-1]}x.jsonl", f"/recordings/{token}.csv", f"/recordings/{token}",
                  "/recordings/../../etc/passwd", "/recordings/%2e%2e%2fserver.log.jsonl",
                  f"/recordings/{next(folder.iterdir()).stem}.jsonl"):
        assert (await get(server, guess))[0] == 404, guess
    # A second recording replaces the first (one per client), whose files go.
    _, _, second = await record(owner, 0.3)
    assert (await get(server, jsonl))[0] == 404 and (await get(server, second["downloads"]["jsonl"]))[0] == 200
    assert len(list(folder.iterdir())) == 2
    await asyncio.sleep(2.0)  # keep_s
    assert (await get(server, second["downloads"]["jsonl"]))[0] == 404, "a finished recording expires"
    assert not list(folder.iterdir())
    # A client that leaves takes its recording with it, even one still running.
    await owner.send({"type": "record", "action": "start"})
    await recording_reply(owner, "recording")
    await owner.close()
    deadline = time.monotonic() + 5
    while server.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not list(folder.iterdir()), "the recordings of a client that left are deleted"
    await server.stop()
    assert not folder.exists(), "the server's folder goes when it stops"


async def test_the_time_limit_holds_even_when_no_pose_comes(serve):
    server = await serve(FakeEstimator(), recording=RecordingLimits(max_seconds=0.5))
    client = PoseClient(f"ws://127.0.0.1:{server.port}/ws")
    await client.connect()  # no video: no pose will ever be recorded
    await client.send({"type": "record", "action": "start"})
    await recording_reply(client, "recording")
    stopped = await recording_reply(client, "stopped", timeout=3)
    ready = await recording_reply(client, "ready")
    assert stopped["reason"] == "time_limit" and stopped["frames"] == 0
    assert ready["downloads"]["bvh"] is None and "nothing was recorded" in ready["bvh_error"]
    await client.close()
