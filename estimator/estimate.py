"""One candidate — (model, quantization, context) on a budget — estimated end to end."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import memory, placement as place, quality, seed, speed
from .budget import Budget
from .calibration import DEFAULT_CALIBRATION, Calibration
from .catalog import Catalog, Model, Quantization
from .errors import UsageError
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
    prompt_tokens: int = 512
    decode_depth: int | None = None  # KV depth decode speed is quoted at; None = after the prompt
    multi_gpu: str = "layer"
    calibration: Calibration = DEFAULT_CALIBRATION

    def check(self) -> "Options":
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
        if self.prompt_tokens < 0 or self.prompt_tokens > MAX_CONTEXT:
            raise UsageError(f"--prompt-tokens must be between 0 and {MAX_CONTEXT:,}, got {self.prompt_tokens}")
        if self.kv_quant.lower() not in memory.KV_TYPES:
            raise UsageError(f"unknown --kv-quant '{self.kv_quant}' (choose f16, q8_0 or q4_0)")
        return self


@dataclass(frozen=True)
class DeviceUse:
    id: str
    name: str
    layers: int
    bytes: int
    free_bytes: int

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "layers": self.layers, "bytes": self.bytes, "free_bytes": self.free_bytes}


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
            "safe": self.safe,
            "headroom_bytes": self.headroom_bytes,
            "placement": self.placement,
            "gpu_layers": self.gpu_layers,
            "total_layers": self.total_layers,
            "n_cpu_moe": self.n_cpu_moe,
            "tensor_parallel": self.tensor_parallel,
            "host_bytes": self.host_bytes,
            "decode_tokens_per_s": _round(self.decode_tokens_per_s),
            "prefill_tokens_per_s": _round(self.prefill_tokens_per_s),
            "time_to_first_token_s": _round(self.time_to_first_token_s, 4),
            "prompt_tokens": self.prompt_tokens,
            "kv_quant": self.kv_quant,
            "quality": round(self.quality, 2),
            "efficiency": _round(self.efficiency, 3),
            "params_total": self.params_total,
            "params_active": self.params_active,
            "moe": self.moe,
            "devices": [d.to_dict() for d in self.devices],
            "notes": list(self.notes),
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def estimate(model: Model, quant: Quantization, budget: Budget, catalog: Catalog, options: Options = Options()) -> Estimate:
    if options.method == "seed":
        return _estimate_seed(model, quant, budget, options)
    return _estimate_default(model, quant, budget, catalog, options)


# ---------------------------------------------------------------- default method

def need_for(model: Model, quant: Quantization, catalog: Catalog, options: Options) -> place.Need:
    arch = model.architecture
    cal = options.calibration
    kv_element = memory.kv_bytes_per_element(options.kv_quant, catalog.ggml_types)
    return place.Need(
        layers=arch.layers,
        moe_layers=arch.moe_layers,
        weights=memory.weights(arch, quant, catalog.ggml_types),
        kv_bytes=memory.kv_cache_bytes(arch, options.context, kv_element, cal.n_ubatch),
        overhead_per_gpu=memory.overhead_bytes(arch, options.context, cal),
        compute_bytes=memory.compute_buffer_bytes(arch, options.context, cal),
    )


def placements(need: place.Need, budget: Budget, options: Options, moe: bool) -> list[place.Placement]:
    """The ways this candidate can be placed, best first by the rule llama.cpp users follow:
    all on GPU if it fits; else the offloads that fit (decided by speed by the caller); else CPU."""
    host = budget.host_available_bytes
    if options.gpu_layers is not None:
        return [place.forced_layers(need, budget.devices, options.gpu_layers)]
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


def _estimate_default(model: Model, quant: Quantization, budget: Budget, catalog: Catalog, options: Options) -> Estimate:
    arch = model.architecture
    cal = options.calibration
    need = need_for(model, quant, catalog, options)
    kv_element = memory.kv_bytes_per_element(options.kv_quant, catalog.ggml_types)
    depth = options.decode_depth if options.decode_depth is not None else min(options.context, options.prompt_tokens)
    kv_read = memory.kv_bytes_read_per_token(arch, depth, kv_element)
    # Of the placements that fit, keep the one that decodes fastest (for MoE, experts in RAM
    # with attention on the GPU usually beats whole layers in RAM).
    options_speed = [(speed.decode_tokens_per_s(need, p, arch, kv_read, budget, cal), p)
                     for p in placements(need, budget, options, model.is_moe)]
    decode, placed = max(options_speed, key=lambda sp: sp[0] or 0.0)
    devices_used = max(1, len(placed.shares))
    overhead = need.overhead_per_gpu * devices_used if budget.devices else need.compute_bytes
    weights_total = need.weights.total_bytes
    total = weights_total + need.kv_bytes + overhead
    budget_bytes = budget.budget_bytes
    fits = placed.mode in ("gpu", "cpu") and (placed.mode == "gpu" or not budget.devices)
    if placed.mode == "gpu":
        headroom = sum(s.device.free_bytes - s.total_bytes for s in placed.shares)
        headroom += sum(d.free_bytes for d in budget.devices if d not in {s.device for s in placed.shares})
    else:
        headroom = budget_bytes - total
    prefill = speed.prefill_tokens_per_s(need, placed, arch, model.params_active, options.prompt_tokens, budget, cal)
    q = quality.final_quality(model.benchmarks, options.use_case, quant.quality_factor, model.params_total)
    ttft = options.prompt_tokens / prefill + (1 / decode if decode else 0) if prefill else None
    return Estimate(
        model=model.id, quant=quant.name, context=options.context, method="default", use_case=options.use_case,
        weights_bytes=weights_total, kv_cache_bytes=need.kv_bytes, overhead_bytes=overhead, total_bytes=total,
        budget_bytes=budget_bytes, fits=fits, safe=fits and headroom > SAFE_HEADROOM_BYTES, headroom_bytes=int(headroom),
        placement=placed.mode, gpu_layers=placed.gpu_layers, total_layers=arch.layers,
        decode_tokens_per_s=decode, prefill_tokens_per_s=prefill, time_to_first_token_s=ttft,
        quality=q, efficiency=quality.efficiency(q, decode, total), params_total=model.params_total,
        params_active=model.params_active, moe=model.is_moe, host_bytes=placed.host_bytes,
        n_cpu_moe=placed.n_cpu_moe, tensor_parallel=placed.tensor_parallel, kv_quant=options.kv_quant.lower(),
        prompt_tokens=options.prompt_tokens,
        devices=tuple(DeviceUse(s.device.id, s.device.name, s.layers, s.total_bytes, s.device.free_bytes) for s in placed.shares),
    )


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
    q = quality.final_quality(model.benchmarks, options.use_case, quant.quality_factor, model.params_total)
    return Estimate(
        model=model.id, quant=quant.name, context=options.context, method="seed", use_case=options.use_case,
        weights_bytes=round(weights), kv_cache_bytes=round(kv), overhead_bytes=round(seed.SEED_OVERHEAD_BYTES),
        total_bytes=round(total), budget_bytes=budget_bytes, fits=fits,
        safe=headroom > seed.SEED_SAFE_HEADROOM_BYTES, headroom_bytes=round(headroom), placement=mode,
        gpu_layers=layers, total_layers=arch.layers, decode_tokens_per_s=decode, prefill_tokens_per_s=None,
        time_to_first_token_s=None, quality=q, efficiency=quality.efficiency(q, decode, total),
        params_total=model.params_total, params_active=model.params_active, moe=model.is_moe,
        kv_quant="f16", prompt_tokens=options.prompt_tokens,
        notes=("seed method: one memory pool, no offload, no prefill model",),
    )
