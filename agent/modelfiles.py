"""Models described by files the user has: a Hugging Face config.json or a GGUF file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..estimator.catalog import Catalog, Model
from ..estimator.errors import UsageError
from ..estimator.ggufmodel import model_from_gguf
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
    # A Hugging Face snapshot folder is named after the model; a lone file after itself.
    fallback = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    return model_from_hf_config(data, origin=f"--config {path}", name=name or fallback)


_SHARD = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


def model_from_gguf_file(path: str | Path, catalog: Catalog) -> Model:
    """The model a GGUF file holds, with the exact tensor sizes of its header (no weight is read:
    the file is memory-mapped and only the header and tensor table are parsed). A file that is
    one shard of a split model (``…-00001-of-00003.gguf``) brings its siblings along."""
    path = Path(path)
    origin = f"--gguf {path}"
    shards = _shards(path, origin)
    fields: dict[str, object] = {}
    tensors: list[tuple[str, int, int, tuple[int, ...]]] = []
    for i, shard in enumerate(shards):
        shard_fields, shard_tensors = _read_header(shard, origin)
        if i == 0:
            fields = shard_fields
        tensors += shard_tensors
    file_type = _file_type_name(fields.get("general.file_type"), catalog)
    return model_from_gguf(fields, tensors, origin=str(path), file_type=file_type)


def _shards(path: Path, origin: str) -> list[Path]:
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
        raise UsageError(f"{origin}: split model, but {missing[0]} is not beside it ({len(missing)} of {count} shards missing)")
    return shards


def _read_header(path: Path, origin: str) -> tuple[dict[str, object], list[tuple[str, int, int, tuple[int, ...]]]]:
    from gguf import GGUFReader, GGUFValueType

    try:
        reader = GGUFReader(path)
    except PermissionError:
        raise UsageError(f"{origin}: permission denied reading {path.name}") from None
    except OSError as exc:
        raise UsageError(f"{origin}: cannot read {path.name} ({exc.strerror or exc})") from None
    except (ValueError, IndexError, OverflowError, TypeError, KeyError, MemoryError) as exc:
        if path.stat().st_size == 0:
            why = "empty file"
        elif "magic" in str(exc) or "version" in str(exc):
            why = str(exc)
        else:
            why = "truncated or corrupt header"
        raise UsageError(f"{origin}: not a readable GGUF file ({why})") from None
    fields: dict[str, object] = {}
    for name, field in reader.fields.items():
        if not field.types:
            continue
        if field.types[0] == GGUFValueType.ARRAY:
            if field.types[-1] == GGUFValueType.STRING:
                fields[name] = len(field.data)  # vocabularies: the count is all anyone here needs
            else:
                fields[name] = field.contents()
        else:
            fields[name] = field.contents()
    tensors = [(t.name, int(t.n_bytes), int(t.n_elements), tuple(int(d) for d in t.shape)) for t in reader.tensors]
    return fields, tensors


def _file_type_name(value: object, catalog: Catalog) -> str | None:
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
