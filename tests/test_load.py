"""A short load test of the real agent: rescans every second while eight clients ask a mix of routes
(`python -m benchmarks.soak --seconds 20`; the documented soak runs it for 10 minutes)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import fitagent_command


def test_mixed_load_with_rescans_every_second():
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", "20", "--json", "--fitagent", fitagent_command()[0]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    statuses = result["statuses"]
    assert not any(code.startswith("5") or code == "error" for code in statuses), statuses
    assert statuses.get("200", 0) > 100 and statuses.get("400", 0) > 0 and statuses.get("404", 0) > 0
    assert result["scans"] >= 5 and result["scan_failures"] == 0 and result["exit_code"] == 0
    start, end = result["process"]["start"], result["process"]["end"]
    assert end["threads"] <= start["threads"] + 1 and end["fds"] <= start["fds"] + 4, result["process"]
    print(
        f"\nload: {result['requests']} requests in 20 s, p50 {result['p50_ms']} ms; RSS "
        f"{start['rss_bytes'] / 1e6:.0f} → {end['rss_bytes'] / 1e6:.0f} MB, threads {start['threads']} → {end['threads']}"
    )
