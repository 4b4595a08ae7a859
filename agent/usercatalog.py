"""The user's own catalog: entries added with `fitagent catalog add`, kept in
$XDG_DATA_HOME/fitagent/models.yaml (~/.local/share/fitagent/models.yaml), over the built-in one.

An entry has the built-in catalog's shape (data/models.yaml) and is validated by the same parser; one
whose id is a built-in's replaces that entry. The file is written atomically, readable by its owner only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..catalog.errors import DataError, UsageError
from ..catalog.lookup import model_key
from ..catalog.parse import parse_models
from ..catalog.types import Architecture, Model

MAX_USER_CATALOG_BYTES = 4 << 20
HEADER = (
    "# fitagent's user catalog: models added with `fitagent catalog add` (same fields as the built-in\n"
    "# data/models.yaml; an entry with a built-in id replaces it). `fitagent catalog remove ID` removes one.\n"
)


def user_catalog_path(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "fitagent", "models.yaml")


def read_user_text(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(path, text); the text is empty when there is no file."""
    from .files import read_text

    path = user_catalog_path(environ)
    try:
        return path, read_text(path, "user catalog", limit=MAX_USER_CATALOG_BYTES)
    except FileNotFoundError:
        return path, ""
    except UsageError as exc:
        raise DataError(f"{exc} (fix it, or remove it to drop your own entries)") from None


def user_entries(text: str, path: str) -> list[dict]:
    """The file's entries, each checked by the catalog's own parser (errors name the file)."""
    if not text.strip():
        return []
    from ..catalog.files import yaml_load

    doc = yaml_load(text, path)
    if doc is None:
        return []
    if not isinstance(doc, Mapping) or not isinstance(doc.get("models"), list):
        raise DataError(f"{path}: expected a top-level 'models:' list (entries `fitagent catalog add` wrote)")
    if doc["models"]:
        parse_models(doc, origin=path)
    return list(doc["models"])


def overlay(builtin_doc: Any, entries: list[dict], path: str) -> Any:
    """The built-in models document with the user's entries over it: one with a built-in id replaces
    that entry; an alias another entry already has is refused, naming both."""
    if not entries:
        return builtin_doc
    if not isinstance(builtin_doc, Mapping) or not isinstance(builtin_doc.get("models"), list):
        return builtin_doc  # the built-in parser names what is wrong with it
    replaced = {str(e["id"]).lower() for e in entries}
    kept = [
        m for m in builtin_doc["models"] if not (isinstance(m, Mapping) and str(m.get("id", "")).lower() in replaced)
    ]
    taken = {}
    for m in kept:
        if isinstance(m, Mapping):
            for key in (m.get("id"), m.get("alias")):
                if isinstance(key, str):
                    taken[key.lower()] = m.get("id")
    for entry in entries:
        for key in (entry["id"], entry["alias"]):
            if key.lower() in taken:
                raise DataError(
                    f"{path}: entry '{entry['id']}': '{key}' is also the name of the built-in "
                    f"{taken[key.lower()]} — `fitagent catalog remove {entry['id']}` and add it again with --alias"
                )
    return {**builtin_doc, "models": kept + entries}


def entry_from_model(model: Model, alias: str | None, source: str) -> dict:
    """A catalog entry for a model read from a user's file: its architecture and counts, no benchmarks
    (its quality is estimated from size)."""
    model_id = model.id.strip()
    if "/" not in model_id:
        model_id = "local/" + "-".join(model_id.split())
    arch = {f.name: getattr(model.architecture, f.name) for f in fields(Architecture)}
    defaults = Architecture(1, 1, 1, 1, 1, 1, 1)
    arch = {
        k: v
        for k, v in arch.items()
        if v is not None
        and (
            k in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size", "vocab_size")
            or v != getattr(defaults, k)
        )
    }
    entry = {
        "id": model_id,
        "alias": (alias or model_id.rsplit("/", 1)[-1]).strip().lower(),
        "family": model.family or "unknown",
        "modality": model.modality,
        "params_total": int(model.params_total),
        "params_active": int(model.params_active),
        "max_context": int(model.max_context),
        "architecture": arch,
        "config_source": source,
    }
    if not entry["alias"]:
        raise UsageError("--alias is empty")
    parse_models({"models": [entry]}, origin="the new entry")
    return entry


def write_entries(path: str, entries: list[dict]) -> None:
    import yaml

    from .paths import write_private

    text = HEADER + yaml.safe_dump({"models": entries}, sort_keys=False, allow_unicode=True, width=120)
    write_private(path, text)


def find_entry(entries: list[dict], name: str) -> int | None:
    key = name.strip().lower()
    for i, entry in enumerate(entries):
        if key in (str(entry.get("id", "")).lower(), str(entry.get("alias", "")).lower()):
            return i
    loose = [
        i
        for i, e in enumerate(entries)
        if model_key(name) in (model_key(str(e.get("id", ""))), model_key(str(e.get("alias", ""))))
    ]
    return loose[0] if len(loose) == 1 else None
