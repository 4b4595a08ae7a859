"""Models described by files the user has: a Hugging Face config.json or a GGUF file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..catalog.errors import UsageError
from ..catalog.types import Catalog, Model
from ..estimator.ggufmodel import model_from_gguf
from ..estimator.hfconfig import model_from_hf_config


def config_name(path: Path) -> str:
    """The model a config.json belongs to, as its path tells it: the repo id of a Hugging Face cache
    snapshot (…/models--Org--Name/snapshots/<rev>/config.json → Org/Name), else the folder holding a
    config.json, else the file's own name. Never the file's `_name_or_path`, which is often where a
    training run kept it."""
    # abspath, not resolve: a snapshot's config.json is a link into blobs/, which names no model
    parts = Path(os.path.abspath(path)).parts
    for i, part in enumerate(parts):
        if part.startswith("models--") and i + 1 < len(parts) and parts[i + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/", 1)
    if path.name == "config.json" and path.parent.name not in ("", "."):
        return path.parent.name
    if path.name == "config.json":
        return Path.cwd().name or "config"
    return path.stem


def with_catalog_facts(model: Model, catalog: Catalog) -> Model:
    """A model read from a user's file that is a catalog model (the same name, loosely, and the same
    architecture) takes the catalog's id, benchmarks and published parameter counts, so every route
    scores it alike; otherwise it stays as read, its quality estimated."""
    import dataclasses

    from ..catalog.lookup import model_key

    key = model_key(model.id)
    shape = _shape(model.architecture)
    for known in catalog.models:
        if key in (model_key(known.id), model_key(known.alias)) and _shape(known.architecture) == shape:
            return dataclasses.replace(
                model,
                id=known.id,
                alias=known.alias,
                benchmarks=known.benchmarks,
                modality=known.modality,
                sources={**known.sources, **model.sources},
                params_active=known.params_active,
                params_total=known.params_total if model.file_weights is None else model.params_total,
                family=known.family,
                stand_ins=known.stand_ins,
                notes=model.notes + (f"{model.id} is the catalog's {known.id}: its benchmarks score the quality",),
            )
    return model


def _shape(arch) -> tuple:
    return (
        arch.layers,
        arch.hidden_size,
        arch.attention_heads,
        arch.kv_heads,
        arch.vocab_size,
        arch.experts,
        arch.experts_per_token,
    )


def model_from_config_file(path: str | Path, catalog: Catalog | None = None) -> Model:
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
    model = model_from_hf_config(data, origin=f"--config {path}", name=config_name(path))
    return with_catalog_facts(model, catalog) if catalog is not None else model


_SHARD = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


def model_from_gguf_file(path: str | Path, catalog: Catalog) -> Model:
    """The model a GGUF file holds, with the exact tensor sizes of its header (no weight is read:
    the file is memory-mapped and only the header and tensor table are parsed). A file that is
    one shard of a split model (``…-00001-of-00003.gguf``) brings its siblings along."""
    path = Path(path)
    origin = f"--gguf {path}"
    fields, tensors = read_gguf_shards(gguf_shards(path, origin), origin)
    file_type = file_type_name(fields.get("general.file_type"), catalog)
    model = model_from_gguf(fields, tensors, origin=str(path), file_type=file_type)
    named = with_catalog_facts(model, catalog)
    basename = fields.get("general.basename")
    if named is model and isinstance(basename, str) and basename != model.id:
        import dataclasses

        named = with_catalog_facts(dataclasses.replace(model, id=basename), catalog)
        named = model if named.id == basename else named
    return named


def gguf_shards(path: Path, origin: str) -> list[Path]:
    """The file itself, or every shard of the split model it is one of, in order."""
    if path.is_dir():
        raise UsageError(f"{origin}: is a directory — give the .gguf file itself")
    if not path.exists():
        raise UsageError(f"{origin}: no such file")
    match = _SHARD.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    shards = [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.exists()]
    if missing:
        raise UsageError(
            f"{origin}: split model, but {missing[0]} is not beside it ({len(missing)} of {count} shards missing)"
        )
    return shards


def read_gguf_shards(shards, origin: str | None = None) -> tuple[dict[str, object], list]:
    """The first shard's metadata and every shard's tensors; errors name the file as ``origin``
    (default: each shard by its own path)."""
    fields: dict[str, object] = {}
    tensors: list[tuple[str, int, int, tuple[int, ...]]] = []
    for i, shard in enumerate(shards):
        shard_fields, shard_tensors = _read_header(Path(shard), origin or str(shard))
        if i == 0:
            fields = shard_fields
        tensors += shard_tensors
    return fields, tensors


def _read_header(path: Path, origin: str) -> tuple[dict[str, object], list[tuple[str, int, int, tuple[int, ...]]]]:
    """The header's metadata (scalars; small and per-layer numeric arrays as lists; vocabularies and
    other big arrays as their element count) and its tensor table: (name, bytes, elements, shape
    with ne[0] first). Bounded whatever the file says (agent/ggufheader.py)."""
    from .ggufheader import read_gguf_header

    header = read_gguf_header(path, origin if path.name in origin else f"{origin} (shard {path.name})")
    return header.fields, header.tensors


def file_type_name(value: object, catalog: Catalog) -> str | None:
    """general.file_type (llama.cpp's LLAMA_FTYPE number) as a catalog quantization name."""
    from gguf import LlamaFileType

    if not isinstance(value, int):
        return None
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return None
    name = name.removeprefix("MOSTLY_").removeprefix("ALL_")
    try:
        return catalog.quant(name).name
    except UsageError:
        return None
