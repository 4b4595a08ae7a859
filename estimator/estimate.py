"""One candidate — (model, quantization, context) on a budget — estimated end to end."""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from dataclasses import dataclass, field

from ..catalog.errors import UsageError
from ..catalog.types import Catalog, Model, Quantization
from . import limits, memory, quality, quantloss, seed, speed
from . import placement as place
from .budget import Budget
from .calibration import DEFAULT_CALIBRATION, Calibration
from .quality import USE_CASES

METHODS = ("default", "seed")
MULTI_GPU_MODES = ("layer", "tensor")
MAX_CONTEXT = 10_000_000  # no model in sight reads more; a larger number is a typo
SAFE_HEADROOM_BYTES = 1_000_000_000  # seed §2.3: "safe" above 1 GB of headroom


@dataclass(frozen=True)
class Options:
    context: int = 8192
    use_case: str = "general"
    method: str = "default"
    kv_quant: str = "f16"
    gpu_layers: int | None = None  # force a split, like llama.cpp -ngl
    n_cpu_moe: int | None = None  # force the routed experts of N layers into RAM, like llama.cpp --n-cpu-moe
    prompt_tokens: int = 512
    decode_depth: int | None = None  # KV depth decode speed is quoted at; None = after the prompt
    prefill_depth: int = 0  # tokens already in the cache when the prompt arrives (llama-bench -d)
    multi_gpu: str = "layer"
    calibration: Calibration = DEFAULT_CALIBRATION
    # Prefill / time to first token and the limits (max_context, concurrent_sessions): `recommend`
    # skips them while it sweeps every candidate and fills them in for the ones it returns.
    detail: bool = True

    def check(self) -> Options:
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context <= 0:
            raise UsageError(f"context must be a positive number of tokens, got {self.context!r}")
        if self.context > MAX_CONTEXT:
            raise UsageError(f"context {self.context} is beyond any model's window (at most {MAX_CONTEXT:,} tokens)")
        if self.use_case not in USE_CASES:
            raise UsageError(f"unknown use case '{self.use_case}' (choose {', '.join(USE_CASES)})")
        if self.method not in METHODS:
            raise UsageError(f"unknown method '{self.method}' (choose {', '.join(METHODS)})")
        if self.multi_gpu not in MULTI_GPU_MODES:
            raise UsageError(f"unknown multi-GPU mode '{self.multi_gpu}' (choose {', '.join(MULTI_GPU_MODES)})")
        if self.gpu_layers is not None and self.gpu_layers < 0:
            raise UsageError(f"--gpu-layers must be 0 or more, got {self.gpu_layers}")
        if self.n_cpu_moe is not None and self.n_cpu_moe < 0:
            raise UsageError(f"--n-cpu-moe must be 0 or more, got {self.n_cpu_moe}")
        if self.gpu_layers is not None and self.n_cpu_moe is not None:
            raise UsageError("give --gpu-layers or --n-cpu-moe, not both")
        if self.prompt_tokens < 0 or self.prompt_tokens > MAX_CONTEXT:
            raise UsageError(f"--prompt-tokens must be between 0 and {MAX_CONTEXT:,}, got {self.prompt_tokens}")
        if self.kv_quant.lower() not in memory.KV_TYPES:
            raise UsageError(f"unknown --kv-quant '{self.kv_quant}' (choose f16, q8_0 or q4_0)")
        return self


# What each key of Estimate.to_dict() means (docs/estimator.md renders this table; the HTTP
# layer can put it in its OpenAPI schema). Bytes are bytes, speeds tokens/s.
ESTIMATE_FIELDS: dict[str, str] = {
    "model": "model id (catalog id, config's name or the GGUF's general.name)",
    "quant": "quantization name (data/quantizations.yaml)",
    "context": "context length the memory is sized for, in tokens",
    "method": "default (tensor-wise, fitted to measurements) or seed (the seed document's formulas)",
    "use_case": "what the quality score weighs: general, code, tool-calling, math, vision",
    "weights_bytes": "all weight tensors (tensor by tensor in llama.cpp's per-tensor types; exact with --gguf)",
    "kv_cache_bytes": "KV cache for one sequence of `context` tokens (GQA, sliding windows, MLA, --kv-quant)",
    "overhead_bytes": "runtime reserve + compute buffers on every GPU used (+ the host's when layers run on the CPU)",
    "total_bytes": "weights + KV cache + overhead",
    "budget_bytes": "free memory the estimate was made against: the GPUs' sum, or RAM without GPUs",
    "fits": "the whole model fits the budget: headroom_bytes ≥ 0 (the seed's and the frontiers' sense)",
    "loads": "the placement chosen (or forced) puts no more on any GPU than its free memory and no more in host RAM "
    "than is available; false means llama.cpp would fail to load it (placement none, no speed)",
    "safe": "fits and loads with more than 1 GB of headroom (seed §2.3)",
    "headroom_bytes": "budget − total: free memory left if the whole model sat in the budget (negative: short by that much)",
    "placement": "gpu | partial_offload | cpu | none (none: nothing loads, or a forced split that does not load)",
    "gpu_layers": "repeating layers on GPUs (llama.cpp -ngl; the output head joins them when all are)",
    "total_layers": "the model's repeating layers",
    "n_cpu_moe": "MoE layers whose routed experts stay in RAM (llama.cpp --n-cpu-moe)",
    "tensor_parallel": "layers shared across GPUs tensor-parallel (vLLM) rather than split (llama.cpp)",
    "host_bytes": "what stays in host RAM: the embedding table, CPU layers or experts, their KV, the host compute buffer",
    "decode_tokens_per_s": "tokens/s of one stream once the prompt is in (KV read at the prompt's depth)",
    "decode_tokens_per_s_range": "[low, high]: where decode_tokens_per_s likely lands — it × the 10th and 90th "
    "percentiles of measured ÷ estimate when each GPU is left out of the fit, for its "
    "device class and regime (calibration.SPEED_RANGES); null without a speed or for "
    "the seed method",
    "decode_tokens_per_s_at_context": "tokens/s of one stream once the whole context is filled (KV read at "
    "`context` tokens): the slowest it gets",
    "prefill_tokens_per_s": "prompt-processing tokens/s for a prompt of `prompt_tokens`",
    "prefill_tokens_per_s_range": "[low, high] for prefill_tokens_per_s, as for decode",
    "time_to_first_token_s": "prompt_tokens / prefill + one decode step",
    "prompt_tokens": "prompt length prefill and time to first token are quoted for",
    "kv_quant": "KV cache type: f16, q8_0 or q4_0 (llama.cpp -ctk/-ctv)",
    "quality": "benchmark score of the use case × the share the quantization keeps (default: measured KL divergence, "
    "less for larger models; seed: §4's factor × size penalty)",
    "quality_source": "where the benchmark score comes from: 'benchmarks' (the model's own), 'stand-in: …' (another "
    "model's, named), 'estimated from size: …' (no score: predicted from parameters)",
    "quant_retention": "share of the model's benchmark score kept at this quantization (1 = lossless)",
    "efficiency": "seed §6: sqrt(quality_norm × speed_norm) per GB",
    "params_total": "all parameters (every expert)",
    "params_active": "parameters a token passes through (MoE: the routed experts it uses and the shared ones)",
    "moe": "mixture of experts",
    "devices": "per GPU used: id, name, layers, bytes it holds, its free bytes",
    "max_context": "longest context (whole 256-token pages, at most the model's trained window) that fits with this "
    "placement; null when nothing fits; not computed by recommend for candidates it does not return",
    "concurrent_sessions": "sessions of `context` tokens that fit at once, each with its own KV cache (llama-server "
    "-np N with -c N×context, or vLLM's paged cache); 0 if not even one fits",
    "notes": "caveats in words",
}


@dataclass(frozen=True)
class DeviceUse:
    id: str
    name: str
    layers: int
    bytes: int
    free_bytes: int

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "layers": self.layers,
            "bytes": self.bytes,
            "free_bytes": self.free_bytes,
        }


@dataclass(frozen=True)
class Estimate:
    model: str
    quant: str
    context: int
    method: str
    use_case: str
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int
    budget_bytes: int
    fits: bool
    safe: bool
    headroom_bytes: int
    placement: str
    gpu_layers: int
    total_layers: int
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None
    time_to_first_token_s: float | None
    quality: float
    efficiency: float | None
    params_total: int
    params_active: int
    moe: bool
    host_bytes: int = 0
    n_cpu_moe: int = 0
    tensor_parallel: bool = False
    kv_quant: str = "f16"
    prompt_tokens: int = 512
    devices: tuple[DeviceUse, ...] = ()
    notes: tuple[str, ...] = field(default=())
    max_context: int | None = None
    concurrent_sessions: int | None = None
    loads: bool = True
    quality_source: str = "benchmarks"
    quant_retention: float = 1.0
    decode_tokens_per_s_range: tuple[float, float] | None = None
    decode_tokens_per_s_at_context: float | None = None
    prefill_tokens_per_s_range: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "quant": self.quant,
            "context": self.context,
            "method": self.method,
            "use_case": self.use_case,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "overhead_bytes": self.overhead_bytes,
            "total_bytes": self.total_bytes,
            "budget_bytes": self.budget_bytes,
            "fits": self.fits,
            "loads": self.loads,
            "safe": self.safe,
            "headroom_bytes": self.headroom_bytes,
            "placement": self.placement,
            "gpu_layers": self.gpu_layers,
            "total_layers": self.total_layers,
            "n_cpu_moe": self.n_cpu_moe,
            "tensor_parallel": self.tensor_parallel,
            "host_bytes": self.host_bytes,
            "decode_tokens_per_s": _round(self.decode_tokens_per_s),
            "decode_tokens_per_s_range": _round_range(self.decode_tokens_per_s_range),
            "decode_tokens_per_s_at_context": _round(self.decode_tokens_per_s_at_context),
            "prefill_tokens_per_s": _round(self.prefill_tokens_per_s),
            "prefill_tokens_per_s_range": _round_range(self.prefill_tokens_per_s_range),
            "time_to_first_token_s": _round(self.time_to_first_token_s, 4),
            "prompt_tokens": self.prompt_tokens,
            "kv_quant": self.kv_quant,
            "quality": round(self.quality, 2),
            "quality_source": self.quality_source,
            "quant_retention": round(self.quant_retention, 4),
            "efficiency": _round(self.efficiency, 3),
            "params_total": self.params_total,
            "params_active": self.params_active,
            "moe": self.moe,
            "devices": [d.to_dict() for d in self.devices],
            "max_context": self.max_context,
            "concurrent_sessions": self.concurrent_sessions,
            "notes": list(self.notes),
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _round_range(value: tuple[float, float] | None) -> list[float] | None:
    return None if value is None else [round(value[0], 2), round(value[1], 2)]


def estimate(
    model: Model, quant: Quantization, budget: Budget, catalog: Catalog, options: Options = Options()
) -> Estimate:
    if options.method == "seed":
        return _estimate_seed(model, quant, budget, options)
    return complete(sweep_candidate(model, quant, budget, catalog, options), model, quant, budget, options)


# ---------------------------------------------------------------- default method

# The sweep's records are namedtuples: `recommend` builds ~1,400 Candidates per run, and a
# namedtuple is several times cheaper than a frozen dataclass both to build and to define at
# import (start-up time counts for every command).


class ModelTerms(
    namedtuple(
        "ModelTerms",
        (
            "kv",  # memory.KvLinear: the KV cache's coefficients
            "cells",  # KV cells per layer: the context padded as llama.cpp pads it
            "kv_bytes",  # the KV cache at `cells`
            "compute_gpu_bytes",  # compute buffer of a GPU without the output head
            "compute_head_bytes",  # compute buffer of the device that computes the logits
            "kv_read_bytes",  # KV cache one decode step reads, at the depth decode is quoted at
            "base_quality",  # the use case's benchmark score, before quantization
            "quality_source",  # where that score comes from (quality.scored)
        ),
    )
):
    """What an estimate needs of the model and the options but not of the quantization:
    `recommend` works it out once per model rather than once per candidate."""

    __slots__ = ()


def model_terms(model: Model, catalog: Catalog, options: Options) -> ModelTerms:
    arch = model.architecture
    cal = options.calibration
    kv_element = memory.kv_bytes_per_element(options.kv_quant, catalog.ggml_types)
    depth = options.decode_depth if options.decode_depth is not None else min(options.context, options.prompt_tokens)
    kv = memory.kv_linear(arch, kv_element, cal.n_ubatch)
    cells = memory.pad(options.context)
    base, source = quality.scored(model, options.use_case, catalog.benchmark_priors)
    return ModelTerms(
        kv=kv,
        cells=cells,
        kv_bytes=kv.bytes(cells),
        compute_gpu_bytes=memory.compute_buffer_bytes(arch, options.context, cal, with_output=False),
        compute_head_bytes=memory.compute_buffer_bytes(arch, options.context, cal),
        kv_read_bytes=memory.kv_bytes_read_per_token(arch, depth, kv_element),
        base_quality=base,
        quality_source=source,
    )


def need_for(
    model: Model, quant: Quantization, catalog: Catalog, options: Options, terms: ModelTerms | None = None
) -> place.Need:
    if terms is None:
        terms = model_terms(model, catalog, options)
    arch = model.architecture
    cal = options.calibration
    return place.Need(
        layers=arch.layers,
        moe_layers=arch.moe_layers,
        weights=model_weights(model, quant, catalog),
        kv=terms.kv,
        cells=terms.cells,
        kv_bytes=terms.kv_bytes,
        reserve_bytes=cal.runtime_reserve_bytes,
        compute_gpu_bytes=terms.compute_gpu_bytes,
        compute_head_bytes=terms.compute_head_bytes,
        mask_bytes_per_cell=2 * cal.n_ubatch,
    )


def model_weights(model: Model, quant: Quantization, catalog: Catalog) -> memory.WeightsSplit:
    """Tensor by tensor from the architecture, or the exact sizes a GGUF header gave."""
    exact = model.file_weights
    if exact is None:
        cached = catalog.weights_table.get((model.id, quant.name))
        if cached is not None and cached[0] is model.architecture:
            return cached[1]
        return memory.weights(model.architecture, quant, catalog.ggml_types)
    duplicate = exact.embedding_bytes if exact.tied else 0
    return memory.WeightsSplit(
        total_bytes=exact.total_bytes,
        per_layer_bytes=exact.layers_bytes / model.architecture.layers,
        expert_bytes=exact.expert_bytes,
        embedding_bytes=exact.embedding_bytes,
        head_bytes=exact.head_bytes + duplicate,
        head_duplicate_bytes=duplicate,
    )


def with_precomputed_weights(catalog: Catalog) -> Catalog:
    """The catalog with every (model, quantization)'s weights sized in advance."""
    table = {
        (m.id, q.name): (m.architecture, memory.weights(m.architecture, q, catalog.ggml_types))
        for m in catalog.models
        for q in catalog.quantizations
    }
    return dataclasses.replace(catalog, weights_table=table)


def placements(need: place.Need, budget: Budget, options: Options, moe: bool) -> list[place.Placement]:
    """The ways this candidate can be placed, best first by the rule llama.cpp users follow:
    all on GPU if it fits; else the offloads that fit (decided by speed by the caller); else CPU."""
    host = budget.host_available_bytes
    if options.gpu_layers is not None:
        return [place.forced_layers(need, budget.devices, options.gpu_layers)]
    if options.n_cpu_moe is not None and moe:
        return [place.forced_experts(need, budget.devices, options.n_cpu_moe)]
    full = place.full_gpu(need, budget.devices, host, tensor_parallel=options.multi_gpu == "tensor")
    if full is not None:
        return [full]
    offloads = [place.partial_offload(need, budget.devices, host)]
    if moe:
        offloads.append(place.experts_offload(need, budget.devices, host))
    offloads = [p for p in offloads if p is not None]
    if offloads:
        return offloads
    return [place.cpu_only(need, host) or place.NONE]


class Candidate(
    namedtuple(
        "Candidate",
        "model quant placement total_bytes fits safe quality decode_tokens_per_s "
        "efficiency overhead_bytes headroom_bytes need placed loads retention quality_source",
    )
):
    """One (model, quantization) placed and timed: the figures a recommendation ranks and plots
    for every candidate it sweeps (named as in Estimate), and the default method's need and
    placement, from which `complete` makes the Estimate of one it returns."""

    __slots__ = ()

    @property
    def whole(self) -> bool:
        """Fits the budget and runs entirely from it: on the GPUs, or in RAM on a machine without
        GPUs (a CPU placement cannot fit a GPU budget it left unused). What the frontiers plot."""
        return self.fits and self.loads and self.placement in ("gpu", "cpu")


def sweep_candidate(
    model: Model,
    quant: Quantization,
    budget: Budget,
    catalog: Catalog,
    options: Options,
    terms: ModelTerms | None = None,
) -> Candidate:
    """A candidate without what only its Estimate holds (per-device use, prefill, limits, notes);
    `terms`, the model's for these options, saves working them out again."""
    if options.method == "seed":
        e = _estimate_seed(model, quant, budget, options)
        return Candidate(
            e.model,
            e.quant,
            e.placement,
            e.total_bytes,
            e.fits,
            e.safe,
            e.quality,
            e.decode_tokens_per_s,
            e.efficiency,
            e.overhead_bytes,
            e.headroom_bytes,
            None,
            None,
            e.loads,
            e.quant_retention,
            e.quality_source,
        )
    if terms is None:
        terms = model_terms(model, catalog, options)
    need = need_for(model, quant, catalog, options, terms)
    decode, placed = _fastest_placement(need, model, terms, budget, options)
    overhead, total, headroom, loads = _footprint(need, placed, budget)
    fits = headroom >= 0
    mode = placed.mode
    if not loads:
        decode, mode = None, "none"  # a forced split that overfills a device: llama.cpp would not load it
    kept = quant_retention(quant, model, catalog)
    q = terms.base_quality * kept
    return Candidate(
        model.id,
        quant.name,
        mode,
        total,
        fits,
        fits and loads and headroom > SAFE_HEADROOM_BYTES,
        q,
        decode,
        quality.efficiency(q, decode, total),
        overhead,
        int(headroom),
        need,
        placed,
        loads,
        kept,
        terms.quality_source,
    )


def quant_retention(quant: Quantization, model: Model, catalog: Catalog) -> float:
    """Share of the benchmark score kept at this type (default method: measured divergence, less for
    a larger model); a type without a measurement keeps the seed's factor."""
    if quant.kld_ref is None:
        return quant.quality_factor
    return quantloss.retention(quant.kld_ref, model.params_total, catalog.quant_loss)


def _fastest_placement(
    need: place.Need, model: Model, terms: ModelTerms, budget: Budget, options: Options
) -> tuple[float | None, place.Placement]:
    """Of the placements that fit, the one that decodes fastest, and its speed (for MoE, experts
    in RAM with attention on the GPU usually beats whole layers in RAM)."""
    options_speed = [
        (speed.decode_tokens_per_s(need, p, model.architecture, terms.kv_read_bytes, budget, options.calibration), p)
        for p in placements(need, budget, options, model.is_moe)
    ]
    return max(options_speed, key=lambda sp: sp[0] or 0.0)


def _footprint(need: place.Need, placed: place.Placement, budget: Budget) -> tuple[int, int, int, bool]:
    """(overhead, total bytes, headroom, loads) of a placed candidate: headroom is the budget
    less the total (the whole model against the budget, whatever the placement); `loads` says
    whether every device and the host hold what this placement puts there."""
    if placed.shares:
        overhead = sum(s.overhead_bytes for s in placed.shares) + placed.host_overhead_bytes
    else:
        overhead = need.compute_bytes
    total = need.weights.total_bytes + need.kv_bytes + overhead
    loads = placed.mode != "none" and placed.fits(budget.host_available_bytes)
    return overhead, total, budget.budget_bytes - total, loads


def complete(candidate: Candidate, model: Model, quant: Quantization, budget: Budget, options: Options) -> Estimate:
    """The Estimate of a swept candidate: its figures, per-device use and notes, and with
    options.detail prefill, time to first token and the limits."""
    if options.method == "seed":
        return _estimate_seed(model, quant, budget, options)
    arch = model.architecture
    need, placed, decode = candidate.need, candidate.placed, candidate.decode_tokens_per_s
    prefill = max_context = sessions = None
    if options.detail and candidate.loads:
        prefill = speed.prefill_tokens_per_s(
            need,
            placed,
            arch,
            _active_params(model, arch),
            options.prompt_tokens,
            budget,
            options.calibration,
            depth=options.prefill_depth,
            float_weights=quant.format == "float",
        )
        max_context = limits.max_context(need, placed, budget.host_available_bytes, model.max_context)
        sessions = limits.concurrent_sessions(need, placed, budget.host_available_bytes)
    ttft = options.prompt_tokens / prefill + (1 / decode if decode else 0) if prefill else None
    at_context = None
    if decode:
        at_context = speed.decode_tokens_per_s(
            need, placed, arch, speed.kv_read_bytes_at(need, arch, options.context), budget, options.calibration
        )
    return Estimate(
        model=model.id,
        quant=quant.name,
        context=options.context,
        method="default",
        use_case=options.use_case,
        weights_bytes=need.weights.total_bytes,
        kv_cache_bytes=need.kv_bytes,
        overhead_bytes=candidate.overhead_bytes,
        total_bytes=candidate.total_bytes,
        budget_bytes=budget.budget_bytes,
        fits=candidate.fits,
        safe=candidate.safe,
        headroom_bytes=candidate.headroom_bytes,
        placement=candidate.placement,
        gpu_layers=placed.gpu_layers,
        total_layers=arch.layers,
        decode_tokens_per_s=decode,
        prefill_tokens_per_s=prefill,
        time_to_first_token_s=ttft,
        quality=candidate.quality,
        efficiency=candidate.efficiency,
        params_total=model.params_total,
        params_active=model.params_active,
        moe=model.is_moe,
        host_bytes=placed.host_bytes,
        n_cpu_moe=placed.n_cpu_moe,
        tensor_parallel=placed.tensor_parallel,
        kv_quant=options.kv_quant.lower(),
        prompt_tokens=options.prompt_tokens,
        devices=tuple(
            DeviceUse(s.device.id, s.device.name, s.layers, s.total_bytes, s.device.free_bytes) for s in placed.shares
        ),
        max_context=max_context,
        concurrent_sessions=sessions,
        loads=candidate.loads,
        quality_source=candidate.quality_source,
        quant_retention=candidate.retention,
        notes=_notes(candidate, budget, options),
        decode_tokens_per_s_range=speed.speed_range(decode, "decode", placed),
        decode_tokens_per_s_at_context=at_context,
        prefill_tokens_per_s_range=speed.speed_range(prefill, "prefill", placed),
    )


def _notes(candidate: Candidate, budget: Budget, options: Options) -> tuple[str, ...]:
    placed = candidate.placed
    if not candidate.loads:
        return tuple(shortfalls(candidate.need, placed, budget, options))
    if not candidate.fits and placed.mode == "gpu":
        return (
            f"every layer loads on the GPUs although the whole ({candidate.total_bytes / 1e9:.2f} GB) exceeds the "
            f"budget: {placed.host_bytes / 1e9:.2f} GB (the embedding table) stays in host RAM",
        )
    if budget.host_bandwidth_assumed and placed.mode in ("partial_offload", "cpu"):
        return (
            f"host RAM bandwidth unknown, {budget.host_bandwidth_bytes_per_s / 1e9:.1f} GB/s assumed (dual-channel "
            "DDR4-3200); measure it once with `fitagent probe --measure-bandwidth` (remembered) or set "
            "FITAGENT_HOST_MEMORY_BANDWIDTH_BYTES_PER_S",
        )
    return ()


def shortfalls(need: place.Need, placed: place.Placement, budget: Budget, options: Options) -> list[str]:
    """Why a placement does not load: each overfilled device and the host, short by how much,
    and the largest forced split that would load."""
    lines = []
    for share in placed.shares:
        if share.total_bytes > share.device.free_bytes:
            lines.append(
                f"{share.device.name} needs {share.total_bytes / 1e9:.2f} GB for {share.layers} layers, "
                f"{share.device.free_bytes / 1e9:.2f} GB free (short {(share.total_bytes - share.device.free_bytes) / 1e9:.2f} GB)"
            )
    host = budget.host_available_bytes
    if placed.host_bytes > host:
        lines.append(
            f"host RAM needs {placed.host_bytes / 1e9:.2f} GB, {host / 1e9:.2f} GB available "
            f"(short {(placed.host_bytes - host) / 1e9:.2f} GB)"
        )
    if options.gpu_layers is not None and placed.shares:
        most = place.most_layers(need, budget.devices, host)
        lines.append(
            f"at most {most} of {need.layers} layers load (--gpu-layers {most})"
            if most
            else "not one layer loads on the GPUs"
        )
    elif options.n_cpu_moe is not None and placed.shares:
        fewest = place.fewest_cpu_moe(need, budget.devices, host)
        lines.append(
            f"the experts of at least {fewest} layers must stay in RAM (--n-cpu-moe {fewest})"
            if fewest is not None
            else "it does not load with any --n-cpu-moe"
        )
    return lines


def _active_params(model: Model, arch) -> float:
    """Parameters a token passes through: the catalog's published figure, else from the shapes."""
    if model.params_active:
        return model.params_active
    from .tensors import active_parameter_count

    return active_parameter_count(arch)


# ---------------------------------------------------------------- seed method


def _estimate_seed(model: Model, quant: Quantization, budget: Budget, options: Options) -> Estimate:
    """Seed 000 as written: one memory pool, no offload, bandwidth / weights × η."""
    arch = model.architecture
    weights = seed.weights_bytes(model.params_total, quant.bits_per_weight)
    kv = seed.kv_cache_bytes(arch.layers, arch.kv_heads, arch.hidden_size, arch.attention_heads, options.context)
    total = seed.total_bytes(weights, kv)
    budget_bytes = budget.budget_bytes
    headroom = budget_bytes - total
    fits = headroom >= 0
    if budget.devices:
        fastest = max(budget.devices, key=lambda d: d.free_bytes)
        bw = fastest.bandwidth_bytes_per_s
        decode = seed.decode_tokens_per_s(bw, weights, quant.bits_per_weight, model.is_moe) if bw else None
        mode = "gpu" if fits else "none"
        layers = arch.layers if fits else 0
    else:
        bw = budget.host_bandwidth_bytes_per_s
        decode = seed.cpu_decode_tokens_per_s(bw, weights) if bw else None
        mode = "cpu" if fits else "none"
        layers = 0
    if not fits:
        decode = None  # one pool, no offload: what does not fit does not run
    q = quality.final_quality(model.benchmarks, options.use_case, quant.quality_factor, model.params_total)
    return Estimate(
        model=model.id,
        quant=quant.name,
        context=options.context,
        method="seed",
        use_case=options.use_case,
        weights_bytes=round(weights),
        kv_cache_bytes=round(kv),
        overhead_bytes=round(seed.SEED_OVERHEAD_BYTES),
        total_bytes=round(total),
        budget_bytes=budget_bytes,
        fits=fits,
        safe=headroom > seed.SEED_SAFE_HEADROOM_BYTES,
        headroom_bytes=round(headroom),
        placement=mode,
        gpu_layers=layers,
        total_layers=arch.layers,
        decode_tokens_per_s=decode,
        prefill_tokens_per_s=None,
        time_to_first_token_s=None,
        quality=q,
        efficiency=quality.efficiency(q, decode, total),
        params_total=model.params_total,
        params_active=model.params_active,
        moe=model.is_moe,
        kv_quant="f16",
        prompt_tokens=options.prompt_tokens,
        loads=fits,
        quality_source=quality.seed_source(model, options.use_case),
        quant_retention=quant.quality_factor,
        notes=("seed method: one memory pool, no offload, no prefill model",),
        decode_tokens_per_s_at_context=decode,  # the seed's formula reads no KV cache: no slower when full
    )
