"""vLLM's serving model (issue 15): its memory, its KV blocks, and decode at a batch.

vLLM takes a share of every GPU's *total* memory (``--gpu-memory-utilization``), loads the weights
split over ``--tensor-parallel-size`` GPUs, profiles one forward pass of ``max_num_batched_tokens``
dummy tokens (the activation peak), captures CUDA graphs, and gives what is left to the KV cache,
in blocks of 16 tokens. It refuses to start when that cache cannot hold one ``--max-model-len``
sequence, or when the GPU has less free memory than its share. The numbers it logs at start-up
("model weights take …; non_torch_memory takes …; PyTorch activation peak memory takes …; the rest
of the memory reserved for KV Cache is …", "GPU KV cache size: N tokens") are what this module
reproduces; tests/test_vllm.py checks it against logs posted in vLLM's issues.

A decode step of B sequences reads the active weights once (a MoE's experts as many as the batch
touches) and every sequence's KV cache, and multiplies 2 FLOPs per active weight per sequence: it is
memory-bound at small B and compute-bound past the knee where B × 2 × params ÷ FLOPS overtakes the
bytes ÷ bandwidth. Plus a fixed time per layer (kernel launches under CUDA graphs) and, across GPUs,
two all-reduces per layer. Each user gets one token per step; the batch gets B.

Pure: the model, the quantization's weights, the GPUs and the settings in; a ServeEstimate out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..catalog.errors import UsageError
from ..catalog.types import Architecture, Catalog, Model, Quantization
from .budget import Device
from .calibration import DEFAULT_VLLM, VllmConstants
from .candidates import best_checkpoint, model_weights
from .speed import _touched_fraction
from .support import unsupported
from .tensors import active_parameter_count, native_expert_type, parameter_count, routed_active_parameter_count

GiB = 1024**3
TP_SIZES = (1, 2, 4, 8)
_FP8_CORES = ("Ada Lovelace", "Hopper", "Blackwell", "CDNA3", "RDNA4")
# formats vLLM makes from the BF16 checkpoint at load time (docs.vllm.ai, "FP8 W8A8", "BitsAndBytes")
ONLINE_QUANTIZATION = {"FP8": "fp8", "BNB-NF4": "bitsandbytes"}
_BEFORE_BF16 = ("Kepler", "Maxwell", "Pascal", "Volta", "Turing")  # NVIDIA before compute capability 8.0
KV_CACHE_DTYPES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "bfloat16": 2, "float16": 2}
FLOAT_FORMATS = ("float",)  # F16 / BF16 / F32 checkpoints: the KV cache ("auto") is 16-bit


@dataclass(frozen=True)
class ServeSettings:
    """What `vllm serve` is told (None: vLLM's default, or the one this box needs)."""

    max_model_len: int
    concurrency: int = 1  # sessions served at once, each up to max_model_len
    gpu_memory_utilization: float | None = None  # default DEFAULT_VLLM.gpu_memory_utilization
    tensor_parallel_size: int | None = None  # default: the fewest GPUs (1, 2, 4, 8) that serve
    kv_cache_dtype: str = "auto"
    max_num_seqs: int | None = None  # default by GPU (vLLM's get_batch_defaults)
    max_num_batched_tokens: int | None = None  # default by GPU
    enforce_eager: bool = False
    prompt_tokens: int = 512  # the single stream's depth
    runtime: str = "vllm"  # or "sglang": its static memory share and token pool (sglang_share)

    def check(self) -> ServeSettings:
        if self.max_model_len < 1:
            raise UsageError(f"--context must be at least 1 token, got {self.max_model_len}")
        if not 1 <= self.concurrency <= 4096:
            raise UsageError(f"--concurrency must be between 1 and 4096, got {self.concurrency}")
        u = self.gpu_memory_utilization
        if u is not None and not 0 < u <= 1:
            raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {u}")
        if self.tensor_parallel_size is not None and self.tensor_parallel_size not in TP_SIZES:
            raise UsageError(f"--tensor-parallel-size must be 1, 2, 4 or 8, got {self.tensor_parallel_size}")
        if self.runtime not in ("vllm", "sglang"):
            raise UsageError(f"runtime {self.runtime}: this model serves vllm and sglang")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise UsageError(
                f"--kv-cache-dtype {self.kv_cache_dtype}: choose one of {', '.join(sorted(KV_CACHE_DTYPES))}"
            )
        return self


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's share as vLLM's profiler splits it (bytes)."""

    total_bytes: int
    budget_bytes: int  # total × gpu_memory_utilization
    weights_bytes: int
    non_torch_bytes: int
    activation_bytes: int
    cuda_graph_bytes: int
    kv_cache_bytes: int  # what is left (negative: vLLM does not start)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ServeEstimate:
    model: str
    quant: str
    gpu: str
    gpu_count: int  # GPUs the box has of that kind
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_cache_dtype: str
    memory: GpuMemory
    kv_bytes_per_token: int  # on each GPU
    kv_blocks: int
    kv_tokens: int
    max_concurrency: float  # sequences of max_model_len the cache holds at once
    concurrency: int
    loads: bool  # vLLM starts: the cache holds one max_model_len sequence
    free_ok: bool  # each GPU has the utilization's share free now
    serves: bool  # it holds `concurrency` sequences of max_model_len at once
    decode_tokens_per_s: float | None  # one stream, at the prompt's depth
    per_user_tokens_per_s: float | None  # each of `concurrency` sessions, half-way through its context
    aggregate_tokens_per_s: float | None  # all of them together
    batch_bound: str | None  # "memory" or "compute": what sets the batched step's pace
    batch_sessions: int  # sessions in the batched step: `concurrency`, or as many as the cache holds
    args: tuple[str, ...]
    time_to_first_token_s: float | None = None  # one prompt of `prompt_tokens` on an idle server
    notes: tuple[str, ...] = field(default_factory=tuple)
    runtime: str = "vllm"
    prompt_tokens: int = 0
    refused: str | None = None  # why the engine cannot run this checkpoint on these GPUs at all
    # `prompt_tokens` arriving while the other `concurrency` − 1 sessions decode, half-way through
    time_to_first_token_under_load_s: float | None = None
    # `concurrency` such prompts arriving at once: the median's and the last one's first token
    burst_time_to_first_token_s: tuple[float, float] | None = None

    @property
    def fits(self) -> bool:
        return self.loads and self.free_ok

    def to_dict(self) -> dict:
        r2 = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {
            "runtime": self.runtime,
            "model": self.model,
            "quant": self.quant,
            "gpu": self.gpu,
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "kv_cache_dtype": self.kv_cache_dtype,
            "memory_per_gpu": self.memory.to_dict(),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "kv_blocks": self.kv_blocks,
            "kv_tokens": self.kv_tokens,
            "max_concurrency": round(self.max_concurrency, 2),
            "concurrency": self.concurrency,
            "fits": self.fits,
            "loads": self.loads,
            "free_ok": self.free_ok,
            "serves": self.serves,
            "decode_tokens_per_s": r2(self.decode_tokens_per_s),
            "per_user_tokens_per_s": r2(self.per_user_tokens_per_s),
            "aggregate_tokens_per_s": r2(self.aggregate_tokens_per_s),
            "batch_bound": self.batch_bound,
            "batch_sessions": self.batch_sessions,
            "prompt_tokens": self.prompt_tokens,
            "time_to_first_token_s": None
            if self.time_to_first_token_s is None
            else round(self.time_to_first_token_s, 4),
            "time_to_first_token_under_load_s": None
            if self.time_to_first_token_under_load_s is None
            else round(self.time_to_first_token_under_load_s, 4),
            "burst_time_to_first_token_s": None
            if self.burst_time_to_first_token_s is None
            else {
                "median": round(self.burst_time_to_first_token_s[0], 4),
                "last": round(self.burst_time_to_first_token_s[1], 4),
            },
            "refused": self.refused,
            "launch": {self.runtime: list(self.args)},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------ memory


def batch_defaults(device: Device, constants: VllmConstants = DEFAULT_VLLM) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) `vllm serve` picks for this GPU: 1024 and 8192 on one
    of 70 GiB or more that is not an A100 (H100, H200, MI300X), else 256 and 2048
    (vllm/engine/arg_utils.py, get_batch_defaults; PR #17885 leaves the A100 out)."""
    big = device.total_bytes >= 70 * GiB and "A100" not in device.name.upper()
    return constants.big_gpu_batch if big else constants.small_gpu_batch


def kv_bytes_per_token(arch: Architecture, tp: int, dtype_bytes: int) -> int:
    """KV cache bytes a token takes on each GPU: K and V of every layer for the KV heads that GPU
    holds (heads split over the GPUs, one each when there are more GPUs than heads); MLA keeps one
    compressed latent and its rope key per layer, on every GPU."""
    if arch.uses_mla:
        return arch.layers * ((arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0)) * dtype_bytes
    heads = max(1, arch.kv_heads // tp)
    return arch.layers * 2 * heads * arch.head_dim * dtype_bytes


def activation_bytes(
    arch: Architecture, tokens: int, tp: int, constants: VllmConstants = DEFAULT_VLLM, sequences: int = 0
) -> int:
    """The profiler's activation peak: a fixed part (workspaces) plus, per dummy token, a few
    hidden-size activations in 16 bits and the MLP's gate and up outputs (this GPU's share); and
    the V1 engine's dummy sampler run, `sequences` (max_num_seqs) rows of logits over the whole
    vocabulary sorted for top-k and top-p (gpu_model_runner._dummy_sampler_run)."""
    width = arch.intermediate_size
    if arch.experts:
        width = arch.experts_per_token * (arch.moe_intermediate_size or width)
        width += arch.shared_experts * (arch.shared_expert_intermediate_size or arch.moe_intermediate_size or 0)
    per_token = 2 * (constants.activation_hidden_copies * arch.hidden_size + 2 * width / tp)
    sampler = constants.sampler_bytes_per_logit * sequences * arch.vocab_size
    return int(constants.activation_fixed_bytes + tokens * per_token + sampler)


def _kv_dtype_bytes(quant: Quantization, kv_cache_dtype: str) -> int:
    explicit = KV_CACHE_DTYPES[kv_cache_dtype]
    if explicit is not None:
        return explicit
    return 4 if quant.base_type == "F32" else 2  # "auto": the model's activation dtype


def kv_pool(arch: Architecture, per_token: int, max_model_len: int, batched_tokens: int, block: int) -> tuple[int, int]:
    """(bytes one block of the shared pool takes, blocks one max_model_len request needs).

    vLLM's hybrid KV manager (vllm/v1/core/kv_cache_utils.py, kv_cache_interface.py): layers of one
    kind form groups of the smaller kind's count (the larger's when it is under 1.5 times that), a
    block holds 16 tokens of one layer from every group at once, and a sliding-window layer keeps
    only ``min(window − 1 + max_num_batched_tokens, max_model_len)`` tokens, plus one block since the
    window need not start at a block's edge. A model with one kind of layer is one group of all."""
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    sliding = arch.local_attention_layers if arch.sliding_window and not arch.uses_mla else 0
    full = arch.layers - sliding
    layer_page = block * per_token // arch.layers
    if not sliding or not full:
        return block * per_token, cdiv(max_model_len, block)
    small, large = sorted((full, sliding))
    group = large if large < 1.5 * small else small
    window = min((arch.sliding_window or 0) - 1 + batched_tokens, max_model_len)
    per_request = cdiv(full, group) * cdiv(max_model_len, block) + cdiv(sliding, group) * (cdiv(window, block) + 1)
    return layer_page * group, per_request


# MXFP4 mixture of experts (gpt-oss) in vLLM (vllm/model_executor/layers/quantization/mxfp4.py,
# get_mxfp4_backend, minimum capability 8.0): OpenAI's Triton kernels on Hopper, FlashInfer's native
# MXFP4 on datacenter Blackwell (SM100), weight-only Marlin on Ampere, Ada and RTX Blackwell (SM120),
# Triton on ROCm. Each pads the experts to its tiles: Marlin the hidden size to 256 and the
# intermediate to 128, FlashInfer both to 256 (mxfp4.py); the Triton kernels' Hopper layout holds
# 120b's experts in 64.38 GiB (vllm#33155) where the checkpoint has 60.8, which the contraction
# dimension of each matrix padded to 256 gives (64.6).


def _pad(n: int, tile: int) -> int:
    return -(-n // tile) * tile


def mxfp4_padding(backend: str | None, hidden: int, inter: int, hopper: bool = False) -> float:
    """How much larger the experts are in this backend's layout than in the checkpoint."""
    if backend == "marlin":
        return _pad(hidden, 256) * _pad(inter, 128) / (hidden * inter)
    if backend == "flashinfer":
        return _pad(hidden, 256) * _pad(inter, 256) / (hidden * inter)
    if backend == "triton" and hopper:  # gate-up [2 × inter, hidden] and down [hidden, inter], K padded
        return (2 * inter * _pad(hidden, 256) + hidden * _pad(inter, 256)) / (3 * hidden * inter)
    return _pad(inter, 64) / inter


_MXFP4_NOTES = {
    "triton": "MXFP4 experts on {gpu}: OpenAI's Triton kernels (vLLM's default on Hopper and ROCm)",
    "flashinfer": "MXFP4 experts on {gpu}: FlashInfer's native FP4 kernels, tiles padded to 256",
    "marlin": "MXFP4 experts on {gpu}: weight-only Marlin (16-bit math), padded to its tiles",
}


def mxfp4_checkpoint(model: Model, quant: Quantization) -> bool:
    """The model is published with MXFP4 experts (gpt-oss) and this asks for that checkpoint."""
    return native_expert_type(model.architecture) == "MXFP4" and quant.name in ("MXFP4", "BF16")


def mxfp4_backend(device: Device) -> tuple[str | None, str | None]:
    """(the MXFP4 MoE kernels vLLM picks on this GPU, why it cannot run them)."""
    arch = device.architecture
    if device.vendor == "nvidia":
        if arch in _BEFORE_BF16:
            return None, f"vLLM's MXFP4 experts need compute capability 8.0 or newer; {device.name} is {arch}"
        if arch == "Hopper":
            return "triton", None
        if arch == "Blackwell" and device.kind == "datacenter":
            return "flashinfer", None
        return "marlin", None
    if device.vendor == "amd":
        return "triton", None
    return None, f"vLLM runs MXFP4 experts on NVIDIA and AMD GPUs, not on {device.name}"


def loaded_weights_bytes(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    device: Device,
    backend: str | None = None,
    vision: bool = True,
) -> int:
    """The weights as vLLM holds them: the checkpoint's bytes, MXFP4 experts padded to the tiles of
    the kernels vLLM picks on this GPU (or of `backend`, as VLLM_MXFP4_USE_MARLIN=1 forces Marlin);
    `vision`: with a vision model's tower (False: the language model a decode step reads)."""
    split = model_weights(model, quant, catalog)
    arch = model.architecture
    tower = vision_tower_bytes(model) if vision else 0
    if not mxfp4_checkpoint(model, quant):
        return split.total_bytes + tower
    backend = backend or mxfp4_backend(device)[0]
    width = arch.moe_intermediate_size or arch.intermediate_size
    factor = mxfp4_padding(backend, arch.hidden_size, width, hopper=device.architecture == "Hopper")
    return split.total_bytes + tower + int(split.expert_bytes * (factor - 1))


def vision_tower_bytes(model: Model) -> int:
    """A vision model's tower and projector as the checkpoint holds them, in 16 bits (quantized
    checkpoints leave them so: llm-compressor's and ModelOpt's recipes skip the vision modules);
    vLLM loads them with the language model. 0 for a text model."""
    from ..catalog.vision import tower_for
    from .vision import tower_parameters

    tower = tower_for(model.id)
    return 0 if tower is None else 2 * tower_parameters(tower, model.architecture.hidden_size)


def memory_split(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    device: Device,
    tp: int,
    utilization: float,
    batched_tokens: int,
    enforce_eager: bool,
    constants: VllmConstants = DEFAULT_VLLM,
    runtime: str = "vllm",
    max_num_seqs: int = 0,
    mxfp4_backend: str | None = None,
) -> GpuMemory:
    """One GPU's share as the runtime splits it. vLLM profiles activations and CUDA graphs inside its
    share; SGLang's share (--mem-fraction-static) holds only the weights and the KV pool, the rest of
    the GPU being left for activations and graphs."""
    arch = model.architecture
    weights = loaded_weights_bytes(model, quant, catalog, device, mxfp4_backend)
    budget = int(device.total_bytes * utilization)
    inside = runtime == "vllm"
    parts = {
        "weights_bytes": math.ceil(weights / tp),
        "non_torch_bytes": constants.non_torch_bytes + (constants.non_torch_tp_bytes if tp > 1 else 0),
        "activation_bytes": activation_bytes(arch, batched_tokens, tp, constants, max_num_seqs) if inside else 0,
        "cuda_graph_bytes": 0 if enforce_eager or not inside else constants.cuda_graph_bytes,
    }
    return GpuMemory(device.total_bytes, budget, kv_cache_bytes=budget - sum(parts.values()), **parts)


# ------------------------------------------------------------------------------------ speed


@dataclass(frozen=True)
class StepCost:
    """One decode step of a batch, on each GPU, by what prices it: ``read_s`` — the bytes read ÷ the
    peak bandwidth, keyed by the weights' kernel family ("16-bit", "8-bit", "4-bit"; the KV cache
    counts as 16-bit); ``compute_s`` — the FLOPs ÷ the peak tensor rate; ``layers`` — layers run;
    ``allreduce_layers`` — layers that all-reduce across GPUs (tensor parallel); ``moe_layers`` and
    ``tokens`` — a mixture of experts' routed layers and the tokens the step routes through them."""

    read_s: dict[str, float]
    compute_s: float
    layers: int
    allreduce_layers: int
    moe_layers: int = 0
    tokens: int = 1

    def memory_seconds(self, constants: VllmConstants) -> float:
        return sum(v / constants.read_efficiency(k) for k, v in self.read_s.items())


def kernel_family(quant: Quantization) -> str:
    if quant.format in ("int", "fp4"):
        return "4-bit" if quant.bits_per_weight <= 4.5 else "8-bit"
    return "16-bit"  # BF16/F16 and FP8 (no public FP8 row tells it apart)


def step_cost(
    arch: Architecture,
    quant: Quantization,
    weights_bytes: int,
    device: Device,
    tp: int,
    batch: int,
    depth: int,
    kv_token_bytes: float,
) -> StepCost | None:
    """One decode step of `batch` sequences at `depth` tokens each (None: no bandwidth known)."""
    bandwidth = device.bandwidth_bytes_per_s
    if not bandwidth:
        return None
    params = active_parameter_count(arch)
    routed = routed_active_parameter_count(arch)
    bytes_per_param = weights_bytes / max(1, parameter_count(arch))
    read_params = float(params)
    if arch.experts:  # the batch's tokens route to more experts than one token does
        read_params += routed * arch.experts / arch.experts_per_token * _touched_fraction(arch, batch) - routed
    weights_s = read_params * bytes_per_param / tp / bandwidth
    kv_s = batch * depth * kv_token_bytes / bandwidth
    family = kernel_family(quant)
    read = {family: weights_s}
    read["16-bit"] = read.get("16-bit", 0.0) + kv_s
    # BF16 GEMMs with FP32 accumulation: the catalog's FP16 figure as it stands (GeForce's is that
    # rate); FP8 weights on GPUs with FP8 tensor cores run at twice it.
    flops = device.fp16_flops
    if flops and quant.format == "fp8" and device.architecture in _FP8_CORES:
        flops *= 2
    compute_s = 0.0
    if flops:
        attention = 4 * arch.layers * arch.attention_heads * arch.head_dim * depth
        compute_s = batch * (2 * params + attention) / tp / flops
    return StepCost(read, compute_s, arch.layers, arch.layers if tp > 1 else 0, arch.moe_layers, batch)


def mixed_step(
    arch: Architecture,
    quant: Quantization,
    weights_bytes: int,
    device: Device,
    tp: int,
    decodes: int,
    depth: int,
    kv_token_bytes: float,
    chunk: int,
    chunk_start: int,
) -> StepCost | None:
    """A chunked-prefill step: `decodes` sequences at `depth` take one token each, and `chunk` prompt
    tokens (after `chunk_start` already cached) fill the rest of the step's budget. The weights are
    read once for all of them; every token costs 2 FLOPs per active weight, and the chunk's causal
    attention reaches back over its prefix."""
    cost = step_cost(arch, quant, weights_bytes, device, tp, decodes, depth, kv_token_bytes)
    if cost is None or not device.fp16_flops:
        return cost
    flops = device.fp16_flops * (2 if quant.format == "fp8" and device.architecture in _FP8_CORES else 1)
    attention = 4 * arch.layers * arch.attention_heads * arch.head_dim * chunk * (chunk_start + chunk / 2)
    work = 2 * active_parameter_count(arch) * chunk + attention
    return replace(cost, compute_s=cost.compute_s + work / tp / flops, tokens=decodes + chunk)


def prefill_under_load(
    arch: Architecture,
    quant: Quantization,
    weights_bytes: int,
    device: Device,
    tp: int,
    prompt: int,
    others: int,
    depth: int,
    kv_token_bytes: float,
    budget_tokens: int,
    constants: VllmConstants,
) -> float | None:
    """Time to first token of a prompt that arrives while `others` sessions decode (vLLM V1's
    scheduler: running decodes first, then the prompt's chunks fill the rest of each step's
    max_num_batched_tokens): half a decode step's wait for the step under way, then one mixed step
    per chunk, the last of which samples the first token. With no others: an idle server."""
    if prompt <= 0:
        return None
    room = max(1, budget_tokens - others)
    wait = 0.0
    if others:
        idle = step_cost(arch, quant, weights_bytes, device, tp, others, depth, kv_token_bytes)
        if idle is None:
            return None
        wait = step_seconds(idle, constants)[0] / 2
    total, done = wait, 0
    while done < prompt:
        chunk = min(room, prompt - done)
        cost = mixed_step(arch, quant, weights_bytes, device, tp, others, depth, kv_token_bytes, chunk, done)
        if cost is None:
            return None
        total += step_seconds(cost, constants)[0]
        done += chunk
    return total


def burst_first_tokens(
    arch: Architecture,
    quant: Quantization,
    weights_bytes: int,
    device: Device,
    tp: int,
    prompt: int,
    sessions: int,
    kv_token_bytes: float,
    budget_tokens: int,
    constants: VllmConstants,
) -> list[float] | None:
    """Each prompt's time to first token when `sessions` prompts of `prompt` tokens arrive together
    (a benchmark's burst, users starting at once): the steps take their chunks in arrival order, the
    prompts already through their prefill decoding beside them; a prompt's first token comes with the
    step that ends its prefill."""
    if prompt <= 0 or sessions < 1:
        return None
    times: list[float] = []
    clock, prefilled = 0.0, 0
    total = prompt * sessions
    while prefilled < total:
        decoding = len(times)
        chunk = min(max(1, budget_tokens - decoding), total - prefilled)
        start = prefilled % prompt
        cost = mixed_step(arch, quant, weights_bytes, device, tp, decoding, prompt, kv_token_bytes, chunk, start)
        if cost is None:
            return None
        clock += step_seconds(cost, constants)[0]
        prefilled += chunk
        times += [clock] * (prefilled // prompt - len(times))
    return times


def step_seconds(cost: StepCost, constants: VllmConstants) -> tuple[float, str]:
    """Seconds of the step, and what bounds it: the weights and caches streaming through memory, or
    the batch's FLOPs, whichever is slower; then the fixed costs of each layer."""
    memory_s = cost.memory_seconds(constants)
    compute_s = cost.compute_s / constants.matmul_efficiency
    fixed = cost.layers * constants.layer_seconds + cost.allreduce_layers * constants.allreduce_seconds
    # routing: each MoE layer's top-k, permutation and grouped-GEMM launches, and their work per token
    routing = cost.moe_layers * (constants.moe_layer_seconds + cost.tokens * constants.moe_token_seconds)
    return max(memory_s, compute_s) + fixed + routing, "compute" if compute_s > memory_s else "memory"


# ------------------------------------------------------------------------------------ the estimate


def _tp_choices(arch: Architecture, gpus: int, asked: int | None) -> list[int]:
    if asked is not None:
        if asked > gpus:
            raise UsageError(f"--tensor-parallel-size {asked}: this box has {gpus} such GPU(s)")
        if arch.attention_heads % asked:
            raise UsageError(
                f"--tensor-parallel-size {asked} does not divide the model's {arch.attention_heads} attention heads"
            )
        return [asked]
    return [t for t in TP_SIZES if t <= gpus and arch.attention_heads % t == 0] or [1]


def serve_estimate(
    model: Model,
    quant: Quantization,
    devices: tuple[Device, ...],
    catalog: Catalog,
    settings: ServeSettings,
    constants: VllmConstants = DEFAULT_VLLM,
) -> ServeEstimate:
    """vLLM (or SGLang) on these GPUs (all of one kind: tensor parallel needs equal shares, so the
    smallest sets them). Tensor parallel unless asked: the fewest GPUs that serve every session,
    else all of them."""
    settings.check()
    if not devices:
        raise UsageError(f"{settings.runtime} needs a GPU; this box has none usable (use --gpu NAME to ask about one)")
    shown = quant.name
    if mxfp4_checkpoint(model, quant):  # gpt-oss: its one published checkpoint, MXFP4 experts beside BF16
        quant, shown = catalog.quant("BF16"), "MXFP4"
    if quant.format in ("gguf", "mlx", "exl"):
        kind = {"gguf": "GGUF", "mlx": "MLX", "exl": "ExLlama"}[quant.format]
        raise UsageError(
            f"--runtime {settings.runtime} loads safetensors checkpoints: BF16, FP16, FP8, AWQ-INT4, GPTQ-INT4, "
            f"GPTQ-INT8, BNB-NF4, NVFP4; {quant.name} is a{'n' if kind == 'MLX' else ''} {kind} type"
        )
    arch = model.architecture
    device = min(devices, key=lambda d: d.total_bytes)
    notes: list[str] = []
    if len({d.name for d in devices}) > 1:
        notes.append(f"GPUs differ: vLLM gives each the share of the smallest ({device.name})")
    why = unsupported(quant, device, moe=arch.is_moe)
    if shown == "MXFP4":
        backend, why = mxfp4_backend(device)
        if backend:
            notes.append(_MXFP4_NOTES[backend].format(gpu=device.name))
    if why:
        notes.append(why)
    half = quant.base_type == "BF16" and device.architecture in _BEFORE_BF16 and shown != "MXFP4"
    if half:
        notes.append(
            f"{device.name} ({device.architecture}) has no BF16 (compute capability under 8.0): vLLM refuses "
            "a BF16 checkpoint unless told --dtype half, which the launch line does"
        )
    seqs_default, tokens_default = batch_defaults(device, constants)
    # the launch line asks for --max-num-seqs N when serving N sessions
    max_num_seqs = settings.max_num_seqs or (settings.concurrency if settings.concurrency > 1 else seqs_default)
    batched = settings.max_num_batched_tokens or tokens_default
    weights_bytes = loaded_weights_bytes(model, quant, catalog, device, vision=False)  # what a step reads
    sglang = settings.runtime == "sglang"
    block = 1 if sglang else constants.block_size  # SGLang's token pool has pages of one token
    best = None
    for tp in _tp_choices(arch, len(devices), settings.tensor_parallel_size):
        utilization = settings.gpu_memory_utilization or (
            sglang_share(tp) if sglang else constants.gpu_memory_utilization
        )
        per_token = kv_bytes_per_token(arch, tp, _kv_dtype_bytes(quant, settings.kv_cache_dtype))
        memory = memory_split(
            model,
            quant,
            catalog,
            device,
            tp,
            utilization,
            batched,
            settings.enforce_eager,
            constants,
            settings.runtime,
            min(max_num_seqs, batched),
        )
        if sglang:  # one pool of one-token pages
            block_bytes, per_request = sglang_token_bytes(arch, per_token), settings.max_model_len
        else:
            block_bytes, per_request = kv_pool(arch, per_token, settings.max_model_len, batched, block)
        blocks = max(0, memory.kv_cache_bytes) // block_bytes
        held = blocks / per_request  # max_model_len requests the pool holds at once
        hybrid = block_bytes != block * per_token
        # vLLM logs a hybrid pool's size as its max concurrency × max_model_len (kv_cache_utils)
        tokens = int(held * settings.max_model_len) if hybrid else blocks * block
        candidate = (
            tp,
            memory,
            per_token,
            blocks,
            tokens,
            utilization,
            held if hybrid else tokens / settings.max_model_len,
        )
        best = candidate
        if candidate[-1] >= settings.concurrency:
            break
    assert best is not None
    tp, memory, per_token, blocks, tokens, utilization, held = best
    engine = "SGLang" if sglang else "vLLM"
    loads = held >= 1 and not why
    free_ok = all(d.free_bytes >= memory.budget_bytes for d in devices[:tp])
    serves = loads and held >= settings.concurrency
    if not free_ok:
        notes.append(
            f"{engine} asks for {utilization:.2f} of each GPU's {memory.total_bytes / 1e9:.1f} GB "
            f"({memory.budget_bytes / 1e9:.1f} GB) and refuses to start with less free; lower --gpu-memory-utilization"
        )
    if held < 1:
        notes.append(
            f"the KV cache left ({max(0, memory.kv_cache_bytes) / 1e9:.2f} GB, {tokens:,} tokens) cannot hold one "
            f"{settings.max_model_len:,}-token sequence: {engine} refuses to start; lower --max-model-len or add GPUs"
        )
        sampler = constants.sampler_bytes_per_logit * min(max_num_seqs, batched) * arch.vocab_size
        if not sglang and sampler > 0.25e9:
            notes.append(
                f"its start-up profile samples --max-num-seqs {max_num_seqs} sequences over the {arch.vocab_size:,}-token "
                f"vocabulary ({sampler / 1e9:.2f} GB): a smaller --max-num-seqs leaves that to the KV cache"
            )
    elif not serves:
        notes.append(
            f"{settings.concurrency} sessions of {settings.max_model_len:,} tokens need "
            f"{settings.concurrency * settings.max_model_len:,} KV tokens; {tokens:,} fit: "
            f"{int(held)} at full length, more while they are shorter ({engine} preempts)"
        )
    if settings.concurrency > max_num_seqs:
        notes.append(f"--max-num-seqs {max_num_seqs} runs at most that many at once; the rest wait")
    if arch.is_moe:
        notes.append(
            "a mixture of experts' routing time is fitted on gpt-oss's public vLLM rows alone, whose MoE "
            "kernels differ by up to 2× between backends and releases (docs/accuracy.md, vLLM)"
        )
    if sglang and arch.sliding_window and arch.local_attention_layers:
        if sglang_token_bytes(arch, per_token) < per_token:
            notes.append(
                f"SGLang's sliding-window pool holds {SGLANG_SWA_FULL_TOKENS_RATIO:g} of the full layers' tokens "
                "(--swa-full-tokens-ratio)"
            )
        else:
            notes.append("SGLang caches every token of these sliding-window layers (no hybrid pool for this model)")
    elif arch.sliding_window and arch.local_attention_layers and not arch.uses_mla:
        notes.append(
            f"{arch.local_attention_layers} sliding-window layers keep {arch.sliding_window:,} tokens + the step's "
            f"{batched:,} (vLLM's hybrid KV manager)"
        )
    sessions = min(settings.concurrency, max_num_seqs)
    if loads and not serves:
        # half-way through their context, this many sessions share the cache at once
        sessions = max(1, min(sessions, int(2 * held)))
        notes.append(f"the batch speeds are for the {sessions} session(s) the cache holds at once half-way through")
    half_way = settings.max_model_len // 2
    single_cost = step_cost(
        arch,
        quant,
        weights_bytes,
        device,
        tp,
        1,
        settings.prompt_tokens,
        _read_per_token(arch, per_token, settings.prompt_tokens),
    )
    batch_cost = step_cost(
        arch, quant, weights_bytes, device, tp, sessions, half_way, _read_per_token(arch, per_token, half_way)
    )
    single = step_seconds(single_cost, constants) if single_cost else None
    batched_step = step_seconds(batch_cost, constants) if batch_cost else None
    decode = 1 / single[0] if single else None
    # an idle server: the prompt's chunks alone; its last step samples the first token
    idle = prefill_under_load(
        arch, quant, weights_bytes, device, tp, settings.prompt_tokens, 0, 0, per_token, batched, constants
    )
    ttft = None if idle is None else idle + constants.request_seconds
    loaded = burst = None
    if settings.concurrency > 1 and settings.prompt_tokens > 0:
        others = min(settings.concurrency, max_num_seqs) - 1
        read = _read_per_token(arch, per_token, half_way)
        under = prefill_under_load(
            arch, quant, weights_bytes, device, tp, settings.prompt_tokens, others, half_way, read, batched, constants
        )
        loaded = None if under is None else under + constants.request_seconds
        times = burst_first_tokens(
            arch, quant, weights_bytes, device, tp, settings.prompt_tokens, sessions, read, batched, constants
        )
        if times:
            times.sort()
            burst = (times[len(times) // 2] + constants.request_seconds, times[-1] + constants.request_seconds)
    per_user = 1 / batched_step[0] if batched_step else None
    if sglang:
        notes.append("SGLang's decode is priced with vLLM's fitted constants (no public SGLang rows fitted)")
        args = _sglang_args(model, settings, utilization, tp) + (["--dtype", "half"] if half else [])
    else:
        args = _args(model, settings, utilization, tp) + (["--dtype", "half"] if half else [])
    online = ONLINE_QUANTIZATION.get(quant.name)
    if online and sglang:
        args += ["--quantization", online]
    elif online:
        args += ["--quantization", online]  # vLLM quantizes the BF16 checkpoint as it loads it
    elif quant.format in ("int", "fp4"):
        notes.append(
            f"serve the {quant.name} checkpoint of {model.id} in place of its id (vLLM reads the format from its "
            "quantization_config)"
        )
    return ServeEstimate(
        model=model.id,
        quant=shown,
        gpu=device.name,
        gpu_count=len(devices),
        tensor_parallel_size=tp,
        gpu_memory_utilization=utilization,
        max_model_len=settings.max_model_len,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=batched,
        kv_cache_dtype=settings.kv_cache_dtype,
        memory=memory,
        kv_bytes_per_token=per_token,
        kv_blocks=blocks,
        kv_tokens=tokens,
        max_concurrency=held,
        concurrency=settings.concurrency,
        loads=loads,
        free_ok=free_ok,
        serves=serves,
        decode_tokens_per_s=decode if loads else None,
        per_user_tokens_per_s=per_user if loads else None,
        aggregate_tokens_per_s=per_user * sessions if loads and per_user else None,
        batch_sessions=sessions,
        time_to_first_token_s=ttft if loads else None,
        prompt_tokens=settings.prompt_tokens,
        batch_bound=batched_step[1] if batched_step else None,
        args=tuple(args),
        notes=tuple(notes),
        runtime=settings.runtime,
        refused=why,
        time_to_first_token_under_load_s=loaded if loads else None,
        burst_time_to_first_token_s=burst if loads else None,
    )


def _read_per_token(arch: Architecture, per_token: int, depth: int) -> float:
    """KV bytes a decode step reads per token of depth: sliding-window layers read at most their window."""
    sliding = arch.local_attention_layers if arch.sliding_window and not arch.uses_mla else 0
    if not sliding or depth <= 0:
        return per_token
    share = (arch.layers - sliding + sliding * min(depth, arch.sliding_window or 0) / depth) / arch.layers
    return per_token * share


def with_images(
    e: ServeEstimate, cost, images: int, devices: tuple[Device, ...], constants: VllmConstants = DEFAULT_VLLM
) -> ServeEstimate:
    """The estimate of a prompt that carries `images` images (their tokens already in its
    prompt_tokens): the vision encoder runs first, at the GEMMs' share of the tensor rate, and its
    time joins each time to the first token. The tower's weights are in the weights already."""
    from dataclasses import replace

    device = min(devices, key=lambda d: d.total_bytes)
    if not device.fp16_flops:
        return e
    encode = images * cost.flops / (device.fp16_flops * e.tensor_parallel_size * constants.matmul_efficiency)

    def plus(v):
        return None if v is None else v + encode

    burst = e.burst_time_to_first_token_s
    note = (
        f"{images} image(s): {images * cost.tokens:,} prompt tokens, encoded in {encode:.3f} s before the prompt's "
        "prefill; the vision tower's weights are in the weights (16-bit)"
    )
    return replace(
        e,
        time_to_first_token_s=plus(e.time_to_first_token_s),
        time_to_first_token_under_load_s=plus(e.time_to_first_token_under_load_s),
        burst_time_to_first_token_s=None if burst is None else (burst[0] + encode, burst[1] + encode),
        notes=e.notes + (note,),
    )


# SGLang's hybrid sliding-window memory (sglang/srt/configs/model_config.py is_hybrid_swa_model;
# model_runner_kv_cache_mixin.set_num_tokens_hybrid_swa): for these architectures the window layers
# get a pool of --swa-full-tokens-ratio (0.8) times the full layers' tokens; others cache every token.
SGLANG_HYBRID_SWA = frozenset({"GptOssForCausalLM", "Llama4ForConditionalGeneration", "Gemma4ForCausalLM"})
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8


def sglang_token_bytes(arch: Architecture, per_token: int) -> int:
    """Bytes of SGLang's pools per token of the full layers: the window layers' pool holds 0.8 as many
    tokens where SGLang runs the model as hybrid sliding-window, else every layer holds every token."""
    sliding = arch.local_attention_layers if arch.sliding_window else 0
    if not sliding or arch.uses_mla or (arch.hf_architecture or "") not in SGLANG_HYBRID_SWA:
        return per_token
    per_layer = per_token / arch.layers
    return math.ceil(per_layer * (arch.layers - sliding + SGLANG_SWA_FULL_TOKENS_RATIO * sliding))


def sglang_share(tp: int) -> float:
    """SGLang's default --mem-fraction-static by tensor-parallel size (sglang/srt/server_args.py of its
    2024-25 releases: 0.88 on one GPU down to 0.79 on sixteen; newer releases reserve a fixed amount by
    GPU class instead)."""
    for size, share in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87)):
        if tp >= size:
            return share
    return 0.88


def _sglang_args(model: Model, settings: ServeSettings, share: float, tp: int) -> list[str]:
    args = [
        "python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        model.id,
        "--context-length",
        str(settings.max_model_len),
        "--mem-fraction-static",
        f"{share:.2f}",
        "--tp",
        str(tp),
    ]
    if settings.concurrency > 1 or settings.max_num_seqs:
        args += ["--max-running-requests", str(settings.max_num_seqs or settings.concurrency)]
    if settings.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", "fp8_e4m3" if settings.kv_cache_dtype == "fp8" else settings.kv_cache_dtype]
    return args


def _args(model: Model, settings: ServeSettings, utilization: float, tp: int) -> list[str]:
    args = [
        "vllm",
        "serve",
        model.id,
        "--max-model-len",
        str(settings.max_model_len),
        "--gpu-memory-utilization",
        f"{utilization:.2f}",
        "--tensor-parallel-size",
        str(tp),
    ]
    seqs = settings.max_num_seqs or (settings.concurrency if settings.concurrency > 1 else None)
    if seqs:
        args += ["--max-num-seqs", str(seqs)]
    if settings.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", settings.kv_cache_dtype]
    if settings.enforce_eager:
        args += ["--enforce-eager"]
    return args


# ------------------------------------------------------------------------------------ ranking

VLLM_FORMATS = (
    "BF16",
    "FP8",
    "GPTQ-INT8",
    "AWQ-INT4",
    "GPTQ-INT4",
)  # NVFP4: few models are published in it  # what model makers publish for vLLM
MIN_TOKENS_PER_S = 5.0  # a session slower than this is not usable


@dataclass(frozen=True)
class RankedServe:
    estimate: ServeEstimate
    quality: float
    quality_source: str

    @property
    def speed(self) -> float:
        e = self.estimate
        return (e.per_user_tokens_per_s if e.concurrency > 1 else e.decode_tokens_per_s) or 0.0

    def to_dict(self) -> dict:
        return {**self.estimate.to_dict(), "quality": round(self.quality, 2), "quality_source": self.quality_source}


def rank_models(
    catalog: Catalog,
    devices: tuple[Device, ...],
    settings: ServeSettings,
    use_case: str,
    models: tuple[Model, ...] | None = None,
    constants: VllmConstants = DEFAULT_VLLM,
) -> tuple[RankedServe, ...]:
    """Each catalog model's best vLLM checkpoint on these GPUs: of the formats it is published in
    that the GPUs run, those that start and hold every session at a usable speed; the best quality
    (the fastest of those within 0.1 point); then the models by quality, then speed. The launch
    lines ask for --max-num-seqs of the sessions."""
    from .candidates import quant_retention
    from .quality import quantized, scored

    settings.check()
    # N sessions asked for: the launch pins --max-num-seqs N, so the profile's sampler pass is N rows,
    # not the default 256 / 1,024 (1–9 GB on a large vocabulary, which a 24 GB card cannot spare)
    settings = replace(settings, max_num_seqs=settings.max_num_seqs or settings.concurrency)
    formats = [catalog.quant(name) for name in VLLM_FORMATS]
    picks = []
    for model in models if models is not None else catalog.models:
        if use_case == "vision" and model.modality != "vision":
            continue
        if settings.max_model_len > model.max_context:
            continue
        base, source = scored(model, use_case, catalog.benchmark_priors)
        offered = []
        # gpt-oss is published in one checkpoint (MXFP4 experts beside BF16), which "BF16" stands for
        published = formats[:1] if native_expert_type(model.architecture) == "MXFP4" else formats
        for quant in published:
            if any(unsupported(quant, d, moe=model.architecture.is_moe) for d in devices[:1]):
                continue
            try:
                e = serve_estimate(model, quant, devices, catalog, settings, constants)
            except UsageError:  # e.g. no tensor-parallel size divides its heads on these GPUs
                continue
            served = RankedServe(e, quantized(base, quant_retention(quant, model, catalog), model.params_total), source)
            if e.fits and e.serves and served.speed >= MIN_TOKENS_PER_S:
                offered.append(served)
        if offered:
            picks.append(best_checkpoint(offered, lambda r: r.speed))
    return tuple(sorted(picks, key=lambda r: (-r.quality, -r.speed, r.estimate.model)))
