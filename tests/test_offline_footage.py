"""`posecast process` on real footage from ../shared/media (skipped with the reason when it is absent)."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from posecast import records
from posecast.offline.figure import SIDE_BGR
from posecast.skeleton import H36M17
from tests.conftest import shared_path
from tests.offline_inputs import decoded_frames, leftovers, run_process

FRAMES = 40  # enough for tracking and smoothing to matter, short enough for CI


def has_colour(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels are within tolerance of a colour."""
    return int((np.abs(image.astype(int) - bgr).max(axis=2) < tolerance).sum())


@pytest.fixture(scope="module")
def dance(tmp_path_factory):
    clip = shared_path("media/clips/dance_facing_camera.mp4")
    out = tmp_path_factory.mktemp("dance")
    result = run_process(clip, "--out", out, "--csv", "--figure", "--max-frames", FRAMES)
    assert result.returncode == 0, result.stderr
    return clip, out, result


def test_clip_gives_one_line_per_decoded_frame_with_finite_3d(dance):
    clip, out, result = dance
    header, frames = records.read_jsonl(out / "dance_facing_camera.jsonl")
    assert header["source"]["fps"] == pytest.approx(25.05, abs=0.01) and header["options"]["max_frames"] == FRAMES
    assert [f["index"] for f in frames] == list(range(min(FRAMES, decoded_frames(clip))))
    times = np.array([f["t"] for f in frames])
    assert np.allclose(np.diff(times), 1 / 25.051, atol=2e-3) and times[0] == pytest.approx(0, abs=1e-6)
    assert all(f["frame_size"] == [864, 480] for f in frames)
    people = [f["people"] for f in frames]
    assert sum(bool(p) for p in people) >= 0.9 * FRAMES, "the dancer is in view all along"
    mains = [records.main_person(p) for p in people if p]
    assert all(m is not None and p[0] is m for m, p in zip(mains, (p for p in people if p)))
    for person in (q for p in people for q in p):
        joints3d, confidence = np.array(person["joints3d"]), np.array(person["confidence"])
        assert joints3d.shape == (17, 3) and np.isfinite(joints3d).all()
        assert np.array(person["keypoints"]).shape == (17, 2) and np.array(person["coco18"]).shape == (18, 3)
        unknown = (confidence <= 0) & ~np.array(person["held"])
        assert (joints3d[unknown] == 0).all(), "a missing joint, not held from the frames before, has no position"
        assert (joints3d[0] == 0).all(), "pelvis-relative"
    spans = [np.ptp(np.array(m["joints3d"])[np.array(m["confidence"]) > 0][:, 1]) for m in mains]
    assert 900 < np.median(spans) < 2200, f"a person is about 1.2-2 m tall in mm, got {np.median(spans)}"
    assert "someone found in" in result.stderr and "fps overall" in result.stderr
    assert leftovers(out) == []


def test_clip_csv_has_a_row_per_person(dance):
    _, out, _ = dance
    _, frames = records.read_jsonl(out / "dance_facing_camera.jsonl")
    lines = (out / "dance_facing_camera.csv").read_text().splitlines()
    assert lines[0].split(",")[:9] == ["index", "t", "source", "person", "main", "score", "root_x", "root_y", "root_z"]
    assert len(lines[0].split(",")) == 9 + 6 * len(H36M17)
    assert len(lines) - 1 == sum(len(f["people"]) for f in frames)


def test_clip_figure_video_has_every_frame_at_the_input_rate(dance):
    clip, out, _ = dance
    with av.open(str(out / "dance_facing_camera.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(25.051, abs=0.01)
        images = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(images) == min(FRAMES, decoded_frames(clip))
    last = images[-1]
    width = last.shape[1]
    skeleton_2d, skeleton_3d = last[:, width // 4: 3 * width // 4], last[:, 3 * width // 4:]
    for side in ("left", "right"):  # red and blue limbs drawn in the 2D panels and in the 3D panel
        assert has_colour(skeleton_2d, SIDE_BGR[side]) > 200, side
        assert has_colour(skeleton_3d, SIDE_BGR[side]) > 200, side


def test_image_figure_has_four_panels_with_the_skeletons(tmp_path):
    image = shared_path("media/images/opencv_messi5.jpg")
    result = run_process(image, "--out", tmp_path, "--figure")
    assert result.returncode == 0, result.stderr
    header, frames = records.read_jsonl(tmp_path / "opencv_messi5.jsonl")
    assert header["options"]["mode"] == "image" and len(frames) == 1 and frames[0]["t"] is None
    assert frames[0]["people"], "the footballer is found"
    figure = cv2.imread(str(tmp_path / "opencv_messi5.png"))
    assert figure is not None and figure.shape[0] >= 360
    # Panel 1 is the untouched photo (no skeleton); panels 2-3 and 4 carry both sides' colours.
    crop_w, gap = round(360 * 548 / 342), 6
    first = figure[gap:gap + 360, gap:gap + crop_w]
    middle, last = figure[:366, gap + crop_w: 3 * (gap + crop_w)], figure[:366, 3 * (gap + crop_w):]
    source = cv2.resize(cv2.imread(str(image)), (crop_w, 360), interpolation=cv2.INTER_LINEAR)
    assert np.abs(source.astype(int) - first.astype(int)).mean() < 6
    for side in ("left", "right"):
        assert has_colour(middle, SIDE_BGR[side]) > 300, side
        assert has_colour(last, SIDE_BGR[side]) > 100, side


def test_clip_bvh_plays_the_recorded_main_person(tmp_path):
    """--bvh: the file parses with the project's reader, has a frame per JSONL line at the clip's rate, and its
    forward kinematics reproduce the recorded joints within a few centimetres (a BVH has fixed bone lengths)."""
    from posecast.bvh_export import nodes
    from posecast.bvh import forward_kinematics, read_bvh
    from posecast.bvh import WORLD_TO_CAMERA

    clip = shared_path("media/clips/dance_facing_camera.mp4")
    result = run_process(clip, "--out", tmp_path, "--bvh", "--max-frames", FRAMES)
    assert result.returncode == 0, result.stderr
    assert "BVH:" in result.stderr and "dance_facing_camera.bvh" in result.stderr
    _, frames = records.read_jsonl(tmp_path / "dance_facing_camera.jsonl")
    bvh = read_bvh(tmp_path / "dance_facing_camera.bvh")
    assert len(bvh.motion) == len(frames) and bvh.frame_time == pytest.approx(1 / 25.051, abs=1e-6)
    rot, trans = bvh.local_transforms()
    pos, _ = forward_kinematics(bvh.parents, rot, trans)
    first: dict[int, int] = {}
    for k, node in enumerate(nodes()):
        first.setdefault(node.joint, k)
    played = pos[:, [first[j] for j in range(17)]] * 10.0  # cm -> mm
    played -= played[:, :1]
    joints3d, valid, _ = records.main_person_arrays(frames)
    recorded = joints3d @ WORLD_TO_CAMERA.T  # camera axes -> the BVH's (a half turn about x: its own inverse)
    error = np.linalg.norm(played - recorded, axis=-1)[valid & valid[:, :1]]
    assert error.size > 0.8 * FRAMES * 17
    assert np.mean(error) < 40 and np.percentile(error, 95) < 100, (np.mean(error), np.percentile(error, 95))
    assert leftovers(tmp_path) == []
