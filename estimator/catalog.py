"""The catalog: models, quantizations and GPUs, validated into frozen values.

Parsing is pure (documents in, values out); reading the YAML files is the agent's job.
A bad entry stops with one line naming the file, the entry and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import DataError, NotFoundError, UsageError
from .quantloss import QuantLossModel


@dataclass(frozen=True)
class GgmlType:
    name: str
    block_size: int  # weights per block
    type_size: int  # bytes per block

    @property
    def bits_per_weight(self) -> float:
        return self.type_size * 8 / self.block_size


@dataclass(frozen=True)
class Quantization:
    name: str
    bits_per_weight: float  # the seed table's average, used by --method seed
    ppl_increase: float | None  # None where no measurement is published
    quality_factor: float
    tier: str
    format: str  # gguf | float | fp8 | int
    base_type: str  # ggml type most weight matrices get
    source: str
    aliases: tuple[str, ...] = ()
    notes: str | None = None
    # The llama.cpp file type whose per-tensor rules apply (defaults to the name): uploaders'
    # variants such as bartowski's Q4_K_L are Q4_K_M with the embeddings and output at Q8_0.
    ftype: str | None = None
    output_type: str | None = None  # --output-tensor-type override
    embedding_type: str | None = None  # --token-embedding-type override
    recommend: bool = True  # offered by `fitagent recommend` (uploader variants and legacy types are not)
    # mean KL divergence the type adds to the reference model (quantizations.yaml, quality_model):
    # what the default method's quality reads; None only for entries made outside the shipped data
    kld_ref: float | None = None

    @property
    def rules(self) -> str:
        return self.ftype or self.name


@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool = False
    hf_architecture: str | None = None
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None
    dense_layers: int = 0
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    attention_bias: bool = False

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def local_attention_layers(self) -> int:
        """Layers llama.cpp runs with a sliding window. It ignores Phi-3's window
        ("Phi SWA is currently disabled", llama.cpp PR #13676), so those cache every token."""
        if self.hf_architecture == "Phi3ForCausalLM":
            return 0
        return self.sliding_window_layers

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0


@dataclass(frozen=True)
class FileWeights:
    """Exact tensor bytes from a model file's header, grouped by where llama.cpp puts them."""

    layers_bytes: int  # every repeating block (blk.N.*), routed experts included
    expert_bytes: int  # the routed-expert tensors (*_exps) among them
    embedding_bytes: int  # token_embd: stays in host memory
    head_bytes: int  # output head, final norm and any other global tensor
    tied: bool  # no output.weight: the embedding matrix doubles as the head
    file_type: str | None = None  # the quantization the header names (general.file_type)
    path: str = ""

    @property
    def total_bytes(self) -> int:
        return self.layers_bytes + self.embedding_bytes + self.head_bytes


@dataclass(frozen=True)
class Model:
    id: str
    alias: str
    family: str
    modality: str
    params_total: int
    params_active: int
    max_context: int
    architecture: Architecture
    benchmarks: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    # benchmark -> whose score stands in for this model's own (a base model's, a sibling's)
    stand_ins: Mapping[str, str] = field(default_factory=dict)
    release: str | None = None
    file_weights: FileWeights | None = None  # set for --gguf: the header's exact sizes replace the estimate
    notes: tuple[str, ...] = ()  # what was assumed to read it (a model from a user's file)

    @property
    def is_moe(self) -> bool:
        return self.architecture.is_moe


@dataclass(frozen=True)
class GpuSpec:
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: int
    fp16_flops: float | None
    unified_memory: bool
    pci_ids: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    architecture: str | None = None
    memory_type: str | None = None
    bus_width_bits: int | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    models: tuple[Model, ...]
    quantizations: tuple[Quantization, ...]
    ggml_types: Mapping[str, GgmlType]
    gpus: tuple[GpuSpec, ...]
    quant_loss: QuantLossModel
    # benchmark -> (intercept, slope) of score on log10(effective parameters), over the catalog's
    # own scores, one residual standard deviation low: what a missing benchmark is estimated from
    benchmark_priors: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # (model id, quant name) -> (architecture, weights split), filled by
    # estimate.with_precomputed_weights; sizing every tensor of every candidate is the
    # costliest part of a catalog sweep and depends on nothing but this catalog.
    weights_table: Mapping[tuple[str, str], tuple] = field(default_factory=dict, compare=False)

    def model(self, name: str) -> Model:
        return find_model(self.models, name)

    def quant(self, name: str) -> Quantization:
        return find_quant(self.quantizations, name)

    def resolve_quant(self, name: str) -> tuple[Quantization, str | None]:
        return resolve_quant(self.quantizations, name)

    def gpu(self, name: str) -> GpuSpec:
        return find_gpu(self.gpus, name)

    def gpu_by_pci_id(self, pci_id: str | None) -> GpuSpec | None:
        if not pci_id:
            return None
        pci_id = pci_id.lower()
        for spec in self.gpus:
            if pci_id in spec.pci_ids:
                return spec
        return None


# ---------------------------------------------------------------- lookups


def _suggest(name: str, candidates) -> str:
    import difflib  # only a mistyped name needs it: kept off every command's start-up

    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=3, cutoff=0.5)
    originals = {c.lower(): c for c in candidates}
    return ", ".join(originals[c] for c in close)


_MODEL_FILLER = re.compile(r"(?<![a-z0-9])(instruct|chat|it|hf|gguf)(?![a-z0-9])")


def model_key(name: str) -> str:
    """A model name as people vary it: no organisation, no case, no separators, without
    '-Instruct' / '-Chat' / '-it' / '-GGUF' ("Llama-3.1-8B" and "meta-llama/Llama-3.1-8B-Instruct" agree)."""
    tail = name.strip().lower().rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "", _MODEL_FILLER.sub(" ", tail))


def find_model(models, name: str) -> Model:
    key = name.strip().lower()
    for m in models:
        if key in (m.id.lower(), m.alias.lower()):
            return m
    tail_matches = [m for m in models if m.id.lower().split("/")[-1] == key]
    if len(tail_matches) == 1:
        return tail_matches[0]
    loose = model_key(name)
    same = [m for m in models if loose and loose in (model_key(m.id), model_key(m.alias))]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        raise UsageError(
            f"model '{name}' matches {len(same)} catalog models: {', '.join(m.id for m in same[:8])} — give one"
        )
    ranked = _closest(loose, {m.id: (model_key(m.id), model_key(m.alias)) for m in models})
    tip = f" — did you mean {', '.join(ranked)}?" if ranked else ""
    raise NotFoundError(
        f"unknown model '{name}'{tip} (`fitagent catalog models` lists them; --config takes a config.json)"
    )


def _closest(key: str, keys: Mapping[str, tuple[str, ...]], n: int = 3) -> list[str]:
    """The names whose loose keys are nearest to `key`, nearest first."""
    from difflib import SequenceMatcher  # only a mistyped name needs it: kept off every command's start-up

    def score(candidates: tuple[str, ...]) -> float:
        best = 0.0
        for k in candidates:
            matcher = SequenceMatcher(None, key, k)
            # a query that is the start of a name ("qwen257b" of "qwen257binstruct") ranks first
            best = max(best, matcher.ratio() + (0.5 if k.startswith(key) or key.startswith(k) else 0.0))
        return best

    scored = sorted(((score(c), name) for name, c in keys.items()), key=lambda sn: (-sn[0], sn[1]))
    return [name for s, name in scored[:n] if s >= 0.6]


def quant_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


# Unsloth's "Dynamic" uploads (UD-Q4_K_XL, …) mix types per tensor; none is a llama.cpp file type.
# Each is sized as the llama.cpp type nearest in size, and says so.
_DYNAMIC_NEAREST = {
    "q2kxl": "Q2_K",
    "q3kxl": "Q3_K_M",
    "q4kxl": "Q4_K_M",
    "q5kxl": "Q5_K_M",
    "q6kxl": "Q6_K",
    "q8kxl": "Q8_0",
}


_NAME_TABLES: dict[int, tuple[tuple, dict]] = {}


def _name_table(quants) -> dict:
    """Every name and alias of ``quants`` by its forgiving key, built once per quantization
    table (the tuple is kept with it, so its id cannot be reused by another)."""
    hit = _NAME_TABLES.get(id(quants))
    if hit is not None and hit[0] is quants:
        return hit[1]
    by_key: dict[str, Quantization] = {}
    for q in quants:
        for label in (q.name, *q.aliases):
            by_key.setdefault(quant_key(label), q)
    if isinstance(quants, tuple):
        _NAME_TABLES[id(quants)] = (quants, by_key)
    return by_key


def resolve_quant(quants, name: str) -> tuple[Quantization, str | None]:
    """A quantization by the names people give it, and a note when it was read as another:
    case and separators forgiven (q4km, Q4-K-M); '-imat' / 'i1-' (how the file was made) and
    Unsloth's 'UD-' prefix dropped; UD-…_K_XL mixes sized as the nearest llama.cpp type; a
    bare 'q4' refused with its choices."""
    raw = name.strip()
    key = quant_key(raw)
    by_key = _name_table(quants)
    if key in by_key:
        return by_key[key], None
    stripped, dropped = key, []
    for prefix, what in (("ud", "Unsloth Dynamic"), ("i1", "imatrix")):
        if stripped.startswith(prefix) and len(stripped) > len(prefix) + 1:
            stripped, dropped = stripped[len(prefix) :], dropped + [what]
    for suffix in ("imatrix", "imat"):
        if stripped.endswith(suffix):
            stripped, dropped = stripped[: -len(suffix)], dropped + ["imatrix"]
    dynamic = "Unsloth Dynamic" in dropped or (stripped in _DYNAMIC_NEAREST and stripped not in by_key)
    if dynamic and stripped in _DYNAMIC_NEAREST:
        q = by_key[quant_key(_DYNAMIC_NEAREST[stripped])]
        return q, (
            f"{raw} is an Unsloth Dynamic mix, not a llama.cpp type: sized and scored as {q.name}, the nearest "
            "in size (give the file with --gguf for its exact sizes)"
        )
    if stripped in by_key:
        q = by_key[stripped]
        return (
            q,
            f"{raw} read as {q.name} ({' and '.join(dict.fromkeys(dropped))} is how the file was made, not its type)",
        )
    family = [q for q in quants if q.ftype is None and quant_key(q.name).startswith(stripped) and stripped]
    if len(family) == 1:
        return family[0], None
    if len(family) > 1:
        family.sort(key=lambda q: (not q.recommend, q.name))
        raise UsageError(f"quantization '{raw}' is ambiguous: {', '.join(q.name for q in family)} — give one")
    hint = _suggest(raw, [q.name for q in quants])
    tip = f" — did you mean {hint}?" if hint else ""
    raise NotFoundError(f"unknown quantization '{raw}'{tip} (known: {', '.join(q.name for q in quants)})")


def find_quant(quants, name: str) -> Quantization:
    return resolve_quant(quants, name)[0]


_VENDOR_WORDS = ("nvidia", "geforce", "amd", "radeon", "intel", "apple", "tesla", "graphics")


def normalize_gpu_name(name: str) -> str:
    text = name.lower()
    for word in _VENDOR_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return re.sub(r"[^a-z0-9]+", "", text)


def _gpu_tokens(name: str) -> frozenset[str]:
    text = name.lower()
    for word in _VENDOR_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return frozenset(t for t in re.split(r"[^a-z0-9]+", text) if t)


def find_gpu(gpus, name: str) -> GpuSpec:
    """A catalog GPU by its name or an alias, forgiving vendor words, case and separators.

    A name that is only part of a GPU's ("4090", "RTX 6000", "A100 80GB") is accepted when it
    picks out one GPU; when it fits several (the A100's four variants, both M3 Max bins) it is
    refused with the variants listed, never resolved to one of them silently."""
    key = normalize_gpu_name(name)
    if not key:
        raise UsageError(f"--gpu '{name}' names no GPU (e.g. --gpu 'RTX 4090')")
    exact = [g for g in gpus if key == normalize_gpu_name(g.name) or key in (normalize_gpu_name(a) for a in g.aliases)]
    if len(exact) == 1:
        return exact[0]
    tokens = _gpu_tokens(name)
    partial = (
        exact
        or [
            g
            for g in gpus
            if any(key in normalize_gpu_name(n) or tokens <= _gpu_tokens(n) for n in (g.name, *g.aliases))
        ]
        or [g for g in gpus if normalize_gpu_name(g.name) and normalize_gpu_name(g.name) in key]
    )
    if len(partial) == 1:
        return partial[0]
    if partial:
        variants = "; ".join(
            f"{g.name} ({g.memory_bytes / 1e9:.0f} GB, {g.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s)"
            for g in partial[:8]
        )
        more = f"; and {len(partial) - 8} more" if len(partial) > 8 else ""
        raise UsageError(f"--gpu '{name}' matches {len(partial)} GPUs: {variants}{more} — give the full name of one")
    hint = _suggest(name, [g.name for g in gpus] + [a for g in gpus for a in g.aliases])
    tip = f" — did you mean {hint}?" if hint else ""
    raise NotFoundError(f"unknown GPU '{name}'{tip} (`fitagent catalog gpus` lists them)")


# ---------------------------------------------------------------- parsing


class _Entry:
    """Reads fields of one YAML entry, raising DataError that names file, entry and field."""

    def __init__(self, origin: str, label: str, data: object):
        if not isinstance(data, Mapping):
            raise DataError(f"{origin}: entry {label} is not a mapping")
        self.origin, self.label, self.data = origin, label, data

    def fail(self, fieldname: str, why: str):
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
_BENCHMARKS = ("mmlu", "humaneval", "gsm8k", "bfcl", "mteb")
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
                if name not in _BENCHMARKS:
                    bench.fail(name, f"is not a known benchmark ({', '.join(_BENCHMARKS)})")
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


_FORMATS = ("gguf", "float", "fp8", "int")


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


def effective_params(model: Model) -> float:
    """What a model's scores scale with: its parameters, or for a mixture of experts the geometric
    mean of all and active ones (a 30B-A3B scores about like a 10B dense model)."""
    return (model.params_total * model.params_active) ** 0.5 if model.is_moe else float(model.params_total)


def benchmark_priors(models) -> dict[str, tuple[float, float]]:
    """Least-squares line of each benchmark's score on log10(effective parameters), over the models
    that publish their own score (stand-ins left out), lowered by the residual standard deviation:
    a missing score is estimated from size, cautiously."""
    import math

    priors = {}
    for bench in _BENCHMARKS:
        points = [
            (math.log10(effective_params(m)), m.benchmarks[bench])
            for m in models
            if bench in m.benchmarks and bench not in m.stand_ins
        ]
        if len(points) < 3:
            continue
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        sxx = sum((x - mx) ** 2 for x, _ in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
        intercept = my - slope * mx
        spread = (sum((y - intercept - slope * x) ** 2 for x, y in points) / (len(points) - 2)) ** 0.5
        # One residual standard deviation below the line: a guess from size should not outrank a
        # measured score it only matches on average (the winner's curse of ranking noisy estimates).
        priors[bench] = (intercept - spread, slope)
    return priors


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
        benchmark_priors=benchmark_priors(models),
    )
