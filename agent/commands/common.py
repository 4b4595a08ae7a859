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


def context_tokens(text: str) -> int:
    """A context length: 8192, 8k, 32K, 1m."""
    raw = text.strip().lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(raw[-1:], 1)
    number = raw[:-1] if scale > 1 else raw
    try:
        value = int(float(number) * scale) if scale > 1 else int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of tokens (e.g. 8192 or 8k)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of tokens, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout (bytes, bytes/s, tokens/s)")


def add_hardware(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hardware (default: probe this machine)")
    group.add_argument("--hardware", metavar="FILE", help="a saved snapshot (`fitagent probe --json` output) instead of probing")
    group.add_argument("--gpu", metavar="NAME", action="append",
                       help="a GPU from the catalog, all its memory free, on this host's RAM; repeat for several")


def print_json(data) -> None:
    # One write of the whole text: json.dump would write each of its ~15,000 pieces on its own.
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
