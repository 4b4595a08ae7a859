"""Models described by files the user has: a Hugging Face config.json or a GGUF file."""

from __future__ import annotations

import json
from pathlib import Path

from ..estimator.catalog import Catalog, Model
from ..estimator.errors import UsageError
from ..estimator.hfconfig import model_from_hf_config


def model_from_config_file(path: str | Path) -> Model:
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    name = data.get("_name_or_path") if isinstance(data, dict) else None
    return model_from_hf_config(data, origin=f"--config {path}", name=name or path.parent.name or path.name)


def model_from_gguf_file(path: str | Path, catalog: Catalog) -> Model:
    raise UsageError(f"--gguf {path}: reading GGUF headers is not available in this version")
