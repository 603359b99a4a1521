"""The live server with the committed ONNX models, end to end: real footage in over WebRTC, 3D poses out."""
from __future__ import annotations

import asyncio
import statistics
from collections import Counter

import numpy as np
import pytest

from posecast import paths
from posecast.skeleton import H
from server.app import PoseServer, ServerOptions
from server.client import PoseClient, TaggedVideoTrack, clip_frames, drawn_frames
from posecast.pipeline import PipelineOptions, PoseEstimator
from tests.conftest import model_path, shared_path


@pytest.fixture(scope="module")
def estimator() -> PoseEstimator:
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    model_path(paths.LIFTER_ONNX, "python -m export lifter")
    return PoseEstimator(PipelineOptions(device="cpu"))


async def run_stream(estimator: PoseEstimator, frames, seconds: float) -> tuple[dict, list[dict]]:
    server = PoseServer(ServerOptions(port=0), estimator)
    await server.start()
    client = PoseClient(f"ws://127.0.0.1:{server.port}/ws")
    try:
        hello = await client.connect()
        await client.start_video(TaggedVideoTrack(frames, 30))
        await client.wait_for_poses(5, timeout=30)
        await asyncio.sleep(seconds)
    finally:
        await client.close()
        await server.stop()
    return hello, [p.message for p in client.poses]


async def test_dancer_clip_gives_plausible_3d_poses(estimator):
    clip = shared_path("media/clips/dance_facing_camera.mp4")
    hello, poses = await run_stream(estimator, clip_frames(clip), 3.0)
    assert hello["provider"] == "CPU" and hello["smoothing"] is True
    assert hello["models"]["detector"]["file"] == paths.DETECTOR_ONNX.name
    assert hello["models"]["lifter"]["file"] == "lifter.onnx"

    with_people = [m for m in poses if m["people"]]
    assert len(with_people) >= 0.8 * len(poses), "the dancer is in every frame"
    ids = Counter(m["people"][0]["id"] for m in with_people)
    assert ids.most_common(1)[0][1] >= 0.8 * len(with_people), f"the main person's id should be stable: {ids}"
    heights = []
    for m in with_people:
        person = m["people"][0]
        assert person["main"] is True
        j3d, kp, conf = (np.array(person[k]) for k in ("joints3d", "keypoints", "confidence"))
        assert j3d.shape == (17, 3) and kp.shape == (17, 2) and conf.shape == (17,)
        assert np.all((conf >= 0) & (conf <= 1)) and np.isfinite(j3d).all()
        w, h = m["frame_size"]
        seen = conf > 0
        assert np.all((kp[seen] >= -1) & (kp[seen] <= [w + 1, h + 1]))
        held = np.array(person["held"])
        assert not (held & seen).any(), "only missing joints are held"
        assert np.allclose(j3d[~seen & ~held], 0), "a missing joint, not held from the frames before, has no position"
        if conf[H["pelvis"]] > 0:
            assert np.linalg.norm(j3d[H["pelvis"]]) < 1.0, "joints are pelvis-relative"
        if conf[H["head"]] > 0 and conf[H["r_ankle"]] > 0:
            heights.append(np.linalg.norm(j3d[H["head"]] - j3d[H["r_ankle"]]))
    assert heights, "head and ankle never both seen"
    assert 1000 < statistics.median(heights) < 2200, f"head-to-ankle {statistics.median(heights):.0f} mm"
    timings = poses[-1]["timings"]
    assert timings["detect"] > 0 and timings["lift"] >= 0 and timings["total"] >= timings["detect"]


async def test_frames_without_people_give_empty_people_lists(estimator):
    _, poses = await run_stream(estimator, drawn_frames(), 1.0)
    assert len(poses) >= 5 and all(m["people"] == [] for m in poses)
