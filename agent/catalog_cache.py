"""Loads the catalog shipped in fitagent's data/ package.

Parsing and validating the YAML takes longer than estimating the whole catalog, so the
validated catalog is kept as a pickle in the user's cache directory, keyed by a hash of the
data files and of the code that parses them; any change to either makes a new entry. A
cache that cannot be read or written is simply not used.

The user's own entries (`fitagent catalog add`, agent/usercatalog.py) overlay models.yaml: one with
a built-in id replaces that entry. Their file's text is part of the cache key.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zlib
from functools import lru_cache

from .. import catalog as catalog_package
from .. import estimator as estimator_package
from ..catalog.files import read_data_text, yaml_load
from ..catalog.parse import build_catalog
from ..catalog.types import Catalog
from ..estimator.candidates import with_precomputed_weights
from ..estimator.quality import benchmark_priors

DATA_FILES = ("models.yaml", "quantizations.yaml", "gpus.yaml")


def cache_dir() -> str:
    from .paths import cache_dir as user_cache_dir

    return user_cache_dir()


# What the cached values depend on: the modules that parse the data, size the weights and
# estimate missing scores. Read as files, so that a start with a cached catalog need not import them all.
_CODE_FILES = (
    (catalog_package, ("types.py", "lookup.py", "parse.py")),
    (estimator_package, ("memory.py", "quantmix.py", "tensors.py", "quantloss.py", "quality.py")),
)


def _cache_key(texts: dict[str, str], user_text: str = "") -> str:
    """A checksum (not a security hash: the cache is the user's own) of data and code, and of the
    user's own catalog (agent/usercatalog.py) when there is one."""
    crc = 0
    size = 0
    for package, names in _CODE_FILES:
        folder = os.path.dirname(package.__file__ or "")
        for name in names:
            with open(os.path.join(folder, name), "rb") as fh:
                code = fh.read()
            crc, size = zlib.crc32(code, crc), size + len(code)
    for name in DATA_FILES:
        blob = name.encode() + b"\0" + texts[name].encode()
        crc, size = zlib.crc32(blob, crc), size + len(blob)
    if user_text:
        blob = b"user:models.yaml\0" + user_text.encode()
        crc, size = zlib.crc32(blob, crc), size + len(blob)
    return f"{crc:08x}{size:08x}"


def _trusted(fd: int, folder: str) -> bool:
    """A pickle runs code when loaded: read only one this user wrote, in a folder no one else can
    write to (a shared or misconfigured cache directory must not let another user plant one)."""
    import stat

    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        info, where = os.fstat(fd), os.stat(folder)
    except OSError:
        return False
    if uid is None:
        return True
    for st in (info, where):
        if st.st_uid != uid or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return stat.S_ISREG(info.st_mode)


def _read_cache(path: str) -> Catalog | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not _trusted(fd, os.path.dirname(path)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            cached = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None
    finally:
        os.close(fd)
    return cached if isinstance(cached, Catalog) else None


def _write_cache(path: str, catalog: Catalog) -> None:
    folder = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        # O_EXCL | O_NOFOLLOW: never write through a planted link or into someone else's file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(catalog, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # readers see the old file or the whole new one, never half
        for name in os.listdir(folder):
            stale = os.path.join(folder, name)
            if name.startswith("catalog-") and name.endswith(".pickle") and stale != path:
                os.unlink(stale)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # a read-only home or a full disk only costs start-up time


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    from .usercatalog import overlay, read_user_text, user_entries

    texts = {name: read_data_text(name) for name in DATA_FILES}
    user_path, user_text = read_user_text()
    path = os.path.join(cache_dir(), f"catalog-{_cache_key(texts, user_text)}.pickle")
    cached = _read_cache(path)
    if cached is not None:
        return cached
    docs = [yaml_load(texts[name], name) for name in DATA_FILES]
    docs[0] = overlay(docs[0], user_entries(user_text, user_path), user_path)  # the user's own entries over models.yaml
    facts = build_catalog(*docs)
    catalog = with_precomputed_weights(dataclasses.replace(facts, benchmark_priors=benchmark_priors(facts.models)))
    _write_cache(path, catalog)
    return catalog
