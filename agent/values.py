"""User values as people write them — token counts, sizes, bandwidths — parsed one way for the CLI
and the HTTP API. Each parser takes text and returns a number or raises ValueError whose message
says what was wrong and what is accepted; the callers add the flag or parameter name."""

from __future__ import annotations

import math
import re

from ..estimator.results import MAX_CONTEXT as MAX_TOKENS

_TOKEN_SCALE = {"": 1, "k": 1024, "m": 1024 * 1024}
_NUMBER = r"(\d+(?:[.,_]\d+)*(?:\.\d+)?|\.\d+)"


def _number(text: str) -> float:
    value = float(text.replace("_", "").replace(",", ""))
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def tokens(text: str, allow_zero: bool = False) -> int:
    """A count of tokens: 8192, 8k, 32K, 1m, 1.5k (k = 1024, as context sizes are counted)."""
    raw = str(text).strip().lower()
    match = re.fullmatch(_NUMBER + r"\s*([km]?)", raw)
    if not match and re.fullmatch(r"-\s*" + _NUMBER + r"\s*[km]?", raw):
        raise ValueError(f"must be a positive number of tokens, got {text}")
    if not match:
        raise ValueError(f"'{text}' is not a number of tokens (e.g. 8192 or 8k)")
    value = int(_number(match[1]) * _TOKEN_SCALE[match[2]])
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"must be a positive number of tokens, got {value}")
    if value > MAX_TOKENS:
        raise ValueError(f"{value:,} tokens is beyond any model's window (at most {MAX_TOKENS:,})")
    return value


_SIZE_UNITS = {
    "": 10**9,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def size_bytes(text: str) -> int:
    """A memory size: 64GB, 64G, 96GiB, 512MiB, 1.5TB; a bare number is GB (10⁹ bytes)."""
    raw = str(text).strip().lower().replace(" ", "")
    match = re.fullmatch(_NUMBER + r"([a-z]*)", raw)
    if not match or match[2] not in _SIZE_UNITS:
        raise ValueError(f"'{text}' is not a size (e.g. 64GB, 96GiB or 512MiB; a bare number is GB)")
    value = int(_number(match[1]) * _SIZE_UNITS[match[2]])
    if not 0 < value <= 10**15:
        raise ValueError(f"'{text}' is not a size a machine has (more than 0, at most a petabyte)")
    return value


def bandwidth_bytes_per_s(text: str) -> float:
    """A memory bandwidth: 89.6 (GB/s), 89.6GB/s, 1TB/s, or bytes/s written out (89.6e9)."""
    raw = str(text).strip().lower().replace(" ", "").removesuffix("/s").removesuffix("ps")
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:e\d+)?)([kmgt]?b?)", raw)
    if not match:
        raise ValueError(f"'{text}' is not a bandwidth (e.g. 89.6 for GB/s, 89.6GB/s or 89.6e9 bytes/s)")
    value = _number(match[1])
    unit = match[2].rstrip("b")
    if unit:
        value *= {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[unit]
    elif value < 1e6:
        value *= 1e9  # a bare small number is GB/s, as people quote RAM bandwidth
    if not 1e6 <= value <= 100e12:
        raise ValueError(f"'{text}' is not a plausible memory bandwidth (1 MB/s to 100 TB/s)")
    return value


def count(text: str, low: int = 0, high: int = 1_000_000) -> int:
    """A whole number in [low, high] (layers, cores, GPUs)."""
    try:
        value = int(str(text).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"'{text}' is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high:,}, got {value}")
    return value


def answer_seconds(text: str) -> float:
    """A time to wait for a whole answer: more than 0 seconds, at most a day."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise ValueError(f"must be more than 0 and at most 86400 seconds, got {text}")
    return value


def tokens_per_s(text: str) -> float:
    """A decode speed to reach: a positive number of tokens per second."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a number of tokens/s") from None
    if not 0 < value < 1e6:
        raise ValueError(f"must be a positive number of tokens/s, got {text}")
    return value
