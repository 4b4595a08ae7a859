"""The fit behind the shipped speed constants (estimator/calibration.py's generated block).

Pure: observations in — each a public measurement's speed terms (``speed.decode_terms`` /
``prefill_terms`` on the row's hardware), its measured tokens/s and its group — a
``Calibration`` out. ``python -m benchmarks.accuracy`` builds the observations from
tests/data/measurements.csv, writes what this gives into calibration.py, and reports in-sample
and cross-validated errors; a test checks the shipped constants are what this fit gives.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from . import speed, vllm
from .calibration import Calibration, VllmConstants, memory_class


def _with(cal: Calibration, name: str, value: Any) -> Calibration:
    """The calibration with one constant, named at run time, replaced."""
    changes: dict[str, Any] = {name: value}
    return replace(cal, **changes)


class Observation(Protocol):
    """One measured speed, as the fit reads it."""

    @property
    def kind(self) -> str: ...  # "decode" or "prefill"
    @property
    def group(self) -> str: ...  # GPU_FIT_GROUPS, CPU_FIT_GROUPS, PREFILL_GROUPS
    @property
    def measured(self) -> float: ...  # tokens/s
    @property
    def cost(self) -> speed.DecodeCost | speed.PrefillCost | None: ...
    @property
    def prompt_tokens(self) -> int: ...  # a prefill row's prompt
    @property
    def long_prompt(self) -> bool: ...  # prompt + depth past which attention is a real share
    @property
    def counted(self) -> bool: ...  # evaluated, not excluded


Obs = TypeVar("Obs", bound=Observation)

GPU_FIT_GROUPS = ("decode, single GPU", "decode, multi-GPU", "decode, Apple", "decode, MoE")
CPU_FIT_GROUPS = ("decode, partial offload", "decode, CPU only")
PREFILL_GROUPS = ("prefill", "prefill, long prompt")
DECODE_GROUPS = GPU_FIT_GROUPS + CPU_FIT_GROUPS
SPEED_GROUPS = DECODE_GROUPS + PREFILL_GROUPS + ("prefill (CPU)",)


def decode_cost(r: Observation) -> speed.DecodeCost:
    assert isinstance(r.cost, speed.DecodeCost), "a decode row's cost"
    return r.cost


def prefill_cost(r: Observation) -> speed.PrefillCost:
    assert isinstance(r.cost, speed.PrefillCost), "a prefill row's cost"
    return r.cost


def predicted(r: Observation, cal: Calibration) -> float | None:
    """The row's speed from its cost under a calibration (what a refit predicts for it)."""
    if r.cost is None:
        return None
    if isinstance(r.cost, speed.DecodeCost):
        seconds = speed.decode_seconds(r.cost, cal)
        return 1 / seconds if seconds > 0 else None
    seconds = speed.prefill_seconds(r.cost, cal)
    return r.prompt_tokens / seconds if seconds > 0 else None


def fit_rows(rows: Sequence[Obs], groups: Iterable[str]) -> list[Obs]:
    """The rows a fit uses: those of these groups that count, with their cost, group by group."""
    return [r for g in groups for r in rows if r.group == g and r.counted and r.cost is not None]


def fit(rows: Sequence[Observation], base: Calibration | None = None) -> Calibration:
    """The constants that best explain these rows (the shipped ones where a constant has no rows).

    GPU decode first: seconds per token are linear in the priced terms (bytes ÷ peak bandwidth
    per device class, layers run), so weighted least squares — each row scaled by 1/measured
    seconds — minimises Σ (estimate/measured − 1)². Then, with those fixed, the host constants
    (share of peak RAM bandwidth, bandwidth per core, time per GPU↔CPU crossing) by a grid
    search over the rows that put work on the CPU. Then prefill (_fit_prefill).
    """
    cal = _fit_gpu_decode(fit_rows(rows, GPU_FIT_GROUPS), base or Calibration())
    cal = _fit_host(fit_rows(rows, CPU_FIT_GROUPS), cal)
    cal = _fit_cpu_prefill(fit_rows(rows, ("prefill (CPU)",)), cal)
    return _fit_prefill(rows, cal)


def _fit_cpu_prefill(cpu_rows: Sequence[Obs], cal: Calibration) -> Calibration:
    """FLOP/s per core of a CPU-only prompt, an x86 core's and an Arm core's: seconds = FLOPs ÷
    (cores × rate) is linear in 1/rate, so each is 1-D least squares on its architecture's rows."""
    for name, arm in (("cpu_flops_per_core", False), ("cpu_flops_per_core_arm", True)):
        members = [r for r in cpu_rows if prefill_cost(r).cpu_flops is not None and prefill_cost(r).cpu_arm == arm]
        # o: the rate per core each row reached; minimising Σ (o/rate − 1)² gives rate = Σo² / Σo
        o = [
            prefill_cost(r).cpu_flops / prefill_cost(r).cpu_cores / _row_seconds(r)  # type: ignore[operator]
            for r in members
        ]
        if o:
            cal = _with(cal, name, round(sum(v * v for v in o) / sum(o), -8))
    return cal


def _fit_gpu_decode(gpu_rows: Sequence[Obs], base: Calibration) -> Calibration:
    """Efficiencies and layer times by weighted least squares (linear once the KV factors are
    fixed), then the KV-read factors (flash attention on / off) by 1-D least squares on the rows
    whose KV read is a real share of the step; alternated until they settle."""
    import numpy as np

    gpu_rows = [r for r in gpu_rows if decode_cost(r).host is None]
    # one unknown per device class (its efficiency, through 1/η) and per runtime family (its time per layer)
    keys = sorted(
        {f"bytes:{c}" for r in gpu_rows for c in decode_cost(r).weight_s}
        | {f"layers:{f}" for r in gpu_rows for f in decode_cost(r).layers}
        | ({"dispatch:embedded"} if any(decode_cost(r).dispatch_layers for r in gpu_rows) else set())
    )
    # the logits' read-back is priced by physics alone (link rate × link_efficiency): known seconds
    rhs = np.array([1 - decode_cost(r).readback_s / base.link_efficiency * r.measured for r in gpu_rows])
    cal = base
    for _ in range(4):

        def column(r: Observation, k: str, cal: Calibration = cal) -> float:
            cost = decode_cost(r)
            kind, name = k.split(":", 1)
            if kind == "dispatch":
                return cost.dispatch_layers * r.measured
            if kind == "layers":
                value = cost.layers.get(name, 0.0)
            else:
                factor = cal.kv_read_factor if cost.flash_attention else cal.kv_read_factor_nofa
                value = cost.weight_s.get(name, 0.0) + cost.kv_s.get(name, 0.0) * factor
            return value * r.measured / (base.tensor_parallel_efficiency if cost.tensor_parallel else 1)

        a = np.array([[column(r, k) for k in keys] for r in gpu_rows])
        solution, *_ = np.linalg.lstsq(a, rhs, rcond=None)
        values = dict(zip(keys, solution))
        cal = replace(
            cal,
            gpu_decode_efficiency=with_generic_classes(
                {k[6:]: round(1 / float(v), 3) for k, v in values.items() if k.startswith("bytes:")}
            ),
            gpu_layer_seconds=round(float(values.get("layers:gpu", base.gpu_layer_seconds)), 7),
            layer_seconds_by_class={
                k[7:]: round(float(v), 7) for k, v in values.items() if k.startswith("layers:") and k != "layers:gpu"
            },
            embedded_host_layer_seconds=round(
                float(values.get("dispatch:embedded", base.embedded_host_layer_seconds)), 7
            ),
        )
        deep = [r for r in gpu_rows if _kv_share(r, cal) > 0.02]
        for name, flag in (("kv_read_factor", False), ("kv_read_factor_nofa", True)):
            members = [r for r in deep if (not decode_cost(r).flash_attention) == flag]
            if len(members) >= 3:
                cal = _with(cal, name, round(_fit_scalar(members, cal, name, speed.decode_seconds), 3))
    return cal


GENERIC_CLASSES = ("unified", "hbm", "discrete", "apple")


def with_generic_classes(table: dict[str, float], generics=GENERIC_CLASSES) -> dict[str, float]:
    """The fitted classes plus the generic ones a class without rows falls back to
    (calibration.class_chain for decode: the median of the fitted classes of each memory system,
    and of the Apple generations; compute_chain for prefill: the discrete boards' and Apple's)."""
    out = dict(table)
    for generic in generics:
        members = [
            v
            for k, v in table.items()
            if k not in GENERIC_CLASSES
            and (k.startswith("apple-") if generic == "apple" else memory_class(k) == generic)
        ]
        if members:
            out[generic] = round(statistics.median(members), 3)
    return out


def _kv_share(r: Observation, cal: Calibration) -> float:
    """Share of a decode step's time that goes to reading the KV cache."""
    cost = decode_cost(r)
    total = speed.decode_seconds(cost, cal)
    return 1 - speed.decode_seconds(replace(cost, kv_s={}), cal) / total if total else 0.0


def _fit_scalar(
    members: Sequence[Obs], cal: Calibration, name: str, seconds_of, table: str | None = None, entry: str | None = None
) -> float:
    """The value of one linear constant that minimises Σ (estimate/measured − 1)² over these rows
    (each row's seconds are linear in it), the others fixed. With table/entry, the constant is
    that entry of a per-class table (a zero entry would fall back, so 1e-9 stands for it)."""

    def at(value: float) -> Calibration:
        if table:
            return _with(cal, table, {**getattr(cal, table), entry: value or 1e-9})
        return _with(cal, name, value)

    total_d = total = 0.0
    zero, one = at(0.0), at(1.0)
    for r in members:
        measured_seconds = _row_seconds(r)
        s0 = seconds_of(r.cost, zero)
        d = seconds_of(r.cost, one) - s0
        total_d += (d / measured_seconds) * (1 - s0 / measured_seconds)
        total += (d / measured_seconds) ** 2
    return total_d / total if total else getattr(cal, name)


def _row_seconds(r: Observation) -> float:
    """Measured seconds per token (decode) or per prompt (prefill)."""
    return 1 / r.measured if r.kind == "decode" else r.prompt_tokens / r.measured


_EFFS = [x / 100 for x in range(30, 91, 5)]
_PER_CORE = [x * 1e9 for x in range(2, 21)]
_PER_CORE_ARM = [x * 0.2e9 for x in range(5, 31)]
_CROSSINGS = [x * 25e-6 for x in range(0, 41)]


def _fit_host(cpu_rows: Sequence[Obs], cal: Calibration) -> Calibration:
    """Grid search (vectorised) for the host constants, with the GPU constants fixed: the share of
    peak RAM bandwidth, an x86 core's and an Arm core's bandwidth, and the time per crossing. An
    axis no row depends on (no Arm host among the rows) keeps the calibration's value."""
    import numpy as np

    if not cpu_rows:
        return cal
    effs, crossings = np.array(_EFFS), np.array(_CROSSINGS)
    hosts = [(r, decode_cost(r), decode_cost(r).host) for r in cpu_rows]
    has_arm = any(host is not None and host.arm for _, _, host in hosts)
    per_core = np.array(_PER_CORE)
    per_core_arm = np.array(_PER_CORE_ARM if has_arm else [cal.cpu_core_bytes_per_s_arm])
    loss = np.zeros((len(effs), len(per_core), len(per_core_arm), len(crossings)))
    for r, cost, host in hosts:
        if host is None:  # an offload row whose RAM holds nothing a token reads
            continue
        base = speed.decode_seconds(replace(cost, host=None, crossings=0.0), cal)
        rate = per_core_arm[None, None, :] if host.arm else per_core[None, :, None]
        host_bw = np.minimum(host.peak_bytes_per_s * effs[:, None, None], host.cores * rate)
        total = base + (host.bytes / host_bw)[..., None] + cost.crossings * crossings
        loss += (1 / (total * r.measured) - 1) ** 2
    i, j, a, k = np.unravel_index(int(np.argmin(loss)), loss.shape)
    return replace(
        cal,
        cpu_decode_efficiency=round(float(effs[i]), 3),
        cpu_core_bytes_per_s=round(float(per_core[j]), -6),
        cpu_core_bytes_per_s_arm=round(float(per_core_arm[a]), -6),
        cpu_layer_seconds=round(float(crossings[k]), 7),
    )


def _fit_prefill(rows: Sequence[Obs], cal: Calibration) -> Calibration:
    """Prefill efficiency per device class by weighted least squares on the dense quantized-weight
    rows (the per-micro-batch weight reads are fixed seconds; attention FLOPs enter at the current
    attention factor), then one factor each — F16/BF16 weights (cuBLAS), routed-expert GEMMs,
    attention with and without flash attention — by 1-D least squares on the rows they touch;
    alternated until they settle."""
    import numpy as np

    members = [r for r in fit_rows(rows, PREFILL_GROUPS) if prefill_cost(r).flops]
    quantized = [r for r in members if prefill_cost(r).float_family is None and not prefill_cost(r).moe_flops]
    keys = sorted({c for r in quantized for c in prefill_cost(r).flops})
    if not keys:
        return cal
    for _ in range(4):

        def column(r: Observation, c: str, cal: Calibration = cal) -> float:
            cost = prefill_cost(r)
            factor = cal.prefill_attention_factor if cost.flash_attention else cal.prefill_attention_factor_nofa
            value = cost.flops.get(c, 0.0) + cost.attention.get(c, 0.0) * factor
            return value / _row_seconds(r) / (cal.tensor_parallel_efficiency if cost.tensor_parallel else 1)

        a = np.array([[column(r, c) for c in keys] for r in quantized])
        b = np.array([1 - speed.prefill_fixed_seconds(prefill_cost(r), cal) / _row_seconds(r) for r in quantized])
        solution, *_ = np.linalg.lstsq(a, b, rcond=None)
        cal = replace(
            cal,
            gpu_prefill_efficiency=with_generic_classes(
                {c: round(1 / float(v), 3) for c, v in zip(keys, solution)}, ("discrete", "apple")
            ),
        )
        apple_floats = [r for r in members if prefill_cost(r).float_family == "apple"]
        if len(apple_floats) >= 3:
            one = replace(cal, prefill_float_factor_by_class={"apple": 1.0})
            factor = _fit_scalar(
                apple_floats,
                one,
                "prefill_float_factor",
                speed.prefill_seconds,
                "prefill_float_factor_by_class",
                "apple",
            )
            cal = replace(cal, prefill_float_factor_by_class={"apple": round(factor, 3)})
        fitted = {
            "prefill_float_factor": [r for r in members if prefill_cost(r).float_family == "gpu"],
            "prefill_moe_factor": [r for r in members if prefill_cost(r).moe_flops],
            "prefill_moe_half_batch": [r for r in members if prefill_cost(r).moe_flops],
            "prefill_attention_factor": [r for r in members if prefill_cost(r).flash_attention and r.long_prompt],
            "prefill_score_flops": [r for r in members if prefill_cost(r).flash_attention and r.long_prompt],
            "prefill_attention_factor_nofa": [
                r for r in members if not prefill_cost(r).flash_attention and r.long_prompt
            ],
        }
        for name, group in fitted.items():
            if len(group) >= 3:
                cal = _with(cal, name, round(_fit_scalar(group, cal, name, speed.prefill_seconds), 3))
    return cal


def residuals(rows: Sequence[Obs], cal: Calibration) -> dict:
    """Absolute error of a calibration on the fitted rows, per kind of fit."""
    out = {}
    for name, groups in (
        ("GPU decode rows", GPU_FIT_GROUPS),
        ("rows with work on the CPU", CPU_FIT_GROUPS),
        ("prefill rows", PREFILL_GROUPS),
    ):
        errors = [
            abs(p / r.measured - 1)
            for r in fit_rows(rows, groups)
            if not (name == "GPU decode rows" and decode_cost(r).host is not None) and (p := predicted(r, cal))
        ]
        if errors:
            out[name] = {"rows": len(errors), "median": statistics.median(errors), "max": max(errors)}
    return out


# ---------------------------------------------------------------- vLLM (estimator/vllm.py)


class StepObservation(Protocol):
    """One measured vLLM decode step: its cost on the row's hardware and the measured seconds."""

    @property
    def step(self) -> vllm.StepCost: ...
    @property
    def seconds(self) -> float: ...  # measured seconds per step (1 / tokens/s of one stream, or TPOT)


VLLM_FAMILIES = ("16-bit", "8-bit", "4-bit")


def fit_vllm(rows: Sequence[StepObservation], base: VllmConstants | None = None) -> VllmConstants:
    """vLLM's decode constants by weighted least squares on Σ (estimate/measured − 1)²: each step's
    seconds are linear in 1/efficiency per kernel family, the fixed times per layer and per layer's
    all-reduces, and 1/matmul efficiency, once each row is known to be memory- or compute-bound.
    Alternated: the bound is decided under the last solution. A constant no row depends on keeps the
    base value. (A fixed time per step as well explains the rows no better in sample and far worse
    with a GPU left out: 65 % against 21 % median, docs/accuracy.md.)"""
    import numpy as np

    cal = base or VllmConstants()
    if not rows:
        return cal
    for _ in range(6):
        columns: list[list[float]] = []
        for r in rows:
            cost, inv = r.step, 1 / r.seconds
            compute_bound = cost.compute_s / cal.matmul_efficiency > cost.memory_seconds(cal)
            memory = [0.0 if compute_bound else cost.read_s.get(f, 0.0) * inv for f in VLLM_FAMILIES]
            compute = cost.compute_s * inv if compute_bound else 0.0
            columns.append([*memory, cost.layers * inv, cost.allreduce_layers * inv, compute])
        a = np.array(columns)
        used = [j for j in range(a.shape[1]) if np.any(a[:, j])]
        solution, *_ = np.linalg.lstsq(a[:, used], np.ones(len(rows)), rcond=None)
        values: dict[int, float | None] = dict.fromkeys(range(a.shape[1]))
        values.update(zip(used, (float(v) for v in solution)))
        inverse = _inverse_of(values)
        seconds = _seconds_of(values)
        cal = replace(
            cal,
            bandwidth_efficiency={
                f: inverse(j, cal.bandwidth_efficiency.get(f, 0.75)) for j, f in enumerate(VLLM_FAMILIES)
            },
            layer_seconds=seconds(3, cal.layer_seconds),
            allreduce_seconds=seconds(4, cal.allreduce_seconds),
            matmul_efficiency=inverse(5, cal.matmul_efficiency),
        )
    return cal


def fit_vllm_moe(rows: Sequence[StepObservation], base: VllmConstants) -> VllmConstants:
    """A mixture of experts' two routing constants on its rows, the dense constants as fitted: each
    step's seconds are the dense model's plus moe_layers × (τ_moe + tokens × τ_token), linear in the
    two, by least squares on Σ (estimate/measured − 1)²; neither is negative. No MoE row: unchanged."""
    import numpy as np

    moe = [r for r in rows if r.step.moe_layers]
    if not moe:
        return base
    dense = replace(base, moe_layer_seconds=0.0, moe_token_seconds=0.0)
    a, b = [], []
    for r in moe:
        inv = 1 / r.seconds
        a.append([r.step.moe_layers * inv, r.step.moe_layers * r.step.tokens * inv])
        b.append(1 - vllm.step_seconds(r.step, dense)[0] * inv)
    solution, *_ = np.linalg.lstsq(np.array(a), np.array(b), rcond=None)
    layer, token = (max(0.0, float(v)) for v in solution)
    if layer == 0.0 or token == 0.0:  # one clamped: the other alone
        column = 1 if layer == 0.0 else 0
        only, *_ = np.linalg.lstsq(np.array(a)[:, [column]], np.array(b), rcond=None)
        layer, token = (0.0, max(0.0, float(only[0]))) if column else (max(0.0, float(only[0])), 0.0)
    return replace(base, moe_layer_seconds=round(layer, 7), moe_token_seconds=round(token, 9))


def _inverse_of(values: dict[int, float | None]):
    """A constant fitted as its inverse (1/efficiency), rounded; the old value where unfitted."""

    def inverse(j: int, old: float) -> float:
        v = values[j]
        return round(1 / v, 3) if v and v > 0 else old

    return inverse


def _seconds_of(values: dict[int, float | None]):
    """A fitted time, never negative; the old value where unfitted."""

    def seconds(j: int, old: float) -> float:
        v = values[j]
        return round(max(0.0, v), 7) if v is not None else old

    return seconds
