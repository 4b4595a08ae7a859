"""`fitagent` command line: one module per command, imported only when that command runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module under fitagent.agent.commands, one-line help)
COMMANDS = {
    "probe": ("probe", "what this machine has: GPUs, free memory, bandwidth, RAM"),
    "estimate": ("estimate", "memory and speed of one model at one quantization and context"),
    "recommend": ("recommend", "the models that fit, ranked, with the three Pareto frontiers"),
    "models": (
        "models",
        "the models installed here (Hugging Face, Ollama, LM Studio, llama.cpp, folders) and how each fits",
    ),
    "catalog": ("catalog", "list the models, GPUs and quantizations fitagent knows; add and remove your own models"),
    "plan": ("plan", "what hardware a model needs: GPU memory, RAM, bandwidth, and which GPUs hold it"),
    "pick": ("pick", "the one best model, quantization and GPU layers, on one line for a launcher"),
    "serve": ("serve", "run the agent: rescan on a schedule, answer launchers over HTTP"),
    "fleet": ("fleet", "where a model fits now across many hosts, via Prometheus or the agents directly"),
    "runtimes": ("runtimes", "what llama-server, vLLM and SGLang serving here reach, beside fitagent's estimate"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line, as the CLI contract asks."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    def _get_formatter(self):
        # argparse builds a formatter for every add_argument, and the default one imports
        # shutil just to learn the terminal width: ~5 ms of every command's start-up.
        try:
            width = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(2).columns
        except (ValueError, OSError):
            width = 80
        return self.formatter_class(prog=self.prog, width=max(width - 2, 40))


class _Version(argparse.Action):
    """--version, reading package metadata only when asked (it costs start-up time)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="show the version"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import package_version

        parser.exit(0, f"fitagent {package_version()}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="fitagent", description="Which LLM, quantization and context fit this machine, and how fast.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue  # parsing one command's arguments needs only its parser (each one costs ~0.3 ms)
        cmd = importlib.import_module(f"fitagent.agent.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=(cmd.__doc__ or help_text).strip().splitlines()[0])
        cmd.add_arguments(p)
        p.set_defaults(run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    only = argv[0] if argv and argv[0] in COMMANDS and "--help" not in argv[:1] else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    from ..catalog.errors import FitagentError

    try:
        return args.run(args) or 0
    except FitagentError as exc:
        print(f"fitagent {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one readable line
        if os.environ.get("FITAGENT_DEBUG"):
            raise
        print(
            f"fitagent {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(a bug in fitagent; FITAGENT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
