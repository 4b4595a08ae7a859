"""Loads the catalog shipped in fitagent's data/ (read through importlib.resources)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from ..estimator.catalog import Catalog, build_catalog
from ..estimator.errors import DataError

DATA_PACKAGE = "fitagent.data"


def _yaml_load(text: str, origin: str):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DataError(f"{origin}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); reinstall fitagent or fix the file") from None


def read_data_file(name: str):
    try:
        text = resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"data file {name} is missing from the installation; reinstall fitagent") from None
    return _yaml_load(text, name)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    return build_catalog(read_data_file("models.yaml"), read_data_file("quantizations.yaml"), read_data_file("gpus.yaml"))
