"""The inverse question: what hardware a model needs (seed 000 §8, "which GPU reaches 30 tokens/s").

For one (model, quantization, context) and a number of concurrent sessions: the GPU memory it needs
whole on one GPU (and with the 1 GB a "safe" fit keeps), the RAM it needs on a CPU alone, the
memory bandwidth a GPU needs to decode at the target speed, and every catalog GPU — one, two, four
or eight of it — that holds it whole, cheapest memory first. Each answer is the estimator's own,
on imagined hardware: nothing here has a formula of its own but the batch step below.

Several sessions share one llama.cpp server (`-np N -c N×context`): the KV cache holds N contexts,
and each decode step reads the weights once and every session's cache (memory-bound batching;
the compute-bound knee of large batches is not modelled here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..catalog.errors import UsageError
from ..catalog.types import Catalog, GpuSpec, Model, Quantization
from . import speed, vllm
from .budget import Budget, Device, device_from_spec
from .candidates import model_weights, place_candidate
from .results import SAFE_HEADROOM_BYTES, Options
from .support import unsupported

COUNTS = (1, 2, 4, 8)
RUNTIMES = ("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3")
UNLIMITED_BYTES = 10**15
TRIAL_CORES = 16  # the host of a GPU option: its CPU only computes what a GPU does not hold


@dataclass(frozen=True)
class GpuOption:
    gpu: str
    count: int
    memory_bytes: int  # all of the option's GPU memory
    fits: bool
    decode_tokens_per_s: float | None  # one session's
    aggregate_tokens_per_s: float | None  # every session's together
    reaches_target: bool | None  # None without a target

    def to_dict(self) -> dict:
        return {
            "gpu": self.gpu,
            "count": self.count,
            "memory_bytes": self.memory_bytes,
            "fits": self.fits,
            "decode_tokens_per_s": _round(self.decode_tokens_per_s),
            "aggregate_tokens_per_s": _round(self.aggregate_tokens_per_s),
            "reaches_target": self.reaches_target,
        }


@dataclass(frozen=True)
class Plan:
    model: str
    quant: str
    context: int
    runtime: str
    concurrency: int
    target_tokens_per_s: float | None
    gpu_bytes: int  # whole on one GPU: weights, KV cache, buffers, runtime reserve
    gpu_bytes_comfortable: int  # ... and the headroom a "safe" fit keeps
    host_bytes: int  # on the CPU alone
    bandwidth_bytes_per_s: float | None  # a discrete GPU's peak bandwidth that reaches the target
    options: tuple[GpuOption, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "quant": self.quant,
            "context": self.context,
            "runtime": self.runtime,
            "concurrency": self.concurrency,
            "target_tokens_per_s": self.target_tokens_per_s,
            "needs": {
                "gpu_bytes": self.gpu_bytes,
                "gpu_bytes_comfortable": self.gpu_bytes_comfortable,
                "host_bytes": self.host_bytes,
                "bandwidth_bytes_per_s": None
                if self.bandwidth_bytes_per_s is None
                else round(self.bandwidth_bytes_per_s),
            },
            "options": [o.to_dict() for o in self.options],
            "notes": list(self.notes),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _imagined_gpu(bandwidth: float, flops: float | None = None, apple: bool = False) -> Device:
    """A discrete NVIDIA GPU (or an Apple chip, for MLX) with room for anything, at a given bandwidth."""
    if apple:
        return Device(
            "plan:0", "imagined Apple chip", "apple", UNLIMITED_BYTES, UNLIMITED_BYTES, bandwidth, flops, True
        )
    return Device("plan:0", "imagined GPU", "nvidia", UNLIMITED_BYTES, UNLIMITED_BYTES, bandwidth, flops)


def _speeds(model: Model, quant: Quantization, budget: Budget, catalog: Catalog, options: Options, sessions: int):
    """(the candidate, one session's decode tokens/s, all sessions' tokens/s together)."""
    c = place_candidate(model, quant, budget, catalog, options)
    if c.decode_tokens_per_s is None:
        return c, None, None
    depth = min(options.context // sessions, options.prompt_tokens)
    kv = speed.kv_read_bytes_at(c.need, model.architecture, depth)
    cost = speed.decode_terms(c.need, c.placed, model.architecture, kv, budget)
    if cost is None:
        return c, None, None
    # one step reads the weights once and each session's KV cache
    batched = replace(cost, kv_s={k: v * sessions for k, v in cost.kv_s.items()})
    step = speed.decode_seconds(batched, options.calibration)
    single = speed.decode_seconds(cost, options.calibration)
    return c, 1 / step if sessions > 1 else 1 / single, sessions / step


def needed_bandwidth(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    options: Options,
    sessions: int,
    target: float,
    apple: bool = False,
):
    """The least peak bandwidth at which a discrete GPU (an Apple chip, `apple`) holding everything reaches `target`
    tokens/s per session (None: even 100 TB/s does not — the per-layer times alone are too slow).
    Bisection on the estimator's own speed, which grows with the bandwidth."""

    def speed_at(bandwidth: float) -> float:
        budget = Budget((_imagined_gpu(bandwidth, apple=apple),), UNLIMITED_BYTES, 100e9, TRIAL_CORES)
        _, per_session, _ = _speeds(model, quant, budget, catalog, options, sessions)
        return per_session or 0.0

    return _least_bandwidth(speed_at, target)


def _least_bandwidth(speed_at, target: float) -> float | None:
    """Bisection, on a log scale from 1 GB/s to 100 TB/s, for the least bandwidth at which
    `speed_at` (growing with it) reaches `target` (None: not even at 100 TB/s)."""
    lo, hi = 1e9, 100e12
    if speed_at(hi) < target:
        return None
    if speed_at(lo) >= target:
        return lo
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if speed_at(mid) < target else (lo, mid)
    return hi


def _option(
    spec: GpuSpec, count: int, model: Model, quant: Quantization, catalog: Catalog, options: Options, sessions: int
) -> GpuOption:
    devices = tuple(device_from_spec(spec, i) for i in range(count))
    host = spec.memory_bytes if spec.unified_memory else UNLIMITED_BYTES
    budget = Budget(devices, host, 100e9, TRIAL_CORES)
    c, per_session, aggregate = _speeds(model, quant, budget, catalog, options, sessions)
    whole = c.fits and c.loads and c.placement == "gpu"
    return GpuOption(
        spec.name,
        count,
        spec.memory_bytes * count,
        whole,
        per_session if whole else None,
        aggregate if whole else None,
        None,
    )


def plan(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    context: int,
    runtime: str = "llama.cpp",
    target_tokens_per_s: float | None = None,
    concurrency: int = 1,
) -> Plan:
    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
    if not 1 <= concurrency <= 1024:
        raise UsageError(f"--concurrency must be between 1 and 1024, got {concurrency}")
    if target_tokens_per_s is not None and not 0 < target_tokens_per_s < 1e6:
        raise UsageError(f"--target-tps must be a positive number of tokens/s, got {target_tokens_per_s}")
    if runtime in ("vllm", "sglang"):
        return _vllm_plan(model, quant, catalog, context, target_tokens_per_s, concurrency, runtime)
    if runtime in ("exllamav2", "exllamav3"):
        return _exllama_plan(model, quant, catalog, context, target_tokens_per_s, concurrency, runtime)
    # -np N -c N×context: the KV cache holds every session's context
    options = Options(context=context * concurrency, detail=False).check()
    if runtime == "mlx":  # llama.cpp's physics with MLX's constants; the support rules keep Apple chips only
        from .mlx import mlx_calibration

        if quant.format != "mlx":
            raise UsageError(f"--runtime mlx plans MLX checkpoints (MLX-4BIT, MLX-8BIT); {quant.name} is not one")
        options = replace(options, calibration=mlx_calibration(options.calibration))
    one_gpu = Budget((_imagined_gpu(1e12),), UNLIMITED_BYTES, 100e9, TRIAL_CORES)
    on_gpu = place_candidate(model, quant, one_gpu, catalog, options)
    cpu_only = place_candidate(model, quant, Budget((), UNLIMITED_BYTES, 100e9, TRIAL_CORES), catalog, options)
    gpu_bytes = int(on_gpu.total_bytes)
    bandwidth = None
    if target_tokens_per_s is not None:
        bandwidth = needed_bandwidth(
            model, quant, catalog, options, concurrency, target_tokens_per_s, apple=runtime == "mlx"
        )
    found = []
    refused: dict[str, str] = {}
    for spec in catalog.gpus:
        why = unsupported(quant, device_from_spec(spec), moe=model.architecture.is_moe)
        if why:
            refused[spec.name] = why
            continue
        for count in (1,) if spec.unified_memory else COUNTS:
            if spec.memory_bytes * count < gpu_bytes / 2:  # cannot hold half of it: skip the estimate
                continue
            option = _option(spec, count, model, quant, catalog, options, concurrency)
            if option.fits:
                reaches = None
                if target_tokens_per_s is not None:
                    reaches = (option.decode_tokens_per_s or 0) >= target_tokens_per_s
                found.append(replace(option, reaches_target=reaches))
    found.sort(key=lambda o: (o.reaches_target is False, o.memory_bytes, o.count, -(o.decode_tokens_per_s or 0), o.gpu))
    notes = []
    if refused:
        example = next(iter(refused.values()))
        notes.append(f"left out: {len(refused)} GPUs that cannot run {quant.name} (e.g. {example})")
    if concurrency > 1:
        notes.append(
            f"{concurrency} sessions of {context:,} tokens: the KV cache holds {context * concurrency:,} "
            "(llama-server -np N -c N×context); decode is memory-bound batching (compute-bound batches not modelled)"
        )
    return Plan(
        model.id,
        quant.name,
        context,
        runtime,
        concurrency,
        target_tokens_per_s,
        gpu_bytes,
        gpu_bytes + SAFE_HEADROOM_BYTES,
        int(cpu_only.total_bytes),
        bandwidth,
        tuple(found),
        tuple(notes),
    )


# ------------------------------------------------------------------------------------ vLLM


def _vllm_plan(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    context: int,
    target: float | None,
    sessions: int,
    runtime: str = "vllm",
) -> Plan:
    """The same question for `vllm serve` (or SGLang): the GPU memory whose share (0.9; SGLang's 0.88)
    holds the weights, the profiler's reserves and every session's KV cache; the bandwidth a GPU needs
    for `target` tokens/s a session; the catalog GPUs (×1, 2, 4, 8, tensor parallel) on which it starts
    and holds every session at full length. Every figure is estimator.vllm's on imagined or catalog GPUs."""
    settings = vllm.ServeSettings(max_model_len=context, concurrency=sessions, runtime=runtime).check()
    constants = vllm.DEFAULT_VLLM
    share = vllm.sglang_share(1) if runtime == "sglang" else constants.gpu_memory_utilization
    engine = "SGLang" if runtime == "sglang" else "vLLM"
    big = _imagined_gpu(1e12)
    smallest_batch = constants.small_gpu_batch[1]  # the profile run of any GPU under 70 GiB
    probe = vllm.serve_estimate(
        model, quant, (big,), catalog, replace(settings, tensor_parallel_size=1, max_num_batched_tokens=smallest_batch)
    )
    memory = probe.memory
    reserved = memory.weights_bytes + memory.non_torch_bytes + memory.activation_bytes + memory.cuda_graph_bytes
    kv = probe.kv_bytes_per_token * context * sessions
    gpu_bytes = math.ceil((reserved + kv) / share)
    bandwidth = None
    if target is not None:
        bandwidth = _vllm_bandwidth(model, quant, catalog, settings, target)
    found = []
    refused: dict[str, str] = {}
    for spec in catalog.gpus:
        device = device_from_spec(spec)
        why = unsupported(quant, device, moe=model.architecture.is_moe) or (
            f"{engine} runs on CUDA and ROCm GPUs, not on {spec.name}" if spec.vendor in ("apple", "intel") else None
        )
        if why:
            refused[spec.name] = why
            continue
        for count in (1,) if spec.unified_memory else COUNTS:
            if spec.memory_bytes * count < gpu_bytes / 2 or model.architecture.attention_heads % count:
                continue
            devices = tuple(device_from_spec(spec, i) for i in range(count))
            e = vllm.serve_estimate(model, quant, devices, catalog, replace(settings, tensor_parallel_size=count))
            if not (e.fits and e.serves):
                continue
            per_session = e.per_user_tokens_per_s if sessions > 1 else e.decode_tokens_per_s
            reaches = None if target is None else (per_session or 0) >= target
            aggregate = e.aggregate_tokens_per_s if sessions > 1 else per_session
            found.append(GpuOption(spec.name, count, spec.memory_bytes * count, True, per_session, aggregate, reaches))
            break  # more GPUs of the same kind only add cost once it serves
    found.sort(key=lambda o: (o.reaches_target is False, o.memory_bytes, o.count, -(o.decode_tokens_per_s or 0), o.gpu))
    notes = [
        f"{engine} takes {share:.0%} of each GPU (--"
        + ("mem-fraction-static" if runtime == "sglang" else "gpu-memory-utilization")
        + "); the weights, "
        f"the start-up profile's reserves and {sessions} × {context:,} KV tokens must fit in it",
        f"host RAM: {engine} reads the checkpoint through it once at start; the figure is the checkpoint's size",
    ]
    if refused:
        example = next(iter(refused.values()))
        notes.append(f"left out: {len(refused)} GPUs that cannot run {quant.name} under {engine} (e.g. {example})")
    return Plan(
        model.id,
        quant.name,
        context,
        runtime,
        sessions,
        target,
        gpu_bytes,
        gpu_bytes + SAFE_HEADROOM_BYTES,
        model_weights(model, quant, catalog).total_bytes,
        bandwidth,
        tuple(found),
        tuple(notes),
    )


def _vllm_bandwidth(model, quant, catalog, settings, target: float) -> float | None:
    """The least peak bandwidth at which one imagined GPU with room for everything serves each
    session at `target` tokens/s under vLLM (None: the per-layer times alone are too slow)."""

    def speed_at(bandwidth: float) -> float:
        device = _imagined_gpu(bandwidth)
        e = vllm.serve_estimate(model, quant, (device,), catalog, replace(settings, tensor_parallel_size=1))
        return (e.per_user_tokens_per_s if settings.concurrency > 1 else e.decode_tokens_per_s) or 0.0

    return _least_bandwidth(speed_at, target)


# ------------------------------------------------------------------------------------ ExLlama


def _exllama_plan(
    model: Model,
    quant: Quantization,
    catalog: Catalog,
    context: int,
    target: float | None,
    sessions: int,
    runtime: str,
) -> Plan:
    """The same question for TabbyAPI: the GPU memory an EXL branch and a cache of every session's
    tokens take on one GPU (ExLlama's scratch and reserve included; no offload), and the catalog
    GPUs (×1, 2, 4, 8, autosplit) that load it. The bandwidth is llama.cpp's for the same bytes."""
    from . import exllama

    if quant.format != "exl" or exllama.runtime_for(quant) != runtime:
        version = "2" if runtime == "exllamav2" else "3"
        raise UsageError(f"--runtime {runtime} plans EXL{version} branches (e.g. EXL{version}-4.0); not {quant.name}")
    settings = exllama.ExllamaSettings(max_seq_len=context, cache_size=context * sessions).check()
    host = Budget((), UNLIMITED_BYTES, 100e9, TRIAL_CORES)
    one = exllama.exllama_estimate(model, quant, replace(host, devices=(_imagined_gpu(1e12),)), catalog, settings)
    gpu_bytes = one.total_bytes
    bandwidth = None
    if target is not None:
        options = Options(context=context * sessions, detail=False).check()
        bandwidth = needed_bandwidth(model, quant, catalog, options, sessions, target)
    found = []
    refused: dict[str, str] = {}
    for spec in catalog.gpus:
        why = exllama.refusal(runtime, device_from_spec(spec))
        if why:
            refused[spec.name] = why
            continue
        for count in COUNTS:
            if spec.memory_bytes * count < gpu_bytes / 2:
                continue
            budget = replace(host, devices=tuple(device_from_spec(spec, i) for i in range(count)))
            e = exllama.exllama_estimate(model, quant, budget, catalog, settings)
            if not e.loads:
                continue
            speed = e.decode_tokens_per_s
            reaches = None if target is None else (speed or 0) >= target
            found.append(GpuOption(spec.name, count, spec.memory_bytes * count, True, speed, speed, reaches))
            break
    found.sort(key=lambda o: (o.reaches_target is False, o.memory_bytes, o.count, -(o.decode_tokens_per_s or 0), o.gpu))
    notes = [f"host RAM: the embedding table ({one.host_bytes / 1e9:.2f} GB) stays there"]
    if sessions > 1:
        notes.append(
            f"{sessions} sessions of {context:,} tokens share one cache of {context * sessions:,} (--cache-size); "
            "decode is one stream's"
        )
    if refused:
        example = next(iter(refused.values()))
        notes.append(f"left out: {len(refused)} GPUs that cannot run {runtime} (e.g. {example})")
    return Plan(
        model.id,
        quant.name,
        context,
        runtime,
        sessions,
        target,
        gpu_bytes,
        gpu_bytes + SAFE_HEADROOM_BYTES,
        one.host_bytes,
        bandwidth,
        tuple(found),
        tuple(notes),
    )
