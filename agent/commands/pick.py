"""The one best model, quantization and GPU layers for a launcher, on one line.

Asks the running agent (`fitagent serve`) when one answers, else computes it here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

from ...estimator.quality import USE_CASES
from .common import add_hardware, add_json, context_tokens, print_json

FORMATS = ("line", "llama.cpp", "ollama", "vllm")
AGENT_TIMEOUT_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--use-case", default=None, choices=USE_CASES, help="weights the quality score (default general)")
    parser.add_argument("--context", type=context_tokens, default=None, metavar="N", help="context length in tokens (default 8192)")
    parser.add_argument("--format", choices=FORMATS, default="line",
                        help="line: 'MODEL QUANT GPU_LAYERS' (GPU layers as llama.cpp's -ngl takes them); "
                             "llama.cpp / vllm: that runtime's flags; ollama: its options as JSON")
    where = parser.add_argument_group("where the answer comes from")
    where.add_argument("--agent", metavar="URL", help="the agent to ask (default $FITAGENT_URL, else host and port from the config)")
    where.add_argument("--local", action="store_true", help="do not ask an agent; probe and compute here")
    where.add_argument("--config", metavar="FILE", help="config file that names the agent's host and port")
    add_hardware(parser)
    add_json(parser)


def agent_url(args) -> str:
    if args.agent:
        return args.agent.rstrip("/")
    if os.environ.get("FITAGENT_URL"):
        return os.environ["FITAGENT_URL"].rstrip("/")
    from ..config import load_config

    config = load_config(args.config, os.environ)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}"


def ask_agent(url: str, use_case: str | None, context: int | None) -> dict | None:
    """The agent's pick; None when no agent answers (or it has no scan yet); errors it reports are raised."""
    from ...estimator.errors import NotFoundError, UsageError

    query = {k: v for k, v in (("use_case", use_case), ("context", context)) if v is not None}
    full = f"{url}/v1/pick" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    try:
        with urllib.request.urlopen(full, timeout=AGENT_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            return None  # not our agent: compute here
        if exc.code == 400:
            raise UsageError(f"the agent at {url} says: {message}") from None
        if exc.code == 404:
            raise NotFoundError(message) from None
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def compute_here(args, use_case: str, context: int) -> dict:
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.errors import NotFoundError
    from ...estimator.estimate import Options
    from ...estimator.recommend import recommend
    from ..catalog import load_catalog
    from ..hardware import resolve_snapshot
    from ..state import candidate_dict, runtime_devices

    catalog = load_catalog()
    snapshot = resolve_snapshot(args.hardware, args.gpu, catalog)
    budget = budget_from_snapshot(snapshot, catalog)
    result = recommend(catalog, budget, Options(context=context, use_case=use_case).check())
    if not result.ranked:
        raise NotFoundError(f"nothing in the catalog runs at a usable speed here for use case {use_case} "
                            f"at context {context:,} (try a smaller context)")
    return candidate_dict(result.ranked[0], runtime_devices(snapshot, budget))


def format_pick(pick: dict, fmt: str) -> str:
    launch = pick["launch"]
    if fmt == "llama.cpp":
        return shlex.join(launch["llama_cpp"]["args"])
    if fmt == "ollama":
        return json.dumps(launch["ollama"]["options"])
    if fmt == "vllm":
        if not launch["vllm"]["args"]:
            from ...estimator.errors import NotFoundError

            raise NotFoundError(f"{pick['model']} {pick['quant']}: {launch['vllm']['note']}")
        return shlex.join(launch["vllm"]["args"])
    ngl = launch["ollama"]["options"]["num_gpu"]
    return f"{pick['model']} {pick['quant']} {ngl}"


def run(args) -> int:
    pick = None
    source = "local"
    if not (args.local or args.hardware or args.gpu):
        url = agent_url(args)
        pick = ask_agent(url, args.use_case, args.context)
        source = url
    if pick is None:
        source = "local"
        pick = compute_here(args, args.use_case or "general", args.context or 8192)
    if args.json:
        print_json({**pick, "source": source})
    else:
        sys.stdout.write(format_pick(pick, args.format) + "\n")
    return 0
