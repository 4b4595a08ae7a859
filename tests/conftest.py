"""Shared test fixtures: isolated environment, the CLI runner, the shipped catalog."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
SNAPSHOTS = FIXTURES / "snapshots"
HF_CONFIGS = FIXTURES / "hf_configs"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No test sees the developer's GPU selection, config or state directories."""
    for name in list(os.environ):
        if name.startswith(("FITAGENT_", "CUDA_", "NVIDIA_VISIBLE", "ROCR_", "HIP_VISIBLE")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the user's own catalog (agent/usercatalog.py)


def fitagent_command() -> list[str]:
    exe = shutil.which("fitagent", path=str(Path(sys.executable).parent)) or shutil.which("fitagent")
    return [exe] if exe else [sys.executable, "-m", "fitagent.agent.cli"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*fitagent_command(), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def catalog():
    from fitagent.agent.catalog_cache import load_catalog

    return load_catalog()


@pytest.fixture
def snapshot_path():
    def path(name: str) -> str:
        return str(SNAPSHOTS / f"{name}.json")

    return path
