"""Reading the data files shipped in fitagent's data/ package (YAML and JSON), with one-line errors."""

from __future__ import annotations

import json
import os

from .. import data as data_package
from .errors import DataError

DATA_PACKAGE = "fitagent.data"


def yaml_load(text: str, origin: str):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DataError(
            f"{origin}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); reinstall fitagent or fix the file"
        ) from None


def read_data_text(name: str) -> str:
    # The data files sit beside fitagent/data/__init__.py in every install pip makes; plain
    # file reads keep importlib.resources (and its imports) off the start-up path.
    path = os.path.join(os.path.dirname(data_package.__file__), name)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        from importlib import resources  # a zipped or otherwise unusual install

        try:
            return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")
        except (FileNotFoundError, ModuleNotFoundError):
            raise DataError(f"data file {name} is missing from the installation; reinstall fitagent") from None


def read_data_file(name: str):
    return yaml_load(read_data_text(name), name)


def read_json_data(name: str):
    """A JSON file shipped in fitagent's data package."""
    # A plain file next to the package is the common case and avoids importing
    # importlib.resources (pathlib, tempfile, …); zipped installs take the slow road.
    location = os.path.join(os.path.dirname(data_package.__file__ or ""), name)
    try:
        with open(location, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        from importlib import resources

        return json.loads(resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8"))
