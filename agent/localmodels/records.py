"""What one model's files say: a JSON-ready record of its header facts and the Model they describe
(as read, before any catalog match, so the scan cache does not depend on the catalog)."""

from __future__ import annotations

import dataclasses
import json
import os

from ...catalog.errors import UsageError
from ...catalog.types import Catalog, FileWeights
from .cache import model_to_json
from .safetensors import Summary, read_summary

# safetensors dtype → the catalog quantization its quality is scored as
DTYPE_QUANTS = {"BF16": "BF16", "F16": "F16", "F32": "F32", "F8_E4M3": "FP8", "F8_E5M2": "FP8"}


def nearest_quant(bits_per_weight: float, catalog: Catalog) -> str:
    """The llama.cpp type nearest in bits per weight: what a file of no known type is scored as."""
    offered = [q for q in catalog.quantizations if q.recommend and q.format in ("gguf", "float")]
    return min(offered, key=lambda q: abs(q.bits_per_weight - bits_per_weight)).name


def is_projector_name(path: str) -> bool:
    return "mmproj" in os.path.basename(path).lower()


def gguf_record(paths: list[str], catalog: Catalog) -> dict:
    """The header facts of a GGUF model (its shards in order) and the Model they describe.
    UsageError when a header cannot be read (truncated, unreadable, not GGUF)."""
    from ...estimator.ggufmodel import model_from_gguf
    from ..modelfiles import file_type_name, read_gguf_shards

    fields, tensors = read_gguf_shards(paths)
    arch = fields.get("general.architecture")
    names = [v for v in (fields.get("general.name"), fields.get("general.basename")) if isinstance(v, str) and v]
    basename, size_label = fields.get("general.basename"), fields.get("general.size_label")
    if isinstance(basename, str) and isinstance(size_label, str) and basename and size_label:
        names.append(f"{basename}-{size_label}")
    record: dict[str, object] = {
        "kind": "gguf",
        "architecture": arch if isinstance(arch, str) else None,
        "names": names,
        "quant": None,
        "score_quant": None,
        "projector": arch == "clip",
        "model": None,
        "error": None,
    }
    if record["projector"]:
        return record
    quant = file_type_name(fields.get("general.file_type"), catalog)
    try:
        model = model_from_gguf(fields, tensors, origin=paths[0], file_type=quant)
    except UsageError as exc:
        record["error"] = f"cannot estimate it: {_without(str(exc), paths[0])}"
        return record
    total = model.file_weights.total_bytes if model.file_weights else 0
    record.update(
        quant=quant,
        model=model_to_json(model),
        score_quant=quant or nearest_quant(8 * total / max(model.params_total, 1), catalog),
    )
    return record


def safetensors_record(config_path: str, weight_paths: list[str], name: str, catalog: Catalog) -> dict:
    """A Hugging Face checkpoint: the architecture from config.json, exact sizes and dtypes from the
    safetensors headers. UsageError when a file cannot be read."""
    from ...estimator.hfconfig import model_from_hf_config
    from ..files import read_text

    try:
        text = read_text(config_path, "config.json")
    except FileNotFoundError:
        raise UsageError(f"{config_path}: no such file") from None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{config_path}: not valid JSON ({exc})") from None
    summary = Summary()
    for path in weight_paths:
        summary.add(read_summary(path))
    archs = config.get("architectures") if isinstance(config, dict) else None
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    label = quant_label(config, summary)
    record: dict[str, object] = {
        "kind": "safetensors",
        "architecture": arch,
        "names": [name],
        "quant": label,
        "score_quant": None,
        "dtypes": dict(sorted(summary.dtype_bytes.items(), key=lambda kv: -kv[1])),
        "projector": False,
        "model": None,
        "error": None,
    }
    try:
        model = model_from_hf_config(config, origin=config_path, name=name)
    except UsageError as exc:
        record["error"] = f"cannot estimate it: {_without(str(exc), config_path)}"
        return record
    dtype_quant = DTYPE_QUANTS.get(label) if label is not None else None
    score = dtype_quant or nearest_quant(8 * summary.data_bytes / max(model.params_total, 1), catalog)
    if summary.layers_bytes:  # the exact sizes, where the tensor names say which are layers
        weights = FileWeights(
            summary.layers_bytes,
            summary.expert_bytes,
            summary.embedding_bytes,
            summary.head_bytes,
            tied=not summary.lm_head,
            file_type=score,
            path=os.path.dirname(config_path),
        )
        model = dataclasses.replace(model, file_weights=weights)
    record.update(model=model_to_json(model), score_quant=score)
    return record


def quant_label(config: object, summary: Summary) -> str | None:
    """How a checkpoint is stored: the quantization method its config names (AWQ-4bit, GPTQ-4bit, …),
    else its main dtype by bytes (BF16, F16, F8_E4M3, …)."""
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    if isinstance(qc, dict) and isinstance(qc.get("quant_method"), str) and qc["quant_method"].lower() != "fp8":
        bits = qc.get("bits") or qc.get("w_bit")
        method = qc["quant_method"].upper()[:40]
        return f"{method}-{bits}bit" if isinstance(bits, int) else method
    if not summary.dtype_bytes:
        return None
    return max(summary.dtype_bytes.items(), key=lambda kv: kv[1])[0]


def _without(message: str, path: str) -> str:
    return message[len(path) + 2 :] if message.startswith(path + ": ") else message
