"""Arguments and output shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def argument(parse):
    """A values.py parser as an argparse type: its ValueError becomes argparse's one-line error."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def context_tokens(text: str) -> int:
    """A context length: 8192, 8k, 32K, 1m."""
    from .. import values

    return argument(values.tokens)(text)


def prompt_tokens(text: str) -> int:
    """A prompt length, 0 allowed: 512, 4k."""
    from .. import values

    return argument(lambda t: values.tokens(t, allow_zero=True))(text)


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="machine-readable JSON on stdout (bytes, bytes/s, tokens/s)"
    )


def add_hardware(parser: argparse.ArgumentParser) -> None:
    from .. import values

    group = parser.add_argument_group("hardware (default: probe this machine)")
    group.add_argument(
        "--hardware", metavar="FILE", help="a saved snapshot (`fitagent probe --json` output) instead of probing"
    )
    group.add_argument(
        "--gpu",
        metavar="NAME",
        action="append",
        help="a GPU from the catalog, all its memory free; repeat for several. The host is this "
        "machine's unless described with the three options below",
    )
    group.add_argument(
        "--host-ram",
        type=argument(values.size_bytes),
        metavar="SIZE",
        help="with --gpu: the host's RAM, e.g. 64GB or 128GiB (unified-memory GPUs: their memory)",
    )
    group.add_argument(
        "--host-bandwidth",
        type=argument(values.bandwidth_bytes_per_s),
        metavar="GB/s",
        help="with --gpu: the host's RAM bandwidth, e.g. 89.6 (GB/s)",
    )
    group.add_argument(
        "--cpu-cores",
        type=argument(lambda t: values.count(t, 1)),
        metavar="N",
        help="with --gpu: the host's CPU cores",
    )


def host_overrides(args):
    """The --host-ram / --host-bandwidth / --cpu-cores of a what-if, as hardware.HostOverrides."""
    from ...catalog.errors import UsageError
    from ..hardware import HostOverrides

    given = HostOverrides(args.host_ram, args.host_bandwidth, args.cpu_cores)
    if given.any and not args.gpu:
        raise UsageError(
            "--host-ram, --host-bandwidth and --cpu-cores describe the host of a --gpu what-if; "
            "with --hardware edit the snapshot, without either this machine is probed"
        )
    return given


def print_json(data) -> None:
    # One write of the whole text: json.dump would write each of its ~15,000 pieces on its own.
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
