"""The page at `/` rendered by headless Chromium: the frontier plot is there, point for point."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from agent_server import AgentProcess, copy_fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`; .ci/run installs it)"
)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_page_shows_gpus_frontiers_and_ranking(tmp_path):
    agent = AgentProcess(tmp_path, copy_fixture("rtx4090", tmp_path)).wait_ready()
    try:
        status, recs = agent.get("/v1/recommendations")
        assert status == 200
        dom = chromium(tmp_path, "--dump-dom", agent.url + "/")
        assert dom.returncode == 0, dom.stderr
        html = dom.stdout
        screenshot = tmp_path / "page.png"
        shot = chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1600", agent.url + "/")
        assert shot.returncode == 0, shot.stderr
    finally:
        agent.stop()

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    assert '<svg id="frontiers"' in html
    for name, points in recs["frontiers"].items():
        drawn = re.findall(
            rf'<circle class="frontier-point" data-frontier="{name}" data-model="([^"]+)" data-quant="([^"]+)"', html
        )
        assert drawn == [(p["model"], p["quant"]) for p in points], name
    assert html.count('class="fit-region"') == 3
    assert recs["frontiers"]["quality_speed"] and 'data-frontier="quality_speed"' in html
    left_out = recs["left_out"]
    assert left_out["count"] > 0
    assert re.search(rf'id="left-out">left out below the floor: {left_out["count"]} candidates \(', html)
    assert 'data-gpu="0"' in html and "NVIDIA GeForce RTX 4090" in html and "free <b>24.9 GB</b>" in html
    table_models = re.findall(r"<tr><td class=\"num\">\d+</td><td>([^<]+)</td>", html)
    assert table_models == [e["model"] for e in recs["ranked"]]
    assert re.search(r'id="last-scan">last scan <time datetime="[0-9T:-]+Z">', html)
