"""The one best model, quantization and GPU layers for a launcher, on one line.

Asks the running agent (`fitagent serve`) when one answers, else computes it here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

from ...estimator.quality import USE_CASES
from ..values import answer_seconds
from .common import (
    add_hardware,
    add_json,
    argument,
    context_tokens,
    host_overrides,
    positive_int,
    print_json,
    prompt_tokens,
)

FORMATS = ("line", "llama.cpp", "ollama", "vllm", "sglang")
AGENT_TIMEOUT_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--use-case", default=None, choices=USE_CASES, help="weights the quality score (default general)"
    )
    parser.add_argument(
        "--context", type=context_tokens, default=None, metavar="N", help="context length in tokens (default 8192)"
    )
    parser.add_argument(
        "--max-latency",
        type=argument(answer_seconds),
        metavar="S",
        help="the best model whose whole answer arrives within S seconds (of --output-tokens after --prompt-tokens)",
    )
    parser.add_argument(
        "--output-tokens", type=context_tokens, metavar="N", help="answer length for --max-latency (default 256)"
    )
    parser.add_argument(
        "--prompt-tokens", type=prompt_tokens, metavar="N", help="prompt length for --max-latency (default 512)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="line",
        help="line: 'MODEL QUANT GPU_LAYERS' (GPU layers as llama.cpp's -ngl takes them; with --runtime vllm or "
        "sglang 'MODEL CHECKPOINT TP'); llama.cpp / vllm / sglang: that runtime's flags; ollama: its options as JSON",
    )
    where = parser.add_argument_group("where the answer comes from")
    where.add_argument(
        "--agent", metavar="URL", help="the agent to ask (default $FITAGENT_URL, else host and port from the config)"
    )
    where.add_argument("--local", action="store_true", help="do not ask an agent; probe and compute here")
    where.add_argument("--config", metavar="FILE", help="config file that names the agent's host and port")
    parser.add_argument(
        "--runtime",
        choices=("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3"),
        default="llama.cpp",
        help="vllm / sglang: the best safetensors checkpoint it serves here, as its launch line; mlx: the best "
        "MLX checkpoint on this Apple chip; exllamav2 / exllamav3: the best EXL branch under TabbyAPI "
        "(computed here)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --runtime vllm or sglang: sessions served at once (default 1)",
    )
    add_hardware(parser)
    add_json(parser)


def pick_vllm(args) -> int:
    """The best checkpoint vLLM serves on this box (estimator.vllm.rank_models), computed here: the
    agent answers for llama.cpp."""
    from ...catalog.errors import UsageError
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.vllm import ServeSettings, rank_models
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware

    if args.max_latency is not None:
        raise UsageError(
            f"--max-latency goes with llama.cpp's pick; --runtime {args.runtime} ranks by quality, then speed"
        )
    catalog = load_catalog()
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    if args.runtime == "mlx":
        return _pick_mlx(args, catalog, budget)
    if args.runtime in ("exllamav2", "exllamav3"):
        return _pick_exllama(args, catalog, budget)
    if not budget.devices:
        raise UsageError(
            f"--runtime {args.runtime} needs a GPU; this box has none usable (use --gpu NAME to ask about one)"
        )
    settings = ServeSettings(max_model_len=args.context or 8192, concurrency=args.concurrency, runtime=args.runtime)
    ranked = rank_models(catalog, budget.devices, settings, args.use_case or "general")
    if not ranked:
        raise UsageError(
            f"no catalog checkpoint starts under vLLM here and holds {settings.concurrency} session(s) of "
            f"{settings.max_model_len:,} tokens at a usable speed"
        )
    best = ranked[0]
    if args.json:
        print_json({**best.to_dict(), "source": "local"})
    elif args.format == "line":
        e = best.estimate
        print(f"{e.model} {e.quant} {e.tensor_parallel_size}")
    else:
        print(shlex.join(best.estimate.args))
    return 0


def _latency_query(args) -> dict:
    if args.max_latency is None:
        if args.output_tokens is not None or args.prompt_tokens is not None:
            from ...catalog.errors import UsageError

            raise UsageError("--output-tokens and --prompt-tokens go with --max-latency S")
        return {}
    query = {"max_latency_s": args.max_latency}
    if args.output_tokens is not None:
        query["output_tokens"] = args.output_tokens
    if args.prompt_tokens is not None:
        query["prompt_tokens"] = args.prompt_tokens
    return query


def checked_url(url: str, where: str) -> str:
    """An agent URL as http(s)://host[:port][/prefix]; anything else is a usage error."""
    from ...catalog.errors import UsageError

    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise UsageError(f"{where} {url!r} is not an agent URL (e.g. http://127.0.0.1:8765)")
    return url.strip().rstrip("/")


def agent_url(args) -> str:
    if args.agent:
        return checked_url(args.agent, "--agent")
    if os.environ.get("FITAGENT_URL"):
        return checked_url(os.environ["FITAGENT_URL"], "FITAGENT_URL")
    from ..config import load_config

    config = load_config(args.config, os.environ)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}"


MAX_ANSWER_BYTES = 1 << 20  # a pick is a few kB; more is not our agent


class NoAgent(Exception):
    """No usable answer from the agent; the message says why (for the one line on stderr)."""


def ask_agent(url: str, use_case: str | None, context: int | None, latency: dict | None = None) -> dict:
    """The agent's pick. NoAgent when none answers usably (not there, no scan yet, not fitagent);
    errors the agent reports about the request are raised as the user's."""
    from ...catalog.errors import NotFoundError, UsageError

    query = {k: v for k, v in (("use_case", use_case), ("context", context)) if v is not None}
    query.update(latency or {})
    full = f"{url}/v1/pick" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    try:
        with urllib.request.urlopen(full, timeout=AGENT_TIMEOUT_S) as response:
            body = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read(MAX_ANSWER_BYTES)).get("error", exc.reason)
        except (ValueError, AttributeError, OSError):
            raise NoAgent(f"{url} answered HTTP {exc.code}, not as a fitagent agent") from None
        message = _printable(str(message))
        if exc.code == 400:
            raise UsageError(f"the agent at {url} says: {message}") from None
        if exc.code == 404:
            raise NotFoundError(message) from None
        raise NoAgent(f"the agent at {url} answered HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NoAgent(f"no agent answers at {url} ({_printable(str(reason))})") from None
    return _checked_pick(body, url)


def _printable(text: str, limit: int = 200) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit] + "…"


_FLAG = re.compile(r"^[\w./:=,@+%-]*$")  # what launch flags are made of: no spaces, quotes or control characters


def _checked_pick(body: bytes, url: str) -> dict:
    """The agent's answer, if it has the shape of a pick; a launcher will run what it says."""
    if len(body) > MAX_ANSWER_BYTES:
        raise NoAgent(f"{url} sent more than {MAX_ANSWER_BYTES} bytes: not a fitagent pick")
    try:
        pick = json.loads(body)
        launch = pick["launch"]
        args = [*launch["llama_cpp"]["args"], *(launch["vllm"]["args"] or [])]
        fields = [pick["model"], pick["quant"], *args]
        ok = (
            isinstance(pick["gpu_layers"], int)
            and isinstance(launch["ollama"]["options"]["num_gpu"], int)
            and all(isinstance(f, str) and _FLAG.match(f) for f in fields)
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise NoAgent(f"{url} answered, but not with a fitagent pick")
    return pick


def compute_here(args, use_case: str, context: int, latency: dict | None = None) -> dict:
    from ...catalog.errors import NotFoundError
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.recommend import recommend
    from ...estimator.results import Options
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware
    from ..state import candidate_dict, runtime_devices

    catalog = load_catalog()
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    result = recommend(catalog, budget, Options(context=context, use_case=use_case).check())
    if not result.ranked:
        raise NotFoundError(
            f"nothing in the catalog runs at a usable speed here for use case {use_case} "
            f"at context {context:,} (try a smaller context)"
        )
    best = result.ranked[0]
    if latency:
        from ...estimator.recommend import pick_within

        timed = Options(
            context=context,
            use_case=use_case,
            prompt_tokens=latency.get("prompt_tokens", 512),
            output_tokens=latency.get("output_tokens"),
        ).check()
        best = pick_within(result.ranked, catalog, budget, timed, latency["max_latency_s"])
    return candidate_dict(best, runtime_devices(snapshot, budget))


def format_pick(pick: dict, fmt: str) -> str:
    launch = pick["launch"]
    if fmt == "llama.cpp":
        return shlex.join(launch["llama_cpp"]["args"])
    if fmt == "ollama":
        return json.dumps(launch["ollama"]["options"])
    if fmt == "vllm":
        if not launch["vllm"]["args"]:
            from ...catalog.errors import NotFoundError

            raise NotFoundError(f"{pick['model']} {pick['quant']}: {launch['vllm']['note']}")
        return shlex.join(launch["vllm"]["args"])
    ngl = launch["ollama"]["options"]["num_gpu"]
    return f"{pick['model']} {pick['quant']} {ngl}"


def _pick_mlx(args, catalog, budget) -> int:
    from ...catalog.errors import UsageError
    from ...estimator.mlx import rank_models
    from ...estimator.results import Options

    options = Options(context=args.context or 8192, use_case=args.use_case or "general", detail=False).check()
    ranked = rank_models(catalog, budget, options)
    if not ranked:
        raise UsageError(f"no catalog model's MLX checkpoint fits here at {options.context:,} tokens and 5 tokens/s")
    best = ranked[0]
    if args.json:
        print_json({**best.to_dict(), "runtime": "mlx", "source": "local"})
    else:
        print(f"{best.model} {best.quant}")
    return 0


def _pick_exllama(args, catalog, budget) -> int:
    from ...catalog.errors import UsageError
    from ...estimator.exllama import ExllamaSettings, rank_models

    if args.concurrency != 1:
        raise UsageError(f"--concurrency goes with --runtime vllm or sglang; {args.runtime} ranks one stream's speed")
    settings = ExllamaSettings(max_seq_len=args.context or 8192).check()
    ranked = rank_models(catalog, budget, settings, args.runtime, args.use_case or "general")
    if not ranked:
        raise UsageError(
            f"no catalog model's EXL branch loads here at {settings.max_seq_len:,} tokens and 5 tokens/s or more"
        )
    best = ranked[0]
    if args.json:
        print_json({**best.to_dict(), "source": "local"})
    else:
        print(f"{best.model} {best.quant}")
    return 0


def run(args) -> int:
    if args.format == "sglang" and args.runtime != "sglang":
        from ...catalog.errors import UsageError

        raise UsageError("--format sglang prints SGLang's launch line: give --runtime sglang")
    if args.runtime != "llama.cpp":
        if args.format not in ("line", args.runtime):
            from ...catalog.errors import UsageError

            raise UsageError(
                f"--format {args.format} launches another runtime; with --runtime {args.runtime} use line"
                + (f" or {args.runtime}" if args.runtime in FORMATS else "")
            )
        return pick_vllm(args)
    pick = None
    source = "local"
    latency = _latency_query(args)
    if not (args.local or args.hardware or args.gpu):
        url = agent_url(args)
        try:
            pick = ask_agent(url, args.use_case, args.context, latency)
            source = url
        except NoAgent as exc:
            print(f"fitagent pick: {exc}; computing here", file=sys.stderr)
    if pick is None:
        pick = compute_here(args, args.use_case or "general", args.context or 8192, latency)
    if args.json:
        print_json({**pick, "source": source})
    else:
        sys.stdout.write(format_pick(pick, args.format) + "\n")
    return 0
