"""Query parameters of the HTTP API: parsed and checked, each error naming the parameter and what is allowed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..catalog.errors import UsageError
from ..estimator.quality import USE_CASES
from ..estimator.results import MAX_CONTEXT
from .values import answer_seconds, tokens

KV_QUANTS = ("f16", "q8_0", "q4_0")


class ParamError(UsageError):
    """A bad query parameter: HTTP 400, with the parameter's name and the allowed values."""


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number of seconds") from None
    if not 0 <= value <= 60:
        raise ValueError(f"{value:g} is out of range")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"'{text}' is not one of them")
        return text

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None
    if not 0 < value <= 1:
        raise ValueError(f"{value} is not in (0, 1]")
    return value


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"'{text}' is not true or false")


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("it is empty")
    return text.strip()


# /v1/estimate's query: the view parses these and the OpenAPI document lists them
ESTIMATE_PARAMS = (
    "model",
    "quant",
    "context",
    "use_case",
    "kv_quant",
    "gpu_layers",
    "prompt_tokens",
    "output_tokens",
    "runtime",
    "concurrency",
    "gpu_memory_utilization",
    "cache_mode",
)

RUNTIMES = ("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3")

# name -> (parser, what is allowed, in words)
PARAMS: Mapping[str, tuple[Callable[[str], Any], str]] = {
    "use_case": (_choice(USE_CASES), ", ".join(USE_CASES)),
    "context": (tokens, f"a positive number of tokens up to {MAX_CONTEXT:,}, e.g. 8192 or 32k"),
    "top": (_whole(1, 1000), "a whole number from 1 to 1000"),
    "model": (_text, "a catalog model id or alias (see /v1/models)"),
    "quant": (_text, "a quantization name such as Q4_K_M (see `fitagent catalog quants`)"),
    "kv_quant": (_choice(KV_QUANTS), ", ".join(KV_QUANTS)),
    "gpu_layers": (_whole(0, 100_000), "a whole number of layers, 0 or more"),
    "prompt_tokens": (
        lambda t: tokens(t, allow_zero=True),
        f"a number of tokens from 0 to {MAX_CONTEXT:,}, e.g. 512 or 4k",
    ),
    "output_tokens": (tokens, f"a positive number of tokens up to {MAX_CONTEXT:,}, e.g. 256 or 1k"),
    "since": (_whole(0, 2**62), "an event id, 0 or more"),
    "limit": (_whole(1, 1_000_000), "a whole number, 1 or more"),
    "wait": (_seconds, "seconds to wait for the scan, 0 to 60"),
    "max_latency_s": (answer_seconds, "seconds for the whole answer, more than 0 and at most 86400"),
    "all_quants": (_flag, "true or false"),
    "installed": (_flag, "true or false"),
    "explain": (_text, "a catalog model id or alias whose place in the ranking to explain"),
    "runtime": (_choice(RUNTIMES), ", ".join(RUNTIMES)),
    "concurrency": (_whole(1, 4096), "a whole number of sessions from 1 to 4096 (runtime=vllm or sglang)"),
    "gpu_memory_utilization": (
        _share,
        "a share of each GPU's memory, more than 0 and at most 1 (runtime=vllm or sglang)",
    ),
    "cache_mode": (_text, "FP16, Q8, Q6 or Q4, or ExLlamaV3's K,V bits such as 4,6 (runtime=exllamav2 or exllamav3)"),
}


def parse_query(args: Mapping[str, str], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The allowed parameters that were given, parsed; unknown or bad ones raise ParamError."""
    for name in args:
        if name not in allowed:
            raise ParamError(f"unknown parameter '{name}' (allowed: {', '.join(allowed) or 'none'})")
    for name in required:
        if name not in args:
            raise ParamError(f"{name}: missing (allowed: {PARAMS[name][1]})")
    values = {}
    for name in allowed:
        if name not in args:
            continue
        parse, allowed_words = PARAMS[name]
        text = args[name]
        try:
            values[name] = parse(text)
        except ValueError as exc:
            raise ParamError(f"{name}: {exc} (allowed: {allowed_words})") from None
    return values
