"""The networks served by a real Triton server (the one nvidia-pytriton bundles), the pose server in front.

Triton is started for real (`posecast triton`'s LocalTriton) once per module; the recovery test kills and
restarts its own. Skipped only when the Triton packages are not installed (`pip install 'posecast[triton]'`).
"""
from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from posecast import paths
from posecast.inference import (DEFAULT_DETECTOR_ASPECTS, DETECTOR, InferenceSetupError, InferenceUnavailableError,
                                Triton, parse_target)
from posecast.pipeline import PipelineOptions, PoseEstimator
from server.app import PoseServer, ServerOptions
from server.client import PoseClient, TaggedVideoTrack, clip_frames
from tests.conftest import shared_path
from tests.page_servers import free_port

if importlib.util.find_spec("pytriton") is None or importlib.util.find_spec("tritonclient") is None:
    pytest.skip("Triton packages not installed: pip install 'posecast[triton]' (docs/scaling.md)",
                allow_module_level=True)

from posecast.triton.repository import RepositoryOptions  # noqa: E402 - needs the packages above
from posecast.triton.serve import LocalTriton  # noqa: E402

CLIP = "media/clips/dance_facing_camera.mp4"


def new_triton(**options) -> LocalTriton:
    return LocalTriton(RepositoryOptions(**options), grpc_port=0, http_port=0, metrics_port=0)


@pytest.fixture(scope="module")
def triton():
    with new_triton(max_batch_size=8, queue_delay_us=5000) as server:
        yield server


def frames(n: int, step: int = 3) -> list[np.ndarray]:
    return list(itertools.islice(clip_frames(shared_path(CLIP), loop=False), 0, n * step, step))


def metric(triton: LocalTriton, name: str, model: str) -> float:
    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    return float(re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', text, re.M).group(1))


def test_poses_through_triton_equal_in_process_poses(triton):
    remote = PoseEstimator(PipelineOptions(inference=triton.url, threads=1))
    local = PoseEstimator(PipelineOptions(threads=1, detector_aspects=DEFAULT_DETECTOR_ASPECTS))
    assert remote.backend.info() == {"backend": "triton", "url": triton.url, "provider": "CPU"}
    height = PipelineOptions.input_height
    assert remote.models["detector"]["input_widths"] == [round(a * height / 8) * 8 for a in DEFAULT_DETECTOR_ASPECTS]
    assert remote.models["lifter"]["joints"], "the lifter's manifest comes through Triton's model config"
    a, b = remote.new_stream(), local.new_stream()
    compared = 0
    for i, frame in enumerate(frames(20)):
        ra, rb = a(frame, i / 10), b(frame, i / 10)
        assert ra.crop == rb.crop and len(ra.people) == len(rb.people)
        for p, q in zip(ra.people, rb.people):
            for key in ("keypoints", "joints3d", "confidence"):
                np.testing.assert_allclose(p[key], q[key], atol=1e-2, err_msg=f"frame {i} {key}")
            compared += 1
    assert compared >= 15, "the dancer should be found in most frames"


def test_concurrent_streams_are_batched_by_triton(triton):
    session = Triton(triton.url.removeprefix("triton://")).open(paths.DETECTOR_ONNX, DETECTOR, "")
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (1, 3, 224, w)).astype(np.float32) for w in (168, 224)]  # two buckets
    expected = [session.run(["heatmaps"], {"image": image})[0] for image in images]
    count0, execs0 = (metric(triton, m, DETECTOR) for m in ("nv_inference_count", "nv_inference_exec_count"))
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(8)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = session.run(["heatmaps"], {"image": images[i % 2]})[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count, execs = (metric(triton, m, DETECTOR) - v for m, v in
                    (("nv_inference_count", count0), ("nv_inference_exec_count", execs0)))
    assert count == 8 and execs < 8, f"8 requests in flight at once ran in {execs:.0f} executions"
    for i, r in results.items():  # each request gets its own rows back, whatever it was batched with
        np.testing.assert_allclose(r, expected[i % 2], atol=1e-4)
    assert len(results) == 8


def test_unreachable_server_and_missing_model_are_clear_errors(triton):
    closed = free_port()  # nothing listens there
    with pytest.raises(InferenceUnavailableError, match=rf"cannot reach Triton at 127.0.0.1:{closed}.*posecast triton"):
        PoseEstimator(PipelineOptions(inference=f"triton://127.0.0.1:{closed}"))
    backend = Triton(triton.url.removeprefix("triton://"))
    with pytest.raises(InferenceUnavailableError, match=r"no ready model 'pose2d'.*models: detector \(ready\)"):
        backend.open(paths.DETECTOR_ONNX, "pose2d", "")
    for bad in ("http://127.0.0.1:8001", "triton://", "triton://host:port"):
        with pytest.raises(InferenceSetupError):
            parse_target(bad)


def test_server_command_line_says_triton_is_unreachable():
    closed = free_port()  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "server", "--inference", f"triton://127.0.0.1:{closed}",
                           "--port", "0"], capture_output=True, text=True, timeout=60, cwd=paths.ROOT)
    assert proc.returncode == 1
    assert f"cannot reach Triton at 127.0.0.1:{closed}" in proc.stderr + proc.stdout


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def test_pose_server_through_triton_survives_triton_dying_and_coming_back():
    shared_path(CLIP)
    triton = new_triton(max_batch_size=4, queue_delay_us=1000).start()
    try:
        estimator = PoseEstimator(PipelineOptions(inference=triton.url, threads=1))
        server = PoseServer(ServerOptions(port=0), estimator)
        await server.start()
        health = f"http://127.0.0.1:{server.port}/healthz"
        client = PoseClient(f"ws://127.0.0.1:{server.port}/ws")
        try:
            hello = await client.connect()
            assert hello["inference"] == {"backend": "triton", "url": triton.url, "provider": "CPU", "error": None}
            assert await asyncio.to_thread(get, health) == (200, {
                "status": "ok", "provider": "CPU", "inference": hello["inference"], "peers": 1, "max_peers": 4})
            await client.start_video(TaggedVideoTrack(clip_frames(shared_path(CLIP)), 30))
            await client.wait_for_poses(5, timeout=30)
            assert any(p.message["people"] for p in client.poses)

            await asyncio.to_thread(triton.kill)
            error = await client.next_message(timeout=15)
            assert error["type"] == "error" and error["code"] == "inference_unavailable", error
            assert f"Triton at {triton.url.removeprefix('triton://')} failed" in error["message"]
            status, body = await asyncio.to_thread(get, health)
            assert status == 503 and body["status"] == "inference_unavailable" and body["inference"]["error"]
            stalled = len(client.poses)
            await asyncio.sleep(1.0)
            assert len(client.poses) == stalled, "no pose messages while the models are unreachable"

            await asyncio.to_thread(triton.start)  # same ports, as a restarted container would be
            await wait_for(lambda: len(client.poses) >= stalled + 5, 20, "poses did not resume after the restart")
            assert (await asyncio.to_thread(get, health))[0] == 200
            with pytest.raises(asyncio.TimeoutError):
                await client.next_message(timeout=0.5)  # the outage was reported once, not per frame
        finally:
            await client.close()
            await server.stop()
    finally:
        triton.stop()
