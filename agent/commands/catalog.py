"""List the models, GPUs and quantizations in fitagent's catalog."""

from __future__ import annotations

import argparse

from .common import add_json, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("models", "gpus", "quants"), help="which list")
    add_json(parser)


def run(args) -> int:
    from dataclasses import asdict

    from ..catalog import load_catalog
    from ..render import table

    catalog = load_catalog()
    if args.what == "models":
        rows = [{"id": m.id, "alias": m.alias, "family": m.family, "modality": m.modality,
                 "params_total": m.params_total, "params_active": m.params_active, "max_context": m.max_context,
                 "moe": m.is_moe, "benchmarks": dict(m.benchmarks)} for m in catalog.models]
        human = table(["model", "alias", "params", "active", "context", "kind"],
                      [[r["id"], r["alias"], f"{r['params_total'] / 1e9:.1f}B", f"{r['params_active'] / 1e9:.1f}B",
                        f"{r['max_context']:,}", ("MoE " if r["moe"] else "") + r["modality"]] for r in rows])
    elif args.what == "gpus":
        rows = [{**asdict(g), "pci_ids": list(g.pci_ids), "aliases": list(g.aliases), "sources": list(g.sources)} for g in catalog.gpus]
        human = table(["GPU", "vendor", "memory GB", "bandwidth GB/s", "FP16 TFLOPS"],
                      [[g.name, g.vendor, f"{g.memory_bytes / 1e9:.1f}", f"{g.memory_bandwidth_bytes_per_s / 1e9:.0f}",
                        f"{g.fp16_flops / 1e12:.1f}" if g.fp16_flops else "—"] for g in catalog.gpus])
    else:
        rows = [{**asdict(q), "aliases": list(q.aliases)} for q in catalog.quantizations]
        human = table(["quant", "bits/weight", "PPL +", "quality factor", "tier"],
                      [[q.name, f"{q.bits_per_weight:.2f}", "—" if q.ppl_increase is None else f"{q.ppl_increase:.3f}",
                        f"{q.quality_factor:.3f}", q.tier] for q in catalog.quantizations])
    if args.json:
        print_json({args.what: rows})
    else:
        print(human)
    return 0
