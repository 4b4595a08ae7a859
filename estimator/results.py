"""What an estimate takes (``Options``) and gives (``Estimate``, one ``DeviceUse`` per GPU), and
the JSON contract of its fields (``ESTIMATE_FIELDS``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..catalog.errors import UsageError
from . import memory
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
    output_tokens: int | None = None  # an answer's length: completion_time_s is quoted for it
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
        if self.output_tokens is not None and not 1 <= self.output_tokens <= MAX_CONTEXT:
            raise UsageError(f"--output-tokens must be between 1 and {MAX_CONTEXT:,}, got {self.output_tokens}")
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
    "output_tokens": "answer length completion_time_s is quoted for (null: not asked)",
    "completion_time_s": "time to first token + each further token's decode time, the KV cache growing from the "
    "prompt's depth: the wait for a whole answer of `output_tokens` (null when not asked or no speed)",
    "vision": "with --images N: {images, image_size, tokens_per_image, image_tokens, projector_bytes, "
    "encoder_buffer_bytes, encode_seconds, encoder, source} — what the images add (null otherwise)",
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
    output_tokens: int | None = None
    completion_time_s: float | None = None
    vision: Mapping[str, object] | None = None  # with images asked: estimate.estimate_with_images

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
            "output_tokens": self.output_tokens,
            "completion_time_s": _round(self.completion_time_s, 3),
            "vision": dict(self.vision) if self.vision is not None else None,
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
