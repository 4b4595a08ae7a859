"""List the models, GPUs and quantizations in fitagent's catalog, check where its quality comes from, or add and remove your own models."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_json, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        choices=("models", "gpus", "quants", "check", "add", "remove"),
        help="which list; check: validate the data (and your own entries) and list the models whose "
        "quality rests on a stand-in's score or is estimated from size; add / remove: your own "
        "entries (in $XDG_DATA_HOME/fitagent/models.yaml), over the built-in catalog",
    )
    parser.add_argument("id", nargs="?", metavar="ID", help="remove: the id or alias of an entry you added")
    source = parser.add_argument_group("add: the model's description (one of)").add_mutually_exclusive_group()
    source.add_argument("--config", metavar="CONFIG.JSON", help="a Hugging Face config.json")
    source.add_argument("--gguf", metavar="FILE", help="a GGUF file (its header only is read)")
    source.add_argument(
        "--hf-dir",
        metavar="SNAPSHOT_DIR",
        help="a Hugging Face snapshot folder (…/models--ORG--NAME/snapshots/REV) or any folder with a config.json",
    )
    parser.add_argument(
        "--alias", metavar="A", help="add: the short name to give it (default: the last part of its id)"
    )
    add_json(parser)


def run(args) -> int:
    from dataclasses import asdict

    from ...catalog.errors import UsageError
    from ..catalog_cache import load_catalog
    from ..render import table

    given = [
        flag
        for flag, value in (
            ("--config", args.config),
            ("--gguf", args.gguf),
            ("--hf-dir", args.hf_dir),
            ("--alias", args.alias),
        )
        if value is not None
    ]
    if args.what == "add":
        return _add(args)
    if given:
        raise UsageError(f"{given[0]} goes with `catalog add`")
    if args.what == "remove":
        return _remove(args)
    if args.id is not None:
        raise UsageError(f"`catalog {args.what}` takes no ID (only `catalog remove ID` does)")
    catalog = load_catalog()
    if args.what == "check":
        return _check(catalog, args.json)
    if args.what == "models":
        rows: list[dict[str, Any]] = [
            {
                "id": m.id,
                "alias": m.alias,
                "family": m.family,
                "modality": m.modality,
                "params_total": m.params_total,
                "params_active": m.params_active,
                "max_context": m.max_context,
                "moe": m.is_moe,
                "benchmarks": dict(m.benchmarks),
                "stand_ins": dict(m.stand_ins),
                "sources": dict(m.sources),
            }
            for m in catalog.models
        ]
        human = table(
            ["model", "alias", "params", "active", "context", "kind"],
            [
                [
                    r["id"],
                    r["alias"],
                    f"{r['params_total'] / 1e9:.1f}B",
                    f"{r['params_active'] / 1e9:.1f}B",
                    f"{r['max_context']:,}",
                    ("MoE " if r["moe"] else "") + r["modality"],
                ]
                for r in rows
            ],
        )
    elif args.what == "gpus":
        rows = [
            {**asdict(g), "pci_ids": list(g.pci_ids), "aliases": list(g.aliases), "sources": list(g.sources)}
            for g in catalog.gpus
        ]
        human = table(
            ["GPU", "vendor", "memory GB", "bandwidth GB/s", "FP16 TFLOPS"],
            [
                [
                    g.name,
                    g.vendor,
                    f"{g.memory_bytes / 1e9:.1f}",
                    f"{g.memory_bandwidth_bytes_per_s / 1e9:.0f}",
                    f"{g.fp16_flops / 1e12:.1f}" if g.fp16_flops else "—",
                ]
                for g in catalog.gpus
            ],
        )
    else:
        from ...estimator.quantloss import retention

        rows = [
            {
                **asdict(q),
                "aliases": list(q.aliases),
                "retention_8b": None if q.kld_ref is None else round(retention(q.kld_ref, 8e9, catalog.quant_loss), 4),
                "retention_70b": None
                if q.kld_ref is None
                else round(retention(q.kld_ref, 70e9, catalog.quant_loss), 4),
            }
            for q in catalog.quantizations
        ]
        human = table(
            ["quant", "bits/weight", "KLD (8B ref)", "kept at 8B", "kept at 70B", "seed factor"],
            [
                [
                    r["name"],
                    f"{r['bits_per_weight']:.2f}",
                    "—" if r["kld_ref"] is None else f"{r['kld_ref']:.4f}",
                    "—" if r["retention_8b"] is None else f"{r['retention_8b']:.1%}",
                    "—" if r["retention_70b"] is None else f"{r['retention_70b']:.1%}",
                    f"{r['quality_factor']:.3f}",
                ]
                for r in rows
            ],
        )
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
        if m.modality == "embedding":  # not recommended for any generative use case
            rows.append({"id": m.id, "quality": "embedding", "by_use_case": {}})
            continue
        cases = [u for u in USE_CASES if u != "vision" or m.modality == "vision"]
        sources = {u: scored(m, u, catalog.benchmark_priors)[1] for u in cases}
        worst = (
            "estimated"
            if any(s.startswith("estimated") for s in sources.values())
            else "stand-in"
            if any(s.startswith("stand-in") for s in sources.values())
            else "benchmarks"
        )
        rows.append({"id": m.id, "quality": worst, "by_use_case": sources})
    counts = {
        k: sum(1 for r in rows if r["quality"] == k) for k in ("benchmarks", "stand-in", "estimated", "embedding")
    }
    user = _user_catalog()
    if as_json:
        print_json({"models": len(rows), "counts": counts, "check": rows, "user_catalog": user})
        return 0
    from ..render import table

    print(
        f"catalog: {len(rows)} models, {len(catalog.quantizations)} quantizations, {len(catalog.gpus)} GPUs — data valid"
    )
    if user["models"]:
        replaced = f", replacing the built-in {', '.join(user['replaces'])}" if user["replaces"] else ""
        print(f"your own entries: {len(user['models'])} in {user['path']} — valid{replaced}")
    print(
        f"quality from each model's own benchmarks: {counts['benchmarks']}; relying on a stand-in's score: "
        f"{counts['stand-in']}; estimated from size: {counts['estimated']}; embedding models (sized, never "
        f"recommended for chat): {counts['embedding']}"
    )
    flagged = [r for r in rows if r["quality"] not in ("benchmarks", "embedding")]
    if flagged:
        print()
        print(
            table(
                ["model", "quality", "what it rests on"],
                [
                    [
                        r["id"],
                        r["quality"],
                        "; ".join(sorted({s for s in r["by_use_case"].values() if s != "benchmarks"}))[:150],
                    ]
                    for r in flagged
                ],
            )
        )
    return 0


# ---------------------------------------------------------------- the user's own entries


def _user_catalog() -> dict:
    """Where the user's entries are, which they are, and which built-in ones they replace (the file
    itself was validated when the catalog loaded)."""
    from ...catalog.files import read_data_text, yaml_load
    from ..usercatalog import read_user_text, user_entries

    path, text = read_user_text()
    entries = user_entries(text, path)
    builtin = (
        {
            str(m.get("id", "")).lower()
            for m in (yaml_load(read_data_text("models.yaml"), "models.yaml") or {}).get("models", [])
            if isinstance(m, dict)
        }
        if entries
        else set()
    )
    return {
        "path": path,
        "models": [e["id"] for e in entries],
        "replaces": [e["id"] for e in entries if e["id"].lower() in builtin],
    }


def _read_model(args):
    """The model the --config / --gguf / --hf-dir file describes, as read (no catalog facts), and its source."""
    from pathlib import Path

    from ...catalog.errors import UsageError

    if args.gguf:
        from ..catalog_cache import load_catalog
        from ..localmodels.cache import model_from_json
        from ..localmodels.records import gguf_record
        from ..modelfiles import gguf_shards

        path = Path(args.gguf).expanduser()
        shards = gguf_shards(path, f"--gguf {path}")
        record = gguf_record([str(s) for s in shards], load_catalog())
        if record["projector"]:
            raise UsageError(f"--gguf {path}: a vision projector (mmproj), not a model")
        if record["error"]:
            raise UsageError(f"--gguf {path}: {record['error']}")
        return model_from_json(record["model"]), f"{path.resolve()} (GGUF header)"
    from ...estimator.hfconfig import model_from_hf_config
    from ..modelfiles import config_name

    flag, path = (
        ("--hf-dir", Path(args.hf_dir).expanduser()) if args.hf_dir else ("--config", Path(args.config).expanduser())
    )
    if path.is_dir():
        path = path / "config.json"
    elif args.hf_dir:
        raise UsageError(f"--hf-dir {path}: not a folder (give the snapshot folder that holds config.json)")
    import json

    from ..files import read_text

    try:
        data = json.loads(read_text(path, flag))
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{flag} {path}: not valid JSON ({exc})") from None
    name = _repo_id(path.absolute()) or config_name(path.absolute())
    return model_from_hf_config(data, origin=f"{flag} {path}", name=name), f"{path.resolve()} (config.json)"


def _repo_id(path) -> str | None:
    """ORG/NAME of a config.json in a Hugging Face cache snapshot (…/models--ORG--NAME/snapshots/REV/),
    read from the path as given: its files are links into blobs/, so the resolved path no longer says."""
    parts = path.parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def _add(args) -> int:
    from ...catalog.errors import UsageError
    from ...catalog.files import read_data_text, yaml_load
    from ..usercatalog import entry_from_model, find_entry, overlay, read_user_text, user_entries, write_entries

    if not (args.config or args.gguf or args.hf_dir):
        raise UsageError(
            "catalog add needs the model's description: --config CONFIG.JSON, --gguf FILE or --hf-dir SNAPSHOT_DIR"
        )
    if args.id is not None:
        raise UsageError("catalog add takes no ID: the id comes from the file (--alias sets the short name)")
    model, source = _read_model(args)
    entry = entry_from_model(model, args.alias, source)
    path, text = read_user_text()
    entries = user_entries(text, path)
    same = find_entry(entries, entry["id"])
    if same is not None and entries[same]["id"].lower() == entry["id"].lower():
        entries[same] = entry  # added again: the new reading replaces the old
    else:
        entries.append(entry)
    builtin = yaml_load(read_data_text("models.yaml"), "models.yaml")
    try:
        overlay(builtin, entries, path)  # an alias a built-in model has is refused before anything is written
    except Exception as exc:  # noqa: BLE001 - DataError, worded for the file; say it for this command
        raise UsageError(
            str(exc).replace(
                f"`fitagent catalog remove {entry['id']}` and add it again with --alias", "give another --alias"
            )
        ) from None
    replaces = any(
        isinstance(m, dict) and str(m.get("id", "")).lower() == entry["id"].lower() for m in builtin.get("models", [])
    )
    write_entries(path, entries)
    if args.json:
        print_json({"added": entry, "path": path, "replaces_built_in": replaces})
    else:
        note = f" (replacing the built-in {entry['id']})" if replaces else ""
        print(
            f"added {entry['id']} (alias {entry['alias']}) to {path}{note}: "
            f"{_params(entry['params_total'])} parameters, quality estimated from size — "
            f"`fitagent estimate --model {entry['alias']}`"
        )
    return 0


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 10_000_000 else f"{n:,}"


def _remove(args) -> int:
    from ...catalog.errors import NotFoundError, UsageError
    from ..usercatalog import find_entry, read_user_text, user_entries, write_entries

    if not args.id:
        raise UsageError("catalog remove needs the ID (or alias) of an entry you added")
    path, text = read_user_text()
    entries = user_entries(text, path)
    index = find_entry(entries, args.id)
    if index is None:
        from ..catalog_cache import load_catalog

        try:
            known = load_catalog().model(args.id)
        except Exception:  # noqa: BLE001 - unknown everywhere: say which entries there are
            known = None
        if known is not None:
            raise UsageError(f"{known.id} is built in: only entries added with `fitagent catalog add` can be removed")
        mine = ", ".join(e["id"] for e in entries) or "none"
        raise NotFoundError(f"no entry '{args.id}' in {path} (yours: {mine})")
    removed = entries.pop(index)
    write_entries(path, entries)
    if args.json:
        print_json({"removed": removed["id"], "path": path})
    else:
        print(f"removed {removed['id']} from {path}")
    return 0
