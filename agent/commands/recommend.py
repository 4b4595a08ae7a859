"""Rank the catalog's models for this machine, with the quality, speed, efficiency and quality-vs-speed frontiers."""

from __future__ import annotations

import argparse
import gc
import os

from .common import add_hardware, add_json, context_tokens, host_overrides, positive_int, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_hardware(parser)
    parser.add_argument(
        "--use-case",
        default="general",
        choices=("general", "code", "tool-calling", "math", "vision"),
        help="weights the quality score (default general)",
    )
    parser.add_argument(
        "--context", type=context_tokens, default=8192, metavar="N", help="context length in tokens (default 8192)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=10, metavar="K", help="how many ranked models to show (default 10)"
    )
    parser.add_argument(
        "--method", choices=("default", "seed"), default="default", help="estimation method (default: default)"
    )
    parser.add_argument("--kv-quant", choices=("f16", "q8_0", "q4_0"), default="f16", help="KV cache type")
    parser.add_argument(
        "--all-quants",
        action="store_true",
        help="also offer what the usable floor leaves out (max_quant_loss, quality_floor in the config)",
    )
    parser.add_argument("--explain", metavar="MODEL", help="say where MODEL stands in the ranking and why")
    parser.add_argument("--config", metavar="FILE", help="config file with the floor (default: the agent's config)")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="only the catalog models installed here (`fitagent models --local` lists what is)",
    )
    parser.add_argument(
        "--runtime",
        choices=("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3"),
        default="llama.cpp",
        help="llama.cpp (GGUF types, frontiers); vllm or sglang (safetensors checkpoints, each model's best that "
        "serves); mlx (MLX checkpoints on Apple silicon); exllamav2 / exllamav3 (each model's best EXL2 / EXL3 "
        "branch under TabbyAPI)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --runtime vllm or sglang: sessions served at once, each up to --context (default 1)",
    )
    add_json(parser)


def run_vllm(args) -> int:
    """`recommend --runtime vllm`: each model's best checkpoint that vLLM serves here, ranked."""
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.vllm import ServeSettings, rank_models
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware
    from ..render import render_vllm_ranking

    catalog = load_catalog()
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    if not budget.devices:
        from ...catalog.errors import UsageError

        raise UsageError(
            f"--runtime {args.runtime} needs a GPU; this box has none usable (use --gpu NAME to ask about one)"
        )
    settings = ServeSettings(max_model_len=args.context, concurrency=args.concurrency, runtime=args.runtime)
    ranked = rank_models(catalog, budget.devices, settings, args.use_case)
    if args.json:
        print_json(
            {
                "runtime": args.runtime,
                "context": args.context,
                "concurrency": args.concurrency,
                "use_case": args.use_case,
                "ranked": [r.to_dict() for r in ranked[: args.top]],
            }
        )
    else:
        print(render_vllm_ranking(ranked, args.top, settings))
    return 0


def run_mlx(args) -> int:
    """`recommend --runtime mlx`: each model's best MLX checkpoint that fits this Apple chip, ranked."""
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.mlx import rank_models
    from ...estimator.results import Options
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware

    catalog = load_catalog()
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    options = Options(context=args.context, use_case=args.use_case, detail=False).check()
    ranked = rank_models(catalog, budget, options)
    return _print_one_stream_ranking(
        args, "mlx", ranked, f"MLX · {args.context:,} tokens", ("checkpoint", "memory"), "MLX checkpoint fits"
    )


def run_exllama(args) -> int:
    """`recommend --runtime exllamav2|exllamav3`: each model's best EXL branch that TabbyAPI loads here."""
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.exllama import ExllamaSettings, rank_models
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware

    if args.concurrency != 1:
        from ...catalog.errors import UsageError

        raise UsageError(f"--concurrency goes with --runtime vllm or sglang; {args.runtime} ranks one stream's speed")
    catalog = load_catalog()
    snapshot, _ = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    settings = ExllamaSettings(max_seq_len=args.context).check()
    ranked = rank_models(catalog, budget, settings, args.runtime, args.use_case)
    title = f"{args.runtime} (TabbyAPI) · {args.context:,} tokens, FP16 cache"
    return _print_one_stream_ranking(args, args.runtime, ranked, title, ("branch", "GPU memory"), "EXL branch loads")


def _print_one_stream_ranking(args, runtime: str, ranked, title: str, columns: tuple[str, str], fits: str) -> int:
    """Each model's best checkpoint for a one-stream runtime (MLX, ExLlama): JSON, or a table."""
    from ..render import rate, table

    if args.json:
        print_json(
            {
                "runtime": runtime,
                "context": args.context,
                "use_case": args.use_case,
                "ranked": [e.to_dict() for e in ranked[: args.top]],
            }
        )
        return 0
    if not ranked:
        print(f"no catalog model's {fits} here at {args.context:,} tokens and 5 tokens/s or more")
        return 0
    rows = [
        (i, e.model, e.quant, f"{e.quality:.1f}", rate(e.decode_tokens_per_s), f"{e.total_bytes / 1e9:.1f} GB")
        for i, e in enumerate(ranked[: args.top], 1)
    ]
    print(f"{title}\n")
    print(table(("#", "model", columns[0], "quality", "decode", columns[1]), rows))
    return 0


def run(args) -> int:
    if args.runtime in ("vllm", "sglang"):
        return run_vllm(args)
    if args.runtime == "mlx":
        return run_mlx(args)
    if args.runtime in ("exllamav2", "exllamav3"):
        return run_exllama(args)
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.hardware import snapshot_to_dict
    from ...estimator.recommend import explain, recommend
    from ...estimator.results import Options
    from ..catalog_cache import load_catalog
    from ..config import load_config
    from ..hardware import resolve_hardware

    catalog = load_catalog()
    # What is loaded by now (modules, the catalog: ~17,000 objects the garbage collector tracks)
    # lives until the command exits; frozen, the collections the sweep sets off skip it.
    gc.freeze()
    options = Options(context=args.context, use_case=args.use_case, method=args.method, kv_quant=args.kv_quant).check()
    config = load_config(args.config, os.environ)
    floor = config.floor(args.use_case, args.all_quants)
    if args.explain:
        catalog.model(args.explain)  # an unknown name fails before the sweep
    from ..localmodels import scan_installed

    installed = scan_installed(catalog, os.environ, model_dirs=config.model_dirs)
    models = tuple(m for m in catalog.models if m.id in installed.index) if args.installed else None
    snapshot, hardware_notes = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    notes: list[str] | tuple[str, ...] = hardware_notes
    if models == ():
        notes = (*notes, "none of the catalog's models is installed here (`fitagent models --local` lists what is)")
    result = recommend(
        catalog, budget, options, models=models, top=None if args.explain else args.top, notes=notes, floor=floor
    )
    explained = explain(result, catalog, budget, options, args.explain) if args.explain else None
    if args.json:
        body = {"hardware": snapshot_to_dict(snapshot), **result.to_dict(top=args.top)}
        for entry in (e for points in (*body["frontiers"].values(), body["ranked"]) for e in points):
            entry.update(installed.fields(entry["model"], entry["quant"]))
        if explained:
            body["explain"] = explained
        print_json(body)
    elif models == () and not explained:
        print(
            "none of the catalog's models is installed here (`fitagent models --local` lists what is, and which "
            "catalog model each file holds)"
        )
    else:
        from ..render import render_explain, render_recommendations

        print(render_explain(explained) if explained else render_recommendations(result, snapshot, top=args.top))
        if not explained and installed.index:
            print(_installed_line(result.ranked[: args.top], installed, args.installed))
    return 0


def _installed_line(ranked, installed, only_installed: bool) -> str:
    """Which ranked picks are on disk already (at that quantization, or at others)."""
    on_disk = []
    for rank, e in enumerate(ranked, 1):
        fields = installed.fields(e.model, e.quant)
        if fields["installed"]:
            on_disk.append(f"#{rank} as picked ({fields['installed_at'][0]})")
        elif fields.get("installed_quants"):
            on_disk.append(f"#{rank} at {'/'.join(fields['installed_quants'])}")
    hint = "`fitagent models --local` says how each file runs" if only_installed else "`--installed` ranks only those"
    return f"on disk: {'; '.join(on_disk) if on_disk else 'none of these'} — {hint}"
