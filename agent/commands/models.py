"""The models installed on this machine (Hugging Face cache, Ollama, LM Studio, llama.cpp's cache, your folders) and how each fits now."""

from __future__ import annotations

import argparse
import os

from .common import add_hardware, add_json, context_tokens, host_overrides, print_json

_PLACEMENT = {"gpu": "on GPU", "partial_offload": "partly in RAM", "cpu": "on CPU", "none": "does not load"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        action="store_true",
        help="the models installed here, read from their headers (`fitagent catalog models` lists the catalog)",
    )
    parser.add_argument(
        "--path",
        metavar="DIR",
        action="append",
        help="scan this folder (or GGUF file) instead of the usual stores; repeat for several",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file whose model_dirs are scanned with the stores (default: the agent's config)",
    )
    parser.add_argument(
        "--context",
        type=context_tokens,
        default=8192,
        metavar="N",
        help="context length to fit each model at, in tokens (default 8192, or the model's maximum if smaller)",
    )
    parser.add_argument(
        "--use-case",
        default="general",
        choices=("general", "code", "tool-calling", "math", "vision"),
        help="weights the quality score (default general)",
    )
    add_hardware(parser)
    add_json(parser)


def run(args) -> int:
    from ...catalog.errors import UsageError
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.results import Options
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware
    from ..localmodels import local_rows, scan_installed
    from ..state import runtime_devices

    if not args.local:
        raise UsageError(
            "give --local: it lists the models installed here (`fitagent catalog models` lists the catalog)"
        )
    options = Options(context=args.context, use_case=args.use_case).check()
    catalog = load_catalog()
    model_dirs: tuple[str, ...] = ()
    if not args.path:
        from ..config import load_config

        model_dirs = load_config(args.config, os.environ).model_dirs
    installed = scan_installed(catalog, os.environ, model_dirs=model_dirs, paths=args.path or ())
    snapshot, hardware_notes = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    rows = local_rows(installed, catalog, budget, runtime_devices(snapshot, budget), options)
    scan = installed.scan
    body = {
        "context": options.context,
        "use_case": options.use_case,
        "budget_bytes": budget.budget_bytes,
        "roots": [r.to_dict() for r in scan.roots],
        "models": rows,
        "problems": installed.problems(),
        "scan": {
            "seconds": round(scan.seconds, 4),
            "files_stat": scan.files_stat,
            "read": scan.headers_read,
            "from_cache": scan.from_cache,
        },
        "notes": list(hardware_notes),
    }
    if args.json:
        print_json(body)
    else:
        print(render_local(body, snapshot))
    return 0


def render_local(body: dict, snapshot) -> str:
    from ..render import gb, rate, table

    gpus = [g for g in snapshot.gpus if g.usable]
    where = (
        " + ".join(f"{g.name} ({gb(g.memory_free_bytes)} free)" for g in gpus)
        if gpus
        else f"CPU only, {gb(snapshot.host.memory_available_bytes)} RAM available"
    )
    rows = body["models"]
    found = [r for r in body["roots"] if r["exists"]]
    out = [
        f"{len(rows)} model{'s' if len(rows) != 1 else ''} installed in {len(found)} of {len(body['roots'])} places "
        f"looked at · {where} · context {body['context']:,}"
    ]
    if rows:
        out.append("")
        out.append(
            table(
                ["#", "store", "name", "quant", "size", "catalog", "fits", "runs", "GPU layers", "decode"],
                [
                    [
                        i,
                        r["store"],
                        r["name"],
                        r["quant"] or "?",
                        gb(r["size_bytes"]),
                        r["catalog_id"] or "— (estimated)",
                        "—" if r["fits"] is None else "yes" if r["fits"] else "no",
                        _PLACEMENT.get(r["placement"], "—"),
                        "—" if r["gpu_layers"] is None else f"{r['gpu_layers']}/{r.get('total_layers', '?')}",
                        rate(r["decode_tokens_per_s"]),
                    ]
                    for i, r in enumerate(rows, 1)
                ],
            )
        )
        out.append("")
        out.append("launch:")
        for i, r in enumerate(rows, 1):
            launch = r.get("launch")
            if launch is None or launch.get("command") is None:
                why = launch.get("note") if launch else "does not load here"
                out.append(f"  {i}  — ({why})")
            elif launch["runtime"] == "ollama":
                options = ", ".join(f"{k} {v}" for k, v in launch["options"].items())
                out.append(f"  {i}  {launch['command']}   (options: {options})")
            else:
                out.append(f"  {i}  {launch['command']}")
    else:
        out.append("looked in: " + ", ".join(r["path"] for r in body["roots"]))
    if body["problems"]:
        out.append("")
        out.append("problems:")
        out += [f"  {p['path']}: {p['message']}" for p in body["problems"]]
    return "\n".join(out)
