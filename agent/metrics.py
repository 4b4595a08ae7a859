"""`/metrics`: a Prometheus collector over the agent's current state (no probe per scrape).

Each scrape reads ``agent.state`` once. Names follow Prometheus' rules (hardware-notes §4):
base units, ``_total`` counters, ``_info`` metrics for constant facts, no hostname label
(Prometheus adds ``instance``); GPU series carry ``gpu`` (index) and ``uuid`` so they join
with nvidia_gpu_exporter's on ``uuid``.

The series are also the fleet's source of truth: ``fitagent fleet`` rebuilds each host's
budget from the ``fitagent_gpu_*`` and ``fitagent_host_*`` series (``fleet.facts``) and runs
the estimator on it, so anything the budget holds must be exported here.

Model series (``fitagent_model_*``) exist only for a bounded set of (model, quant, context):
the configured watch list, then the Pareto frontiers at the default use case and context,
at most ``metrics_models_max`` entries. The top recommendation (``fitagent_best_model_*``) is
exported for each precomputed use case at the default context: at most 5 × 5 series, so that
``fitagent fleet best`` reads it instead of running a recommendation per host.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ..catalog.errors import FitagentError
from ..estimator.calibration import DEFAULT_CALIBRATION
from ..estimator.estimate import estimate
from ..estimator.results import Estimate, Options
from . import package_version
from .state import AgentState

GPU_LABELS = ("gpu", "uuid")
MODEL_LABELS = ("model", "quant", "context")
GPU_INFO_LABELS = (
    "gpu",
    "uuid",
    "name",
    "vendor",
    "pci_id",
    "driver",
    "compute_capability",
    "memory_type",
    "kind",
    "unified_memory",
    "mig_role",
    "mig_profile",
    "parent_uuid",
)


def _gauge(name: str, doc: str, labels: Iterable[str] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


class FitagentCollector(Collector):
    """Everything under ``fitagent_``; the per-state part is built once per state and kept in
    the state's cache, so a scrape costs a dict lookup plus the few age-dependent gauges."""

    def __init__(self, agent):
        self.agent = agent
        self.version = package_version()

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        state: AgentState = agent.state  # once per scrape: every series below is from one scan
        config = agent.config
        build = InfoMetricFamily(
            "fitagent_build",
            "The running fitagent: version and Python (always 1)",
            labels=["version", "python_version"],
        )
        build.add_metric([self.version, platform.python_version()], {})
        yield build
        now = time.time()
        yield from self._scan_series(state, config, now)
        if not state.ready:
            return
        key = (
            "metrics",
            config.metrics_models_max,
            config.metrics_reference_model,
            config.metrics_reference_quant,
            config.watch_models,
            config.default_use_case,
            config.default_context,
        )
        yield from state.cache.get_or_make(key, lambda: tuple(self._state_series(state, config)))

    # ------------------------------------------------------------ the agent and its scans

    @staticmethod
    def _scan_series(state: AgentState, config, now: float) -> Iterator[Metric]:
        ready = _gauge("fitagent_ready", "1 when a hardware scan has succeeded and its results are served")
        ready.add_metric([], 1 if state.ready else 0)
        yield ready
        stale = _gauge("fitagent_stale", "1 when the last scan failed or none succeeded for 3 rescan intervals + 60 s")
        stale.add_metric([], 1 if state.stale(now) else 0)
        yield stale
        if state.scanned_at is not None:
            last = _gauge(
                "fitagent_last_scan_timestamp_seconds",
                "When the last successful hardware scan finished (Unix time)",
                unit="seconds",
            )
            last.add_metric([], state.scanned_at)
            yield last
        if state.scan_duration_s is not None:
            duration = _gauge(
                "fitagent_scan_duration_seconds",
                "How long the last successful scan took: probe and recommendations",
                unit="seconds",
            )
            duration.add_metric([], state.scan_duration_s)
            yield duration
        interval = _gauge("fitagent_rescan_interval_seconds", "Configured time between hardware scans", unit="seconds")
        interval.add_metric([], config.rescan_interval_s)
        yield interval
        yield CounterMetricFamily(
            "fitagent_scans", "Hardware scans attempted since the agent started", value=state.scans_total
        )
        yield CounterMetricFamily(
            "fitagent_scan_errors",
            "Hardware scans that failed since the agent started",
            value=state.scan_failures_total,
        )
        failures = _gauge("fitagent_scan_consecutive_failures", "Scans that failed in a row (0 after a good scan)")
        failures.add_metric([], state.consecutive_failures)
        yield failures

    # ------------------------------------------------------------ one state's facts

    def _state_series(self, state: AgentState, config) -> Iterator[Metric]:
        yield from host_series(state)
        yield from gpu_series(state)
        yield from fit_series(state, config, self.agent.catalog)
        yield from best_model_series(state, config)
        yield from model_series(select_models(state, config))


def host_series(state: AgentState) -> Iterator[Metric]:
    assert state.snapshot is not None  # the series are built for a ready state only
    host = state.snapshot.host
    info = InfoMetricFamily(
        "fitagent_host",
        "The host the agent runs on (always 1)",
        labels=["hostname", "os", "cpu_model", "cpu_arch", "cpu_class"],
    )
    info.add_metric([host.hostname, host.os, host.cpu_model or "", host.cpu_arch or "", host.cpu_class or ""], {})
    yield info
    values = [
        ("fitagent_host_memory_total_bytes", "Host RAM", host.memory_total_bytes),
        ("fitagent_host_memory_available_bytes", "Host RAM available to new processes", host.memory_available_bytes),
        (
            "fitagent_host_memory_limit_bytes",
            "The cgroup limit on this agent's RAM (models placed on the CPU fit under it)",
            host.memory_limit_bytes,
        ),
        (
            "fitagent_host_memory_bandwidth_bytes_per_second",
            f"Host RAM peak bandwidth (source: "
            f"{host.memory_bandwidth_source}); absent when unknown, and the estimator assumes "
            "51.2e9 (dual-channel DDR4-3200)",
            host.memory_bandwidth_bytes_per_s,
        ),
        ("fitagent_host_cpu_cores", "Physical CPU cores", host.cpu_cores),
    ]
    for name, doc, value in values:
        if value is None:
            continue
        gauge = _gauge(name, doc, unit="bytes" if name.endswith("_bytes") else "")
        gauge.add_metric([], value)
        yield gauge


def gpu_series(state: AgentState) -> Iterator[Metric]:
    snapshot = state.snapshot
    assert snapshot is not None and state.computed is not None
    budget_devices = {d.id: d for d in state.computed.budget.devices}
    reserve = DEFAULT_CALIBRATION.runtime_reserve_bytes
    info = InfoMetricFamily(
        "fitagent_gpu",
        "Constant facts about each GPU or MIG instance (always 1); memory_type "
        "and kind come from fitagent's GPU catalog",
        labels=list(GPU_INFO_LABELS),
    )
    total = _gauge("fitagent_gpu_memory_total_bytes", "GPU memory", GPU_LABELS, "bytes")
    free = _gauge(
        "fitagent_gpu_memory_free_bytes", "GPU memory free (what a model can be loaded into)", GPU_LABELS, "bytes"
    )
    used = _gauge("fitagent_gpu_memory_used_bytes", "GPU memory in use", GPU_LABELS, "bytes")
    usable = _gauge(
        "fitagent_gpu_usable",
        "1 when models can be placed on this device (visible, healthy, not a MIG parent)",
        GPU_LABELS,
    )
    bandwidth = _gauge(
        "fitagent_gpu_memory_bandwidth_bytes_per_second",
        "GPU memory peak bandwidth the estimator uses (probe, else catalog; a MIG instance its share)",
        GPU_LABELS,
    )
    flops = _gauge(
        "fitagent_gpu_fp16_flops",
        "Peak dense FP16 tensor throughput the estimator uses, floating-point "
        "operations per second (catalog; a MIG instance its share)",
        GPU_LABELS,
    )
    link_generation = _gauge(
        "fitagent_gpu_pcie_link_generation",
        "PCIe generation of the GPU's link to the host, the most device and slot allow (absent when unknown)",
        GPU_LABELS,
    )
    link_width = _gauge(
        "fitagent_gpu_pcie_link_width", "PCIe lanes of that link, the most device and slot allow", GPU_LABELS
    )
    headroom = _gauge(
        "fitagent_gpu_fit_headroom_bytes",
        "Memory a model can still take on this GPU or MIG instance: "
        f"free minus the runtime's per-GPU reserve ({reserve} bytes); 0 when not placeable",
        GPU_LABELS,
        "bytes",
    )
    for gpu in snapshot.gpus:
        labels = [str(gpu.index), gpu.uuid or ""]
        device = budget_devices.get(gpu.uuid or f"{gpu.vendor}:{gpu.index}") if gpu.usable else None
        mig = gpu.mig or {}
        info.add_metric(
            [
                str(gpu.index),
                gpu.uuid or "",
                gpu.name,
                gpu.vendor,
                gpu.pci_id or "",
                gpu.driver_version or "",
                gpu.compute_capability or "",
                (device.memory_type if device else None) or "",
                (device.kind if device else None) or "",
                "true" if device and device.unified else "false",
                str(mig.get("role") or ""),
                str(mig.get("profile") or ""),
                str(mig.get("parent_uuid") or ""),
            ],
            {},
        )
        total.add_metric(labels, gpu.memory_total_bytes)
        free.add_metric(labels, gpu.memory_free_bytes)
        used.add_metric(labels, gpu.memory_used_bytes)
        usable.add_metric(labels, 1 if device is not None else 0)
        if device is not None:
            if device.bandwidth_bytes_per_s:
                bandwidth.add_metric(labels, device.bandwidth_bytes_per_s)
            if device.fp16_flops:
                flops.add_metric(labels, device.fp16_flops)
        headroom.add_metric(labels, max(0, device.free_bytes - reserve) if device is not None else 0)
        pcie = gpu.pcie or {}
        generation, width = pcie.get("max_generation"), pcie.get("max_width")
        if isinstance(generation, int) and isinstance(width, int):
            link_generation.add_metric(labels, generation)
            link_width.add_metric(labels, width)
    if snapshot.gpus:
        yield from (info, total, free, used, usable, bandwidth, flops, link_generation, link_width, headroom)


def fit_series(state: AgentState, config, catalog) -> Iterator[Metric]:
    """What fits now, without model labels (one series per precomputed context at most)."""
    computed = state.computed
    assert computed is not None
    use_case = computed.default_key[0]
    runnable = _gauge(
        "fitagent_runnable_candidates",
        f"Catalog (model, quantization) pairs that run here at this "
        f"context: on GPUs, partly offloaded or on the CPU (use case {use_case})",
        ["context"],
    )
    fitting = _gauge(
        "fitagent_fitting_models",
        "Catalog models whose best quantization fits whole in fast memory "
        "and decodes at a usable speed (5 tokens/s or more)",
        ["context"],
    )
    best = _gauge(
        "fitagent_best_decode_tokens_per_second",
        "Fastest decode of any candidate that fits whole, tokens/s",
        ["context"],
    )
    for (uc, context), recs in sorted(computed.recommendations.items(), key=lambda kv: kv[0][1]):
        if uc != use_case:
            continue
        runnable.add_metric([str(context)], computed.considered[(uc, context)])
        fitting.add_metric([str(context)], sum(1 for e in recs.ranked if e.fits))
        speeds = [e.decode_tokens_per_s for e in recs.frontiers.get("speed", ()) if e.decode_tokens_per_s]
        if speeds:
            best.add_metric([str(context)], max(speeds))
    yield from (runnable, fitting, best)

    largest = _gauge(
        "fitagent_largest_fitting_model_parameters",
        "Parameters of the largest catalog model that fits whole now (its best-quality quantization)",
        MODEL_LABELS,
    )
    if computed.best_fitting:
        params = {m: catalog.model(m).params_total for m in computed.best_fitting}
        model = max(params, key=lambda m: (params[m], m))
        largest.add_metric([model, computed.best_fitting[model][0], str(computed.default_key[1])], params[model])
    yield largest

    reference = reference_estimate(state, config, catalog)
    if reference is not None:
        ref = _gauge(
            "fitagent_reference_model_max_context_tokens",
            "Longest context (tokens) of the reference model "
            "that fits now with the placement it gets at the default context; 0 if none",
            ["model", "quant", "placement"],
        )
        ref.add_metric([reference.model, reference.quant, reference.placement], reference.max_context or 0)
        yield ref


BEST_LABELS = ("use_case", "context")


def best_model_series(state: AgentState, config) -> Iterator[Metric]:
    """The top recommendation (what ``/v1/recommendations`` ranks first) for each precomputed
    use case at the default context: an info series naming it, and four gauges. A use case with
    nothing that runs gets the info series with empty model and quant and placement ``none``."""
    computed = state.computed
    assert computed is not None
    context = computed.default_key[1]
    info = InfoMetricFamily(
        "fitagent_best_model",
        "The top recommendation for each precomputed use case at the "
        "default context (always 1; model empty when nothing runs at a usable speed)",
        labels=[*BEST_LABELS, "model", "quant", "placement"],
    )
    decode = _gauge(
        "fitagent_best_model_decode_tokens_per_second",
        "Estimated decode speed of the top recommendation, tokens/s",
        BEST_LABELS,
    )
    quality = _gauge(
        "fitagent_best_model_quality",
        "Quality score (0-100) of the top recommendation for its use case, after quantization",
        BEST_LABELS,
    )
    layers = _gauge(
        "fitagent_best_model_gpu_layers",
        "Repeating layers of the top recommendation on GPUs (llama.cpp -ngl; 0 on the CPU)",
        BEST_LABELS,
    )
    headroom = _gauge(
        "fitagent_best_model_fit_headroom_bytes",
        "Free memory left with the top recommendation loaded (negative: short by)",
        BEST_LABELS,
        "bytes",
    )
    order = {u: i for i, u in enumerate(config.precomputed_use_cases)}
    keys = sorted((k for k in computed.recommendations if k[1] == context), key=lambda k: (order.get(k[0], 99), k[0]))
    for use_case, ctx in keys:
        ranked = computed.recommendations[(use_case, ctx)].ranked
        labels = [use_case, str(ctx)]
        if not ranked:
            info.add_metric([*labels, "", "", "none"], {})
            continue
        e = ranked[0]
        info.add_metric([*labels, e.model, e.quant, e.placement], {})
        if e.decode_tokens_per_s is not None:
            decode.add_metric(labels, e.decode_tokens_per_s)
        quality.add_metric(labels, e.quality)
        layers.add_metric(labels, e.gpu_layers)
        headroom.add_metric(labels, e.headroom_bytes)
    yield from (info, decode, quality, layers, headroom)


def reference_estimate(state: AgentState, config, catalog) -> Estimate | None:
    if not config.metrics_reference_model:
        return None
    try:
        model = catalog.model(config.metrics_reference_model)
        quant = catalog.quant(config.metrics_reference_quant)
    except FitagentError:  # serve checks it at start; a what-if catalog may lack it
        return None
    options = Options(context=min(config.default_context, model.max_context), use_case=config.default_use_case)
    assert state.computed is not None
    return estimate(model, quant, state.computed.budget, catalog, options)


def select_models(state: AgentState, config) -> list[Estimate]:
    """The bounded set that gets model series: watch list, then the default key's speed and
    efficiency frontiers, then its quality frontier from the best down."""
    limit = config.metrics_models_max
    computed = state.computed
    assert computed is not None
    recs = computed.recommendations.get(computed.default_key)
    ordered: list[Estimate] = list(computed.watched)
    if recs is not None:
        ordered += recs.frontiers.get("speed", []) + recs.frontiers.get("efficiency", [])
        ordered += sorted(recs.frontiers.get("quality", []), key=lambda e: -e.quality)
    chosen: dict[tuple[str, str, int], Estimate] = {}
    for e in ordered:
        if len(chosen) >= limit:
            break
        chosen.setdefault((e.model, e.quant, e.context), e)
    return list(chosen.values())


def model_series(estimates: list[Estimate]) -> Iterator[Metric]:
    headroom = _gauge(
        "fitagent_model_fit_headroom_bytes",
        "Free GPU memory left with this model loaded (whole on "
        "GPUs); for other placements the budget minus its size, negative when short",
        MODEL_LABELS,
        "bytes",
    )
    decode = _gauge(
        "fitagent_model_decode_tokens_per_second", "Estimated decode speed of one stream, tokens/s", MODEL_LABELS
    )
    layers = _gauge(
        "fitagent_model_gpu_layers", "Repeating layers placed on GPUs (llama.cpp -ngl; 0 on the CPU)", MODEL_LABELS
    )
    fits = _gauge(
        "fitagent_model_fits",
        "1 when the model fits whole in fast memory (all layers on GPUs, or the CPU on a host without GPUs)",
        MODEL_LABELS,
    )
    for e in estimates:
        labels = [e.model, e.quant, str(e.context)]
        headroom.add_metric(labels, e.headroom_bytes)
        if e.decode_tokens_per_s is not None:
            decode.add_metric(labels, e.decode_tokens_per_s)
        layers.add_metric(labels, e.gpu_layers)
        fits.add_metric(labels, 1 if e.fits else 0)
    yield from (headroom, decode, layers, fits)


# ---------------------------------------------------------------- the registry


def make_registry(agent) -> CollectorRegistry:
    """The agent's own registry (not the process-global one: tests run several agents in
    one process): fitagent's collector plus the standard process and platform collectors."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FitagentCollector(agent))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The scrape body and its content type (Prometheus text, or OpenMetrics when asked)."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
