"""``--method seed``: seed 000 end to end (its formulas in ``seed``), as an ``Estimate``."""

from __future__ import annotations

from ..catalog.types import Model, Quantization
from . import quality, seed
from .budget import Budget
from .results import Estimate, Options


def estimate_seed(model: Model, quant: Quantization, budget: Budget, options: Options) -> Estimate:
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
