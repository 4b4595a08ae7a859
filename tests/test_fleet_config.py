"""The example Prometheus config and alert rules in config/, checked by Prometheus' own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_example_prometheus_config_is_valid_and_finds_its_rules():
    result = promtool("check", "config", "config/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_alert_rules_are_valid():
    result = promtool("check", "rules", "config/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_alert_rules_fire_as_documented():
    """GPU nearly full on a usable device (not a MIG parent), an agent whose scans stopped, one that is down."""
    result = promtool("test", "rules", "tests/fixtures/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_are_valid_and_compute_the_fleets_budget():
    result = promtool("check", "rules", "config/fitagent-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout
    result = promtool("test", "rules", "tests/fixtures/fitagent_rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
