"""Show what this machine has: GPUs, their free memory and bandwidth, CPU and RAM."""

from __future__ import annotations

from .common import add_json


def add_arguments(parser) -> None:
    add_json(parser)
    parser.add_argument("--hardware", metavar="FILE", help="replay a saved snapshot instead of reading the machine")
    parser.add_argument("--measure-bandwidth", action="store_true",
                        help="measure host RAM bandwidth (about a second) when no table or DMI value is known")


def run(args) -> int:
    from ...estimator.hardware import snapshot_to_dict

    if args.hardware:
        from ..hardware import load_snapshot_file

        snapshot = load_snapshot_file(args.hardware)
    else:
        from ..probe import take_snapshot

        snapshot = take_snapshot(measure_bandwidth=args.measure_bandwidth)
    if args.json:
        from .common import print_json

        print_json(snapshot_to_dict(snapshot))
    else:
        from ..render import render_snapshot

        print(render_snapshot(snapshot))
    return 0
