"""What the runtimes on this box actually reach (issue 15): llama-server (`--metrics`), vLLM and SGLang
expose Prometheus metrics; the agent reads them, names the model each serves, and records the decode
tokens/s of one stream, to show beside fitagent's estimate and to recalibrate this box's speeds.

- llama-server: `llamacpp:tokens_predicted_total` / `llamacpp:tokens_predicted_seconds_total` (the
  time spent generating, summed over requests: one stream's pace); the model from `/v1/models`.
- vLLM: the mean of `vllm:time_per_output_token_seconds` (`vllm:inter_token_latency_seconds` in
  newer releases) per `model_name`.
- SGLang: the mean of `sglang:time_per_output_token_seconds` where it has it, else
  `sglang:gen_throughput` ÷ `sglang:num_running_reqs`.

Readings are kept in the cache dir (runtime_measurements.json, written atomically); the box's factor
is the median of measured ÷ estimated over the readings fitagent can estimate.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..catalog.errors import UsageError
from ..catalog.lookup import model_key
from ..catalog.types import Catalog, Model
from .localmodels.scan import plain_name

# Where each runtime listens unless told otherwise (llama-server --port 8080, vllm serve --port 8000,
# sglang.launch_server --port 30000).
DEFAULT_ENDPOINTS = (
    ("llama.cpp", "http://127.0.0.1:8080"),
    ("vllm", "http://127.0.0.1:8000"),
    ("sglang", "http://127.0.0.1:30000"),
)
TIMEOUT_S = 2.0
MIN_TOKENS = 64  # fewer generated tokens say little about a runtime's pace
STORE = "runtime_measurements.json"


@dataclass(frozen=True)
class Reading:
    runtime: str
    url: str
    served_name: str  # what the runtime calls the model (a GGUF path, an HF id, an alias)
    decode_tokens_per_s: float  # one stream's, from the runtime's own counters
    tokens: float  # generated tokens behind the figure
    observed_at: float
    model: str | None = None  # the catalog model it is
    quant: str | None = None  # the catalog quantization it is, when the name says
    estimate_tokens_per_s: float | None = None  # fitagent's for this box

    @property
    def ratio(self) -> float | None:
        return self.decode_tokens_per_s / self.estimate_tokens_per_s if self.estimate_tokens_per_s else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return out


# ------------------------------------------------------------------------------------ parsing


def _families(text: str) -> dict[str, list]:
    """The samples of a Prometheus text exposition by sample name (with _sum/_count/_total kept)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.setdefault(s.name, []).append(s)
    except ValueError as exc:
        raise ValueError(f"not Prometheus text ({exc})") from None
    return samples


def _one(samples: dict[str, list], name: str, labels: dict | None = None) -> float | None:
    for s in samples.get(name, ()):
        if labels is None or all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


def read_llama_cpp(metrics: str, models: dict | None, url: str, now: float) -> list[Reading]:
    samples = _families(metrics)
    tokens = _one(samples, "llamacpp:tokens_predicted_total")
    seconds = _one(samples, "llamacpp:tokens_predicted_seconds_total")
    if tokens is None or not seconds or tokens < MIN_TOKENS:
        return []
    names = [m.get("id") for m in (models or {}).get("data", []) if isinstance(m, dict) and m.get("id")]
    return [Reading("llama.cpp", url, str(names[0]) if names else "unknown", tokens / seconds, tokens, now)]


def _histogram_mean(samples: dict[str, list], base: str, labels: dict) -> tuple[float, float] | None:
    total = _one(samples, f"{base}_sum", labels)
    count = _one(samples, f"{base}_count", labels)
    if total is None or not count:
        return None
    return total / count, count


def read_vllm(metrics: str, url: str, now: float) -> list[Reading]:
    samples = _families(metrics)
    out: list[Reading] = []
    for base in ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"):
        for s in samples.get(f"{base}_count", ()):
            name = s.labels.get("model_name", "unknown")
            mean = _histogram_mean(samples, base, {"model_name": name} if "model_name" in s.labels else {})
            if mean and mean[0] > 0 and mean[1] >= MIN_TOKENS and not any(r.served_name == name for r in out):
                out.append(Reading("vllm", url, name, 1 / mean[0], mean[1], now))
    return out


def read_sglang(metrics: str, url: str, now: float) -> list[Reading]:
    samples = _families(metrics)
    out: list[Reading] = []
    for s in samples.get("sglang:time_per_output_token_seconds_count", ()):
        name = s.labels.get("model_name", "unknown")
        mean = _histogram_mean(samples, "sglang:time_per_output_token_seconds", {"model_name": name})
        if mean and mean[0] > 0 and mean[1] >= MIN_TOKENS:
            out.append(Reading("sglang", url, name, 1 / mean[0], mean[1], now))
    if out:
        return out
    for s in samples.get("sglang:gen_throughput", ()):
        name = s.labels.get("model_name", "unknown")
        running = _one(samples, "sglang:num_running_reqs", {"model_name": name}) or 0
        generated = _one(samples, "sglang:generation_tokens_total", {"model_name": name}) or MIN_TOKENS
        if running >= 1 and s.value > 0:
            out.append(Reading("sglang", url, name, float(s.value) / running, generated, now))
    return out


# ------------------------------------------------------------------------------------ naming

_GGUF_QUANT = re.compile(r"(?i)(?<![A-Za-z0-9])(I?Q[1-8](?:_[A-Z0-9]+)*|BF16|F16|F32|MXFP4)(?=[-._]|$)")
_CHECKPOINT_QUANT = (
    (re.compile(r"(?i)awq"), "AWQ-INT4"),
    (re.compile(r"(?i)gptq.?int8|w8a16"), "GPTQ-INT8"),
    (re.compile(r"(?i)gptq|w4a16"), "GPTQ-INT4"),
    (re.compile(r"(?i)fp8"), "FP8"),
    (re.compile(r"(?i)bnb|nf4"), "BNB-NF4"),
)


# what a quantized checkpoint's repo adds to the model's name
_CHECKPOINT_TAIL = re.compile(r"(?i)([-_.](awq|gptq|int[48]|w[48]a16|fp8|dynamic|bnb|4bit|8bit|nf4|quantized))+$")


def name_model(reading: Reading, catalog: Catalog) -> tuple[Model | None, str | None]:
    """The catalog model and quantization a served name is: the file or repo name without its
    quantization tail, matched loosely to the catalog's ids and aliases."""
    base = os.path.basename(reading.served_name.rstrip("/"))
    stem = base[:-5] if base.lower().endswith(".gguf") else base
    quant = None
    if reading.runtime == "llama.cpp":
        found = _GGUF_QUANT.findall(stem)
        quant = found[-1].upper() if found else None
    else:
        quant = next((q for pattern, q in _CHECKPOINT_QUANT if pattern.search(reading.served_name)), "BF16")
    bare = _CHECKPOINT_TAIL.sub("", plain_name(stem))
    wanted = {model_key(bare), model_key(reading.served_name)}
    wanted |= {k[4:] for k in wanted if k.startswith("meta")}  # "Meta-Llama-3.1-8B" is Llama-3.1-8B
    for known in catalog.models:
        if model_key(known.id) in wanted or model_key(known.alias) in wanted:
            try:
                return known, catalog.quant(quant).name if quant else None
            except UsageError:
                return known, None
    return None, None


# ------------------------------------------------------------------------------------ scraping


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (http(s) URLs from config)
        return response.read(8 * 1024 * 1024).decode("utf-8", "replace")


def scrape(runtime: str, url: str, now: float | None = None) -> tuple[list[Reading], str | None]:
    """(readings, why none): one runtime's endpoint; a runtime that is not there is not an error."""
    now = time.time() if now is None else now
    base = url.rstrip("/")
    try:
        metrics = _get(base + "/metrics")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [], f"{runtime} at {base}: {getattr(exc, 'reason', exc)}"
    try:
        if runtime == "llama.cpp":
            try:
                models = json.loads(_get(base + "/v1/models"))
            except (urllib.error.URLError, OSError, ValueError):
                models = None
            return read_llama_cpp(metrics, models, base, now), None
        if runtime == "vllm":
            return read_vllm(metrics, base, now), None
        return read_sglang(metrics, base, now), None
    except ValueError as exc:
        return [], f"{runtime} at {base}: /metrics is {exc}"


def endpoints(configured: Sequence[Mapping[str, str]] | None) -> list[tuple[str, str]]:
    """The configured runtimes (`runtimes: [{runtime, url}]`; [] for none), else the default local ports."""
    if configured is not None:
        return [(c["runtime"], c["url"]) for c in configured]
    return list(DEFAULT_ENDPOINTS)


# ------------------------------------------------------------------------------------ the store


def load_store(cache: str) -> list[dict]:
    try:
        with open(os.path.join(cache, STORE), encoding="utf-8") as fh:
            data = json.load(fh)
        return [r for r in data.get("readings", []) if isinstance(r, dict)]
    except (OSError, ValueError, AttributeError):
        return []


def save_store(cache: str, readings: list[Reading], keep: int = 200) -> None:
    """The latest reading of each (runtime, url, model) first, older ones after, at most `keep`."""
    os.makedirs(cache, exist_ok=True)
    old = load_store(cache)
    fresh = [r.to_dict() for r in readings]
    seen = {(r["runtime"], r["url"], r["served_name"]) for r in fresh}
    merged = fresh + [r for r in old if (r.get("runtime"), r.get("url"), r.get("served_name")) not in seen]
    path = os.path.join(cache, STORE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"readings": merged[:keep]}, fh, indent=1)
    os.replace(tmp, path)


def box_factor(readings: list[dict], runtime: str = "llama.cpp") -> tuple[float, int] | None:
    """This box's measured ÷ estimated decode speed for a runtime: the median over its readings."""
    ratios = [r["ratio"] for r in readings if r.get("runtime") == runtime and r.get("ratio")]
    return (round(statistics.median(ratios), 3), len(ratios)) if ratios else None


# ------------------------------------------------------------------------------------ measuring


def estimate_reading(reading: Reading, catalog: Catalog, budget) -> Reading:
    """The reading named after its catalog model and quantization, with fitagent's estimate of one
    stream on this box beside it (none when the name says neither, or nothing runs)."""
    from dataclasses import replace

    model, quant = name_model(reading, catalog)
    if model is None:
        return reading
    named = replace(reading, model=model.id, quant=quant)
    if quant is None or not budget.devices and reading.runtime != "llama.cpp":
        return named
    try:
        if reading.runtime == "llama.cpp":
            from ..estimator.estimate import estimate
            from ..estimator.results import Options

            context = min(8192, model.max_context)
            e = estimate(model, catalog.quant(quant), budget, catalog, Options(context=context, detail=False))
            value = e.decode_tokens_per_s
        else:
            from ..estimator.vllm import ServeSettings, serve_estimate

            settings = ServeSettings(max_model_len=min(8192, model.max_context))
            value = serve_estimate(model, catalog.quant(quant), budget.devices, catalog, settings).decode_tokens_per_s
    except UsageError:
        return named
    return replace(named, estimate_tokens_per_s=None if value is None else round(value, 2))


def measure(where: list[tuple[str, str]], catalog: Catalog, budget) -> tuple[list[Reading], list[str]]:
    """Every reachable runtime's readings, named and estimated; the unreachable ones say why."""
    readings, problems = [], []
    for runtime, url in where:
        found, why = scrape(runtime, url)
        if why:
            problems.append(why)
        readings += [estimate_reading(r, catalog, budget) for r in found]
    return readings, problems


def recalibrated(result, stored: list[dict], runtime: str = "llama.cpp"):
    """An estimate for this box with its measured runs taken in: decode speeds × the box's factor
    for the runtime (the median of measured ÷ estimated), and the measured speed of the same model
    and quantization beside it when a runtime here served it."""
    from dataclasses import replace

    notes = []
    same = [r for r in stored if r.get("runtime") == runtime and r.get("model") == result.model]
    same = [r for r in same if r.get("quant") == result.quant]
    if same:
        r = same[0]
        ago = max(0, int(time.time() - float(r.get("observed_at", 0))))
        notes.append(
            f"measured here: {r['decode_tokens_per_s']:.1f} tokens/s ({runtime} at {r['url']}, "
            f"{ago // 60} min ago, over {int(r['tokens']):,} tokens)"
        )
    factor = box_factor(stored, runtime)
    scaled = {}
    if factor and result.decode_tokens_per_s:
        ratio, count = factor
        scale = lambda v: None if v is None else v * ratio  # noqa: E731
        low_high = result.decode_tokens_per_s_range
        scaled = {
            "decode_tokens_per_s": scale(result.decode_tokens_per_s),
            "decode_tokens_per_s_at_context": scale(result.decode_tokens_per_s_at_context),
            "decode_tokens_per_s_range": None if low_high is None else (low_high[0] * ratio, low_high[1] * ratio),
        }
        notes.append(
            f"recalibrated for this box: decode × {ratio:.2f}, the median of measured ÷ estimated over {count} "
            f"model(s) {runtime} served here (`fitagent runtimes`)"
        )
    if not notes:
        return result
    return replace(result, notes=result.notes + tuple(notes), **scaled)
