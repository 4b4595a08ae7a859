"""The scan cache: what each model's files said, keyed by their paths, sizes and mtimes.

A rescan stats the files and reads a header again only when one of them changed. The cache is one
JSON file in the user's cache directory, replaced atomically; one that is missing, unreadable,
from another version of the code or not JSON is simply ignored (the scan reads everything).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib

from ...catalog.errors import UsageError
from ...catalog.types import Architecture, FileWeights, Model
from ..files import read_text

CACHE_NAME = "localmodels.json"
MAX_CACHE_BYTES = 256 * 2**20

# What a cached record depends on: the code that reads headers and turns them into models.
_CODE = (
    "agent/localmodels/scan.py",
    "agent/localmodels/records.py",
    "agent/localmodels/safetensors.py",
    "agent/localmodels/cache.py",
    "agent/ggufheader.py",
    "estimator/ggufmodel.py",
    "estimator/hfconfig.py",
    "catalog/types.py",
    "catalog/parse.py",
    "estimator/tensors.py",
)


def code_version() -> str:
    """A checksum of _CODE (the folder holding agent/ and estimator/ is two above this file)."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    crc = 0
    for relative in _CODE:
        try:
            with open(os.path.join(package, *relative.split("/")), "rb") as fh:
                crc = zlib.crc32(fh.read(), crc)
        except OSError:
            crc = zlib.crc32(relative.encode(), crc)
    return f"1-{crc:08x}"


def default_cache_path(environ=None) -> str:
    from ..paths import cache_dir

    return os.path.join(cache_dir(environ), CACHE_NAME)


class ScanCache:
    """Records by unit key (a model's main path); `get` hands one back only while every file still has
    the size and mtime it was read at. Entries no scan asked for are dropped when it is saved."""

    def __init__(self, path: str | None):
        self.path = path
        self.version = code_version()
        self.units: dict[str, dict] = {}
        self.seen: set[str] = set()
        self.dirty = False
        self.hits = 0
        if path:
            self._load()

    def _load(self) -> None:
        assert self.path is not None  # called only with a path
        try:
            data = json.loads(read_text(self.path, "model scan cache", limit=MAX_CACHE_BYTES))
        except (OSError, UsageError, ValueError, RecursionError):
            return
        if isinstance(data, dict) and data.get("version") == self.version and isinstance(data.get("units"), dict):
            self.units = data["units"]

    def entry(self, key: str) -> dict | None:
        """The cached entry of a unit, whatever its files look like now (the caller compares)."""
        entry = self.units.get(key)
        return entry if isinstance(entry, dict) and isinstance(entry.get("files"), list) else None

    def get(self, key: str, signature: list) -> dict | None:
        self.seen.add(key)
        entry = self.entry(key)
        record = entry.get("record") if entry is not None and entry["files"] == signature else None
        if isinstance(record, dict) and (
            isinstance(record.get("problem"), str) or record.get("kind") in ("gguf", "safetensors")
        ):
            self.hits += 1
            return record
        return None

    def put(self, key: str, signature: list, record: dict) -> None:
        self.seen.add(key)
        self.units[key] = {"files": signature, "record": record}
        self.dirty = True

    def save(self) -> None:
        stale = set(self.units) - self.seen
        for key in stale:
            del self.units[key]
        if not self.path or not (self.dirty or stale):
            return
        from ..paths import write_private

        try:
            write_private(self.path, json.dumps({"version": self.version, "units": self.units}, separators=(",", ":")))
        except OSError:
            pass  # a read-only home or a full disk only costs the next scan its speed


# ---------------------------------------------------------------- a Model as JSON


def model_to_json(model: Model) -> dict:
    """dataclasses.asdict, less its deep copies (a scan writes a thousand of these)."""
    data = {f.name: getattr(model, f.name) for f in dataclasses.fields(Model)}
    data["architecture"] = {f.name: getattr(model.architecture, f.name) for f in dataclasses.fields(Architecture)}
    if model.file_weights is not None:
        data["file_weights"] = {f.name: getattr(model.file_weights, f.name) for f in dataclasses.fields(FileWeights)}
    for key in ("benchmarks", "sources", "stand_ins"):
        data[key] = dict(data[key])
    data["notes"] = list(model.notes)
    return data


def model_from_json(data: dict) -> Model:
    """The Model model_to_json wrote (ValueError when it does not fit this code's Model)."""
    try:
        fw = data.get("file_weights")
        return Model(
            **{
                **data,
                "architecture": Architecture(**data["architecture"]),
                "file_weights": FileWeights(**fw) if fw else None,
                "notes": tuple(data.get("notes") or ()),
            }
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"cached model does not fit: {exc}") from None
