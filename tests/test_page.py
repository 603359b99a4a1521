"""The page in a real browser: headless Chromium with a fake camera playing a real clip.

The live tests run against the real server (`python -m server`, real models, real WebRTC);
the camera and server-down states use a plain file server for the page (tests/page_servers.py).
The page's read-only hook `window.posecast` gives state, stats and joint positions.
"""
from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import shared_path
from page_browser import ARTIFACTS, open_page
from page_servers import RunningServer, blank_video, real_server, static_site
from posecast import frametag

log = logging.getLogger(__name__)

CLIP = "media/clips/dance_facing_camera_640x480_30fps.mjpeg"
WALK_CLIP = "media/clips/outdoor_two_people.mp4"  # a woman walks right to left across the picture at 4.5-6.6 s
MIN_WALK_M = 1.0  # she walks ~2 m while the detector has her
MIN_POSE_RATE = 10.0  # pose messages per second
MIN_MOVE_M = 0.01  # some joint must move more than this between samples


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RunningServer:
    with real_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def clip():
    return shared_path(CLIP)


@pytest.fixture(scope="module")
def walking_clip(tmp_path_factory):
    """The outdoor clip as the fake camera wants it: MJPEG, 640x480 (letterboxed), 30 fps."""
    source = shared_path(WALK_CLIP)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg not found (apt install ffmpeg) to convert the walking clip")
    out = tmp_path_factory.mktemp("clips") / "walk_640x480_30fps.mjpeg"
    scale = "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=30"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(source), "-vf", scale, "-q:v", "3", "-f", "mjpeg",
                    str(out)], check=True, timeout=120)
    return out


def wait_state(page, state: str, timeout_s: float = 30) -> None:
    page.wait_for_function("s => window.posecast?.state === s", arg=state, timeout=timeout_s * 1000)


def joint_moves(samples: list[list]) -> float:
    """Largest displacement (m) of any joint visible in two consecutive samples."""
    best = 0.0
    for a, b in zip(samples, samples[1:]):
        for p, q in zip(a, b):
            if p is not None and q is not None:
                best = max(best, math.dist(p, q))
    return best


def test_live_pose_stream(clip, server, tmp_path):
    with open_page(server.url, tmp_path, video=clip) as page:
        wait_state(page, "live", timeout_s=60)
        before = page.evaluate("() => posecast.stats")
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < 3:
            time.sleep(0.2)
            samples.append(page.evaluate("() => posecast.joints()"))
        after = page.evaluate("() => posecast.stats")
        rate = (after["messages"] - before["messages"]) / (time.monotonic() - started)
        log.info("pose rate %.1f/s, latency %s ms, provider %s, server ms %s", rate, after["latencyMs"],
                 after["provider"], after["timings"])

        assert rate >= MIN_POSE_RATE, f"{rate:.1f} pose messages/s, expected >= {MIN_POSE_RATE}"
        assert after["provider"] in ("CPU", "CUDA")
        assert after["people"] >= 1
        # Latency needs the server to read back the page's frame tags: a number proves the round trip.
        assert after["latencyMs"] is not None and 0 < after["latencyMs"] < 5000
        assert joint_moves(samples) > MIN_MOVE_M, "the 3D joints did not move while the dancer did"
        shown = [p for s in samples for p in s if p is not None]
        assert len(shown) > len(samples) * 10, "most joints should be shown for a full-body dancer"
        assert all(math.hypot(*p) > 1e-3 for p in shown), "a joint was drawn at the origin"
        assert all(-0.3 < p[1] < 2.5 for p in shown), "joints should stand on the grid, at human height"

        assert page.get_attribute("#overlay", "data-frame").isdigit(), "the keypoints should be on their own frame"
        scene = page.evaluate("() => posecast.scene()")
        assert scene["mode"] == "scene" and scene["camera"][1] > 0.3, scene  # the webcam, above the floor
        dancer = scene["people"][0]["pelvis"]
        assert 1.0 < math.dist(dancer, scene["camera"]) < 8.0, "the dancer should stand a few metres away"

        # Given a height of 200 cm rather than the adult default of 163, she is given legs 1.23 times as long (and
        # placed that much further away: her own motion to and fro hides that in a short look).
        def legs() -> float:
            lengths = []
            for _ in range(8):
                time.sleep(0.15)
                j = page.evaluate("() => posecast.joints()")
                for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
                    if j[hip] and j[knee] and j[ankle]:
                        lengths.append(math.dist(j[hip], j[knee]) + math.dist(j[knee], j[ankle]))
            return float(np.median(lengths))
        default = legs()
        assert 0.7 < default < 0.9, default  # 800 mm
        for value in ("200", ""):  # and back to the default
            page.fill("#height", value)
            page.dispatch_event("#height", "change")
            page.wait_for_timeout(600)
            if value:
                tall = legs()
                assert 1.15 < tall / default < 1.3, (default, tall)
        assert page.evaluate("() => localStorage.getItem('posecast.height')") is None
        assert 0.9 < legs() / default < 1.1

        status = page.inner_text("#status")
        assert re.search(r"\d+\.\d fps", status) and re.search(r"latency \d+ ms", status), status
        assert page.locator("#banner").is_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "page_live.png")

        # Back to the pinned view: the dancer alone, at the centre of the grid.
        page.click("#scene-toggle")
        page.wait_for_timeout(500)
        pinned = page.evaluate("() => posecast.scene()")
        assert pinned["mode"] == "pinned" and math.hypot(pinned["people"][0]["pelvis"][0],
                                                         pinned["people"][0]["pelvis"][2]) < 0.05, pinned
        page.screenshot(path=ARTIFACTS / "page_pinned.png")
        page.click("#scene-toggle")

        page.click("#pipeline-toggle")
        page.wait_for_timeout(500)
        for panel in ("#panel-crop", "#panel-coco", "#panel-h36m", "#view3d"):
            box = page.locator(panel).bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50, panel
        page.screenshot(path=ARTIFACTS / "page_pipeline.png")


def chain_tracks(snapshots: list[list[list[float]]], reach_m: float = 0.6) -> list[list[list[float]]]:
    """People's pelvis positions over time, linked by nearness (the detector's ids change when it loses someone
    for a moment at a low frame rate): each position joins the nearest path within reach_m, else starts one."""
    paths: list[list[list[float]]] = []
    for snapshot in snapshots:
        taken: set[int] = set()
        for p in snapshot:
            near = [(math.dist(path[-1], p), i) for i, path in enumerate(paths) if i not in taken]
            d, i = min(near, default=(math.inf, -1))
            if d < reach_m:
                paths[i].append(p)
                taken.add(i)
            else:
                paths.append([p])
                taken.add(len(paths) - 1)
    return paths


def test_a_person_walking_across_moves_across_the_scene(walking_clip, server, tmp_path):
    with open_page(server.url, tmp_path, video=walking_clip) as page:
        wait_state(page, "live", timeout_s=60)
        snapshots = []
        started = time.monotonic()
        while time.monotonic() - started < 12:  # the clip (7.7 s) loops
            time.sleep(0.2)
            snapshots.append([p["pelvis"] for p in page.evaluate("() => posecast.scene().people") if p["pelvis"]])
            if any(np.ptp([p[0] for p in t]) > MIN_WALK_M + 0.5 for t in chain_tracks(snapshots)):
                break
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "page_scene_walk.png")
        walker = max(chain_tracks(snapshots), key=lambda t: np.ptp([p[0] for p in t]))
        xs = [p[0] for p in walker]
        log.info("%d samples, walker x %.2f .. %.2f m", len(walker), min(xs), max(xs))
        assert np.ptp(xs) > MIN_WALK_M, f"nobody moved across the scene: x range {np.ptp(xs):.2f} m"
        assert xs[-1] < xs[0], "she walks to the left of the picture: to the left in the scene (not mirrored)"

        # A wider field of view means a shorter focal length: the same person is nearer.
        page.fill("#fov", "100")
        page.dispatch_event("#fov", "change")
        page.wait_for_function("() => posecast.scene().fov === 100", timeout=10_000)


def test_no_person_in_view(server, tmp_path):
    with open_page(server.url, tmp_path, video=blank_video(tmp_path)) as page:
        wait_state(page, "no-person", timeout_s=60)
        assert "No person in view" in page.inner_text("#banner")
        assert all(p is None for p in page.evaluate("() => posecast.joints()"))


def test_server_lost_and_back(clip, tmp_path):
    with real_server(tmp_path) as first, open_page(first.url, tmp_path, video=clip) as page:
        page.wait_for_function("() => posecast.stats.messages > 0", timeout=60_000)
        first.stop()
        wait_state(page, "server-lost", timeout_s=10)
        assert "Connection to the server lost" in page.inner_text("#banner")
        received = page.evaluate("() => posecast.stats.messages")
        with real_server(tmp_path, port=first.port):  # the page reconnects by itself
            page.wait_for_function("n => posecast.stats.messages > n", arg=received, timeout=60_000)
            assert page.evaluate("() => posecast.state") in ("live", "no-person")


def test_camera_denied(tmp_path):
    with static_site() as site, open_page(site.url, tmp_path, camera="deny", local_three=True) as page:
        wait_state(page, "camera-denied", timeout_s=10)
        assert "Camera permission denied" in page.inner_text("#banner")


def test_no_camera(tmp_path):
    with static_site() as site, open_page(site.url, tmp_path, camera="none", local_three=True) as page:
        wait_state(page, "no-camera", timeout_s=10)
        assert "No camera found" in page.inner_text("#banner")


def test_server_unreachable_retries(tmp_path):
    # Chromium's own fake camera (a test pattern) is enough: no frame reaches a server here.
    with static_site() as site, open_page(site.url, tmp_path, local_three=True) as page:
        wait_state(page, "server-unreachable", timeout_s=10)
        assert "Server unreachable" in page.inner_text("#banner")
        deadline = time.monotonic() + 6  # retries after 1 s, then 2 s
        while site.websocket_attempts < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert site.websocket_attempts >= 3, "the page should keep retrying the server"


def test_frame_tags_drawn_by_the_page_read_in_python(tmp_path):
    """web/frametag.js and posecast/frametag.py agree, ids wrapping at 2**16 included."""
    ids = [0, 1, 2, 51234, 65535, 70000]
    layout = {"bits": frametag.BITS, "cells": frametag.CELLS, "cells_per_width": frametag.CELLS_PER_WIDTH}
    with static_site() as site, open_page(site.url, tmp_path, camera="none", local_three=True) as page:
        strips = page.evaluate("""async ([ids, layout]) => {
            const { draw, cellSize } = await import("/frametag.js");
            const canvas = Object.assign(document.createElement("canvas"), { width: 640, height: 480 });
            const ctx = canvas.getContext("2d");
            return ids.map((id) => {
                ctx.fillStyle = "#808080";
                ctx.fillRect(0, 0, 640, 480);
                draw(ctx, 640, id, layout);
                return Array.from(ctx.getImageData(0, 0, 640, cellSize(640, layout)).data);
            });
        }""", [ids, layout])
    for tag_id, strip in zip(ids, strips):
        rgb = np.array(strip, np.uint8).reshape(-1, 640, 4)[..., :3]
        assert frametag.read(rgb) == tag_id % 2**frametag.BITS
