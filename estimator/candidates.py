"""The default method: a candidate's memory, placement and speed, cheap enough to sweep the whole
catalog (``place_candidate``), then turned into the full ``Estimate`` (``estimate_from_candidate``)."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

from ..catalog.types import Catalog, Model, Quantization
from . import limits, memory, quality, quantloss, speed
from . import placement as place
from .budget import Budget
from .results import SAFE_HEADROOM_BYTES, DeviceUse, Estimate, Options
from .seed_method import estimate_seed
from .support import caveat, unsupported

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
) -> place.MemoryParts:
    if terms is None:
        terms = model_terms(model, catalog, options)
    arch = model.architecture
    cal = options.calibration
    return place.MemoryParts(
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


def placements(need: place.MemoryParts, budget: Budget, options: Options, moe: bool) -> list[place.Placement]:
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
    tried = [place.partial_offload(need, budget.devices, host)]
    if moe:
        tried.append(place.experts_offload(need, budget.devices, host))
    offloads = [p for p in tried if p is not None]
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
    placement, from which `estimate_from_candidate` makes the Estimate of one it returns."""

    __slots__ = ()

    @property
    def whole(self) -> bool:
        """Fits the budget and runs entirely from it: on the GPUs, or in RAM on a machine without
        GPUs (a CPU placement cannot fit a GPU budget it left unused). What the frontiers plot."""
        return self.fits and self.loads and self.placement in ("gpu", "cpu")


def place_candidate(
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
        e = estimate_seed(model, quant, budget, options)
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
    need: place.MemoryParts, model: Model, terms: ModelTerms, budget: Budget, options: Options
) -> tuple[float | None, place.Placement]:
    """Of the placements that fit, the one that decodes fastest, and its speed (for MoE, experts
    in RAM with attention on the GPU usually beats whole layers in RAM)."""
    options_speed = [
        (speed.decode_tokens_per_s(need, p, model.architecture, terms.kv_read_bytes, budget, options.calibration), p)
        for p in placements(need, budget, options, model.is_moe)
    ]
    return max(options_speed, key=lambda sp: sp[0] or 0.0)


def _footprint(need: place.MemoryParts, placed: place.Placement, budget: Budget) -> tuple[int, int, int, bool]:
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


def estimate_from_candidate(
    candidate: Candidate, model: Model, quant: Quantization, budget: Budget, options: Options
) -> Estimate:
    """The Estimate of a swept candidate: its figures, per-device use and notes, and with
    options.detail prefill, time to first token and the limits."""
    if options.method == "seed":
        return estimate_seed(model, quant, budget, options)
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
    completion = None
    if options.output_tokens and ttft is not None:
        # The first token is in the time to first token; each further one reads the KV cache at
        # its own depth, and a step's time grows linearly with depth: their sum is their count
        # at the mean depth (sliding layers stop growing at their window, so this is an upper bound).
        start = options.prefill_depth + options.prompt_tokens
        mean_depth = round(start + options.output_tokens / 2)
        rate = speed.decode_tokens_per_s(
            need, placed, arch, speed.kv_read_bytes_at(need, arch, mean_depth), budget, options.calibration
        )
        completion = ttft + (options.output_tokens - 1) / rate if rate else None
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
        notes=_notes(candidate, budget, options) + _support_notes(quant, placed, model.is_moe),
        decode_tokens_per_s_range=speed.speed_range(decode, "decode", placed),
        decode_tokens_per_s_at_context=at_context,
        prefill_tokens_per_s_range=speed.speed_range(prefill, "prefill", placed),
        output_tokens=options.output_tokens,
        completion_time_s=completion,
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
        assert budget.host_bandwidth_bytes_per_s is not None  # ASSUMED_HOST_BANDWIDTH when assumed
        return (
            f"host RAM bandwidth unknown, {budget.host_bandwidth_bytes_per_s / 1e9:.1f} GB/s assumed (dual-channel "
            "DDR4-3200); measure it once with `fitagent probe --measure-bandwidth` (remembered) or set "
            "FITAGENT_HOST_MEMORY_BANDWIDTH_BYTES_PER_S",
        )
    return ()


def _support_notes(quant: Quantization, placed: place.Placement, moe: bool) -> tuple[str, ...]:
    """What the GPUs used cannot run of this quantization's kernels, or run only slowly."""
    seen: list[str] = []
    for share in placed.shares:
        for note in (unsupported(quant, share.device, moe=moe), caveat(quant, share.device)):
            if note and note not in seen:
                seen.append(note)
    return tuple(seen)


def shortfalls(need: place.MemoryParts, placed: place.Placement, budget: Budget, options: Options) -> list[str]:
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


SAME_QUALITY = 0.1  # checkpoints within this many quality points: the faster one


def best_checkpoint(offered: list, speed):
    """Of one model's checkpoints that serve, the one a ranking shows: the best quality, or the
    fastest (`speed` of each) of those within SAME_QUALITY of it."""
    best = max(c.quality for c in offered)
    return max((c for c in offered if c.quality >= best - SAME_QUALITY), key=speed)
