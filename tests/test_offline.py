"""`posecast process` on tiny generated inputs: bad input gives one clear line and nothing half-written;
good input gives complete files in the documented schema."""
from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from posecast import paths, records
from posecast.offline import media
from posecast.offline.progress import Progress
from posecast.pipeline import PipelineOptions
from posecast.skeleton import H36M17, skeleton_info
from tests.conftest import model_path
from tests.offline_inputs import (assert_one_line_error, decoded_frames, leftovers, plain_frames, run_process,
                                  write_video)


@pytest.fixture(scope="module", autouse=True)
def models():
    model_path(paths.DETECTOR_ONNX, "python -m export detector")
    model_path(paths.LIFTER_ONNX, "python -m export lifter")


# --- inputs that cannot be used: one line, exit 1, no output ---------------------------------------------------

def test_missing_file(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "nothere.mp4"
    assert_one_line_error(run_process(missing, "--out", out), str(missing), "no such file")
    assert not out.exists() or not list(out.iterdir())


def test_folder_without_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    assert_one_line_error(run_process(folder, "--out", tmp_path / "out"), str(folder), "no images")


@pytest.mark.parametrize("name", ["notes.txt", "fake.mp4", "fake.jpg"])
def test_not_an_image_or_video(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello, this is text and no picture\n" * 20)
    out = tmp_path / "out"
    line = assert_one_line_error(run_process(path, "--out", out), str(path))
    assert "not an image" in line or "cannot be read as an image" in line, line
    assert leftovers(out) == [] and not list(out.glob("*.jsonl"))


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_one_line_error(run_process(path, "--out", tmp_path / "out"), str(path), "empty file")


@pytest.mark.parametrize("where", ["is_file", "under_file"])
def test_unwritable_out(tmp_path, where):
    video = write_video(tmp_path / "clip.mp4", plain_frames(3))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    out = blocker if where == "is_file" else blocker / "sub"
    assert_one_line_error(run_process(video, "--out", out), "--out", str(out))
    assert blocker.read_text() == "a file where the folder should be"


@pytest.mark.parametrize("option, value, says", [("--fov", "500", "field of view"), ("--height", "1.8", "centimetres"),
                                                 ("--height", "nan", "centimetres")])
def test_a_camera_or_person_setting_out_of_range(tmp_path, option, value, says):
    video = write_video(tmp_path / "clip.mp4", plain_frames(3))
    out = tmp_path / "out"
    assert_one_line_error(run_process(video, option, value, "--out", out), says)
    assert not out.exists() or not list(out.iterdir())


def test_two_inputs_writing_the_same_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_video(tmp_path / "a" / "clip.mp4", plain_frames(2))
    second = write_video(tmp_path / "b" / "clip.mp4", plain_frames(2))
    out = tmp_path / "out"
    assert_one_line_error(run_process(first, second, "--out", out), "clip.jsonl", "--out")
    assert not list(out.iterdir())


# --- inputs that can be used ------------------------------------------------------------------------------------

def read(path):
    header, frames = records.read_jsonl(path)
    assert header["schema"] == records.SCHEMA_VERSION
    assert header["skeleton"] == skeleton_info()
    assert {"detector", "lifter"} <= set(header["models"])
    return header, frames


def test_video_without_people_gives_a_frame_per_decoded_frame(tmp_path):
    video = write_video(tmp_path / "empty_room.mp4", plain_frames(12), fps=25)
    out = tmp_path / "out"
    result = run_process(video, "--out", out, "--csv", "--figure")
    assert result.returncode == 0, result.stderr
    header, frames = read(out / "empty_room.jsonl")
    assert header["source"]["kind"] == "video" and header["source"]["fps"] == 25
    assert header["options"]["mode"] == "video" and header["options"]["input_height"] == PipelineOptions.input_height
    assert [f["index"] for f in frames] == list(range(12))
    assert np.allclose([f["t"] for f in frames], np.arange(12) / 25, atol=1e-3)
    assert all(f["people"] == [] and f["frame_size"] == [96, 64] for f in frames)
    assert (out / "empty_room.csv").read_text().splitlines()[1:] == []  # a header and no person rows
    assert decoded_frames(out / "empty_room.mp4") == 12
    assert leftovers(out) == []
    assert "12 frames, someone found in 0" in result.stderr


def test_truncated_video_keeps_what_decodes_and_says_so(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", plain_frames(40))
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    readable = decoded_frames(cut)
    assert 0 < readable < 40
    out = tmp_path / "out"
    result = run_process(cut, "--out", out, "--no-smoothing", "--input-height", "160")
    assert_one_line_error(result, str(cut), "cut short", f"{readable} of the 40")
    header, frames = read(out / "cut.jsonl")
    assert len(frames) == readable
    assert header["options"]["smoothing"] is None and header["options"]["input_height"] == 160
    assert header["models"]["detector"]["input_height"] == 160
    assert leftovers(out) == []


def test_video_without_people_refuses_the_bvh(tmp_path):
    pytest.importorskip("posecast.bvh_export", reason="posecast/bvh_export.py (issue 12 part 3) not merged yet")
    video = write_video(tmp_path / "empty_room.mp4", plain_frames(6))
    out = tmp_path / "out"
    result = run_process(video, "--out", out, "--bvh")
    assert_one_line_error(result, str(video), "no BVH")
    _, frames = read(out / "empty_room.jsonl")  # the poses are still kept
    assert len(frames) == 6 and not (out / "empty_room.bvh").exists()
    assert leftovers(out) == []


def test_folder_of_images_with_a_broken_one(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, image in enumerate(plain_frames(2, (80, 120))):
        cv2.imwrite(str(folder / f"shot{i}.png"), image)
    (folder / "shot9.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    result = run_process(folder, "--out", out, "--figure", "--csv")
    assert_one_line_error(result, str(folder), "shot9.jpg could not be read", "wrote the 2 frames")
    header, frames = read(out / "shots.jsonl")
    assert header["options"]["mode"] == "image" and header["source"] == {"file": "shots", "kind": "images",
                                                                          "images": 3}
    assert [(f["index"], f["t"], f["source"]) for f in frames] == [(0, None, "shot0.png"), (1, None, "shot1.png")]
    for name in ("shot0.png", "shot1.png"):
        figure = cv2.imread(str(out / name))
        assert figure is not None and figure.shape[0] > 360 and figure.shape[1] > 4 * 100
    assert not (out / "shot9.png").exists() and leftovers(out) == []


def test_csv_has_a_column_per_joint_coordinate_and_empty_cells_for_missing_joints():
    from posecast.offline.outputs import csv_header, csv_rows
    person = records.person_record(3, True, 0.5, np.arange(51).reshape(17, 3), np.ones((17, 2)),
                                   np.r_[np.ones(16), 0.0], np.zeros((18, 2)), np.zeros(18))
    record = records.frame_record(7, 0.28, (640, 480), (0, 0, 640, 480), [person])
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(csv_header())
    writer.writerows(csv_rows(record))
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert len(csv_header()) == 9 + 6 * len(H36M17) and len(rows) == 1
    row = rows[0]
    assert (row["index"], row["t"], row["person"], row["main"]) == ("7", "0.28", "3", "1")
    assert row["root_x"] == row["root_z"] == ""  # not placed in the room
    placed = records.frame_record(7, 0.28, (640, 480), None, [{**person, "root": [1.5, -2.0, 3000.0]}])
    assert csv_rows(placed)[0][6:9] == [1.5, -2.0, 3000.0]
    assert (row["l_shoulder_x"], row["l_shoulder_y"], row["l_shoulder_z"]) == ("33.0", "34.0", "35.0")
    assert row["r_wrist_x"] == row["r_wrist_u"] == "" and row["r_wrist_conf"] == "0"  # the missing joint


def test_live_pose_message_and_recording_share_the_frame_fields():
    """One schema: server/peer.py's pose message holds exactly a record's frame fields, with the same values."""
    import av
    from server.peer import Peer
    from posecast.pipeline import FrameResult

    person = records.person_record(1, True, 0.9, np.ones((17, 3)), np.ones((17, 2)), np.ones(17),
                                   np.ones((18, 2)), np.ones(18))
    result = FrameResult(people=[person], crop=(1.0, 2.0, 30.0, 40.0), timings={"detect": 1.0})
    peer = Peer(lambda frame, t: result, run_blocking=None, emit=None, provider="CPU")
    frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
    message = json.loads(peer._process(frame, 0.0))
    record = records.frame_record(0, 0.0, (64, 48), result.crop, result.people)
    shared = set(records.frame_fields((64, 48), result.crop, result.people))
    assert shared == {"frame_size", "crop", "people"}
    assert {k: message[k] for k in shared} == {k: record[k] for k in shared}


def test_progress_line_shows_frames_fps_and_time_left():
    stream = io.StringIO()
    progress = Progress("clip.mp4", total=100, enabled=True, stream=stream)
    progress.start -= 2.0  # as if 2 s had passed
    progress.update(50)
    line = stream.getvalue().split("\r")[-1]
    assert "clip.mp4" in line and "50/100 frames" in line and "fps" in line and "0:02 left" in line
    quiet = io.StringIO()
    Progress("clip.mp4", total=100, enabled=False, stream=quiet).update(10)
    assert quiet.getvalue() == ""


def test_serve_has_the_same_options_as_python_m_server():
    def options(*command):
        text = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=paths.ROOT, capture_output=True,
                              text=True, timeout=60).stdout
        return {word.strip("[],") for word in text.split() if word.startswith("--")}
    server = options("server")
    assert {"--port", "--device", "--input-height", "--no-smoothing", "--threads"} <= server
    assert options("posecast", "serve") == server - {"--log-level"}
    assert {"--device", "--input-height", "--no-smoothing", "--threads"} <= options("posecast", "process")


def test_ctrl_c_leaves_no_half_written_file(tmp_path):
    video = write_video(tmp_path / "long.mp4", plain_frames(300))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "posecast", "process", "--threads", "1", "--device", "cpu",
                             str(video), "--out", str(out), "--csv"], cwd=paths.ROOT, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as in a terminal, even when this runs in a background job (there the shell
                            # has SIGINT ignored, and a child inherits that)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".long.jsonl.") and p.stat().st_size > 2000 for p in out.glob(".*")):
            assert proc.poll() is None and time.monotonic() < deadline, "no frame written within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert list(out.iterdir()) == []


def test_a_turned_phone_video_is_processed_upright(tmp_path):
    """Phones store portrait video as landscape frames plus a display matrix: frames go in as players show them."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("Debian's ffmpeg is not installed (scripts/setup installs it)")
    stored = write_video(tmp_path / "stored.mp4", plain_frames(4, (96, 64)))
    turned = tmp_path / "turned.mp4"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(stored), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(turned)], check=True, timeout=60)
    out = tmp_path / "out"
    result = run_process(turned, "--out", out, "--figure")
    assert result.returncode == 0, result.stderr
    header, frames = read(out / "turned.jsonl")
    assert header["source"]["size"] == [64, 96] and all(f["frame_size"] == [64, 96] for f in frames)
    # Turned the way ffmpeg's own autorotate turns it (the other way round would be a different picture).
    reference = tmp_path / "reference.png"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(turned), "-frames:v", "1", str(reference)],
                   check=True, timeout=60)
    first = next(media.frames(media.open_input(turned))).image
    expected = cv2.imread(str(reference))
    assert first.shape == expected.shape == (96, 64, 3)
    assert np.abs(first.astype(int) - expected).mean() < 4
    assert np.abs(cv2.rotate(first, cv2.ROTATE_180).astype(int) - expected).mean() > 20
