"""How close fitagent's estimates come to public measurements.

    python -m benchmarks.accuracy                      # writes docs/accuracy.md, prints the summary
    python -m benchmarks.accuracy --fit                # prints the constants a fit gives today
    python -m benchmarks.accuracy --write-calibration  # writes them and the speed ranges into estimator/calibration.py
    python -m benchmarks.accuracy --json               # the per-row results as JSON

Every row of tests/data/measurements.csv is run through the same ``estimate()`` the CLI
calls — once with the default method, once with ``--method seed`` — on a budget built from
the row's hardware (the GPUs from the catalog by name, the host's RAM bandwidth from the row's
own description). The report gives each row's error for both methods, in sample and out of
sample (every fitted constant refitted without the row's GPU, or without its model), and the
median and maximum absolute error per group.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from fitagent.agent.catalog_cache import load_catalog
from fitagent.agent.modelfiles import model_from_config_file
from fitagent.catalog.errors import UsageError
from fitagent.estimator import memory, speed
from fitagent.estimator.budget import PCIE_LANE_BYTES_PER_S, Budget, device_from_spec
from fitagent.estimator.calibration import DEFAULT_CALIBRATION, Calibration, class_chain, compute_chain
from fitagent.estimator.candidates import need_for, placements
from fitagent.estimator.estimate import estimate
from fitagent.estimator.fitting import (
    CPU_FIT_GROUPS,
    GPU_FIT_GROUPS,
    PREFILL_GROUPS,
    SPEED_GROUPS,
    fit,
    fit_rows,
    predicted,
    residuals,
)
from fitagent.estimator.results import Options

from . import exllama_accuracy, mlx_accuracy, vllm_accuracy

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
    "TinyLlama/TinyLlama-1.1B-intermediate-step-480k-1T": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    # an OpenOrca fine-tune of TinyLlama-1.1B's 1T-token checkpoint: the same shapes
    "jeff31415/TinyLlama-1.1B-1T-OpenOrca": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
}
# Models no catalog entry shares shapes with: their config.json (tests/fixtures/hf_configs/SOURCES.md).
CONFIG_FILES = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b.json",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b.json",
    "codellama/CodeLlama-7b-hf": "codellama-7b.json",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b.json",
    "codellama/CodeLlama-34b-hf": "codellama-34b.json",
}


@dataclass(frozen=True)
class Host:
    bandwidth_bytes_per_s: float | None
    cores: int
    how: str
    arch: str = "x86"  # the CPU's architecture class (Budget.cpu_arch)
    cpu_class: str | None = None  # Budget.cpu_class
    link_bytes_per_s: float | None = None  # the GPU's link to this host (Device.link_bytes_per_s)


# The host behind each row, from the row's own cpu/ram columns: peak bandwidth = MT/s × 8 bytes
# × channels (hardware-notes §3) unless the source states a figure.
HOSTS = {
    ("AMD EPYC 9274F", "MBW 460.8 GB/s (as stated in post)"): Host(
        460.8e9, 24, "460.8 GB/s as the post states (12 × DDR5-4800)"
    ),
    ("Intel Core i9-10900X", "62 GB"): Host(
        102.4e9, 10, "quad-channel DDR4-3200 = 102.4 GB/s (the same machine's PR #774 states ~102 GB/s)"
    ),
    ("Intel Core i9-10900X", "quad-channel DDR4 (~102 GB/s measured, per PR)"): Host(
        102.4e9, 10, "quad-channel DDR4 ≈ 102 GB/s, as the PR states"
    ),
    ("AMD Ryzen 7 5800X", "2 sticks DDR4-2133"): Host(34.1e9, 8, "2 × DDR4-2133 (dual channel) = 34.1 GB/s"),
    ("AMD EPYC 7343", "64 GB DDR4-3200"): Host(
        102.4e9, 16, "64 GB DDR4-3200, channel count not given: 4 × 25.6 GB/s assumed"
    ),
    ("Intel Core i7-8700", "64 GB DDR4-2400, dual channel"): Host(
        38.4e9, 6, "2 × DDR4-2400 (dual channel, as the post states) = 38.4 GB/s"
    ),
    ("Raspberry Pi 5 (BCM2712, 4x Cortex-A76)", "16 GB LPDDR4X-4267, 32-bit bus"): Host(
        17.068e9, 4, "LPDDR4X-4267 on a 32-bit bus = 17.1 GB/s (Raspberry Pi 5 product brief)", "arm"
    ),
    ("Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72)", "LPDDR4-3200, 32-bit bus"): Host(
        12.8e9, 4, "LPDDR4-3200 on a 32-bit bus = 12.8 GB/s (Raspberry Pi 4 product brief)", "arm"
    ),
    ("Raspberry Pi CM5 (4x Cortex-A76)", "16 GB"): Host(
        17.068e9,
        4,
        "the Pi 5's LPDDR4X-4267 on a 32-bit bus = 17.1 GB/s; the GPU on its PCIe Gen3 x1 (0.985 GB/s), as the "
        "source's notes say",
        "arm",
        "embedded",
        PCIE_LANE_BYTES_PER_S[3],
    ),
    ("Intel Core i5-4278U", "8 GB DDR3L-1600, dual channel"): Host(
        25.6e9, 2, "2 × DDR3L-1600 = 25.6 GB/s (the issue's DDR3L-1600; Intel ARK: 2 channels)"
    ),
    ("Qualcomm Snapdragon 8cx Gen 3 (SC8280XP)", "8 GB LPDDR4X-4266, 128-bit"): Host(
        68.256e9, 8, "LPDDR4X-4266 on 8 × 16-bit channels = 68.3 GB/s (the SoC supports only this memory)", "arm"
    ),
}
NO_HOST = Host(None, 8, "not given", "x86")
UNIFIED_HOST_BYTES = 512 * 2**30  # a unified-memory machine's "host" holds nothing the GPU doesn't

# Documented exclusions: (rule, reason). A row matching a rule is still reported, with its
# errors, but left out of the group figures.
EXCLUSIONS = [
    (
        lambda r: (
            r["kind"] == "file_size"
            and "9fb13f9" in r["notes"] + r["source"]
            or (r["kind"] == "file_size" and "PR 'llama : add Mixtral support'" in r["notes"])
        ),
        "file from llama.cpp build 1631 (Dec 2023, the PR that added Mixtral): its Q4_K_M is the size of its "
        "Q4_0 and Q5_K_M of Q5_0 — the per-tensor mixes did not yet reach the expert tensors, unlike every "
        "llama-quantize since",
    ),
    (
        lambda r: r["kind"] == "decode" and r["cpu"] == "AMD Ryzen 7 5800X",
        "20.1 t/s of DeepSeek-Coder-V2-Lite (≈2.2 GB read per token at Q6_K_L) needs ≥ 44 GB/s from RAM, more than "
        "the 34.1 GB/s peak of the two DDR4-2133 sticks the source describes: the row's hardware description cannot be right",
    ),
    (
        lambda r: "WARNING: F16 pp512 far below" in r["notes"],
        "the source's own warning: this F16 pp512 is far below the same card's Q4_K_M pp512, unlike on every other card",
    ),
    (
        lambda r: r["kind"] == "prefill" and "PR 'llama : add Mixtral support'" in r["notes"],
        "prompt processing on the build that added Mixtral (1631, December 2023), before Metal's mul_mat_id batched "
        "the experts: 40–90 t/s on a 38-core M2 Max, 2–5 % of its FLOPS, against 670 t/s for a dense 7B on the same chip",
    ),
    (
        lambda r: "M1_8GB" in r["source"] and ("pp8192" in r["notes"] or "tg4096" in r["notes"]),
        "the 8 GB M1's long runs are not measurements of what they name: the same notebook's pp8192 (1849 ± 289 t/s) "
        "and tg8192 (1133 t/s) are 19× and 100× its pp4096 and tg512, and its tg4096 (11.8) is above its own tg512 "
        "(10.2) with tg2048 at 7.3 ± 0.95 — the machine ran out of memory",
    ),
    (
        lambda r: r["cpu"].startswith("Raspberry Pi 4"),
        "Cortex-A72 (ARMv8.0) has no dot-product instructions, which llama.cpp's quantized CPU kernels use on "
        "newer cores: it computes at about 0.9 GB of weights a second per core (3.6 GB/s on four, 28 % of its "
        "12.8 GB/s), where the one per-core rate fitted for ARMv8.2 and x86 cores assumes 6; reported, not fitted",
    ),
    (
        lambda r: r["gpu"] not in ("", "CPU") and r["cpu"].startswith("Raspberry Pi") and "NVIDIA" not in r["gpu"],
        "an AMD or Intel GPU behind a Raspberry Pi: 2.5-8× slower than the same card behind a Core Ultra 7 265K "
        "(Radeon AI PRO R9700, Llama-3.2-3B Q4_K_M: 195.91 vs 77.54 t/s, +7.8 ms a token), where NVIDIA cards "
        "lose 0.3-2 ms, which the host's per-layer cost and the logits over PCIe x1 explain: the Pi's Vulkan "
        "drivers for these cards, not the host's speed; reported, not fitted",
    ),
    (
        lambda r: r["cpu"] == "AMD EPYC 7343",
        "64 GB of RAM for the 63 GB of gpt-oss-120b weights kept in RAM: the source's own notes flag these runs "
        "as RAM-starved (≈1.6 t/s, far below other reports); weights stream from disk, which no memory model covers",
    ),
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
    cost: speed.DecodeCost | speed.PrefillCost | None = None  # the default method's, for the fit

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
        return (
            f"{r['model'].split('/')[-1]} {r['quant']}"
            + (f" · {hw}" if hw else "")
            + (f" ({', '.join(extra)})" if extra else "")
        )

    @property
    def prompt_tokens(self) -> int:
        return int(self.raw["prompt_tokens"] or 512)

    @property
    def long_prompt(self) -> bool:
        return _long_prompt(self.raw)

    @property
    def counted(self) -> bool:
        """Evaluated and not excluded: in the group figures and the fit."""
        return self.default is not None and not self.excluded and not self.why_not

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
        return Budget((), 1024 * 2**30, host.bandwidth_bytes_per_s, host.cores, cpu_arch=host.arch), None
    try:
        spec = bench_gpu(r["gpu"], catalog)
    except UsageError:
        spec = None
    if spec is None:
        return None, f"GPU '{r['gpu']}' is not in data/gpus.yaml"
    count = int(r["gpu_count"] or 1)
    devices = tuple(replace(device_from_spec(spec, i), link_bytes_per_s=host.link_bytes_per_s) for i in range(count))
    cores = _GPU_CORES.search(r["gpu"])
    if cores and spec.vendor == "apple" and spec.fp16_flops:
        # data/gpus.yaml quotes an Apple chip's largest GPU (gpu_cores there); a smaller bin has
        # fewer of the same cores at the same clock.
        share = int(cores.group(1)) / apple_catalog_cores(spec.name)
        devices = tuple(replace(d, fp16_flops=d.fp16_flops * share) for d in devices)
    host_bytes = UNIFIED_HOST_BYTES if spec.unified_memory else 1024 * 2**30
    return (
        Budget(
            devices, host_bytes, host.bandwidth_bytes_per_s, host.cores, cpu_arch=host.arch, cpu_class=host.cpu_class
        ),
        None,
    )


_GPU_CORES = re.compile(r"\((\d+)-core GPU\)")
_UBATCH = re.compile(r"n_ubatch[ =](\d+)|-ub (\d+)")


def apple_catalog_cores(name: str) -> int:
    """The GPU cores of the configuration data/gpus.yaml's FLOPS figure is for (its gpu_cores key)."""
    import yaml

    if not _APPLE_CORES:
        for g in yaml.safe_load((ROOT / "data" / "gpus.yaml").read_text(encoding="utf-8"))["gpus"]:
            if g["vendor"] == "apple" and g.get("gpu_cores"):
                _APPLE_CORES[g["name"]] = int(g["gpu_cores"])
    return _APPLE_CORES[name]


_APPLE_CORES: dict[str, int] = {}


def no_flash_attention(r: dict) -> bool:
    """Runs without flash attention: the source says so, or llama-bench's default was off (XiongjieDai's
    May-2024 notebooks, "fa off (default)" on the CUDA ones, the same builds on the Macs)."""
    return bool(re.search(r"\bfa off\b|\bfa 0\b|-fa 0\b|flash_attn = 0", r["notes"])) or "XiongjieDai" in r["source"]


def row_ubatch(r: dict) -> int | None:
    """The micro-batch the source ran with when it is not llama.cpp's default 512."""
    m = _UBATCH.search(r["notes"])
    if m:
        return int(m.group(1) or m.group(2))
    if "forums.developer.nvidia.com" in r["source"]:
        # The DGX Spark forum tables do not print -ub, but their gpt-oss-120b pp2048 (1937.39) and
        # tg32 (58.97) at depth 0 match ggml-org's benches/dgx-spark.md (1937.54 / 59.02), run with
        # -ub 2048 -fa 1, to 0.1 %: the same command.
        return 2048
    return None


def row_options(r: dict, model) -> Options:
    depth_match = _DEPTH.search(r["notes"])
    depth = int(depth_match.group(1)) if depth_match else 0
    layers = model.architecture.layers
    ngl = int(r["gpu_layers"]) if r["gpu_layers"] else None
    gpu_layers = ngl if ngl is not None and ngl < layers and not r["n_cpu_moe"] else None
    n_cpu_moe = int(r["n_cpu_moe"]) if r["n_cpu_moe"] else None
    if r["kind"] == "prefill":
        prompt = int(r["prompt_tokens"] or 512)
        return Options(
            context=memory.pad(depth + prompt),
            prompt_tokens=prompt,
            prefill_depth=depth,
            gpu_layers=gpu_layers,
            n_cpu_moe=n_cpu_moe,
        )
    gen_match = _GEN.search(r["notes"])
    n_gen = int(gen_match.group(1)) if gen_match else 128
    start = depth or int(r["prompt_tokens"] or 0)  # a decode row's prompt_tokens is the depth it started at
    return Options(
        context=memory.pad(max(512, start + n_gen)),
        prompt_tokens=0,
        decode_depth=start + n_gen // 2,
        gpu_layers=gpu_layers,
        n_cpu_moe=n_cpu_moe,
    )


def _long_prompt(r: dict) -> bool:
    depth = _DEPTH.search(r["notes"])
    return int(r["prompt_tokens"] or 512) + (int(depth.group(1)) if depth else 0) >= LONG_PROMPT


LONG_PROMPT = 4096  # prompt + depth from which a prefill row counts as long (attention cost grows)


def group_of(r: dict, model, placement: str | None) -> str:
    if r["kind"] == "file_size":
        return "weights"
    if r["kind"] == "prefill":
        if r["gpu"] in ("", "CPU"):
            return "prefill (CPU)"
        return "prefill, long prompt" if _long_prompt(r) else "prefill"
    if r["gpu"] in ("", "CPU") or placement == "cpu":
        return "decode, CPU only"
    if placement == "partial_offload":
        return "decode, partial offload"
    if model.is_moe:
        return "decode, MoE"
    if r["gpu"].startswith("Apple"):
        return "decode, Apple"
    return "decode, multi-GPU" if r["gpu_count"] not in ("", "1") else "decode, single GPU"


GROUP_ORDER = [
    "weights",
    "decode, single GPU",
    "decode, multi-GPU",
    "decode, Apple",
    "decode, MoE",
    "decode, partial offload",
    "decode, CPU only",
    "prefill",
    "prefill, long prompt",
    "prefill (CPU)",
]
# The thresholds (median, max) on the absolute error of the default method (the full-GPU
# bar applies to every dense full-GPU group).
THRESHOLDS = {
    "weights": (0.02, 0.05),
    "decode, single GPU": (0.15, None),
    "decode, multi-GPU": (0.15, None),
    "decode, Apple": (0.15, None),
    "decode, MoE": (0.25, None),
    "decode, partial offload": (0.25, None),
}


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
    ubatch = row_ubatch(r)
    options = replace(
        row_options(r, model), calibration=replace(calibration, n_ubatch=ubatch) if ubatch else calibration
    )
    result = estimate(model, quant, budget, catalog, options)
    seed_result = estimate(model, quant, budget, catalog, replace(options, method="seed"))
    row.group = group_of(r, model, result.placement)
    if row.kind == "decode":
        row.seed = seed_result.decode_tokens_per_s
        row.cost = _decode_cost(model, quant, budget, catalog, options)
    else:
        row.seed = seed_result.prefill_tokens_per_s
        row.cost = _prefill_cost(model, quant, budget, catalog, options, quant.format == "float")
    if row.cost is not None and no_flash_attention(r):
        # The estimate assumes flash attention (llama.cpp's default); this run had it off.
        row.cost = replace(row.cost, flash_attention=False)
        row.default = predicted(row, options.calibration)
    else:
        row.default = result.decode_tokens_per_s if row.kind == "decode" else result.prefill_tokens_per_s
    if row.default is None:
        row.why_not = "no estimate (a bandwidth or FLOPS figure is missing for this hardware)"
    return row


def _placed(model, quant, budget, catalog, options):
    need = need_for(model, quant, catalog, options)
    arch = model.architecture
    kv_element = memory.kv_bytes_per_element(options.kv_quant, catalog.ggml_types)
    kv_read = memory.kv_bytes_read_per_token(arch, options.decode_depth or 0, kv_element)
    choices = [
        (speed.decode_tokens_per_s(need, p, arch, kv_read, budget, options.calibration) or 0, p)
        for p in placements(need, budget, options, model.is_moe)
    ]
    return need, max(choices, key=lambda c: c[0])[1], kv_read


def _decode_cost(model, quant, budget, catalog, options) -> speed.DecodeCost | None:
    need, placed, kv_read = _placed(model, quant, budget, catalog, options)
    return speed.decode_terms(need, placed, model.architecture, kv_read, budget)


def _prefill_cost(model, quant, budget, catalog, options, float_weights) -> speed.PrefillCost | None:
    need, placed, _ = _placed(model, quant, budget, catalog, options)
    return speed.prefill_terms(
        need,
        placed,
        model.architecture,
        model.params_active,
        options.prompt_tokens,
        budget,
        options.calibration,
        depth=options.prefill_depth,
        float_weights=float_weights,
    )


# ---------------------------------------------------------------- figures


def counted(rows: list[Row], group: str) -> list[Row]:
    return [r for r in rows if r.group == group and r.counted]


def summary(rows: list[Row]) -> dict[str, dict]:
    out = {}
    for group in GROUP_ORDER:
        members = counted(rows, group)
        if not members:
            continue
        entry = {"rows": len(members)}
        for method in ("default", "seed"):
            errors = [abs(r.error(method)) for r in members if r.error(method) is not None]
            entry[method] = {
                "rows": len(errors),
                "median": statistics.median(errors) if errors else None,
                "max": max(errors) if errors else None,
            }
        out[group] = entry
    return out


# ---------------------------------------------------------------- fitting the constants

# ---------------------------------------------------------------- out of sample


def gpu_key(r: Row) -> str:
    """What leave-one-GPU-out holds out together: the GPU (any count of it), or the host CPU."""
    return r.raw["gpu"] if r.raw["gpu"] not in ("", "CPU") else f"CPU {r.raw['cpu']}"


def model_key(r: Row) -> str:
    """What leave-one-model-out holds out together: one set of tensor shapes (a base model and
    its instruct twin are one model here)."""
    return SAME_SHAPES.get(r.raw["model"], r.raw["model"])


CV_KINDS = {"gpu": gpu_key, "model": model_key}


def cross_validate(rows: list[Row], key=gpu_key) -> dict[int, float]:
    """Out-of-sample predictions: for each key (a GPU, or a model), refit every constant on the
    rows without it and predict its rows. Row index → predicted speed."""
    speed_rows = [r for g in SPEED_GROUPS for r in counted(rows, g) if r.cost is not None]
    out: dict[int, float] = {}
    for k in sorted({key(r) for r in speed_rows}):
        held = [r for r in speed_rows if key(r) == k]
        train = [r for r in rows if r not in held]
        cal = fit(train)
        for r in held:
            value = predicted(r, cal)
            if value is not None:
                out[r.index] = value
    return out


def cv_summary(rows: list[Row], predictions: dict[int, float]) -> dict[str, dict]:
    """Median and max absolute out-of-sample error per group. Weights have no fitted constant:
    their out-of-sample error is the in-sample one."""
    out = {}
    for group in GROUP_ORDER:
        members = counted(rows, group)
        if group == "weights":
            errors = [abs(r.error("default")) for r in members]
        else:
            errors = [abs(predictions[r.index] / r.measured - 1) for r in members if r.index in predictions]
        if errors:
            out[group] = {"rows": len(errors), "median": statistics.median(errors), "max": max(errors)}
    return out


def all_figures(rows: list[Row]) -> dict:
    """In-sample (shipped constants), leave-one-GPU-out and leave-one-model-out figures."""
    cv = {name: cross_validate(rows, key) for name, key in CV_KINDS.items()}
    return {"in_sample": summary(rows), "cv": {name: cv_summary(rows, p) for name, p in cv.items()}, "predictions": cv}


# ---------------------------------------------------------------- what ships: constants and ranges

FITTED_FIELDS = (
    "gpu_decode_efficiency",
    "gpu_layer_seconds",
    "layer_seconds_by_class",
    "kv_read_factor",
    "kv_read_factor_nofa",
    "cpu_decode_efficiency",
    "cpu_core_bytes_per_s",
    "cpu_core_bytes_per_s_arm",
    "cpu_layer_seconds",
    "embedded_host_layer_seconds",
    "cpu_flops_per_core",
    "cpu_flops_per_core_arm",
    "gpu_prefill_efficiency",
    "prefill_float_factor",
    "prefill_float_factor_by_class",
    "prefill_moe_factor",
    "prefill_moe_half_batch",
    "prefill_attention_factor",
    "prefill_attention_factor_nofa",
    "prefill_score_flops",
)
MIN_RANGE_ROWS = 8  # a (regime, class) cell with fewer rows borrows the range of the class it falls back to
MIN_POOLED_ROWS = 5  # ... and a regime with fewer rows the range of its kind (decode or prefill) pooled


def regime_of(r: Row) -> str:
    """decode / decode-host / prefill / prefill-host: on GPUs only, or with work on the CPU (layers,
    experts or the whole model in RAM; for prefill, weights streamed from RAM or CPU compute)."""
    if isinstance(r.cost, speed.PrefillCost):
        return "prefill-host" if r.cost.cpu_flops is not None or r.cost.pcie_bytes else "prefill"
    return "decode-host" if isinstance(r.cost, speed.DecodeCost) and r.cost.host is not None else "decode"


def class_of(r: Row) -> str:
    """The device class the row's GPU work ran on ('' for CPU only): the first GPU's."""
    if isinstance(r.cost, speed.DecodeCost):
        return next(iter(r.cost.weight_s), "")
    if isinstance(r.cost, speed.PrefillCost):
        return next(iter(r.cost.flops), "")
    return ""


def speed_ranges(rows: list[Row], predictions: dict[int, float]) -> dict:
    """10th and 90th percentiles of measured ÷ out-of-sample estimate, per regime and device class,
    per class a class falls back to (generic and vendor), and pooled ("*"; and "<kind>-all" over
    both regimes of a kind), from the cells with at least MIN_RANGE_ROWS rows (MIN_POOLED_ROWS
    for the pooled ones)."""
    cells: dict[tuple[str, str], list[float]] = {}
    for g in SPEED_GROUPS:
        for r in counted(rows, g):
            if r.index not in predictions:
                continue
            ratio = r.measured / predictions[r.index]
            regime, cls = regime_of(r), class_of(r)
            chain = (compute_chain if r.kind == "prefill" else class_chain)(cls) if cls else []
            for key in {*chain, "*"}:
                cells.setdefault((regime, key), []).append(ratio)
            cells.setdefault((regime.split("-")[0] + "-all", "*"), []).append(ratio)
    out: dict[str, dict] = {}
    for (regime, key), ratios in sorted(cells.items()):
        if len(ratios) >= (MIN_POOLED_ROWS if key == "*" else MIN_RANGE_ROWS):
            q = statistics.quantiles(ratios, n=10, method="inclusive")
            out.setdefault(regime, {})[key] = (round(q[0], 3), round(q[8], 3), len(ratios))
    return out


def class_counts(rows: list[Row]) -> dict:
    """Rows behind each fitted efficiency (decode and prefill)."""
    counts: dict[str, dict[str, int]] = {"decode": {}, "prefill": {}}
    for kind, groups in (("decode", GPU_FIT_GROUPS), ("prefill", PREFILL_GROUPS)):
        for r in fit_rows(rows, groups):
            if isinstance(r.cost, speed.DecodeCost) and r.cost.host is not None:
                continue
            cls = class_of(r) or "cpu"
            counts[kind][cls] = counts[kind].get(cls, 0) + 1
    counts["host"] = {"decode rows with work on the CPU": len(fit_rows(rows, CPU_FIT_GROUPS))}
    return counts


def calibration_block(
    fitted: Calibration, ranges: dict, counts: dict, vllm_fitted: dict | None = None, mlx_fitted: dict | None = None
) -> str:
    """The generated block of estimator/calibration.py."""
    import pprint

    def literal(value) -> str:
        if isinstance(value, dict):
            value = {k: v for k, v in sorted(value.items())}
        return pprint.pformat(value, width=104, sort_dicts=True)

    lines = [
        "# ---- generated by `python -m benchmarks.accuracy --write-calibration`; do not edit by hand ----",
        "# FITTED: the constants the fit gives (estimator.fitting.fit) on tests/data/measurements.csv.",
        "FITTED: dict = {",
    ]
    for name in FITTED_FIELDS:
        text = literal(getattr(fitted, name)).replace("\n", "\n" + " " * (8 + len(name)))
        lines.append(f"    {name!r}: {text},")
    lines += [
        "}",
        "# FIT_ROWS: the rows behind each fitted efficiency, per device class.",
        "FIT_ROWS: dict = " + literal(counts).replace("\n", "\n" + " " * 16),
        "# SPEED_RANGES: per regime and device class, (10th, 90th percentile, rows) of measured ÷ estimate",
        "# over the leave-one-GPU-out predictions (speed_range reads them).",
        "SPEED_RANGES: dict = " + literal(ranges).replace("\n", "\n" + " " * 20),
        "# VLLM_FITTED: vLLM's decode constants (estimator.fitting.fit_vllm) on tests/data/vllm_measurements.csv.",
        "VLLM_FITTED: dict = " + literal(vllm_fitted or {}).replace("\n", "\n" + " " * 19),
        "# MLX_FITTED: MLX's decode constants (benchmarks/mlx_accuracy.fit) on tests/data/mlx_measurements.csv.",
        "MLX_FITTED: dict = " + literal(mlx_fitted or {}).replace("\n", "\n" + " " * 18),
        "# ---- end of generated block ----",
    ]
    return "\n".join(lines)


CALIBRATION_PY = ROOT / "estimator" / "calibration.py"
_BLOCK = re.compile(r"# ---- generated by .*?# ---- end of generated block ----", re.DOTALL)


def write_calibration(rows: list[Row]) -> str:
    fitted = fit(rows)
    ranges = speed_ranges(rows, cross_validate(rows, gpu_key))
    vllm_fitted = vllm_accuracy.fitted_fields(vllm_accuracy.refit(vllm_accuracy.evaluate()))
    mlx_fitted = mlx_accuracy.fitted_fields(mlx_accuracy.fit(mlx_accuracy.evaluate()))
    block = calibration_block(fitted, ranges, class_counts(rows), vllm_fitted, mlx_fitted)
    text = CALIBRATION_PY.read_text(encoding="utf-8")
    CALIBRATION_PY.write_text(_BLOCK.sub(lambda _: block, text, count=1), encoding="utf-8")
    return block


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


# The same benchmark on the speed model before the second accuracy round (commit ce32664's estimator/ and
# data/gpus.yaml, its benchmarks/accuracy.py fit), with today's groups and exclusions: group →
# (rows, median, max as shipped, median, max leave-one-GPU-out, median, max leave-one-model-out), on the
# rows of that commit and on today's rows (its constants as shipped, fitted on the old rows only;
# Apple and GB10 prefill had no FLOPS figure then, so those rows were not estimated). Recorded once by
# running that commit's code on both CSVs; not recomputed.
BEFORE: dict[str, dict[str, tuple]] = {
    "old rows": {
        "weights": (111, 0.001, 0.0477, 0.001, 0.0477, 0.001, 0.0477),
        "decode, single GPU": (47, 0.0588, 0.2308, 0.0611, 0.343, 0.0917, 0.3656),
        "decode, multi-GPU": (24, 0.0329, 0.2121, 0.0358, 0.2759, 0.0378, 0.3078),
        "decode, Apple": (14, 0.1312, 0.5489, 0.1431, 0.5777, 0.1514, 0.5865),
        "decode, MoE": (22, 0.0412, 0.4941, 0.1098, 0.5001, 0.0587, 0.5356),
        "decode, partial offload": (6, 0.0997, 0.2223, 0.2363, 0.3177, 0.1253, 0.4194),
        "decode, CPU only": (1, 0.0375, 0.0375, 0.1979, 0.1979, 0.1979, 0.1979),
        "prefill": (82, 0.1534, 1.3107, 0.2076, 1.0672, 0.205, 1.3795),
        "prefill, long prompt": (3, 0.1696, 0.6074, 0.1696, 0.2125, 0.1696, 0.6407),
        "prefill (CPU)": (1, 0.4269, 0.4269, 0.4269, 0.4269, 0.4269, 0.4269),
    },
    "today's rows": {
        "weights": (113, 0.0009, 0.0477, 0.0009, 0.0477, 0.0009, 0.0477),
        "decode, single GPU": (94, 0.0598, 0.3584, 0.057, 0.486, 0.0767, 0.4998),
        "decode, multi-GPU": (24, 0.0329, 0.2121, 0.0325, 0.2854, 0.0366, 0.3229),
        "decode, Apple": (101, 0.1321, 0.6983, 0.0955, 0.8037, 0.1605, 0.8192),
        "decode, MoE": (37, 0.0305, 0.4941, 0.0456, 0.5529, 0.0427, 0.5545),
        "decode, partial offload": (6, 0.0997, 0.2223, 0.2371, 0.32, 0.1268, 0.4227),
        "decode, CPU only": (1, 0.0375, 0.0375, 0.0375, 0.0375, 0.0375, 0.0375),
        "prefill": (85, 0.1557, 1.7514, 0.23, 1.4583, 0.2343, 1.4583),
        "prefill, long prompt": (62, 0.4567, 1.4694, 0.2367, 1.2019, 0.4226, 1.535),
        "prefill (CPU)": (1, 0.4269, 0.4269, 0.4269, 0.4269, 0.4269, 0.4269),
    },
}


def _bar(group: str) -> str:
    bar = THRESHOLDS.get(group)
    return "—" if not bar else " / ".join("—" if x is None else f"≤ {x * 100:.0f} %" for x in bar)


def _pair(entry: dict | None) -> str:
    return "— | —" if not entry else f"{_abs_pct(entry['median'])} | {_abs_pct(entry['max'])}"


def render(rows: list[Row], calibration: Calibration = DEFAULT_CALIBRATION, figures: dict | None = None) -> str:
    figures = figures or all_figures(rows)
    inside, cv, predictions = figures["in_sample"], figures["cv"], figures["predictions"]
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
        "In sample: the shipped constants, fitted on every row below. Out of sample: every fitted constant",
        "refitted without one GPU's rows (leave-one-GPU-out: the hardware a user has and no row measured) or",
        "without one model's rows (leave-one-model-out: a base model and its instruct twin are one model), then",
        "that GPU's or model's rows predicted; weights have no fitted constant, so their three columns agree.",
        "The out-of-sample columns are the honest ones: a class of device with one GPU in the data",
        "(Strix Halo, GB10) borrows, when that GPU is left out, from its memory system's or its vendor's",
        "other boards.",
        "",
        "| group | rows | in sample: median | max | GPU left out: median | max | model left out: median | max "
        "| issue's bar (median / max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for group, entry in inside.items():
        d = entry["default"]
        lines.append(
            f"| {group} | {entry['rows']} | {_abs_pct(d['median'])} | {_abs_pct(d['max'])} | "
            f"{_pair(cv['gpu'].get(group))} | {_pair(cv['model'].get(group))} | {_bar(group)} |"
        )
    lines += [
        "",
        "The seed method (in sample; it has no prefill model and no offload, and reads every weight, MoE",
        "included, at one GPU's bandwidth):",
        "",
        "| group | rows | seed: median | seed: max |",
        "| --- | ---: | ---: | ---: |",
    ]
    for group, entry in inside.items():
        s = entry["seed"]
        if s["rows"]:
            lines.append(f"| {group} | {s['rows']} | {_abs_pct(s['median'])} | {_abs_pct(s['max'])} |")
    lines += _before_section(inside, cv)
    lines += _constants_section(calibration, rows)
    lines += _ranges_section()
    lines += ["", *vllm_accuracy.render(vllm_accuracy.evaluate())]
    lines += ["", *mlx_accuracy.render(mlx_accuracy.evaluate())]
    lines += ["", *exllama_accuracy.render(exllama_accuracy.evaluate())]
    for group in GROUP_ORDER:
        members = [r for r in rows if r.group == group]
        if not members:
            continue
        lines += [
            "",
            f"## {group}",
            "",
            "| # | row | measured | estimate | error | GPU left out | model left out | seed | error | note |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in members:
            note = r.excluded and f"excluded: {r.excluded}" or r.why_not or ""
            oos = [
                _pct(predictions[k][r.index] / r.measured - 1) if r.index in predictions[k] else "—"
                for k in ("gpu", "model")
            ]
            if group == "weights":
                oos = ["=", "="]
            lines.append(
                f"| {r.index} | {r.label} | {_value(r.measured, r.kind)} | {_value(r.default, r.kind)} | "
                f"{_pct(r.error('default'))} | {oos[0]} | {oos[1]} | {_value(r.seed, r.kind)} | "
                f"{_pct(r.error('seed'))} | [src]({r.raw['source']}) {note} |"
            )
    unplaced = [r for r in rows if not r.group]
    if unplaced:
        lines += ["", "## Not evaluated", "", "| # | row | why |", "| ---: | --- | --- |"]
        lines += [f"| {r.index} | {r.label} | {r.why_not} |" for r in unplaced]
    return "\n".join(lines) + "\n"


def _before_section(inside: dict, cv: dict) -> list[str]:
    if not BEFORE:
        return []
    lines = [
        "",
        "## Before and after the second round",
        "",
        "Median / max absolute error of the speed model before this round (commit ce32664: one efficiency",
        "for every Apple chip and one time per layer for every GPU, no attention factor, no FLOPS for",
        "Apple or GB10) and now, on the rows of that commit and on today's rows, with today's exclusions.",
        "Cells: median / max (rows). Before, on today's rows, the constants are as shipped then (fitted on",
        "the old rows only), so its first column is not in sample.",
        "",
        "| group | before, old rows: in sample | GPU left out | model left out | before, today's rows: "
        "as shipped | GPU left out | model left out | now: in sample | GPU left out | model left out |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(rows_median_max) -> str:
        n, med, mx = rows_median_max
        return "—" if med is None else f"{med * 100:.1f} / {mx * 100:.0f} % ({n})"

    old, old_new = BEFORE.get("old rows", {}), BEFORE.get("today's rows", {})
    for group in GROUP_ORDER:
        if group not in inside:
            continue
        a, b = old.get(group), old_new.get(group)
        now_in = inside[group]["default"]
        cells = []
        for entry in (a, b):
            if entry:
                cells += [
                    cell((entry[0], entry[1], entry[2])),
                    cell((entry[0], entry[3], entry[4])),
                    cell((entry[0], entry[5], entry[6])),
                ]
            else:
                cells += ["—", "—", "—"]
        cells += [cell((inside[group]["rows"], now_in["median"], now_in["max"]))]
        for kind in ("gpu", "model"):
            e = cv[kind].get(group)
            cells.append(cell((e["rows"], e["median"], e["max"])) if e else "—")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines


def _constants_section(cal: Calibration, rows: list[Row]) -> list[str]:
    refit = fit(rows)
    counts = class_counts(rows)
    lines = [
        "",
        "## Constants of the default method",
        "",
        "Generated into `estimator/calibration.py` by `python -m benchmarks.accuracy --write-calibration` (a",
        "test checks the shipped values are what the fit gives). Decode: weighted least squares on relative",
        "error over the full-GPU rows (seconds per token are linear in the priced terms), alternated with",
        "1-D least squares for the KV-read factors; then a grid search for the host constants over the rows",
        "that put work on the CPU. Prefill: the same least squares over the dense quantized-weight rows,",
        "alternated with 1-D fits of the factors for F16/BF16 weights, routed experts and attention. A class",
        "of device without rows takes the median of its memory system's classes (decode) or its vendor's",
        "(prefill): `calibration.class_chain` / `compute_chain`. Everything else is physics: bytes per tensor,",
        "bytes read per token, FLOPs.",
        "",
        "| constant | shipped | refit today | rows |",
        "| --- | ---: | ---: | ---: |",
    ]

    def row(name: str, shipped: str, now: str, n: str = "") -> None:
        lines.append(f"| {name} | {shipped} | {now} | {n} |")

    for name in sorted(set(cal.gpu_decode_efficiency) | set(refit.gpu_decode_efficiency)):
        now = refit.gpu_decode_efficiency.get(name)
        row(
            f"decode efficiency, {name}",
            f"{cal.decode_efficiency(name):.3f}",
            "—" if now is None else f"{now:.3f}",
            str(counts["decode"].get(name, "median")),
        )
    row(
        "time per layer and token, GPU",
        f"{cal.gpu_layer_seconds * 1e6:.1f} µs",
        f"{refit.gpu_layer_seconds * 1e6:.1f} µs",
    )
    for family, value in sorted(cal.layer_seconds_by_class.items()):
        row(
            f"time per layer and token, {family}",
            f"{value * 1e6:.1f} µs",
            f"{refit.layer_seconds(family) * 1e6:.1f} µs",
        )
    row("KV read factor (flash attention)", f"{cal.kv_read_factor:.3f}", f"{refit.kv_read_factor:.3f}")
    row("KV read factor (no flash attention)", f"{cal.kv_read_factor_nofa:.3f}", f"{refit.kv_read_factor_nofa:.3f}")
    row(
        "share of peak RAM bandwidth reached",
        f"{cal.cpu_decode_efficiency:.2f}",
        f"{refit.cpu_decode_efficiency:.2f}",
        str(counts["host"]["decode rows with work on the CPU"]),
    )
    row(
        "RAM bandwidth per CPU core",
        f"{cal.cpu_core_bytes_per_s / 1e9:.1f} GB/s",
        f"{refit.cpu_core_bytes_per_s / 1e9:.1f} GB/s",
    )
    row("time per GPU↔CPU crossing", f"{cal.cpu_layer_seconds * 1e6:.0f} µs", f"{refit.cpu_layer_seconds * 1e6:.0f} µs")
    for name in sorted(set(cal.gpu_prefill_efficiency) | set(refit.gpu_prefill_efficiency)):
        now = refit.gpu_prefill_efficiency.get(name)
        row(
            f"prefill efficiency, {name}",
            f"{cal.prefill_efficiency(name):.3f}",
            "—" if now is None else f"{now:.3f}",
            str(counts["prefill"].get(name, "median")),
        )
    row("prefill time factor, F16/BF16 weights", f"{cal.prefill_float_factor:.3f}", f"{refit.prefill_float_factor:.3f}")
    for family, value in sorted(cal.prefill_float_factor_by_class.items()):
        row(f"prefill time factor, F16/BF16 weights, {family}", f"{value:.3f}", f"{refit.float_factor(family):.3f}")
    row("prefill time factor, routed experts", f"{cal.prefill_moe_factor:.3f}", f"{refit.prefill_moe_factor:.3f}")
    row(
        "routed-expert half-rate batch (tokens per expert)",
        f"{cal.prefill_moe_half_batch:.1f}",
        f"{refit.prefill_moe_half_batch:.1f}",
    )
    row(
        "attention factor (flash attention)",
        f"{cal.prefill_attention_factor:.3f}",
        f"{refit.prefill_attention_factor:.3f}",
    )
    row(
        "softmax cost per attention score (FLOP-equivalents)",
        f"{cal.prefill_score_flops:.1f}",
        f"{refit.prefill_score_flops:.1f}",
    )
    row(
        "attention factor (no flash attention)",
        f"{cal.prefill_attention_factor_nofa:.3f}",
        f"{refit.prefill_attention_factor_nofa:.3f}",
    )
    row(
        "CPU prefill per x86 core",
        f"{cal.cpu_flops_per_core / 1e9:.1f} GFLOP/s",
        f"{refit.cpu_flops_per_core / 1e9:.1f} GFLOP/s",
    )
    row(
        "CPU prefill per Arm core",
        f"{cal.cpu_flops_per_core_arm / 1e9:.1f} GFLOP/s",
        f"{refit.cpu_flops_per_core_arm / 1e9:.1f} GFLOP/s",
    )
    row("runtime reserve per GPU", f"{cal.runtime_reserve_bytes / 2**20:.0f} MiB", "Ollama's figure (peers.md)")
    row(
        "tensor-parallel efficiency",
        f"{cal.tensor_parallel_efficiency:.2f}",
        "stated (seed 002) for --multi-gpu tensor; vLLM's own all-reduce time is fitted (section vLLM)",
    )
    lines += ["", "Residuals of today's refit (absolute error):", ""]
    for name, r in residuals(rows, refit).items():
        lines.append(f"- {name}: {r['rows']} rows, median {r['median'] * 100:.1f} %, max {r['max'] * 100:.1f} %")
    return lines


def _ranges_section() -> list[str]:
    from fitagent.estimator.calibration import SPEED_RANGES

    lines = [
        "",
        "## Speed ranges",
        "",
        "Every speed in an estimate comes with a range (`decode_tokens_per_s_range`, `prefill_tokens_per_s_range`):",
        "the speed × the 10th and 90th percentiles of measured ÷ estimate over the leave-one-GPU-out",
        "predictions of its regime and device class — a GPU's own class when it has at least",
        f"{MIN_RANGE_ROWS} rows, else the class it falls back to, else the regime's rows pooled (at least",
        f"{MIN_POOLED_ROWS}), else the kind's. Shipped in `estimator/calibration.py` (SPEED_RANGES), written by",
        "`python -m benchmarks.accuracy --write-calibration`.",
        "",
        "| regime | class | 10th percentile | 90th percentile | rows |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for regime, table in SPEED_RANGES.items():
        for key, (low, high, n) in table.items():
            lines.append(f"| {regime} | {key} | × {low:.2f} | × {high:.2f} | {n} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the constants a least-squares fit gives")
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="refit the constants and the speed ranges and write them into estimator/calibration.py",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the rows and figures as JSON instead of writing the report"
    )
    parser.add_argument(
        "--output", type=Path, default=REPORT, help=f"where to write the report (default {REPORT.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    rows = evaluate()
    if args.write_calibration:
        write_calibration(rows)
        print(
            f"wrote the fitted constants and speed ranges into {CALIBRATION_PY.relative_to(ROOT)}; "
            "run again until it no longer changes (placements depend on the constants)"
        )
        return 0
    if args.fit:
        fitted = fit(rows)
        for name in FITTED_FIELDS:
            print(f"{name}={getattr(fitted, name)!r}")
        for name, r in residuals(rows, fitted).items():
            print(f"{name}: {r['rows']} rows, median |error| {r['median'] * 100:.1f} %, max {r['max'] * 100:.1f} %")
        return 0
    figures = all_figures(rows)
    if args.json:
        print(
            json.dumps(
                {
                    "summary": figures["in_sample"],
                    "cv": figures["cv"],
                    "rows": [
                        {
                            "index": r.index,
                            "group": r.group,
                            "label": r.label,
                            "measured": r.measured,
                            "default": r.default,
                            "gpu_left_out": figures["predictions"]["gpu"].get(r.index),
                            "model_left_out": figures["predictions"]["model"].get(r.index),
                            "seed": r.seed,
                            "excluded": r.excluded,
                            "why_not": r.why_not,
                        }
                        for r in rows
                    ],
                },
                indent=1,
            )
        )
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, figures=figures), encoding="utf-8")
    print(
        f"{'group':26s} {'rows':>4}  {'in sample':>17}  {'GPU left out':>17}  {'model left out':>17}   (median / max)"
    )
    for group, entry in figures["in_sample"].items():
        d = entry["default"]
        cells = [f"{_abs_pct(d['median']):>8} {_abs_pct(d['max']):>8}"]
        for kind in ("gpu", "model"):
            e = figures["cv"][kind].get(group)
            cells.append("—".rjust(17) if not e else f"{_abs_pct(e['median']):>8} {_abs_pct(e['max']):>8}")
        print(f"{group:26s} {entry['rows']:4d}  " + "  ".join(cells))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
