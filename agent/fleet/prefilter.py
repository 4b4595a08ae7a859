"""The coarse filter `fleet place` pushes into PromQL: hosts whose memory could hold the model at all.

A host *fits* a candidate only when the estimator says it fits whole: its budget (the usable
GPUs' free memory added up, or RAM on a host without GPUs — ``Budget.budget_bytes``) is at least
the candidate's total. Every placement's total is the weights, the KV cache and the overheads of
the devices it uses, and whatever the placement, one device computes the logits and holds that
compute buffer. So

    budget_bytes >= weights + KV cache + the logits' compute buffer          (``min_footprint``)

is necessary for a fit, and a host below it is dropped without being estimated. Nothing is assumed
about how layers split or the per-GPU runtime reserve.

A host without usable GPUs can only place the model on its CPU, whose decode speed depends on the
RAM bandwidth and the cores alone, and never drops when either grows. So there is a bandwidth at or
below which no such host decodes at the usable 5 tokens/s, whatever its cores and RAM
(``cpu_min_bandwidth``: found by bisection on the estimator itself, with unlimited cores and RAM),
and those hosts are dropped too — a 70B model is never placed on a CPU-only server.

So the filter never drops a host the full estimate would place; ``tests/test_fleet_prefilter.py``
checks that on random fleets (free memory, RAM, RAM bandwidth, cores), models, quantizations and
contexts.

The same bound is rendered as PromQL over the agents' series (``budget_promql``): the budget the
fleet would rebuild (``facts.budget_from_samples``), per (job, instance), compared with the bound
in Prometheus, so only the candidates' series travel. ``config/fitagent-rules.yml`` records the
budget as ``fitagent:host_budget_bytes`` (the same expression; a test keeps the two equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...catalog.types import Catalog, Model, Quantization
from ...estimator.budget import ASSUMED_HOST_BANDWIDTH, Budget
from ...estimator.candidates import model_terms, need_for, place_candidate
from ...estimator.recommend import MIN_USABLE_TOKENS_PER_S
from ...estimator.results import Options

RECORDED_BUDGET = "fitagent:host_budget_bytes"
RECORDED_CPU_BANDWIDTH = "fitagent:host_cpu_only_ram_bandwidth_bytes_per_second"
UNLIMITED_CORES = 1 << 20
UNLIMITED_RAM = 10**15


@dataclass(frozen=True)
class Bound:
    model: str
    quant: str
    context: int
    min_bytes: int  # weights + KV cache + one compute buffer: less than any placement's total
    cpu_min_bandwidth: float = 0.0  # a host without GPUs at or below this RAM bandwidth decodes < 5 tokens/s

    def admits(self, budget: Budget) -> bool:
        """Whether a host with this budget could fit the model at all (and so is estimated)."""
        if not could_fit(budget, self.min_bytes):
            return False
        return bool(budget.devices) or (budget.host_bandwidth_bytes_per_s or 0.0) > self.cpu_min_bandwidth


def min_footprint(model: Model, quant: Quantization, catalog: Catalog, options: Options) -> int:
    """The least total the estimator can give this candidate on any budget: its weights, its KV
    cache and the compute buffer of the device that computes the logits (a GPU adds its runtime
    reserve, a split more buffers, a partial offload the host's buffer too — all on top)."""
    need = need_for(model, quant, catalog, options)
    return int(need.weights.total_bytes + need.kv_bytes + need.compute_head_bytes)


def cpu_min_bandwidth(model: Model, quant: Quantization, catalog: Catalog, options: Options) -> float:
    """The largest RAM bandwidth at which a host without GPUs — with unlimited cores and RAM, so
    any real one is no faster — still decodes under the usable speed (0: none does; infinite:
    every one does). Bisection on the estimator's own speed, which grows with the bandwidth."""
    terms = model_terms(model, catalog, options)

    def usable(bandwidth: float) -> bool:
        budget = Budget(
            devices=(),
            host_available_bytes=UNLIMITED_RAM,
            host_bandwidth_bytes_per_s=bandwidth,
            cpu_cores=UNLIMITED_CORES,
        )
        speed = place_candidate(model, quant, budget, catalog, options, terms).decode_tokens_per_s
        return speed is not None and speed >= MIN_USABLE_TOKENS_PER_S

    lo, hi = 1e6, 1e16  # 1 MB/s .. 10 PB/s
    if usable(lo):
        return 0.0
    if not usable(hi):
        return math.inf
    while hi / lo > 1.0001:  # lo: not usable; hi: usable
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if usable(mid) else (mid, hi)
    return lo


def bound_for(model: Model, quant: Quantization, catalog: Catalog, context: int) -> Bound:
    options = Options(context=context, detail=False).check()
    return Bound(
        model.id,
        quant.name,
        context,
        min_footprint(model, quant, catalog, options),
        cpu_min_bandwidth(model, quant, catalog, options),
    )


def could_fit(budget: Budget, min_bytes: int) -> bool:
    return budget.budget_bytes >= min_bytes


# ---------------------------------------------------------------- PromQL


def _sel(name: str, selector: str) -> str:
    return f"{name}{{{selector}}}" if selector else name


def budget_promql(selector: str = "") -> str:
    """Per (job, instance), the estimator's budget as ``facts.budget_from_samples`` rebuilds it:
    the free memory of the usable GPUs (each floored at 0) added up; on a host without usable
    GPUs, RAM available, capped by the cgroup limit when one is exported."""
    gpus = (
        f"sum by (job, instance) (clamp_min({_sel('fitagent_gpu_memory_free_bytes', selector)}, 0) "
        f"and on (job, instance, gpu, uuid) ({_sel('fitagent_gpu_usable', selector)} == 1))"
    )
    ram = (
        f"min by (job, instance) ({_sel('fitagent_host_memory_available_bytes', selector)} or "
        f'label_replace({_sel("fitagent_host_memory_limit_bytes", selector)} > 0, "limit", "1", "", ""))'
    )
    return f"({gpus}) or ({ram})"


def cpu_bandwidth_promql(selector: str = "") -> str:
    """Per (job, instance) of a host without usable GPUs, the RAM bandwidth the estimator uses:
    the exported peak, or the assumed one when the agent exports none."""
    return (
        f"(({_sel('fitagent_host_memory_bandwidth_bytes_per_second', selector)} > 0) or "
        f"({_sel('fitagent_host_cpu_cores', selector)} * 0 + {ASSUMED_HOST_BANDWIDTH:.0f})) "
        f"unless on (job, instance) ({_sel('fitagent_gpu_usable', selector)} == 1)"
    )


def budget_source(selector: str, recorded: bool) -> str:
    """The budget series: the recording rule's when Prometheus has it, else computed inline."""
    return _sel(RECORDED_BUDGET, selector) if recorded else f"({budget_promql(selector)})"


def _cpu_bandwidth_source(selector: str, recorded: bool) -> str:
    return _sel(RECORDED_CPU_BANDWIDTH, selector) if recorded else f"({cpu_bandwidth_promql(selector)})"


def candidates_promql(bound: Bound, selector: str, recorded: bool) -> str:
    """(job, instance) of the hosts to estimate: budget at least the bound, and, without GPUs,
    RAM bandwidth above the bound's."""
    admitted = f"{budget_source(selector, recorded)} >= {int(bound.min_bytes)}"
    if bound.cpu_min_bandwidth <= 0:
        return admitted
    slow = _cpu_bandwidth_source(selector, recorded)
    if math.isfinite(bound.cpu_min_bandwidth):
        slow = f"{slow} <= {bound.cpu_min_bandwidth:.0f}"
    return f"({admitted}) unless on (job, instance) ({slow})"


def hosts_promql(selector: str, recorded: bool) -> str:
    """How many hosts per job have a budget (the filter's candidates and those it leaves out)."""
    return f"count by (job) ({budget_source(selector, recorded)})"
