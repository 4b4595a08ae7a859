"""List the models, GPUs and quantizations in fitagent's catalog, or check where its quality comes from."""

from __future__ import annotations

import argparse

from .common import add_json, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("models", "gpus", "quants", "check"),
                        help="which list; check: validate the data and list the models whose quality rests on a "
                             "stand-in's score or is estimated from size")
    add_json(parser)


def run(args) -> int:
    from dataclasses import asdict

    from ..catalog import load_catalog
    from ..render import table

    catalog = load_catalog()
    if args.what == "check":
        return _check(catalog, args.json)
    if args.what == "models":
        rows = [{"id": m.id, "alias": m.alias, "family": m.family, "modality": m.modality,
                 "params_total": m.params_total, "params_active": m.params_active, "max_context": m.max_context,
                 "moe": m.is_moe, "benchmarks": dict(m.benchmarks), "stand_ins": dict(m.stand_ins),
                 "sources": dict(m.sources)} for m in catalog.models]
        human = table(["model", "alias", "params", "active", "context", "kind"],
                      [[r["id"], r["alias"], f"{r['params_total'] / 1e9:.1f}B", f"{r['params_active'] / 1e9:.1f}B",
                        f"{r['max_context']:,}", ("MoE " if r["moe"] else "") + r["modality"]] for r in rows])
    elif args.what == "gpus":
        rows = [{**asdict(g), "pci_ids": list(g.pci_ids), "aliases": list(g.aliases), "sources": list(g.sources)} for g in catalog.gpus]
        human = table(["GPU", "vendor", "memory GB", "bandwidth GB/s", "FP16 TFLOPS"],
                      [[g.name, g.vendor, f"{g.memory_bytes / 1e9:.1f}", f"{g.memory_bandwidth_bytes_per_s / 1e9:.0f}",
                        f"{g.fp16_flops / 1e12:.1f}" if g.fp16_flops else "—"] for g in catalog.gpus])
    else:
        from ...estimator.quantloss import retention

        rows = [{**asdict(q), "aliases": list(q.aliases),
                 "retention_8b": None if q.kld_ref is None else round(retention(q.kld_ref, 8e9, catalog.quant_loss), 4),
                 "retention_70b": None if q.kld_ref is None else round(retention(q.kld_ref, 70e9, catalog.quant_loss), 4)}
                for q in catalog.quantizations]
        human = table(["quant", "bits/weight", "KLD (8B ref)", "kept at 8B", "kept at 70B", "seed factor"],
                      [[r["name"], f"{r['bits_per_weight']:.2f}", "—" if r["kld_ref"] is None else f"{r['kld_ref']:.4f}",
                        "—" if r["retention_8b"] is None else f"{r['retention_8b']:.1%}",
                        "—" if r["retention_70b"] is None else f"{r['retention_70b']:.1%}", f"{r['quality_factor']:.3f}"]
                       for r in rows])
    if args.json:
        print_json({args.what: rows})
    else:
        print(human)
    return 0


def _check(catalog, as_json: bool) -> int:
    """Every model's quality source per use case it serves; the data itself was validated on load."""
    from ...estimator.quality import USE_CASES, scored

    rows = []
    for m in catalog.models:
        cases = [u for u in USE_CASES if u != "vision" or m.modality == "vision"]
        sources = {u: scored(m, u, catalog.benchmark_priors)[1] for u in cases}
        worst = ("estimated" if any(s.startswith("estimated") for s in sources.values())
                 else "stand-in" if any(s.startswith("stand-in") for s in sources.values()) else "benchmarks")
        rows.append({"id": m.id, "quality": worst, "by_use_case": sources})
    counts = {k: sum(1 for r in rows if r["quality"] == k) for k in ("benchmarks", "stand-in", "estimated")}
    if as_json:
        print_json({"models": len(rows), "counts": counts, "check": rows})
        return 0
    from ..render import table

    print(f"catalog: {len(rows)} models, {len(catalog.quantizations)} quantizations, {len(catalog.gpus)} GPUs — data valid")
    print(f"quality from each model's own benchmarks: {counts['benchmarks']}; relying on a stand-in's score: "
          f"{counts['stand-in']}; estimated from size: {counts['estimated']}")
    flagged = [r for r in rows if r["quality"] != "benchmarks"]
    if flagged:
        print()
        print(table(["model", "quality", "what it rests on"],
                    [[r["id"], r["quality"], "; ".join(sorted({s for s in r["by_use_case"].values() if s != "benchmarks"}))[:150]]
                     for r in flagged]))
    return 0
