"""The installed package carries every module and data file (a non-editable install is what users get)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    on_disk = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([package, *relative.parts]) if relative.parts else package)
    assert on_disk == listed


def test_no_generic_top_level_names_are_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(name.startswith("fitagent.") for name in config["packages"])


def test_data_files_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["fitagent.data"]
    for path in (ROOT / "data").iterdir():
        if path.name in ("__init__.py", "__pycache__"):
            continue
        assert any(path.match(p) for p in patterns), f"{path.name} would not be installed"
