"""Property-based requests against a running agent, generated from its own /openapi.json by
schemathesis (its CLI, `st run`): whatever the parameters, never a 5xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from agent_server import AgentProcess, copy_fixture

ST = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
pytestmark = pytest.mark.skipif(ST is None, reason="schemathesis is not installed (pip install '.[test]')")


def test_no_generated_request_gets_a_server_error(tmp_path):
    agent = AgentProcess(tmp_path, copy_fixture("rtx4090", tmp_path)).wait_ready()
    try:
        run = subprocess.run(
            [
                ST,
                "run",
                agent.url + "/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "50",
                "--seed",
                "20261204",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        assert agent.stop() == 0
    assert run.returncode == 0, run.stdout[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 300, run.stdout[-2000:]
    print(f"\nschemathesis: {counts.group(1)} generated requests, all answered below 500")
