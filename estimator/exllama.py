"""ExLlamaV2 and ExLlamaV3 as TabbyAPI serves them (issue 15): what they put on each GPU, whether a
model fits, how fast it decodes, and the launch line.

Memory, per GPU, from the libraries' own allocations (turboderp-org/exllamav2 at da07fac,
exllamav3 v1.4.1, theroyallab/tabbyAPI; tests/data/exllama_measurements.csv checks the sums):
- the weights but the embedding table, which both keep in system RAM ("Embedding layer on CPU");
- the KV cache: one pool of ``cache_size`` tokens (default ``max_seq_len``, a multiple of 256 pages)
  shared by every request, at 2 bytes an element (FP16) or, quantized, the bits plus an FP16 scale
  per 32 elements — ExLlamaV2's Q4 / Q6 (8-bit keys, 4-bit values) / Q8, ExLlamaV3's any K,V bits
  from 2 to 8;
- ExLlamaV2's quantized caches also hold one layer's FP16 keys and values for the whole length on
  each GPU (``temp_tensors``, to attend over the dequantized layer); ExLlamaV3 since 1.0 attends on
  the packed cache;
- ExLlamaV2's fixed scratch (``scratch_space_fixed``): the largest of the attention's and MLP's
  chunk buffers and the output head's dequantization buffer (2 bytes × vocabulary × hidden, at most
  1 GiB), plus the CUDA context; ExLlamaV3 allocates its working memory as it goes, one fitted
  overhead per GPU covering it and the context;
- TabbyAPI's autosplit reserve (96 MiB on the first GPU; ExLlamaV3 0.5 GiB on each other GPU).
Layers fill the GPUs in order (autosplit), the head after the last layer; ``--multi-gpu tensor``
splits every layer over all of them (TabbyAPI's tensor_parallel).

Speed: one stream's decode and prefill are llama.cpp's CUDA physics on the same bytes, which lands
within 15 % of exllamav2's own table (tests/test_checkpoint_formats.py). ExLlamaV3 needs an NVIDIA
GPU of compute capability 8.0 or newer; ExLlamaV2 runs from Pascal and on ROCm, but TabbyAPI drops
to one request at a time (no paged attention) before Ampere and on AMD.

Pure: the model, the EXL quantization, the GPUs and the settings in; an ExllamaEstimate out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..catalog.errors import UsageError
from ..catalog.types import Architecture, Catalog, Model, Quantization
from .budget import Budget, Device
from .calibration import DEFAULT_EXLLAMA, ExllamaConstants
from .candidates import best_checkpoint, model_weights

PAGE = 256  # both libraries' cache page (exllamav2 generator/dynamic.py, exllamav3 constants.py)
EXL2_CACHE_MODES = {"FP16": 2.0, "Q8": 1.0625, "Q6": 0.8125, "Q4": 0.5625}
RUNTIMES = ("exllamav2", "exllamav3")
_BEFORE_AMPERE = ("Kepler", "Maxwell", "Pascal", "Volta", "Turing")


def runtime_for(quant: Quantization) -> str:
    """The library an EXL checkpoint loads in: EXL2 in ExLlamaV2, EXL3 in ExLlamaV3."""
    return "exllamav2" if quant.name.upper().startswith("EXL2") else "exllamav3"


def cache_element_bytes(runtime: str, mode: str) -> float:
    """Bytes a cached K or V element takes, scales included (the average of K and V)."""
    mode = mode.strip().upper().replace(" ", "")
    if mode == "FP16":
        return 2.0
    if runtime == "exllamav2":
        if mode not in EXL2_CACHE_MODES:
            raise UsageError(f"--cache-mode {mode}: ExLlamaV2 caches are FP16, Q8, Q6 or Q4")
        return EXL2_CACHE_MODES[mode]
    bits = {"Q4": "4,4", "Q6": "6,6", "Q8": "8,8"}.get(mode, mode)
    k, _, v = bits.partition(",")
    if not (k.isdigit() and v.isdigit() and 2 <= int(k) <= 8 and 2 <= int(v) <= 8):
        raise UsageError(f"--cache-mode {mode}: ExLlamaV3 caches are FP16, Q4/Q6/Q8 or K,V bits from 2 to 8 (e.g. 4,6)")
    return (int(k) / 8 + int(v) / 8) / 2 + 1 / 16  # the bits, and an FP16 scale per 32 elements


@dataclass(frozen=True)
class ExllamaSettings:
    """What TabbyAPI is told (config.yml keys, or the same as --flags)."""

    max_seq_len: int
    cache_mode: str = "FP16"
    cache_size: int | None = None  # tokens the shared cache holds (default max_seq_len)
    chunk_size: int = 2048
    tensor_parallel: bool = False
    prompt_tokens: int = 512
    output_tokens: int | None = None

    def check(self) -> ExllamaSettings:
        if self.max_seq_len < 1:
            raise UsageError(f"--context must be at least 1 token, got {self.max_seq_len}")
        if self.cache_size is not None and self.cache_size < self.max_seq_len:
            raise UsageError(f"--cache-size {self.cache_size} is less than --context {self.max_seq_len}")
        if not 256 <= self.chunk_size <= 65536:
            raise UsageError(f"--chunk-size must be between 256 and 65,536 tokens, got {self.chunk_size}")
        return self

    @property
    def pool_tokens(self) -> int:
        """The cache's tokens, rounded up to whole 256-token pages as TabbyAPI does."""
        return math.ceil((self.cache_size or self.max_seq_len) / PAGE) * PAGE


@dataclass(frozen=True)
class ExllamaGpu:
    """One GPU's share (bytes)."""

    name: str
    free_bytes: int
    layers: int
    weights_bytes: int
    cache_bytes: int
    cache_temp_bytes: int  # ExLlamaV2's FP16 copy of one quantized cache layer
    scratch_bytes: int  # fixed scratch and CUDA context (ExLlamaV3: its fitted overhead)
    reserve_bytes: int  # TabbyAPI's autosplit reserve

    @property
    def used_bytes(self) -> int:
        return self.weights_bytes + self.cache_bytes + self.cache_temp_bytes + self.scratch_bytes + self.reserve_bytes

    def to_dict(self) -> dict:
        return {**self.__dict__, "used_bytes": self.used_bytes}


@dataclass(frozen=True)
class ExllamaEstimate:
    runtime: str
    model: str
    quant: str
    max_seq_len: int
    cache_size: int
    cache_mode: str
    kv_bytes_per_token: int
    gpus: tuple[ExllamaGpu, ...]
    host_bytes: int  # the embedding table, in system RAM
    tensor_parallel: bool
    loads: bool
    refused: str | None
    batched: bool  # TabbyAPI serves several requests at once (paged attention)
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None
    time_to_first_token_s: float | None
    completion_time_s: float | None
    quality: float
    args: tuple[str, ...]
    prompt_tokens: int = 512
    output_tokens: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fits(self) -> bool:
        return self.loads

    @property
    def total_bytes(self) -> int:
        return sum(g.used_bytes for g in self.gpus)

    def to_dict(self) -> dict:
        r2 = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {
            "runtime": self.runtime,
            "model": self.model,
            "quant": self.quant,
            "max_seq_len": self.max_seq_len,
            "cache_size": self.cache_size,
            "cache_mode": self.cache_mode,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "total_bytes": self.total_bytes,
            "gpus": [g.to_dict() for g in self.gpus],
            "host_bytes": self.host_bytes,
            "tensor_parallel": self.tensor_parallel,
            "fits": self.fits,
            "loads": self.loads,
            "refused": self.refused,
            "batched": self.batched,
            "decode_tokens_per_s": r2(self.decode_tokens_per_s),
            "prefill_tokens_per_s": r2(self.prefill_tokens_per_s),
            "prompt_tokens": self.prompt_tokens,
            "time_to_first_token_s": None
            if self.time_to_first_token_s is None
            else round(self.time_to_first_token_s, 4),
            "output_tokens": self.output_tokens,
            "completion_time_s": None if self.completion_time_s is None else round(self.completion_time_s, 3),
            "quality": round(self.quality, 2),
            "launch": {"tabbyapi": list(self.args)},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------ memory


def kv_bytes_per_token(arch: Architecture, element_bytes: float) -> int:
    """K and V of every layer (ExLlama keeps full-length caches for sliding-window layers too)."""
    return int(arch.layers * 2 * arch.kv_heads * arch.head_dim * element_bytes)


def exl2_scratch_bytes(arch: Architecture, chunk: int, constants: ExllamaConstants = DEFAULT_EXLLAMA) -> int:
    """ExLlamaV2's fixed scratch on each GPU: the largest module's ``scratch_space_fixed`` — the
    attention's chunk state and projection dequantization, the MLP's chunk activations and
    dequantization, or the output head's dequantization buffer (attn.py, mlp.py, linear.py)."""
    h = arch.hidden_size
    width = arch.moe_intermediate_size or arch.intermediate_size
    q = arch.attention_heads * arch.head_dim
    kv = arch.kv_heads * arch.head_dim

    def dq(rows: int, cols: int) -> int:
        return 2 * min(rows * cols, constants.max_dq_elements)

    attention = chunk * max(q, h) * 2 + max(dq(h, q), dq(h, kv), dq(q, h))
    mlp = chunk * h * 2 + 2 * chunk * max(h, width) * 2 + max(dq(h, width), dq(width, h))
    head = dq(h, arch.vocab_size)
    return max(attention, mlp, head)


def _overhead(runtime: str, arch: Architecture, settings: ExllamaSettings, constants: ExllamaConstants) -> int:
    if runtime == "exllamav3":
        return constants.exl3_overhead_bytes
    return constants.exl2_context_bytes + exl2_scratch_bytes(arch, settings.chunk_size, constants)


def _reserves(runtime: str, count: int, constants: ExllamaConstants) -> list[int]:
    other = constants.exl3_other_reserve_bytes if runtime == "exllamav3" else 0
    return [constants.tabby_reserve_bytes] + [other] * (count - 1)


def split_memory(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    devices: tuple[Device, ...],
    settings: ExllamaSettings,
    constants: ExllamaConstants = DEFAULT_EXLLAMA,
) -> tuple[tuple[ExllamaGpu, ...], int, int, bool]:
    """(each GPU's share, KV bytes a token, the embedding's host bytes, everything placed)."""
    runtime = runtime_for(quant)
    arch = model.architecture
    weights = model_weights(model, quant, catalog)
    element = cache_element_bytes(runtime, settings.cache_mode)
    per_token = kv_bytes_per_token(arch, element)
    pool = settings.pool_tokens
    layer_weights = int(weights.per_layer_bytes)
    layer_cache = math.ceil(pool * per_token / arch.layers)
    head = int(weights.head_bytes - weights.head_duplicate_bytes)
    if arch.tied_embeddings:  # ExLlama quantizes a head of its own from the tied table (-hb bits)
        head += math.ceil(arch.vocab_size * arch.hidden_size * int((quant.output_type or "EXL_6000")[4:]) / 8000)
    quantized_cache = runtime == "exllamav2" and settings.cache_mode.strip().upper() != "FP16"
    temp = 2 * pool * arch.kv_heads * arch.head_dim * 2 if quantized_cache else 0
    overhead = _overhead(runtime, arch, settings, constants)
    reserves = _reserves(runtime, len(devices), constants)
    if settings.tensor_parallel and len(devices) > 1:
        n = len(devices)
        share = tuple(
            ExllamaGpu(
                d.name,
                d.free_bytes,
                arch.layers,
                math.ceil((layer_weights * arch.layers + head) / n),
                math.ceil(layer_cache * arch.layers / n),
                math.ceil(temp / n),
                overhead,
                reserves[i],
            )
            for i, d in enumerate(devices)
        )
        return share, per_token, int(weights.embedding_bytes), all(g.used_bytes <= g.free_bytes for g in share)
    # autosplit: layers fill each GPU in turn, the head goes after the last layer
    counts = [0] * len(devices)
    room = [d.free_bytes - reserves[i] - overhead - temp for i, d in enumerate(devices)]
    gpu = 0
    placed = True
    for item in [layer_weights + layer_cache] * arch.layers + [head]:
        while gpu < len(devices) and room[gpu] < item:
            gpu += 1
        if gpu == len(devices):
            placed = False
            gpu = len(devices) - 1
        room[gpu] -= item
        counts[gpu] += 1
    counts[gpu] -= 1  # the head is not a layer
    used = [i for i, c in enumerate(counts) if c > 0 or i == gpu] or [0]
    share = tuple(
        ExllamaGpu(
            devices[i].name,
            devices[i].free_bytes,
            counts[i],
            counts[i] * layer_weights + (head if i == gpu else 0),
            counts[i] * layer_cache,
            temp,
            overhead,
            reserves[i],
        )
        for i in used
    )
    return share, per_token, int(weights.embedding_bytes), placed


# ------------------------------------------------------------------------------------ the estimate


def refusal(runtime: str, device: Device) -> str | None:
    """Why this library cannot run on this GPU (None: it can)."""
    if device.vendor in ("apple", "intel"):
        return f"{runtime} runs on CUDA{' and ROCm' if runtime == 'exllamav2' else ''} GPUs, not on {device.name}"
    if runtime == "exllamav3":
        if device.vendor == "amd":
            return f"ExLlamaV3 does not support ROCm (TabbyAPI: 'AMD GPUs are not supported'); {device.name} is AMD"
        if device.architecture in _BEFORE_AMPERE:
            return f"ExLlamaV3 needs compute capability 8.0 (Ampere) or newer; {device.name} is {device.architecture}"
    elif device.vendor == "nvidia" and device.architecture in ("Kepler", "Maxwell"):
        return f"ExLlamaV2's kernels start at compute capability 6.0 (Pascal); {device.name} is {device.architecture}"
    return None


def exllama_estimate(
    model: Model,
    quant: Quantization,
    budget: Budget,
    catalog: Catalog,
    settings: ExllamaSettings,
    constants: ExllamaConstants = DEFAULT_EXLLAMA,
    use_case: str = "general",
) -> ExllamaEstimate:
    """TabbyAPI serving this EXL checkpoint on the budget's GPUs."""
    from .estimate import estimate
    from .results import Options

    settings.check()
    if quant.format != "exl":
        raise UsageError(
            f"--runtime exllamav2 and exllamav3 load EXL2 / EXL3 checkpoints (e.g. EXL2-4.0, EXL3-4.0); {quant.name} is not one"
        )
    if not budget.devices:
        raise UsageError("ExLlama needs a GPU; this box has none usable (use --gpu NAME to ask about one)")
    runtime = runtime_for(quant)
    devices = budget.devices
    why = next((r for r in (refusal(runtime, d) for d in devices) if r), None)
    gpus, per_token, host, placed = split_memory(model, quant, catalog, devices, settings, constants)
    loads = placed and not why
    notes: list[str] = []
    first = devices[0]
    batched = runtime == "exllamav3" or (first.vendor == "nvidia" and first.architecture not in _BEFORE_AMPERE)
    if not batched and not why:
        notes.append(
            f"TabbyAPI runs ExLlamaV2 in compatibility mode on {first.name} (no flash-attn 2 before Ampere or on "
            "ROCm): one request at a time, the cache sized to max_seq_len"
        )
    if not placed and not why:
        need = sum(g.used_bytes for g in gpus)
        have = sum(d.free_bytes for d in devices)
        notes.append(
            f"needs {need / 1e9:.1f} GB of GPU memory, {have / 1e9:.1f} GB free: lower --context, --cache-mode Q4 "
            "or fewer bits per weight (ExLlama does not offload to RAM)"
        )
    if runtime == "exllamav2":
        notes.append(
            "TabbyAPI dropped ExLlamaV2 in July 2026: serve EXL2 from its exl2-checkpoint branch, or convert to EXL3"
        )
    if model.architecture.sliding_window and model.architecture.local_attention_layers:
        notes.append("sliding-window layers cache every token here, as ExLlama's full-length cache layers do")
    used = tuple(d for d in devices if d.name in {g.name for g in gpus})[: max(1, len(gpus))]
    # the speed of the same bytes on the GPUs that hold them, all of them on the GPUs
    speed_budget = replace(budget, devices=tuple(replace(d, free_bytes=1 << 50, total_bytes=1 << 50) for d in used))
    kv_quant = {"FP16": "f16", "Q4": "q4_0"}.get(settings.cache_mode.strip().upper(), "q8_0")
    options = Options(
        context=settings.max_seq_len,
        use_case=use_case,
        kv_quant=kv_quant,
        prompt_tokens=settings.prompt_tokens,
        output_tokens=settings.output_tokens,
        multi_gpu="tensor" if settings.tensor_parallel and len(used) > 1 else "layer",
    ).check()
    speed = estimate(model, quant, speed_budget, catalog, options)
    ok = loads and speed.decode_tokens_per_s
    return ExllamaEstimate(
        runtime=runtime,
        model=model.id,
        quant=quant.name,
        max_seq_len=settings.max_seq_len,
        cache_size=settings.pool_tokens,
        cache_mode=settings.cache_mode.upper(),
        kv_bytes_per_token=per_token,
        gpus=gpus,
        host_bytes=host,
        tensor_parallel=settings.tensor_parallel and len(devices) > 1,
        loads=loads,
        refused=why,
        batched=batched,
        decode_tokens_per_s=speed.decode_tokens_per_s if ok else None,
        prefill_tokens_per_s=speed.prefill_tokens_per_s if ok else None,
        time_to_first_token_s=speed.time_to_first_token_s if ok else None,
        completion_time_s=speed.completion_time_s if ok else None,
        quality=speed.quality,
        args=tuple(launch_args(model, quant, settings, len(devices))),
        prompt_tokens=settings.prompt_tokens,
        output_tokens=settings.output_tokens,
        notes=tuple(notes),
    )


def launch_args(model: Model, quant: Quantization, settings: ExllamaSettings, gpus: int) -> list[str]:
    """TabbyAPI's command line (every config.yml key is also a --flag)."""
    bits = quant.name.split("-", 1)[1].lower()
    folder = f"{model.id.split('/')[-1]}-{quant.name.split('-')[0].lower()}-{bits}bpw"
    args = [
        "python",
        "main.py",
        "--model-name",
        folder,
        "--backend",
        runtime_for(quant),
        "--max-seq-len",
        str(settings.max_seq_len),
        "--cache-size",
        str(settings.pool_tokens),
        "--cache-mode",
        settings.cache_mode.upper(),
    ]
    if settings.chunk_size != 2048:
        args += ["--chunk-size", str(settings.chunk_size)]
    if gpus > 1:
        args += ["--tensor-parallel", "true"] if settings.tensor_parallel else ["--gpu-split-auto", "true"]
    return args


# ------------------------------------------------------------------------------------ ranking

BITS = ("8.0", "6.0", "5.0", "4.5", "4.0", "3.5", "3.0", "2.5")  # the branches turboderp publishes
MIN_TOKENS_PER_S = 5.0


def rank_models(
    catalog: Catalog,
    budget: Budget,
    settings: ExllamaSettings,
    runtime: str = "exllamav2",
    use_case: str = "general",
    models: tuple[Model, ...] | None = None,
) -> tuple[ExllamaEstimate, ...]:
    """Each catalog model's best EXL2 (or EXL3) branch on these GPUs: of the published bits per
    weight, those that load whole and decode at 5 tokens/s or more; the best quality (the faster
    within 0.1 point); then the models by quality, then speed."""
    from ..catalog.lookup import exl_quant

    version = "2" if runtime == "exllamav2" else "3"
    quants = [exl_quant(f"EXL{version}-{bits}", catalog.quantizations)[0] for bits in BITS]
    if budget.devices:
        why = refusal(runtime, budget.devices[0])
        if why:
            raise UsageError(why)
    picks = []
    for model in models if models is not None else catalog.models:
        if use_case == "vision" and model.modality != "vision":
            continue
        if settings.max_seq_len > model.max_context:
            continue
        offered = []
        for quant in quants:
            e = exllama_estimate(model, quant, budget, catalog, settings, use_case=use_case)
            if e.loads and (e.decode_tokens_per_s or 0) >= MIN_TOKENS_PER_S:
                offered.append(e)
        if offered:
            picks.append(best_checkpoint(offered, lambda e: e.decode_tokens_per_s or 0.0))
    return tuple(sorted(picks, key=lambda e: (-e.quality, -(e.decode_tokens_per_s or 0), e.model)))
