"""The catalog's YAML documents validated into values: a bad entry stops with one line naming the
file, the entry and the field. Parsing is pure (documents in, values out); catalog.files reads them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NoReturn, overload

from .errors import DataError
from .lookup import normalize_gpu_name
from .types import Architecture, Catalog, GgmlType, GpuSpec, Model, Quantization, QuantLossModel


class _Entry:
    """Reads fields of one YAML entry, raising DataError that names file, entry and field."""

    def __init__(self, origin: str, label: str, data: object):
        if not isinstance(data, Mapping):
            raise DataError(f"{origin}: entry {label} is not a mapping")
        self.origin, self.label, self.data = origin, label, data

    def fail(self, fieldname: str, why: str) -> NoReturn:
        raise DataError(f"{self.origin}: entry {self.label}: field '{fieldname}' {why}")

    def get(self, name: str, kind, required: bool = True, default=None, positive: bool = False):
        if name not in self.data or self.data[name] is None:
            if required:
                self.fail(name, "is missing")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            self.fail(name, f"must be {getattr(kind, '__name__', kind)}, got {value!r}")
        if positive and value <= 0:
            self.fail(name, f"must be positive, got {value!r}")
        if kind in (int, float) and value < 0:
            self.fail(name, f"must not be negative, got {value!r}")
        return value

    @overload
    def sub(self, name: str) -> _Entry: ...
    @overload
    def sub(self, name: str, required: bool) -> _Entry | None: ...
    def sub(self, name: str, required: bool = True) -> _Entry | None:
        if name not in self.data:
            if required:
                self.fail(name, "is missing")
            return None
        return _Entry(self.origin, f"{self.label}.{name}", self.data[name])


def _list_of(doc: object, key: str, origin: str) -> list:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key), list):
        raise DataError(f"{origin}: expected a top-level '{key}:' list")
    return doc[key]


def parse_architecture(e: _Entry) -> Architecture:
    layers = e.get("layers", int, positive=True)
    hidden = e.get("hidden_size", int, positive=True)
    heads = e.get("attention_heads", int, positive=True)
    arch = Architecture(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=e.get("kv_heads", int, required=False, default=heads, positive=True),
        head_dim=e.get("head_dim", int, required=False, default=hidden // heads, positive=True),
        intermediate_size=e.get("intermediate_size", int, positive=True),
        vocab_size=e.get("vocab_size", int, positive=True),
        tied_embeddings=e.get("tied_embeddings", bool, required=False, default=False),
        hf_architecture=e.get("hf_architecture", str, required=False),
        sliding_window=e.get("sliding_window", int, required=False, positive=True),
        sliding_window_layers=e.get("sliding_window_layers", int, required=False, default=0),
        experts=e.get("experts", int, required=False, default=0),
        experts_per_token=e.get("experts_per_token", int, required=False, default=0),
        shared_experts=e.get("shared_experts", int, required=False, default=0),
        moe_intermediate_size=e.get("moe_intermediate_size", int, required=False, positive=True),
        shared_expert_intermediate_size=e.get("shared_expert_intermediate_size", int, required=False),
        dense_layers=e.get("dense_layers", int, required=False, default=0),
        kv_lora_rank=e.get("kv_lora_rank", int, required=False, positive=True),
        q_lora_rank=e.get("q_lora_rank", int, required=False, positive=True),
        qk_rope_head_dim=e.get("qk_rope_head_dim", int, required=False, positive=True),
        qk_nope_head_dim=e.get("qk_nope_head_dim", int, required=False, positive=True),
        v_head_dim=e.get("v_head_dim", int, required=False, positive=True),
        attention_bias=e.get("attention_bias", bool, required=False, default=False),
    )
    return check_architecture(arch, e.fail)


def check_architecture(arch: Architecture, fail) -> Architecture:
    """Cross-field rules shared by the catalog and --config."""
    if arch.sliding_window_layers > arch.layers:
        fail("sliding_window_layers", f"is {arch.sliding_window_layers}, more than the {arch.layers} layers")
    if arch.sliding_window_layers and not arch.sliding_window:
        fail("sliding_window", "is missing although sliding_window_layers is set")
    if arch.attention_heads % arch.kv_heads and not arch.uses_mla:
        fail("kv_heads", f"({arch.kv_heads}) must divide attention_heads ({arch.attention_heads})")
    if arch.experts:
        if not 0 < arch.experts_per_token <= arch.experts:
            fail("experts_per_token", f"must be between 1 and experts ({arch.experts})")
        if arch.dense_layers >= arch.layers:
            fail("dense_layers", "must be fewer than layers")
    elif arch.experts_per_token:
        fail("experts", "is missing although experts_per_token is set")
    if arch.uses_mla and (arch.qk_rope_head_dim is None or arch.qk_nope_head_dim is None or arch.v_head_dim is None):
        fail("qk_rope_head_dim", "is needed (with qk_nope_head_dim and v_head_dim) for latent attention (kv_lora_rank)")
    return arch


# mteb: an embedding model's own benchmark (MTEB, multilingual mean over tasks); no use case weighs it
BENCHMARKS = ("mmlu", "humaneval", "gsm8k", "bfcl", "mteb")
_MODALITIES = ("text", "vision", "embedding")  # embedding: sized and placed, never recommended for chat


def parse_models(doc: object, origin: str = "models.yaml") -> tuple[Model, ...]:
    models = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(_list_of(doc, "models", origin)):
        label = f"#{i + 1}"
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            label = f"'{raw['id']}'"
        e = _Entry(origin, label, raw)
        model_id = e.get("id", str)
        if "/" not in model_id:
            e.fail("id", f"must be a Hugging Face repo id like 'org/name', got {model_id!r}")
        alias = e.get("alias", str)
        for key in (model_id.lower(), alias.lower()):
            if key in seen:
                e.fail("alias" if key == alias.lower() else "id", f"duplicates {seen[key]}")
            seen[key] = label
        modality = e.get("modality", str)
        if modality not in _MODALITIES:
            e.fail("modality", f"must be one of {', '.join(_MODALITIES)}, got {modality!r}")
        arch = parse_architecture(e.sub("architecture"))
        params_total = e.get("params_total", int, positive=True)
        params_active = e.get("params_active", int, positive=True)
        if params_active > params_total:
            e.fail("params_active", f"({params_active}) exceeds params_total ({params_total})")
        benchmarks: dict[str, float] = {}
        stand_ins: dict[str, str] = {}
        sources = {}
        bench = e.sub("benchmarks", required=False)
        if bench is not None:
            if not isinstance(bench.data, Mapping):
                e.fail("benchmarks", "must be a mapping")
            for name, value in bench.data.items():
                if name not in BENCHMARKS:
                    bench.fail(name, f"is not a known benchmark ({', '.join(BENCHMARKS)})")
                b = _Entry(origin, f"{label}.benchmarks.{name}", value)
                score = b.get("score", float)
                if not 0 <= score <= 100:
                    b.fail("score", f"must be within 0–100, got {score}")
                b.get("source", str)
                benchmarks[name] = score
                sources[f"benchmark.{name}"] = b.data["source"]
                stand_in = b.get("stand_in", str, required=False)
                if stand_in is not None:
                    if not stand_in.strip():
                        b.fail("stand_in", "is empty (say whose score stands in, and why)")
                    stand_ins[name] = stand_in
        for key in ("config_source", "params_source"):
            value = e.get(key, str, required=False)
            if value:
                sources[key] = value
        if "config_source" not in sources:
            e.fail("config_source", "is missing (every entry cites where its architecture came from)")
        models.append(
            Model(
                id=model_id,
                alias=alias,
                family=e.get("family", str),
                modality=modality,
                params_total=params_total,
                params_active=params_active,
                max_context=e.get("max_context", int, positive=True),
                architecture=arch,
                benchmarks=benchmarks,
                sources=sources,
                stand_ins=stand_ins,
                release=str(raw["release"]) if raw.get("release") else None,
            )
        )
    if not models:
        raise DataError(f"{origin}: no models")
    return tuple(models)


_FORMATS = ("gguf", "float", "fp8", "fp4", "int", "mlx")


def parse_quantizations(
    doc: object, origin: str = "quantizations.yaml"
) -> tuple[tuple[Quantization, ...], dict[str, GgmlType]]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("ggml_types"), Mapping):
        raise DataError(f"{origin}: expected a top-level 'ggml_types:' mapping")
    types = {}
    for name, raw in doc["ggml_types"].items():
        e = _Entry(origin, f"ggml_types.{name}", raw)
        types[name] = GgmlType(name, e.get("block_size", int, positive=True), e.get("type_size", int, positive=True))
    quants = []
    seen = set()
    for i, raw in enumerate(_list_of(doc, "quantizations", origin)):
        label = f"'{raw.get('name')}'" if isinstance(raw, Mapping) and raw.get("name") else f"#{i + 1}"
        e = _Entry(origin, label, raw)
        name = e.get("name", str)
        if name.lower() in seen:
            e.fail("name", "is a duplicate")
        seen.add(name.lower())
        fmt = e.get("format", str)
        if fmt not in _FORMATS:
            e.fail("format", f"must be one of {', '.join(_FORMATS)}")
        base = e.get("base_type", str)
        if base not in types:
            e.fail("base_type", f"'{base}' is not in ggml_types")
        qf = e.get("quality_factor", float)
        if not 0 < qf <= 1:
            e.fail("quality_factor", f"must be within (0, 1], got {qf}")
        overrides = {}
        for key in ("output_type", "embedding_type"):
            value = e.get(key, str, required=False)
            if value is not None and value not in types:
                e.fail(key, f"'{value}' is not in ggml_types")
            overrides[key] = value
        quants.append(
            Quantization(
                name=name,
                bits_per_weight=e.get("bits_per_weight", float, positive=True),
                ppl_increase=e.get("ppl_increase", float, required=False),
                quality_factor=qf,
                tier=e.get("tier", str),
                format=fmt,
                base_type=base,
                source=e.get("source", str),
                aliases=tuple(e.get("aliases", list, required=False, default=[])),
                notes=e.get("notes", str, required=False),
                ftype=e.get("ftype", str, required=False),
                recommend=e.get("recommend", bool, required=False, default=True),
                kld_ref=_kld(e),
                **overrides,
            )
        )
    return tuple(quants), types


def _kld(e: _Entry) -> float:
    value = e.get("kld_ref", float)
    if value > 10:
        e.fail("kld_ref", f"is {value}: a mean KL divergence in nats per token is a few at most")
    e.get("kld_source", str)
    return value


def parse_quant_loss(doc: object, origin: str = "quantizations.yaml") -> QuantLossModel:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("quality_model"), Mapping):
        raise DataError(
            f"{origin}: expected a top-level 'quality_model:' mapping (reference_params, kld_to_loss, size_exponent)"
        )
    e = _Entry(origin, "quality_model", doc["quality_model"])
    return QuantLossModel(
        float(e.get("reference_params", int, positive=True)),
        e.get("size_exponent", float),
        e.get("kld_to_loss", float, positive=True),
    )


_VENDORS = ("nvidia", "amd", "apple", "intel")


def parse_gpus(doc: object, origin: str = "gpus.yaml") -> tuple[GpuSpec, ...]:
    gpus = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(_list_of(doc, "gpus", origin)):
        label = f"'{raw.get('name')}'" if isinstance(raw, Mapping) and raw.get("name") else f"#{i + 1}"
        e = _Entry(origin, label, raw)
        name = e.get("name", str)
        vendor = e.get("vendor", str)
        if vendor not in _VENDORS:
            e.fail("vendor", f"must be one of {', '.join(_VENDORS)}")
        aliases = tuple(str(a) for a in e.get("aliases", list, required=False, default=[]))
        for key in (name, *aliases):
            norm = normalize_gpu_name(key)
            if norm in seen and seen[norm] != label:
                e.fail("aliases", f"'{key}' is also a name of {seen[norm]}")
            seen[norm] = label
        pci_ids = tuple(str(p).lower() for p in e.get("pci_ids", list, required=False, default=[]))
        for pci in pci_ids:
            if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", pci):
                e.fail("pci_ids", f"'{pci}' is not of the form 'vvvv:dddd'")
        sources = e.get("sources", list)
        if not sources:
            e.fail("sources", "is empty (every entry cites its source)")
        gpus.append(
            GpuSpec(
                name=name,
                vendor=vendor,
                kind=e.get("kind", str),
                memory_bytes=e.get("memory_bytes", int, positive=True),
                memory_bandwidth_bytes_per_s=e.get("memory_bandwidth_bytes_per_s", int, positive=True),
                fp16_flops=e.get("fp16_flops", float, required=False, positive=True),
                unified_memory=e.get("unified_memory", bool, required=False, default=False),
                pci_ids=pci_ids,
                aliases=aliases,
                architecture=e.get("architecture", str, required=False),
                memory_type=e.get("memory_type", str, required=False),
                bus_width_bits=e.get("bus_width_bits", int, required=False),
                sources=tuple(sources),
            )
        )
    return tuple(gpus)


def build_catalog(models_doc, quants_doc, gpus_doc) -> Catalog:
    quants, types = parse_quantizations(quants_doc)
    models = parse_models(models_doc)
    return Catalog(
        models=models,
        quantizations=quants,
        ggml_types=types,
        gpus=parse_gpus(gpus_doc),
        quant_loss=parse_quant_loss(quants_doc),
    )
