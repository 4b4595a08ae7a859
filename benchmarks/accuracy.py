"""How close fitagent's estimates come to public measurements.

    python -m benchmarks.accuracy            # writes docs/accuracy.md
    python -m benchmarks.accuracy --fit      # also prints the calibration constants a fit gives
    python -m benchmarks.accuracy --json     # the per-row results as JSON (what the tests read)

Every row of tests/data/measurements.csv is run through the same ``estimate()`` the CLI
calls — once with the default method, once with ``--method seed`` — on a budget built from
the row's hardware (the GPUs from the catalog by name, the host's RAM bandwidth from the row's
own description). The report gives each row's error for both methods, and the median and
maximum absolute error per group.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from fitagent.agent.catalog import load_catalog
from fitagent.agent.modelfiles import model_from_config_file
from fitagent.estimator import memory, speed
from fitagent.estimator.budget import Budget, device_from_spec
from fitagent.estimator.calibration import DEFAULT_CALIBRATION, Calibration
from fitagent.estimator.errors import UsageError
from fitagent.estimator.estimate import Options, estimate, need_for, placements

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "tests" / "data" / "measurements.csv"
CONFIGS = ROOT / "tests" / "fixtures" / "hf_configs"
REPORT = ROOT / "docs" / "accuracy.md"

# ---------------------------------------------------------------- what each row ran on

# Base or re-released checkpoints with exactly the tensor shapes of a catalog model: the
# benchmark sizes and times them as that model (base models stay out of the product catalog).
SAME_SHAPES = {
    "meta-llama/Meta-Llama-3-8B": "meta-llama/Llama-3.1-8B-Instruct",  # same config but rope scaling
    "meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3-70B": "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B-Instruct",
    "deepseek-ai/DeepSeek-Coder-V2-Lite-Base": "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct",
    "deepseek-ai/DeepSeek-V2-Lite": "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "Qwen/Qwen3-30B-A3B-Instruct-2507": "Qwen/Qwen3-30B-A3B",
}
# Models no catalog entry shares shapes with: their config.json (tests/fixtures/hf_configs/SOURCES.md).
CONFIG_FILES = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b.json",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b.json",
    "codellama/CodeLlama-7b-hf": "codellama-7b.json",
}


@dataclass(frozen=True)
class Host:
    bandwidth_bytes_per_s: float | None
    cores: int
    how: str


# The host behind each row, from the row's own cpu/ram columns: peak bandwidth = MT/s × 8 bytes
# × channels (hardware-notes §3) unless the source states a figure.
HOSTS = {
    ("AMD EPYC 9274F", "MBW 460.8 GB/s (as stated in post)"): Host(460.8e9, 24, "460.8 GB/s as the post states (12 × DDR5-4800)"),
    ("Intel Core i9-10900X", "62 GB"): Host(102.4e9, 10, "quad-channel DDR4-3200 = 102.4 GB/s (the same machine's PR #774 states ~102 GB/s)"),
    ("Intel Core i9-10900X", "quad-channel DDR4 (~102 GB/s measured, per PR)"): Host(102.4e9, 10, "quad-channel DDR4 ≈ 102 GB/s, as the PR states"),
    ("AMD Ryzen 7 5800X", "2 sticks DDR4-2133"): Host(34.1e9, 8, "2 × DDR4-2133 (dual channel) = 34.1 GB/s"),
    ("AMD EPYC 7343", "64 GB DDR4-3200"): Host(102.4e9, 16, "64 GB DDR4-3200, channel count not given: 4 × 25.6 GB/s assumed"),
}
NO_HOST = Host(None, 8, "not given")
UNIFIED_HOST_BYTES = 512 * 2**30  # a unified-memory machine's "host" holds nothing the GPU doesn't

# Documented exclusions: (rule, reason). A row matching a rule is still reported, with its
# errors, but left out of the group figures.
EXCLUSIONS = [
    (lambda r: r["kind"] == "file_size" and "9fb13f9" in r["notes"] + r["source"] or
     (r["kind"] == "file_size" and "PR 'llama : add Mixtral support'" in r["notes"]),
     "file from llama.cpp build 1631 (Dec 2023, the PR that added Mixtral): its Q4_K_M is the size of its "
     "Q4_0 and Q5_K_M of Q5_0 — the per-tensor mixes did not yet reach the expert tensors, unlike every "
     "llama-quantize since"),
    (lambda r: r["kind"] == "decode" and r["cpu"] == "AMD Ryzen 7 5800X",
     "20.1 t/s of DeepSeek-Coder-V2-Lite (≈2.2 GB read per token at Q6_K_L) needs ≥ 44 GB/s from RAM, more than "
     "the 34.1 GB/s peak of the two DDR4-2133 sticks the source describes: the row's hardware description cannot be right"),
    (lambda r: "WARNING: F16 pp512 far below" in r["notes"],
     "the source's own warning: this F16 pp512 is far below the same card's Q4_K_M pp512, unlike on every other card"),
    (lambda r: r["cpu"] == "AMD EPYC 7343",
     "64 GB of RAM for the 63 GB of gpt-oss-120b weights kept in RAM: the source's own notes flag these runs "
     "as RAM-starved (≈1.6 t/s, far below other reports); weights stream from disk, which no memory model covers"),
]


def excluded(row: dict) -> str | None:
    for rule, reason in EXCLUSIONS:
        if rule(row):
            return reason
    return None


# ---------------------------------------------------------------- reading a row

_GEN = re.compile(r"\btg\s?(\d+)")
_DEPTH = re.compile(r"@\s?d(\d+)")


@dataclass
class Row:
    index: int
    raw: dict
    kind: str
    group: str = ""
    measured: float = 0.0
    default: float | None = None
    seed: float | None = None
    why_not: str | None = None  # not evaluated: what is missing
    excluded: str | None = None
    terms: dict = field(default_factory=dict)  # speed terms of the default method (for --fit)

    @property
    def label(self) -> str:
        r = self.raw
        hw = r["gpu"] + (f" ×{r['gpu_count']}" if r["gpu_count"] not in ("", "1") else "")
        extra = []
        if r["gpu_layers"] and r["gpu_layers"] != "99":
            extra.append(f"ngl {r['gpu_layers']}")
        if r["n_cpu_moe"]:
            extra.append(f"n-cpu-moe {r['n_cpu_moe']}")
        if self.kind != "file_size":
            extra.append(test_name(r))
        return f"{r['model'].split('/')[-1]} {r['quant']}" + (f" · {hw}" if hw else "") + (f" ({', '.join(extra)})" if extra else "")

    def error(self, method: str) -> float | None:
        value = self.default if method == "default" else self.seed
        return None if value is None or not self.measured else value / self.measured - 1


def test_name(r: dict) -> str:
    depth = _DEPTH.search(r["notes"])
    if r["kind"] == "prefill":
        name = f"pp{r['prompt_tokens'] or '?'}"
    else:
        gen = _GEN.search(r["notes"])
        name = f"tg{gen.group(1) if gen else 128}"
        if r["prompt_tokens"] and not depth:
            name += f" @ {r['prompt_tokens']}"
    return name + (f" @ d{depth.group(1)}" if depth else "")


def measured_value(r: dict) -> float:
    value = float(r["value"])
    return value * {"GiB": 2**30, "GB": 1e9, "bytes": 1, "tokens/s": 1}[r["unit"]]


_MODELS: dict[str, object] = {}


def bench_model(name: str, catalog):
    if name not in _MODELS:
        if name in CONFIG_FILES:
            _MODELS[name] = model_from_config_file(CONFIGS / CONFIG_FILES[name])
        else:
            _MODELS[name] = catalog.model(SAME_SHAPES.get(name, name))
    return _MODELS[name]


def bench_gpu(name: str, catalog):
    try:
        return catalog.gpu(name)
    except UsageError:
        stripped = re.sub(r"\s*\(.*\)\s*", " ", name).strip()  # "Apple M1 Max (32-core GPU)" -> "Apple M1 Max"
        return catalog.gpu(stripped) if stripped != name else None


def row_budget(r: dict, catalog) -> tuple[Budget | None, str | None]:
    host = HOSTS.get((r["cpu"], r["ram"]), NO_HOST)
    if r["gpu"] in ("", "CPU"):
        if host.bandwidth_bytes_per_s is None:
            return None, "host RAM bandwidth not given by the source"
        return Budget((), 1024 * 2**30, host.bandwidth_bytes_per_s, host.cores), None
    try:
        spec = bench_gpu(r["gpu"], catalog)
    except UsageError:
        spec = None
    if spec is None:
        return None, f"GPU '{r['gpu']}' is not in data/gpus.yaml"
    count = int(r["gpu_count"] or 1)
    devices = tuple(device_from_spec(spec, i) for i in range(count))
    host_bytes = UNIFIED_HOST_BYTES if spec.unified_memory else 1024 * 2**30
    return Budget(devices, host_bytes, host.bandwidth_bytes_per_s, host.cores), None


def row_options(r: dict, model) -> Options:
    depth_match = _DEPTH.search(r["notes"])
    depth = int(depth_match.group(1)) if depth_match else 0
    layers = model.architecture.layers
    ngl = int(r["gpu_layers"]) if r["gpu_layers"] else None
    gpu_layers = ngl if ngl is not None and ngl < layers and not r["n_cpu_moe"] else None
    n_cpu_moe = int(r["n_cpu_moe"]) if r["n_cpu_moe"] else None
    if r["kind"] == "prefill":
        prompt = int(r["prompt_tokens"] or 512)
        return Options(context=memory.pad(depth + prompt), prompt_tokens=prompt, prefill_depth=depth,
                       gpu_layers=gpu_layers, n_cpu_moe=n_cpu_moe)
    gen_match = _GEN.search(r["notes"])
    n_gen = int(gen_match.group(1)) if gen_match else 128
    start = depth or int(r["prompt_tokens"] or 0)  # a decode row's prompt_tokens is the depth it started at
    return Options(context=memory.pad(max(512, start + n_gen)), prompt_tokens=0, decode_depth=start + n_gen // 2,
                   gpu_layers=gpu_layers, n_cpu_moe=n_cpu_moe)


def group_of(r: dict, model, placement: str | None) -> str:
    if r["kind"] == "file_size":
        return "weights"
    if r["kind"] == "prefill":
        return "prefill (CPU)" if r["gpu"] in ("", "CPU") else "prefill"
    if r["gpu"] in ("", "CPU") or placement == "cpu":
        return "decode, CPU only"
    if placement == "partial_offload":
        return "decode, partial offload"
    return "decode, MoE" if model.is_moe else "decode, full GPU"


GROUP_ORDER = ["weights", "decode, full GPU", "decode, MoE", "decode, partial offload", "decode, CPU only",
               "prefill", "prefill (CPU)"]
# The thresholds (median, max) on the absolute error of the default method.
THRESHOLDS = {"weights": (0.02, 0.05), "decode, full GPU": (0.15, None), "decode, MoE": (0.25, None),
              "decode, partial offload": (0.25, None)}


def evaluate(calibration: Calibration = DEFAULT_CALIBRATION) -> list[Row]:
    catalog = load_catalog()
    rows = []
    with CSV_PATH.open(newline="", encoding="utf-8") as fh:
        for i, raw in enumerate(csv.DictReader(fh)):
            rows.append(_evaluate_row(Row(i + 2, raw, raw["kind"]), catalog, calibration))
    return rows


def _evaluate_row(row: Row, catalog, calibration: Calibration) -> Row:
    r = row.raw
    row.measured = measured_value(r)
    row.excluded = excluded(r)
    try:
        model = bench_model(r["model"], catalog)
        quant = catalog.quant(r["quant"])
    except UsageError as exc:
        row.why_not = str(exc)
        return row
    if row.kind == "file_size":
        budget = Budget((), 1024 * 2**30, 100e9, 8)
        options = Options(context=512, prompt_tokens=0, calibration=calibration)
        row.group = "weights"
        row.default = estimate(model, quant, budget, catalog, options).weights_bytes
        row.seed = estimate(model, quant, budget, catalog, replace(options, method="seed")).weights_bytes
        return row
    budget, why = row_budget(r, catalog)
    if budget is None:
        row.why_not = why
        row.group = group_of(r, model, None)
        return row
    options = replace(row_options(r, model), calibration=calibration)
    result = estimate(model, quant, budget, catalog, options)
    seed_result = estimate(model, quant, budget, catalog, replace(options, method="seed"))
    row.group = group_of(r, model, result.placement)
    if row.kind == "decode":
        row.default, row.seed = result.decode_tokens_per_s, seed_result.decode_tokens_per_s
        row.terms = _decode_terms(model, quant, budget, catalog, options)
    else:
        row.default, row.seed = result.prefill_tokens_per_s, seed_result.prefill_tokens_per_s
        row.terms = _prefill_terms(model, quant, budget, catalog, options, quant.format == "float")
    if row.default is None:
        row.why_not = "no estimate (a bandwidth or FLOPS figure is missing for this hardware)"
    return row


def _placed(model, quant, budget, catalog, options):
    need = need_for(model, quant, catalog, options)
    arch = model.architecture
    kv_element = memory.kv_bytes_per_element(options.kv_quant, catalog.ggml_types)
    kv_read = memory.kv_bytes_read_per_token(arch, options.decode_depth or 0, kv_element)
    choices = [(speed.decode_tokens_per_s(need, p, arch, kv_read, budget, options.calibration) or 0, p)
               for p in placements(need, budget, options, model.is_moe)]
    return need, max(choices, key=lambda c: c[0])[1], kv_read


def _decode_terms(model, quant, budget, catalog, options) -> dict:
    need, placed, kv_read = _placed(model, quant, budget, catalog, options)
    return speed.decode_terms(need, placed, model.architecture, kv_read, budget) or {}


def _prefill_terms(model, quant, budget, catalog, options, float_weights) -> dict:
    need, placed, _ = _placed(model, quant, budget, catalog, options)
    active = model.params_active
    return speed.prefill_terms(need, placed, model.architecture, active, options.prompt_tokens, budget,
                               options.calibration, depth=options.prefill_depth, float_weights=float_weights) or {}


# ---------------------------------------------------------------- figures

def counted(rows: list[Row], group: str) -> list[Row]:
    return [r for r in rows if r.group == group and r.default is not None and not r.excluded and not r.why_not]


def summary(rows: list[Row]) -> dict[str, dict]:
    out = {}
    for group in GROUP_ORDER:
        members = counted(rows, group)
        if not members:
            continue
        entry = {"rows": len(members)}
        for method in ("default", "seed"):
            errors = [abs(r.error(method)) for r in members if r.error(method) is not None]
            entry[method] = {"rows": len(errors), "median": statistics.median(errors) if errors else None,
                             "max": max(errors) if errors else None}
        out[group] = entry
    return out


# ---------------------------------------------------------------- fitting the constants

GPU_FIT_GROUPS = ("decode, full GPU", "decode, MoE")
CPU_FIT_GROUPS = ("decode, partial offload", "decode, CPU only")


def fit(rows: list[Row]) -> tuple[Calibration, dict]:
    """The decode constants that best explain the measurements, and the fit's residuals.

    GPU rows first: seconds per token are linear in the priced terms (bytes ÷ peak bandwidth
    per device class, layers run), so weighted least squares — each row scaled by 1/measured
    seconds — minimises Σ (estimate/measured − 1)². Then, with those fixed, the host constants
    (share of peak RAM bandwidth, bandwidth per core, time per GPU↔CPU crossing) by a grid
    search over the rows that put work on the CPU.
    """
    import numpy as np

    gpu_rows = [r for g in GPU_FIT_GROUPS for r in counted(rows, g) if r.terms and "host_bytes" not in r.terms]
    keys = sorted({k for r in gpu_rows for k in r.terms if k.startswith(("bytes:", "layers:gpu"))})
    a = np.array([[r.terms.get(k, 0.0) * r.measured for k in keys] for r in gpu_rows])
    solution, *_ = np.linalg.lstsq(a, np.ones(len(gpu_rows)), rcond=None)
    values = dict(zip(keys, solution))
    cal = replace(
        DEFAULT_CALIBRATION,
        gpu_decode_efficiency={k[6:]: round(1 / v, 3) for k, v in values.items() if k.startswith("bytes:")},
        gpu_layer_seconds=round(values.get("layers:gpu", 0.0), 7),
    )
    cpu_rows = [r for g in CPU_FIT_GROUPS for r in counted(rows, g) if r.terms]
    best = None
    for eff in [x / 100 for x in range(30, 91, 5)]:
        for per_core in [x * 1e9 for x in range(2, 21)]:
            for crossing in [x * 25e-6 for x in range(0, 41)]:
                trial = replace(cal, cpu_decode_efficiency=eff, cpu_core_bytes_per_s=per_core, cpu_layer_seconds=crossing)
                loss = sum((1 / (speed.decode_seconds(r.terms, trial) * r.measured) - 1) ** 2 for r in cpu_rows)
                if best is None or loss < best[0]:
                    best = (loss, trial)
    cal = best[1]
    cal = _fit_prefill(rows, cal)
    residuals = {}
    for name, members in (("GPU rows", gpu_rows), ("rows with work on the CPU", cpu_rows)):
        errors = [abs(1 / (speed.decode_seconds(r.terms, cal) * r.measured) - 1) for r in members]
        residuals[name] = {"rows": len(members), "median": statistics.median(errors), "max": max(errors)}
    prefill_rows = [r for r in counted(rows, "prefill") if r.terms]
    errors = [abs(_prompt_tokens(r) / (speed.prefill_seconds(r.terms, cal) * r.measured) - 1) for r in prefill_rows]
    residuals["prefill rows"] = {"rows": len(errors), "median": statistics.median(errors), "max": max(errors)}
    return cal, residuals


def _prompt_tokens(r: Row) -> int:
    return int(r.raw["prompt_tokens"] or 512)


def _fit_prefill(rows: list[Row], cal: Calibration) -> Calibration:
    """Prefill efficiency per device class on the quantized-weight rows (weighted least squares,
    as for decode; the per-micro-batch weight reads are fixed seconds), then one factor for
    F16/BF16 weights from the float rows."""
    import numpy as np

    members = [r for r in counted(rows, "prefill") if any(k.startswith("flops:") for k in r.terms)]
    quantized = [r for r in members if "float" not in r.terms and not any(k.startswith("moe_") for k in r.terms)]
    keys = sorted({k for r in quantized for k in r.terms if k.startswith("flops:")})
    seconds = [_prompt_tokens(r) / r.measured for r in quantized]
    a = np.array([[r.terms.get(k, 0.0) / m for k in keys] for r, m in zip(quantized, seconds)])
    b = np.array([1 - r.terms.get("seconds", 0.0) / m for r, m in zip(quantized, seconds)])
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    cal = replace(cal, gpu_prefill_efficiency={k[6:]: round(1 / v, 3) for k, v in zip(keys, solution)},
                  prefill_float_factor=1.0)
    floats = [r for r in members if "float" in r.terms]
    if floats:
        compute = [(speed.prefill_seconds(r.terms, cal) - r.terms.get("seconds", 0.0)) / (_prompt_tokens(r) / r.measured) for r in floats]
        fixed = [r.terms.get("seconds", 0.0) / (_prompt_tokens(r) / r.measured) for r in floats]
        factor = sum(c * (1 - x) for c, x in zip(compute, fixed)) / sum(c * c for c in compute)
        cal = replace(cal, prefill_float_factor=round(factor, 3))
    moe = [r for r in members if any(k.startswith("moe_") for k in r.terms)]
    if moe:
        base = replace(cal, prefill_moe_factor=0.0)
        one = replace(cal, prefill_moe_factor=1.0)
        expert = [(speed.prefill_seconds(r.terms, one) - speed.prefill_seconds(r.terms, base)) / (_prompt_tokens(r) / r.measured) for r in moe]
        rest = [speed.prefill_seconds(r.terms, base) / (_prompt_tokens(r) / r.measured) for r in moe]
        factor = sum(e * (1 - x) for e, x in zip(expert, rest)) / sum(e * e for e in expert)
        cal = replace(cal, prefill_moe_factor=round(factor, 3))
    return cal


# ---------------------------------------------------------------- the report

def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f} %"


def _abs_pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _value(v: float | None, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "file_size":
        return f"{v / 1e9:.3f} GB"
    return f"{v:.1f}"


def render(rows: list[Row], calibration: Calibration = DEFAULT_CALIBRATION) -> str:
    figures = summary(rows)
    lines = [
        "# Accuracy against public measurements",
        "",
        "Generated by `python -m benchmarks.accuracy` from `tests/data/measurements.csv` (every row cites its",
        "source; `tests/data/MEASUREMENTS.md` describes how they were gathered). Each row runs through the same",
        "`estimate()` as `fitagent estimate`, with the default method and with `--method seed` (the seed",
        "document's formulas), on the row's hardware: GPUs from `data/gpus.yaml` by name, the host's RAM",
        "bandwidth from the row's own description. Error = estimate ÷ measured − 1. File sizes compare the",
        "estimated weights with the file (tensor data plus a few MB of metadata) or llama-bench's size.",
        "",
        "## Summary (absolute error)",
        "",
        "| group | rows | default: median | default: max | seed: median | seed: max | issue's bar (median / max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for group, entry in figures.items():
        bar = THRESHOLDS.get(group)
        bar_text = "—" if not bar else " / ".join("—" if x is None else f"≤ {x * 100:.0f} %" for x in bar)
        d, s = entry["default"], entry["seed"]
        seed_rows = "" if s["rows"] == entry["rows"] else f" ({s['rows']} rows)"
        lines.append(f"| {group} | {entry['rows']} | {_abs_pct(d['median'])} | {_abs_pct(d['max'])} | "
                     f"{_abs_pct(s['median'])}{seed_rows} | {_abs_pct(s['max'])} | {bar_text} |")
    lines += ["", "The seed method has no prefill model and no offload (it reads every weight, MoE included, at one",
              "GPU's bandwidth), hence the dashes and its MoE figures.", ""]
    lines += _constants_section(calibration, rows)
    for group in GROUP_ORDER:
        members = [r for r in rows if r.group == group]
        if not members:
            continue
        lines += ["", f"## {group}", "", "| # | row | measured | default | error | seed | error | note |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in members:
            note = r.excluded and f"excluded: {r.excluded}" or r.why_not or ""
            lines.append(f"| {r.index} | {r.label} | {_value(r.measured, r.kind)} | {_value(r.default, r.kind)} | "
                         f"{_pct(r.error('default'))} | {_value(r.seed, r.kind)} | {_pct(r.error('seed'))} | "
                         f"[src]({r.raw['source']}) {note} |")
    unplaced = [r for r in rows if not r.group]
    if unplaced:
        lines += ["", "## Not evaluated", "", "| # | row | why |", "| ---: | --- | --- |"]
        lines += [f"| {r.index} | {r.label} | {r.why_not} |" for r in unplaced]
    return "\n".join(lines) + "\n"


def _constants_section(cal: Calibration, rows: list[Row]) -> list[str]:
    fitted, residuals = fit(rows)
    lines = ["## Constants of the default method", "",
             "Shipped in `estimator/calibration.py` (each with what it was fitted on); the refit column is what",
             "`python -m benchmarks.accuracy --fit` derives from the rows below today. Decode: weighted least squares",
             "on relative error over the full-GPU rows (seconds per token are linear in the priced terms), then a",
             "grid search for the host constants over the rows that put work on the CPU. Prefill: the same least",
             "squares over dense quantized-weight rows, then one factor each for F16/BF16 weights and for MoE.",
             "Everything else in the model is physics: bytes per tensor, bytes read per token, FLOPs.", "",
             "| constant | shipped | refit |", "| --- | ---: | ---: |"]

    def row(name: str, shipped: str, refit: str) -> None:
        lines.append(f"| {name} | {shipped} | {refit} |")

    for name in sorted(set(cal.gpu_decode_efficiency) | set(fitted.gpu_decode_efficiency)):
        refit = fitted.gpu_decode_efficiency.get(name)
        row(f"decode efficiency, {name}", f"{cal.decode_efficiency(name):.2f}",
            "no rows" if refit is None else f"{refit:.2f}")
    row("time per layer and token on a GPU", f"{cal.gpu_layer_seconds * 1e6:.0f} µs", f"{fitted.gpu_layer_seconds * 1e6:.0f} µs")
    row("share of peak RAM bandwidth reached", f"{cal.cpu_decode_efficiency:.2f}", f"{fitted.cpu_decode_efficiency:.2f}")
    row("RAM bandwidth per CPU core", f"{cal.cpu_core_bytes_per_s / 1e9:.1f} GB/s", f"{fitted.cpu_core_bytes_per_s / 1e9:.1f} GB/s")
    row("time per GPU↔CPU crossing", f"{cal.cpu_layer_seconds * 1e6:.0f} µs", f"{fitted.cpu_layer_seconds * 1e6:.0f} µs")
    for name in sorted(set(cal.gpu_prefill_efficiency) | set(fitted.gpu_prefill_efficiency)):
        refit = fitted.gpu_prefill_efficiency.get(name)
        row(f"prefill efficiency, {name}", f"{cal.prefill_efficiency(name):.2f}", "no rows" if refit is None else f"{refit:.2f}")
    row("prefill time factor, F16/BF16 weights", f"{cal.prefill_float_factor:.2f}", f"{fitted.prefill_float_factor:.2f}")
    row("prefill time factor, routed experts", f"{cal.prefill_moe_factor:.2f}", f"{fitted.prefill_moe_factor:.2f}")
    row("CPU prefill per core", f"{cal.cpu_flops_per_core / 1e9:.0f} GFLOP/s", "not fitted (1 row)")
    row("runtime reserve per GPU", f"{cal.runtime_reserve_bytes / 2**20:.0f} MiB", "Ollama's figure (peers.md)")
    row("tensor-parallel efficiency", f"{cal.tensor_parallel_efficiency:.2f}", "stated (seed 002); no llama.cpp rows")
    lines += ["", "Residuals of the refit (absolute error):", ""]
    for name, r in residuals.items():
        lines.append(f"- {name}: {r['rows']} rows, median {r['median'] * 100:.1f} %, max {r['max'] * 100:.1f} %")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the constants a least-squares fit gives")
    parser.add_argument("--json", action="store_true", help="print the rows and figures as JSON instead of writing the report")
    parser.add_argument("--output", type=Path, default=REPORT, help=f"where to write the report (default {REPORT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    rows = evaluate()
    if args.fit:
        fitted, residuals = fit(rows)
        print(f"gpu_decode_efficiency={dict(fitted.gpu_decode_efficiency)}")
        print(f"gpu_layer_seconds={fitted.gpu_layer_seconds}")
        print(f"cpu_decode_efficiency={fitted.cpu_decode_efficiency} cpu_core_bytes_per_s={fitted.cpu_core_bytes_per_s:.3g} "
              f"cpu_layer_seconds={fitted.cpu_layer_seconds:.3g}")
        print(f"gpu_prefill_efficiency={dict(fitted.gpu_prefill_efficiency)} prefill_float_factor={fitted.prefill_float_factor} "
              f"prefill_moe_factor={fitted.prefill_moe_factor}")
        for name, r in residuals.items():
            print(f"{name}: {r['rows']} rows, median |error| {r['median'] * 100:.1f} %, max {r['max'] * 100:.1f} %")
        return 0
    if args.json:
        print(json.dumps({"summary": summary(rows), "rows": [
            {"index": r.index, "group": r.group, "label": r.label, "measured": r.measured, "default": r.default,
             "seed": r.seed, "excluded": r.excluded, "why_not": r.why_not} for r in rows]}, indent=1))
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows), encoding="utf-8")
    for group, entry in summary(rows).items():
        d = entry["default"]
        print(f"{group:26s} {entry['rows']:3d} rows  median {_abs_pct(d['median']):>8}  max {_abs_pct(d['max']):>8}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
