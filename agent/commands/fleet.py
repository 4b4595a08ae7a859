"""Ask a fleet of agents where a model can run now, and how fast (via Prometheus or directly).

`--prometheus URL` reads the agents' series from the fleet's Prometheus; `--targets` or
`--targets-file` (a Prometheus file_sd file) asks each agent's /metrics directly, all at
once. Each host's budget is rebuilt from its series and the estimator runs here, so any
model, quantization and context can be asked about. A host that does not answer is listed
as down; the others are still answered for.
"""

from __future__ import annotations

import argparse
import sys

from ...estimator.quality import USE_CASES
from .common import add_json, context_tokens, print_json

QUESTIONS = {
    "hosts": "every host: status, GPUs, free memory, age of its last scan",
    "place": "the hosts where a model fits now, fastest first, with GPU layers",
    "best": "the best model each host can run for a use case",
}
DEFAULT_TIMEOUT_S = 5.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, got {value:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("where the fleet is read from (one of)").add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="Prometheus' base URL, e.g. http://prometheus:9090")
    source.add_argument("--targets", metavar="HOST:PORT,...", help="agents to ask directly, comma-separated")
    source.add_argument("--targets-file", metavar="FILE", help="a Prometheus file_sd file (JSON or YAML) listing the agents")
    parser.add_argument("--job", metavar="NAME", help="with --prometheus: only this scrape job (default: every job "
                                                       "that scrapes fitagent agents)")
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT_S:g})")
    add_json(parser)
    questions = parser.add_subparsers(dest="question", metavar="QUESTION", required=True)
    for name, help_text in QUESTIONS.items():
        q = questions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        if name == "place":
            q.add_argument("--model", required=True, metavar="ID", help="catalog model id or alias")
            q.add_argument("--quant", default="Q4_K_M", metavar="Q", help="quantization (default Q4_K_M)")
            q.add_argument("--context", type=context_tokens, default=None, metavar="N",
                           help="context length in tokens, e.g. 4096 or 32k (default 8192, or the model's maximum if smaller)")
        if name == "best":
            q.add_argument("--use-case", default="general", choices=USE_CASES, help="weights the quality score (default general)")
            q.add_argument("--context", type=context_tokens, default=8192, metavar="N",
                           help="context length in tokens (default 8192)")
        q.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="machine-readable JSON on stdout (bytes, tokens/s)")


def read_hosts(args) -> list:
    from ...estimator.errors import UsageError

    if args.prometheus:
        from ..fleet.prometheus import PrometheusAPI, read_fleet

        return read_fleet(PrometheusAPI(args.prometheus, args.timeout), args.job)
    if args.job:
        raise UsageError("--job applies to --prometheus only")
    from ..fleet.targets import parse_targets, read_targets, read_targets_file

    targets = parse_targets(args.targets) if args.targets is not None else read_targets_file(args.targets_file)
    return read_targets(targets, args.timeout)


def run(args) -> int:
    from ..fleet import answers, render

    if args.question in ("place", "best"):
        from ..catalog import load_catalog

        catalog = load_catalog()
    if args.question == "place":
        model = catalog.model(args.model)  # bad input fails before the fleet is asked
        catalog.quant(args.quant)
        context = args.context if args.context is not None else min(8192, model.max_context)
    hosts = read_hosts(args)
    if args.question == "hosts":
        answer, text = answers.hosts_answer(hosts), render.render_hosts
    elif args.question == "place":
        answer, text = answers.place_answer(hosts, catalog, args.model, args.quant, context), render.render_place
    else:
        answer, text = answers.best_answer(hosts, catalog, args.use_case, args.context), render.render_best
    if args.json:
        print_json(answer)
    else:
        sys.stdout.write(text(answer) + "\n")
    return 0
