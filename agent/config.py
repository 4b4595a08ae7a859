"""The agent's configuration: one schema with defaults, read from YAML, overridden by the environment.

Precedence, lowest first: the defaults below, the YAML file, ``FITAGENT_<KEY>`` environment
variables, command-line flags. Every problem is one ``ConfigError`` line naming the key and
where it came from (file or variable), so ``fitagent serve`` can print it and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, overload

from ..catalog.errors import DataError
from ..estimator.quality import USE_CASES

ENV_PREFIX = "FITAGENT_"
CONFIG_ENV = "FITAGENT_CONFIG"  # the file itself, not a key
DEFAULT_PORT = 8765
SYSTEM_CONFIG = Path("/etc/fitagent/fitagent.yaml")


class ConfigError(DataError):
    """A bad configuration value; exit code 2, one line."""


@dataclass(frozen=True)
class WatchedModel:
    model: str
    quant: str = "Q4_K_M"
    context: int = 8192


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int = 4
    rescan_interval_s: float = 30.0
    token: str | None = None
    token_file: str | None = None
    contexts: tuple[int, ...] = (4096, 8192, 16384, 32768)
    use_cases: tuple[str, ...] = USE_CASES
    default_context: int = 8192
    default_use_case: str = "general"
    top: int = 10
    events_max: int = 500
    recompute_min_change_bytes: int = 64 * 1024 * 1024
    hardware: str | None = None
    watch_models: tuple[WatchedModel, ...] = ()
    # /metrics: at most this many (model, quant, context) entries get model series (watch list
    # first, then the default key's frontiers); 4 series each, so 50 keeps a host under 300
    metrics_models_max: int = 50
    # the model whose longest fitting context /metrics reports (null: no such series)
    metrics_reference_model: str | None = "meta-llama/Llama-3.1-8B-Instruct"
    metrics_reference_quant: str = "Q4_K_M"
    # what recommendations leave out unless asked for all (`--all-quants`, `all_quants=true`):
    # quantizations that cost more than this share of the benchmark score, and candidates whose
    # quality for the use case is under its floor
    max_quant_loss: float = 0.10
    quality_floor: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(USE_CASES, 50.0))
    # measure host RAM bandwidth (about 1 s) on the first scan when nothing else tells it; the
    # figure is remembered in the cache directory, so later starts read it instead
    measure_bandwidth_at_start: bool = False
    # Node Feature Discovery: after each good scan, write what fits now as NFD labels to this file
    # (e.g. /etc/kubernetes/node-feature-discovery/features.d/fitagent); null = don't
    nfd_features_file: str | None = None
    # folders of model files (GGUF files, safetensors checkpoints) scanned besides the usual stores
    # (Hugging Face cache, Ollama, LM Studio, llama.cpp's cache): `fitagent models --local`, installed
    model_dirs: tuple[str, ...] = ()
    # runtimes whose Prometheus metrics each scan reads (agent/runtimes.py): [{runtime: llama.cpp |
    # vllm | sglang, url: http://…}]; null = llama-server, vLLM and SGLang on their default local
    # ports; [] = none
    runtimes: tuple[Mapping[str, str], ...] | None = None
    log_level: str = "info"
    source: str = field(default="defaults", compare=False)  # where it was read from, for messages

    def read_token(self) -> str | None:
        """The rescan token: inline, or the first line of token_file (read at each reload)."""
        if self.token:
            return self.token
        if not self.token_file:
            return None
        from ..catalog.errors import UsageError
        from .files import read_text

        try:
            text = read_text(self.token_file, f"{self.source}: token_file", limit=4096).strip()
        except FileNotFoundError:
            raise ConfigError(f"{self.source}: token_file {self.token_file}: no such file") from None
        except UsageError as exc:
            raise ConfigError(str(exc)) from None
        if not text:
            raise ConfigError(f"{self.source}: token_file {self.token_file} is empty")
        return text.splitlines()[0].strip()

    def floor(self, use_case: str, all_quants: bool = False):
        """The recommendation floor for a use case (estimator.recommend.Floor)."""
        from ..estimator.recommend import Floor

        return Floor(self.max_quant_loss, float(self.quality_floor.get(use_case, 0.0)), all_quants)

    @property
    def precomputed_contexts(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.contexts) | {self.default_context}))

    @property
    def precomputed_use_cases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.default_use_case, *self.use_cases)))


LOG_LEVELS = ("debug", "info", "warning", "error")
KNOWN_KEYS = tuple(f.name for f in fields(Config) if f.name != "source")


# ---------------------------------------------------------------- value checks

SECRET_KEYS = ("token",)  # never formatted into a message: those reach the journal, /v1/events and the page


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message may quote it: bounded, one line, printable (a 331-byte YAML alias bomb
    expands to gigabytes when printed whole)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxdict = short.maxtuple = short.maxset = 6
    short.maxlevel = 3
    text = short.repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit * 2 else text[: limit * 2] + "…"


def _got(key: str, value: Any) -> str:
    if key.split(".")[0].split("[")[0] in SECRET_KEYS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return "a number (quote it in YAML so it is read as a string)"
        return f"a {type(value).__name__}"
    return shown(value)


def _int(where: str, key: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be a whole number, got {_got(key, value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{where}: {key} must be {bounds}, got {value}")
    return value


def _number(where: str, key: str, value: Any, low: float) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a finite number, got {_got(key, value)}")
    if value < low:
        raise ConfigError(f"{where}: {key} must be at least {low}, got {value}")
    return float(value)


@overload
def _str(where: str, key: str, value: Any, optional: Literal[False] = ...) -> str: ...
@overload
def _str(where: str, key: str, value: Any, optional: bool) -> str | None: ...
def _str(where: str, key: str, value: Any, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {_got(key, value)}")
    return value


def _choice(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(allowed)}, got {_got(key, value)}")
    return value


def _list(where: str, key: str, value: Any) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list, got {_got(key, value)}")
    return value


def _runtimes(where: str, value: Any) -> tuple[dict[str, str], ...]:
    out = []
    for i, item in enumerate(_list(where, "runtimes", value)):
        if not isinstance(item, dict) or set(item) != {"runtime", "url"}:
            raise ConfigError(f"{where}: runtimes[{i}] must be {{runtime: …, url: …}}, got {_got('runtimes', item)}")
        runtime = _choice(where, f"runtimes[{i}].runtime", item["runtime"], ("llama.cpp", "vllm", "sglang"))
        url = _str(where, f"runtimes[{i}].url", item["url"])
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: runtimes[{i}].url must start with http:// or https://, got {shown(url)}")
        out.append({"runtime": runtime, "url": url})
    return tuple(out)


def _watch(where: str, value: Any) -> tuple[WatchedModel, ...]:
    out = []
    for i, item in enumerate(_list(where, "watch_models", value)):
        key = f"watch_models[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping with model, quant and context, got {shown(item)}")
        unknown = sorted(set(item) - {"model", "quant", "context"})
        if unknown:
            raise ConfigError(f"{where}: {key}.{unknown[0]} is not a known key (allowed: model, quant, context)")
        out.append(
            WatchedModel(
                model=_str(where, f"{key}.model", item.get("model")),
                quant=_str(where, f"{key}.quant", item.get("quant", "Q4_K_M")),
                context=_int(where, f"{key}.context", item.get("context", 8192), 1, 10_000_000),
            )
        )
    return tuple(out)


def _check_value(where: str, key: str, value: Any) -> Any:
    if key == "host":
        return _str(where, key, value)
    if key == "port":
        return _int(where, key, value, 0, 65535)
    if key == "threads":
        return _int(where, key, value, 1, 64)
    if key == "rescan_interval_s":
        return _number(where, key, value, 1.0)
    if key in ("token", "token_file", "hardware", "metrics_reference_model"):
        return _str(where, key, value, optional=True)
    if key == "metrics_reference_quant":
        return _str(where, key, value)
    if key == "metrics_models_max":
        return _int(where, key, value, 0, 10_000)
    if key == "contexts":
        items = _list(where, key, value)
        if not items:
            raise ConfigError(f"{where}: contexts must list at least one context length")
        return tuple(_int(where, f"contexts[{i}]", v, 1, 10_000_000) for i, v in enumerate(items))
    if key == "use_cases":
        items = _list(where, key, value)
        if not items:
            raise ConfigError(f"{where}: use_cases must list at least one of {', '.join(USE_CASES)}")
        return tuple(_choice(where, f"use_cases[{i}]", v, USE_CASES) for i, v in enumerate(items))
    if key == "default_context":
        return _int(where, key, value, 1, 10_000_000)
    if key == "default_use_case":
        return _choice(where, key, value, USE_CASES)
    if key == "top":
        return _int(where, key, value, 1, 1000)
    if key == "events_max":
        return _int(where, key, value, 1, 1_000_000)
    if key == "recompute_min_change_bytes":
        return _int(where, key, value, 0)
    if key == "watch_models":
        return _watch(where, value)
    if key == "log_level":
        return _choice(where, key, value, LOG_LEVELS)
    if key == "max_quant_loss":
        value = _number(where, key, value, 0.0)
        if value > 1:
            raise ConfigError(f"{where}: {key} is a share of the score, between 0 and 1 (0.10 = 10 %), got {value}")
        return value
    if key == "quality_floor":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return dict.fromkeys(USE_CASES, _number(where, key, value, 0.0))
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a number or a mapping of use case to number, got {shown(value)}")
        floors = dict.fromkeys(USE_CASES, 50.0)
        for use_case, number in value.items():
            if use_case not in USE_CASES:
                raise ConfigError(f"{where}: {key}.{use_case} is not a use case (choose {', '.join(USE_CASES)})")
            floors[use_case] = _number(where, f"{key}.{use_case}", number, 0.0)
        return floors
    if key == "nfd_features_file":
        value = _str(where, key, value, optional=True)
        if value is not None:
            if not os.path.isabs(value):
                raise ConfigError(
                    f"{where}: {key} must be an absolute path (NFD reads "
                    f"/etc/kubernetes/node-feature-discovery/features.d/), got {shown(value)}"
                )
            if os.path.basename(value).startswith(".") or value.endswith("/"):
                raise ConfigError(
                    f"{where}: {key} must name a file that does not start with a dot (NFD skips "
                    f"dot files), got {shown(value)}"
                )
        return value
    if key == "model_dirs":
        return tuple(_str(where, f"model_dirs[{i}]", v) for i, v in enumerate(_list(where, key, value)))
    if key == "runtimes":
        return None if value is None else _runtimes(where, value)
    if key == "measure_bandwidth_at_start":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {shown(value)}")
        return value
    raise ConfigError(f"{where}: '{key}' is not a known key (known: {', '.join(KNOWN_KEYS)})")


def config_from_mapping(data: Any, where: str, base: Config = Config()) -> Config:
    if data is None:
        return replace(base, source=where)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values at the top level")
    values = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in KNOWN_KEYS:
            raise ConfigError(f"{where}: {shown(key)} is not a known key (known: {', '.join(KNOWN_KEYS)})")
        values[key] = _check_value(where, key, value)
    return _consistent(replace(base, **values, source=where))


def _consistent(config: Config) -> Config:
    if config.token and config.token_file:
        raise ConfigError(f"{config.source}: give token or token_file, not both")
    return config


# ---------------------------------------------------------------- environment


def _env_value(name: str, key: str, text: str) -> Any:
    """Turns a variable's text into the type the key wants; the check is _check_value's."""
    default = getattr(Config(), key)
    if key in ("watch_models", "runtimes"):
        raise ConfigError(f"{name}: {key} can only be set in the config file")
    if key in ("contexts", "use_cases", "model_dirs"):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return [_env_scalar(name, key, p, int if key == "contexts" else str) for p in parts]
    if key == "quality_floor":
        return _env_scalar(name, key, text, float)  # one floor for every use case
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return _env_scalar(name, key, text, int)
    if isinstance(default, float):
        return _env_scalar(name, key, text, float)
    return text or None


def _env_scalar(name: str, key: str, text: str, kind):
    try:
        return kind(text.replace("_", "")) if kind is not str else text
    except ValueError:
        raise ConfigError(
            f"{name}: {key} must be {'a whole number' if kind is int else 'a number'}, got '{text}'"
        ) from None


def apply_environment(config: Config, environ: Mapping[str, str]) -> Config:
    """FITAGENT_<KEY> for each config key. Other FITAGENT_* variables belong to other parts
    (FITAGENT_URL, FITAGENT_DEBUG, FITAGENT_CACHE_DIR, …) and are left alone."""
    values = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in KNOWN_KEYS:
            continue
        values[key] = _check_value(name, key, _env_value(name, key, text))
    if not values:
        return config
    return _consistent(replace(config, **values))


# ---------------------------------------------------------------- files


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """FITAGENT_CONFIG, else the user's, else the system's file — the first that exists."""
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    xdg = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    for candidate in (Path(xdg) / "fitagent" / "fitagent.yaml", SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def read_config_file(path: str | Path) -> Config:
    import yaml

    from ..catalog.errors import UsageError
    from .files import read_text

    path = Path(path)
    try:
        text = read_text(path, "config")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (config/fitagent.yaml in the source is a documented example)"
        ) from None
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(
            f"{path}:{line} not valid YAML ({shown(getattr(exc, 'problem', None) or exc, 120)})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    return config_from_mapping(data, str(path))


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] = os.environ, overrides: Mapping[str, Any] | None = None
) -> Config:
    """The effective configuration: file (given or default), then environment, then overrides (flags)."""
    path = path or default_config_path(environ)
    config = read_config_file(path) if path else Config()
    config = apply_environment(config, environ)
    if overrides:
        checked = {k: _check_value("command line", k, v) for k, v in overrides.items() if v is not None}
        config = _consistent(replace(config, **checked))
    config.read_token()  # a missing token file is a start-up error, not a 401 later
    return config
