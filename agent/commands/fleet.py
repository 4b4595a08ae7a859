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
from .. import package_version
from .common import add_json, context_tokens

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
    source = parser.add_argument_group("where the fleet is read from (one of)").add_mutually_exclusive_group(
        required=True
    )
    source.add_argument("--prometheus", metavar="URL", help="Prometheus' base URL, e.g. http://prometheus:9090")
    source.add_argument("--targets", metavar="HOST:PORT,...", help="agents to ask directly, comma-separated")
    source.add_argument(
        "--targets-file", metavar="FILE", help="a Prometheus file_sd file (JSON or YAML) listing the agents"
    )
    parser.add_argument(
        "--job",
        metavar="NAME",
        help="with --prometheus: only this scrape job (default: every job that scrapes fitagent agents)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    add_json(parser)
    questions = parser.add_subparsers(dest="question", metavar="QUESTION", required=True)
    for name, help_text in QUESTIONS.items():
        q = questions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        if name == "place":
            q.add_argument("--model", required=True, metavar="ID", help="catalog model id or alias")
            q.add_argument("--quant", default="Q4_K_M", metavar="Q", help="quantization (default Q4_K_M)")
            q.add_argument(
                "--context",
                type=context_tokens,
                default=None,
                metavar="N",
                help="context length in tokens, e.g. 4096 or 32k (default 8192, or the model's maximum if smaller)",
            )
        if name == "best":
            q.add_argument(
                "--use-case", default="general", choices=USE_CASES, help="weights the quality score (default general)"
            )
            q.add_argument(
                "--context",
                type=context_tokens,
                default=8192,
                metavar="N",
                help="context length in tokens (default 8192)",
            )
        q.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS,
            help="machine-readable JSON on stdout (bytes, tokens/s)",
        )


def _targets(args):
    from ...catalog.errors import UsageError
    from ..fleet.targets import parse_targets, read_targets_file

    if args.job:
        raise UsageError("--job applies to --prometheus only")
    return parse_targets(args.targets) if args.targets is not None else read_targets_file(args.targets_file)


def read_fleet(args, catalog=None, place: tuple | None = None):
    """The hosts the question needs (a FleetRead). `place`: (model, quant, context), for
    Prometheus to send only the hosts that could hold the model."""
    if args.prometheus:
        from ..fleet import prometheus

        api = prometheus.PrometheusAPI(args.prometheus, args.timeout)
        if args.question == "place":
            from ..fleet.prefilter import bound_for

            assert place is not None  # run passes it for this question
            model, quant, context = place
            read, fleet = prometheus.read_candidates(api, bound_for(model, quant, catalog, context), args.job)
            return read, (api, fleet)
        if args.question == "best":
            return prometheus.read_best(api, args.use_case, args.context, args.job), None
        return prometheus.read_hosts(api, args.job), None
    from collections import Counter

    from ..fleet.prometheus import FleetRead
    from ..fleet.targets import read_targets

    hosts = read_targets(_targets(args), args.timeout)
    return FleetRead(hosts, dict(Counter(h.version for h in hosts if h.up and h.version))), None


def print_answer_json(answer: dict) -> None:
    """The answer as JSON with one host per line: readable and grep-able at 10,000 hosts, and made
    by the C encoder (`indent=2` runs Python's, ~0.1 s per 3,000 hosts)."""
    import json

    def one(value) -> str:
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)

    lines = ["{"]
    for i, (key, value) in enumerate(answer.items()):
        comma = "," if i < len(answer) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {one(key)}: [")
            lines.append(",\n".join(f"    {one(item)}" for item in value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {one(key)}: {one(value)}{comma}")
    lines.append("}")
    sys.stdout.write("\n".join(lines) + "\n")


def run(args) -> int:
    import gc

    from ..fleet import answers, render

    # A 10,000-host answer makes a few hundred thousand objects that live until the command ends:
    # the cyclic collector would walk them again and again (a fifth of the time) to free nothing.
    gc.disable()

    from ..catalog_cache import load_catalog

    catalog = load_catalog()  # every answer's budgets come from the snapshots through it
    place = None
    if args.question == "place":
        model = catalog.model(args.model)  # bad input fails before the fleet is asked
        quant = catalog.quant(args.quant)
        context = args.context if args.context is not None else min(8192, model.max_context)
        place = (model, quant, context)
    read, source = read_fleet(args, catalog, place)
    if args.question == "hosts":
        answer, text = answers.hosts_answer(read.hosts, catalog), render.render_hosts
    elif args.question == "place":
        assert place is not None  # made above for this question
        model, quant, context = place
        answer = answers.place_answer(
            read.hosts, catalog, model.id, quant.name, context, filtered_out=read.filtered_out
        )
        if not answer["fits_anywhere"] and read.filtered_out and source is not None:
            # nothing fits a candidate: every live host is read, for the best partial offload
            from ..fleet.prometheus import read_hosts

            api, fleet = source
            everything = read_hosts(api, fleet=fleet)
            answer = answers.place_answer(everything.hosts, catalog, model.id, quant.name, context)
        text = render.render_place
    else:
        answer, text = answers.best_answer(read.hosts, catalog, args.use_case, args.context), render.render_best
    warnings = answers.version_warnings(read.versions, package_version())
    answer["warnings"] = warnings
    for line in warnings:
        sys.stderr.write(f"fitagent fleet: warning: {line}\n")
    if args.json:
        print_answer_json(answer)
    else:
        sys.stdout.write(text(answer) + "\n")
    return 0
