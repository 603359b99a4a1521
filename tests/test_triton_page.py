"""The page in a real browser while the pose server's Triton dies and comes back (tests/test_triton.py has
the rest of the Triton path)."""
from __future__ import annotations

from conftest import shared_path
from page_browser import open_page
from page_servers import real_server
from test_page import CLIP, wait_state
from test_triton import new_triton


def test_page_shows_when_triton_is_down_and_goes_live_again(tmp_path):
    clip = shared_path(CLIP)
    triton = new_triton(max_batch_size=4, queue_delay_us=1000).start()
    try:
        with real_server(tmp_path, args=("--inference", triton.url)) as server, \
                open_page(server.url, tmp_path, video=clip) as page:
            wait_state(page, "live", timeout_s=60)
            assert page.evaluate("() => posecast.stats.provider") == "CPU"
            triton.kill()
            wait_state(page, "inference-unavailable", timeout_s=15)
            assert "cannot run the pose models" in page.inner_text("#banner")
            triton.start()
            wait_state(page, "live", timeout_s=30)
    finally:
        triton.stop()
