"""Show what this machine has: GPUs, their free memory and bandwidth, CPU and RAM."""

from __future__ import annotations

from .common import add_json


def add_arguments(parser) -> None:
    add_json(parser)
    parser.add_argument("--hardware", metavar="FILE", help="replay a saved snapshot instead of reading the machine")
    parser.add_argument(
        "--measure-bandwidth",
        action="store_true",
        help="measure host RAM bandwidth (under 2 s) when neither SMBIOS nor the platform table knows it",
    )


def run(args) -> int:
    if args.json and not args.hardware:
        # The probe's own JSON form: printing it skips building the frozen dataclasses,
        # whose imports cost more start-up time than reading the machine.
        from ..probe import probe_document
        from .common import print_json

        print_json(probe_document(measure_bandwidth=args.measure_bandwidth))
        return 0
    if args.hardware:
        from ..hardware import load_snapshot_file

        snapshot = load_snapshot_file(args.hardware)
    else:
        from ..hardware import take_snapshot

        snapshot = take_snapshot(measure_bandwidth=args.measure_bandwidth)
    if args.json:
        from ...estimator.hardware import snapshot_to_dict
        from .common import print_json

        print_json(snapshot_to_dict(snapshot))
    else:
        from ..render import render_snapshot

        print(render_snapshot(snapshot))
    return 0
