"""The code passes the linter, the formatter's check and the type checker, as configured in
pyproject.toml ([tool.ruff], [tool.mypy]); each failure prints the tool's own findings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("agent", "catalog", "estimator", "benchmarks", "tests")
PACKAGES = ("agent", "catalog", "estimator", "data")


def tool(name: str) -> list[str]:
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install '.[test]' installs it")
    return [found]


def run(command: list[str], cwd: Path = REPO) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_ruff_check():
    run([*tool("ruff"), "check", *SOURCES])


def test_ruff_format_check():
    run([*tool("ruff"), "format", "--check", *SOURCES])


def test_mypy(tmp_path):
    """mypy over the package as installed: fitagent/{agent,catalog,estimator} linked to the
    source folders (the relative imports between them need the common parent)."""
    root = tmp_path / "fitagent"
    root.mkdir()
    for name in PACKAGES:
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    packages = [arg for name in PACKAGES[:-1] for arg in ("-p", f"fitagent.{name}")]
    cache = REPO / ".cache" / "mypy"
    run(
        [*tool("mypy"), "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache), *packages],
        cwd=tmp_path,
    )
