"""Rank the catalog's models for this machine, with the quality, speed and efficiency frontiers."""

from __future__ import annotations

import argparse
import gc

from .common import add_hardware, add_json, context_tokens, positive_int, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_hardware(parser)
    parser.add_argument("--use-case", default="general", choices=("general", "code", "tool-calling", "math", "vision"),
                        help="weights the quality score (default general)")
    parser.add_argument("--context", type=context_tokens, default=8192, metavar="N", help="context length in tokens (default 8192)")
    parser.add_argument("--top", type=positive_int, default=10, metavar="K", help="how many ranked models to show (default 10)")
    parser.add_argument("--method", choices=("default", "seed"), default="default", help="estimation method (default: default)")
    parser.add_argument("--kv-quant", choices=("f16", "q8_0", "q4_0"), default="f16", help="KV cache type")
    add_json(parser)


def run(args) -> int:
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.estimate import Options
    from ...estimator.hardware import snapshot_to_dict
    from ...estimator.recommend import recommend
    from ..catalog import load_catalog
    from ..hardware import resolve_snapshot

    catalog = load_catalog()
    # What is loaded by now (modules, the catalog: ~17,000 objects the garbage collector tracks)
    # lives until the command exits; frozen, the collections the sweep sets off skip it.
    gc.freeze()
    options = Options(context=args.context, use_case=args.use_case, method=args.method, kv_quant=args.kv_quant).check()
    snapshot = resolve_snapshot(args.hardware, args.gpu, catalog)
    result = recommend(catalog, budget_from_snapshot(snapshot, catalog), options, top=args.top)
    if args.json:
        print_json({"hardware": snapshot_to_dict(snapshot), **result.to_dict(top=args.top)})
    else:
        from ..render import render_recommendations

        print(render_recommendations(result, snapshot, top=args.top))
    return 0
