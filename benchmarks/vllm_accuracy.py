"""How close fitagent's vLLM model (estimator/vllm.py) comes to public vLLM runs.

tests/data/vllm_measurements.csv holds them, each with its source: decode speed of one stream and
of batches (tokens/s, or the time per output token at a concurrency), and the KV cache vLLM's
start-up log reports. This module evaluates each row, fits the decode constants
(estimator.fitting.fit_vllm), and reports in-sample and cross-validated errors (each model, and
each GPU, predicted by constants fitted without it). `python -m benchmarks.accuracy` puts the
section into docs/accuracy.md and, with --write-calibration, the constants into
estimator/calibration.py.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from fitagent.agent.catalog_cache import load_catalog
from fitagent.estimator import vllm
from fitagent.estimator.budget import device_from_spec
from fitagent.estimator.calibration import DEFAULT_VLLM, VllmConstants
from fitagent.estimator.candidates import model_weights
from fitagent.estimator.fitting import fit_vllm, fit_vllm_moe

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "tests" / "data" / "vllm_measurements.csv"
GiB = 1024**3
DEFAULT_PROMPT = 128  # a chat turn, where the source gives no prompt length
DEFAULT_OUTPUT = 128


@dataclass
class VllmRow:
    index: int
    raw: dict
    metric: str
    measured: float  # tokens/s of one stream (decode) or GiB (kv_cache)
    step: vllm.StepCost | None = None
    estimate: float | None = None

    @property
    def seconds(self) -> float:
        return 1 / self.measured

    @property
    def counted(self) -> bool:
        return self.estimate is not None

    @property
    def group(self) -> str:
        if self.metric == "kv_cache":
            return "SGLang KV pool" if self.raw.get("runtime") == "sglang" else "vLLM KV cache"
        if self.metric == "ttft":
            return "vLLM time to first token"
        if self.metric in ("ttft_load", "ttft_burst"):
            return "vLLM time to first token under load"
        if self.step is not None and self.step.moe_layers:
            return "vLLM decode, mixture of experts"
        return "vLLM decode, one stream" if int(self.raw["concurrency"]) == 1 else "vLLM decode, batched"

    @property
    def label(self) -> str:
        r = self.raw
        gpus = f"{r['gpu']}" + (f" ×{r['gpu_count']}" if r["gpu_count"] != "1" else "")
        what = {
            "decode": f"conc {r['concurrency']}",
            "ttft": f"TTFT, {r['prompt_tokens']}-token prompt",
            "ttft_load": f"TTFT, {r['prompt_tokens']}-token prompts among {r['concurrency']} sessions",
            "ttft_burst": f"p50 TTFT, {r['concurrency']} × {r['prompt_tokens']}-token prompts at once",
        }.get(self.metric, f"len {r['max_model_len']}")
        return f"{r['model'].split('/')[-1]} {r['quant']} · {gpus} ({what})"

    def error(self) -> float | None:
        return None if self.estimate is None else self.estimate / self.measured - 1


def load_rows() -> list[VllmRow]:
    with CSV.open(newline="") as f:
        rows = []
        for i, r in enumerate(csv.DictReader(f)):
            value = float(r["value"])
            measured = {"ms/token": lambda v: 1000 / v, "ms": lambda v: v / 1000}.get(r["unit"], lambda v: v)(value)
            rows.append(VllmRow(i, r, r["metric"], measured))
    return rows


def _depth(r: dict) -> int:
    prompt = int(r["prompt_tokens"] or DEFAULT_PROMPT)
    return prompt + int(r["output_tokens"] or DEFAULT_OUTPUT) // 2


def evaluate(constants: VllmConstants = DEFAULT_VLLM) -> list[VllmRow]:
    catalog = load_catalog()
    rows = load_rows()
    for row in rows:
        r = row.raw
        model, quant = catalog.model(r["model"]), catalog.quant(r["quant"])
        device = device_from_spec(catalog.gpu(r["gpu"]))
        if r["total_gib"]:
            total = int(float(r["total_gib"]) * GiB)
            device = replace(device, total_bytes=total, free_bytes=total)
        tp = int(r["tensor_parallel"] or 1)
        if row.metric == "ttft":
            row.estimate = _ttft_under_load(row, model, quant, device, tp, catalog, constants)
            continue
        if row.metric in ("ttft_load", "ttft_burst"):
            row.estimate = _ttft_under_load(row, model, quant, device, tp, catalog, constants)
            continue
        if row.metric == "kv_cache" and r["runtime"] == "sglang":
            memory = vllm.memory_split(
                model, quant, catalog, device, tp, float(r["gpu_memory_utilization"]), 0, True, constants, "sglang"
            )
            row.estimate = memory.kv_cache_bytes / vllm.kv_bytes_per_token(model.architecture, tp, 2)
            continue
        if row.metric == "kv_cache":
            memory = vllm.memory_split(
                model,
                quant,
                catalog,
                device,
                tp,
                float(r["gpu_memory_utilization"]),
                int(r["max_num_batched_tokens"]),
                # before v0.21 the profile did not count CUDA graphs' memory (PR #30515)
                r["enforce_eager"] == "true" or r["cuda_graphs_profiled"] == "false",
                constants,
                # the V1 engine's profile samples max_num_seqs dummy requests; V0's pass is in the fixed part
                max_num_seqs=0 if r["engine"] == "v0" else vllm.batch_defaults(device, constants)[0],
                mxfp4_backend="marlin" if "Marlin" in r["notes"] else None,
            )
            row.estimate = memory.kv_cache_bytes / GiB
            continue
        per_token = vllm.kv_bytes_per_token(model.architecture, tp, 2)
        # the language model's bytes as vLLM holds them (gpt-oss's experts in its kernels' layout)
        weights = vllm.loaded_weights_bytes(
            model, quant, catalog, device, "marlin" if "Marlin" in r["notes"] else None, vision=False
        )
        row.step = vllm.step_cost(
            model.architecture, quant, weights, device, tp, int(r["concurrency"]), _depth(r), per_token
        )
        if row.step is not None:
            row.estimate = 1 / vllm.step_seconds(row.step, constants)[0]
    return rows


def speed_rows(rows: list[VllmRow]) -> list[VllmRow]:
    return [r for r in rows if r.metric == "decode" and r.step is not None]


def _ttft_under_load(row: VllmRow, model, quant, device, tp: int, catalog, constants: VllmConstants) -> float | None:
    """A time-to-first-token row: a prompt on an idle server, among sessions that decode (staggered
    arrivals), or the median of a burst of equal prompts arriving together."""
    import statistics as stats

    r = row.raw
    arch = model.architecture
    weights = model_weights(model, quant, catalog).total_bytes
    per_token = vllm.kv_bytes_per_token(arch, tp, 2)
    prompt, sessions = int(r["prompt_tokens"]), int(r["concurrency"])
    budget = vllm.batch_defaults(device, constants)[1]
    if row.metric == "ttft":  # one prompt at a time on an idle server
        seconds = vllm.prefill_under_load(arch, quant, weights, device, tp, prompt, 0, 0, per_token, budget, constants)
    elif row.metric == "ttft_load":
        depth = prompt + int(r["output_tokens"]) // 2
        seconds = vllm.prefill_under_load(
            arch, quant, weights, device, tp, prompt, sessions - 1, depth, per_token, budget, constants
        )
    else:
        times = vllm.burst_first_tokens(
            arch, quant, weights, device, tp, prompt, sessions, per_token, budget, constants
        )
        seconds = stats.median(times) if times else None
    return None if seconds is None else seconds + constants.request_seconds


def refit(rows: list[VllmRow]) -> VllmConstants:
    return _fit(speed_rows(rows))


def _fit(members: list[VllmRow]) -> VllmConstants:
    """The dense constants on the dense models' rows, then the MoE routing pair on the MoE rows."""
    dense = fit_vllm([r for r in members if r.step and not r.step.moe_layers], VllmConstants())
    return fit_vllm_moe(members, dense)


def cross_validate(rows: list[VllmRow], key) -> dict[int, float]:
    """Each key's speed rows predicted by constants fitted on the other keys' rows."""
    out: dict[int, float] = {}
    members = speed_rows(rows)
    for k in sorted({key(r) for r in members}):
        held = [r for r in members if key(r) == k]
        train = [r for r in members if key(r) != k]
        if not train:
            continue
        cal = _fit(train)
        for r in held:
            assert r.step is not None
            out[r.index] = 1 / vllm.step_seconds(r.step, cal)[0]
    return out


def _model_size(r: VllmRow) -> str:
    return r.raw["model"]


def _gpu(r: VllmRow) -> str:
    return r.raw["gpu"]


GROUPS = (
    "vLLM decode, one stream",
    "vLLM decode, batched",
    "vLLM decode, mixture of experts",
    "vLLM KV cache",
    "vLLM time to first token",
    "vLLM time to first token under load",
    "SGLang KV pool",
)


def figures(rows: list[VllmRow]) -> dict:
    cv = {"GPU out": cross_validate(rows, _gpu), "model out": cross_validate(rows, _model_size)}
    out = {}
    for group in GROUPS:
        members = [r for r in rows if r.group == group and r.counted]
        errors = [abs(e) for r in members if (e := r.error()) is not None]
        if not errors:
            continue
        entry = {"rows": len(errors), "in": (statistics.median(errors), max(errors))}
        for name, predictions in cv.items():
            held = [abs(predictions[r.index] / r.measured - 1) for r in members if r.index in predictions]
            if held:
                entry[name] = (statistics.median(held), max(held), len(held))
        out[group] = entry
    return {"groups": out, "predictions": cv}


def _pct(pair) -> str:
    return f"{pair[0] * 100:.1f} / {pair[1] * 100:.0f} %" + (f" ({pair[2]})" if len(pair) > 2 else "")


def render(rows: list[VllmRow], constants: VllmConstants = DEFAULT_VLLM) -> list[str]:
    """The vLLM section of docs/accuracy.md."""
    fig = figures(rows)
    lines = [
        "## vLLM",
        "",
        "`--runtime vllm` (estimator/vllm.py) against public vLLM runs: tests/data/vllm_measurements.csv, each row",
        "with its source. Decode rows are one stream's tokens/s or the median time per output token at a",
        "concurrency; KV-cache rows are what vLLM's start-up log reports. Median / max absolute error;",
        "out of sample, each GPU's (each model's) rows predicted by constants fitted without them.",
        "The KV cache and the time to the first token have no constant of their own (the prompt runs at the",
        "GEMM share fitted on the batched decode rows): their errors are the model's as it stands.",
        "",
        "| group | rows | in sample | GPU left out | model left out |",
        "|---|---|---|---|---|",
    ]
    for group, e in fig["groups"].items():
        gpu = _pct(e["GPU out"]) if "GPU out" in e else "—"
        model = _pct(e["model out"]) if "model out" in e else "—"
        lines.append(f"| {group} | {e['rows']} | {_pct(e['in'])} | {gpu} | {model} |")
    eff = ", ".join(f"{k} {v:.3f}" for k, v in sorted(constants.bandwidth_efficiency.items()))
    lines += [
        "",
        f"Constants (fitted on these rows): bandwidth share {eff}; "
        f"{constants.layer_seconds * 1e6:.0f} µs a layer, {constants.allreduce_seconds * 1e6:.0f} µs a layer's "
        f"all-reduces; GEMMs at {constants.matmul_efficiency:.2f} of the FP16 tensor rate once compute-bound.",
        "The rows span vLLM 0.6.3 (the Qwen2.5 speed page) to 0.23 (2026 sweeps); one set of constants",
        "for all of them is part of the error. With the A100 left out, 21 of the 23 one-stream rows are",
        "predicted from 10 rows of newer vLLM releases on three other GPUs, none of them quantized (the",
        "8- and 4-bit shares fall back to an unfitted 0.75): that is the GPU-left-out figure. The largest",
        "error, Qwen2.5-72B GPTQ-Int4 on one A100 at 16.47 t/s, is slower than the same checkpoint on two",
        "A100s by 2.8× — a kernel the source does not name, not the bytes. Batched TPOT includes the",
        "prefill chunks vLLM mixes into decode steps, which the model does not price.",
        "A mixture of experts adds its routing to each step, per MoE layer "
        f"{constants.moe_layer_seconds * 1e6:.1f} µs and {constants.moe_token_seconds * 1e6:.2f} µs a routed token,",
        "fitted on gpt-oss's rows with the dense constants fixed. Those rows disagree by backend more than any",
        "constant can follow: the first gpt-oss build on an A100 (Marlin MoE, the build's own 'mxfp4 is not fully",
        "optimized yet' warning) runs at half the bytes' pace, one MI300X under v0.17's default Triton MoE at",
        "0.6 of it, while 8 × MI300X with AITER's kernels and the H200 rows land within 24 %. The dense rows",
        "carry no routing term (without these two constants the batched gpt-oss rows read 65–200 % fast).",
        "Time to first token under load: vLLM V1's scheduler runs the decodes first and fills the rest of",
        "each step's max_num_batched_tokens with prompt chunks. A prompt among N − 1 decoding sessions waits",
        "half a step, then takes one mixed step per chunk; N equal prompts arriving together (a benchmark at",
        "max concurrency N with equal lengths runs in such waves) get theirs as the chunks reach them. Plus",
        f"{constants.request_seconds * 1e3:.1f} ms a request for the server itself, taken from the 1-session",
        "burst row; the other load rows fit nothing.",
        "",
        "| row | measured | estimate | error | GPU out | model out | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = {
            "kv_cache": "tokens" if r.raw.get("runtime") == "sglang" else "GiB",
            "ttft": "s",
            "ttft_load": "s",
            "ttft_burst": "s",
        }.get(r.metric, "t/s")
        cells = []
        for name in ("GPU out", "model out"):
            p = fig["predictions"][name].get(r.index)
            cells.append(f"{(p / r.measured - 1) * 100:+.1f} %" if p else "—")
        error = r.error()
        lines.append(
            f"| {r.label} | {r.measured:.2f} {unit} | {r.estimate:.2f} | "
            f"{'—' if error is None else f'{error * 100:+.1f} %'} | {cells[0]} | {cells[1]} | [source]({r.raw['source']}) |"
        )
    return lines


def fitted_fields(constants: VllmConstants) -> dict:
    return {
        "bandwidth_efficiency": dict(constants.bandwidth_efficiency),
        "layer_seconds": constants.layer_seconds,
        "allreduce_seconds": constants.allreduce_seconds,
        "matmul_efficiency": constants.matmul_efficiency,
        "moe_layer_seconds": constants.moe_layer_seconds,
        "moe_token_seconds": constants.moe_token_seconds,
    }
