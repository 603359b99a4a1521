"""The page's record button in a real browser against the real server: record, stop, download both files.

Headless Chromium with the fake camera playing the dancer clip (tests/page_browser.py), `python -m server`
with the real models. The downloads must hold what the page received while recording: one JSON line per
pose message after the header, and a BVH that posecast/bvh.py parses with as many frames.
"""
from __future__ import annotations

import logging

import pytest

from conftest import shared_path
from page_browser import ARTIFACTS, open_page
from page_servers import RunningServer, blank_video, real_server
from posecast import records
from posecast.bvh import read_bvh

log = logging.getLogger(__name__)

CLIP = "media/clips/dance_facing_camera_640x480_30fps.mjpeg"
RECORD_MS = 3000


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RunningServer:
    with real_server(tmp_path_factory.mktemp("server")) as running:
        yield running


def record_in_page(page, ms: int) -> dict:
    """Click record, wait, click stop; posecast.recording once the downloads are ready."""
    page.click("#record")
    page.wait_for_function("() => posecast.recording.state === 'recording'", timeout=10_000)
    page.wait_for_timeout(ms)
    assert "Recording" in page.inner_text("#recording")
    page.click("#record")
    page.wait_for_function("() => posecast.recording.state === 'ready'", timeout=30_000)
    return page.evaluate("() => posecast.recording")


def test_record_stop_and_download_jsonl_and_bvh(server, tmp_path):
    clip = shared_path(CLIP)
    with open_page(server.url, tmp_path, video=clip) as page:
        policy = []  # the page must need nothing its Content-Security-Policy forbids
        page.on("console", lambda m: policy.append(m.text) if "Content Security Policy" in m.text else None)
        page.reload()  # from the start, with the listener on
        page.wait_for_function("() => posecast.state === 'live'", timeout=60_000)
        assert "at most 10:00 min or 64 MB" in page.inner_text("#recording"), "the limits are said in the page"

        recording = record_in_page(page, RECORD_MS)
        log.info("recorded: %s", recording)
        assert recording["poses"] == recording["frames"] > 5, recording
        assert recording["bvhError"] is None
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "page_recording.png")

        files = {}
        for fmt in ("jsonl", "bvh"):
            with page.expect_download() as download:
                page.click(f"#download-{fmt}")
            files[fmt] = tmp_path / download.value.suggested_filename
            download.value.save_as(files[fmt])
        assert files["jsonl"].suffix == ".jsonl" and files["jsonl"].name.startswith("posecast-")

    header, frames = records.read_jsonl(files["jsonl"])  # refuses a file without the recording header
    assert header["source"]["kind"] == "live"
    assert len(frames) == recording["poses"], "one line per pose message received while recording"
    assert [f["index"] for f in frames] == list(range(len(frames)))
    assert sum(bool(f["people"]) for f in frames) > len(frames) // 2, "the dancer is in most frames"
    bvh = read_bvh(files["bvh"])
    assert len(bvh.motion) == len(frames), "one BVH frame per recorded pose"
    assert not policy, f"Content-Security-Policy violations: {policy}"
    log.info("%d poses in %.1f s; files %s", len(frames), frames[-1]["t"],
             {k: v.stat().st_size for k, v in files.items()})


def test_with_nobody_in_view_the_page_says_why_there_is_no_bvh(server, tmp_path):
    with open_page(server.url, tmp_path, video=blank_video(tmp_path)) as page:
        page.wait_for_function("() => posecast.state === 'no-person'", timeout=60_000)
        recording = record_in_page(page, 1000)
        assert recording["downloads"]["bvh"] is None and recording["downloads"]["jsonl"]
        shown = page.inner_text("#recording")
        assert "no BVH: no person in any of" in shown, shown
        assert page.locator("#download-jsonl").is_visible() and page.locator("#download-bvh").count() == 0
