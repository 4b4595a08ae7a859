"""What hardware a model needs: GPU memory, RAM, bandwidth, and the catalog GPUs that hold it."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..values import tokens_per_s
from .common import add_json, argument, context_tokens, positive_int, print_json

DEFAULT_CONTEXT = 8192
SHOWN = 15  # options in the human answer (the JSON has them all)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME", help="a catalog model id or alias")
    parser.add_argument(
        "--quant", help="quantization (default Q4_K_M; BF16 with --runtime vllm or sglang; MLX-4BIT with mlx)"
    )
    parser.add_argument(
        "--context",
        type=context_tokens,
        metavar="N",
        help=f"context of each session, e.g. 8192 or 32k (default {DEFAULT_CONTEXT}, or the model's maximum if smaller)",
    )
    parser.add_argument(
        "--runtime",
        choices=("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3"),
        default="llama.cpp",
        help="the serving engine: llama.cpp (GGUF; -np N sessions), vllm or sglang (safetensors; tensor "
        "parallel), mlx (MLX checkpoints; Apple silicon), exllamav2 / exllamav3 (EXL2 / EXL3 under TabbyAPI)",
    )
    parser.add_argument(
        "--target-tps", type=argument(tokens_per_s), metavar="T", help="decode tokens/s each session should reach"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=1, metavar="N", help="sessions served at once (default 1)"
    )
    add_json(parser)


def run(args) -> int:
    from ...estimator.plan import plan
    from ..catalog_cache import load_catalog
    from ..render import render_plan

    catalog = load_catalog()
    model = catalog.model(args.model)
    defaults = {"vllm": "BF16", "sglang": "BF16", "mlx": "MLX-4BIT", "exllamav2": "EXL2-4.0", "exllamav3": "EXL3-4.0"}
    quant, quant_note = catalog.resolve_quant(args.quant or defaults.get(args.runtime, "Q4_K_M"))
    context = args.context if args.context is not None else min(DEFAULT_CONTEXT, model.max_context)
    answer = plan(model, quant, catalog, context, args.runtime, args.target_tps, args.concurrency)
    if quant_note:
        answer = replace(answer, notes=answer.notes + (quant_note,))
    if args.json:
        print_json(answer.to_dict())
    else:
        print(render_plan(answer, SHOWN))
    return 0
