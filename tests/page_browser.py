"""Headless Chromium for the page tests: Debian's chromium driven by Playwright, never `playwright install`."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from posecast import paths

log = logging.getLogger(__name__)

CHROMIUM = Path(os.environ.get("POSECAST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = paths.ROOT / "artifacts"  # screenshots for a person (and CI) to look at; git-ignored
THREE = paths.WEB / "node_modules" / "three"
THREE_CDN = "https://cdn.jsdelivr.net/npm/three@{}/"
BASE_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_args(video: Path | None, camera: str) -> list[str]:
    """camera: "allow" (the fake device plays `video`), "deny" (the permission prompt says no), "none" (no device)."""
    if camera == "deny":
        return [*BASE_ARGS, "--deny-permission-prompts", "--use-fake-device-for-media-stream"]
    if camera == "none":
        return [*BASE_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream=device-count=0"]
    args = [*BASE_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    return args + [f"--use-file-for-fake-video-capture={video}"] if video else args


def serve_three_locally(context) -> None:
    """Answer the page's CDN requests for three.js from web/node_modules (the real server rewrites them itself)."""
    if not (THREE / "build").is_dir():
        pytest.skip(f"three.js is not installed at {THREE} (run scripts/setup)")
    prefix = THREE_CDN.format(json.loads((paths.WEB / "package.json").read_text())["dependencies"]["three"])
    context.route(prefix + "**", lambda route: route.fulfill(path=THREE / route.request.url[len(prefix):]))


def log_console(message) -> None:
    if "GL Driver Message" not in message.text:  # software WebGL's performance notes
        log.info("page console %s: %s", message.type, message.text)


@contextmanager
def open_page(url: str, tmp_path: Path, video: Path | None = None, camera: str = "allow",
              local_three: bool = False) -> Iterator:
    """A fresh Chromium profile with a 1280x720 page at url; page errors fail the test."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt install chromium, or set POSECAST_CHROMIUM)")
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=CHROMIUM, args=chromium_args(video, camera),
            headless=True, viewport={"width": 1280, "height": 720})
        try:
            if local_three:
                serve_three_locally(context)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", log_console)
            page.goto(url)
            yield page
        finally:
            context.close()
    assert not errors, f"errors in the page: {errors}"
