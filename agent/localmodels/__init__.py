"""The models people have: GGUF and safetensors files in the stores runtimes download into (the
Hugging Face cache, Ollama, LM Studio, llama.cpp's cache) and in folders the user names.

Read-only and quick: only headers and manifests are read, never weights; a small cache keyed by
path, size and mtime means a rescan stats files and reads nothing that did not change. What cannot
be read (truncated, unreadable, a link loop, a missing shard) is a problem in the answer, not a crash.

    installed = scan_installed(catalog, os.environ, model_dirs=config.model_dirs)
    installed.models      # (LocalModel, Model with the catalog's facts, catalog id or None)
    installed.fields("Qwen/Qwen3-8B", "Q4_K_M")   # {"installed": True, "installed_at": [...], ...}
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import cast

from ...catalog.types import Catalog
from .report import NOTHING, Installed, local_rows, match_catalog
from .roots import Root, scan_roots
from .scan import LocalModel, Scan

__all__ = ["Installed", "LocalModel", "NOTHING", "Root", "Scan", "local_rows", "scan", "scan_installed"]

_DEFAULT = object()


def scan(
    catalog: Catalog,
    environ: Mapping[str, str] | None = None,
    model_dirs: Iterable[str] = (),
    paths: Iterable[str] = (),
    cache_path: str | None | object = _DEFAULT,
) -> Scan:
    """The models under `paths`, else under the usual stores and `model_dirs`. `cache_path`: the scan
    cache's file (default: localmodels.json in the user's cache directory; None: no cache)."""
    from .cache import ScanCache, default_cache_path
    from .scan import run_scan

    environ = os.environ if environ is None else environ
    roots = scan_roots(environ, model_dirs, paths)
    path = default_cache_path(environ) if cache_path is _DEFAULT else cast("str | None", cache_path)
    return run_scan(roots, catalog, ScanCache(path))


def scan_installed(
    catalog: Catalog,
    environ: Mapping[str, str] | None = None,
    model_dirs: Iterable[str] = (),
    paths: Iterable[str] = (),
    cache_path: str | None | object = _DEFAULT,
) -> Installed:
    """scan(), each model matched with the catalog."""
    return match_catalog(scan(catalog, environ, model_dirs, paths, cache_path), catalog)
