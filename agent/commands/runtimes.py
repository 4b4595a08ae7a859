"""What the runtimes serving here reach: their own Prometheus counters beside fitagent's estimate."""

from __future__ import annotations

import argparse
import os

from ...catalog.errors import UsageError
from .common import add_hardware, add_json, host_overrides, print_json

RUNTIMES = ("llama.cpp", "vllm", "sglang")


def endpoint(text: str) -> tuple[str, str]:
    runtime, sep, url = text.partition("=")
    if not sep or runtime not in RUNTIMES or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not RUNTIME=URL with RUNTIME one of {', '.join(RUNTIMES)}, e.g. vllm=http://127.0.0.1:8000"
        )
    return runtime, url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        type=endpoint,
        action="append",
        metavar="RUNTIME=URL",
        help="a runtime to read (repeat it); default: the config's `runtimes`, else llama-server on :8080, "
        "vLLM on :8000 and SGLang on :30000 of this machine",
    )
    parser.add_argument("--config", metavar="FILE", help="config file whose `runtimes` to read")
    add_hardware(parser)
    add_json(parser)


def run(args) -> int:
    from ...estimator.budget import budget_from_snapshot
    from ..catalog_cache import load_catalog
    from ..config import load_config
    from ..hardware import resolve_hardware
    from ..paths import cache_dir
    from ..runtimes import box_factor, endpoints, load_store, measure, save_store

    catalog = load_catalog()
    config = load_config(args.config, os.environ)
    where = args.url or endpoints(config.runtimes)
    if not where:
        raise UsageError("no runtime to read: the config's `runtimes` is empty; give --url RUNTIME=URL")
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    readings, problems = measure(where, catalog, budget_from_snapshot(snapshot, catalog))
    cache = cache_dir(os.environ)
    if readings:
        save_store(cache, readings)
    stored = load_store(cache)
    factors = {rt: box_factor(stored, rt) for rt in RUNTIMES}
    if args.json:
        print_json(
            {
                "readings": [r.to_dict() for r in readings],
                "unreachable": problems,
                "factors": {rt: {"ratio": f[0], "readings": f[1]} for rt, f in factors.items() if f},
            }
        )
        return 0
    if not readings:
        print("no runtime here has served enough tokens to measure (" + "; ".join(problems) + ")")
        return 0
    from ..render import rate, table

    rows = [
        (
            r.runtime,
            r.model or f"? {r.served_name}",
            r.quant or "?",
            rate(r.decode_tokens_per_s),
            rate(r.estimate_tokens_per_s),
            "—" if r.ratio is None else f"×{r.ratio:.2f}",
        )
        for r in readings
    ]
    print(table(("runtime", "model", "quant", "measured", "fitagent", "measured ÷ estimate"), rows))
    for rt, f in factors.items():
        if f:
            print(f"this box's {rt} runs reach ×{f[0]:.2f} of fitagent's estimates ({f[1]} model(s), kept in {cache})")
    return 0
