"""Estimate memory, fit and speed of one model at one quantization and context."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from ...catalog.errors import UsageError
from .common import (
    add_hardware,
    add_json,
    context_tokens,
    host_overrides,
    non_negative_int,
    positive_int,
    print_json,
    prompt_tokens,
)

DEFAULT_CONTEXT = 8192
DEFAULT_QUANT = "Q4_K_M"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model", metavar="NAME", help="a catalog model: Hugging Face id or alias (see `fitagent catalog models`)"
    )
    which.add_argument("--config", metavar="PATH", help="a Hugging Face config.json of the model")
    which.add_argument(
        "--gguf", metavar="FILE", help="a GGUF file: exact tensor sizes from its header (weights are not loaded)"
    )
    parser.add_argument(
        "--quant", help="quantization (default: the file's with --gguf, else Q4_K_M; see `fitagent catalog quants`)"
    )
    parser.add_argument(
        "--context",
        type=context_tokens,
        metavar="N",
        help=f"context length in tokens, e.g. 8192 or 32k (default {DEFAULT_CONTEXT}, or the model's maximum if smaller)",
    )
    add_hardware(parser)
    parser.add_argument(
        "--method",
        choices=("default", "seed"),
        default="default",
        help="default: tensor-by-tensor model fitted to measurements; seed: the seed document's formulas",
    )
    parser.add_argument(
        "--gpu-layers", type=non_negative_int, metavar="N", help="force N layers on the GPU (llama.cpp -ngl N)"
    )
    parser.add_argument(
        "--n-cpu-moe",
        type=non_negative_int,
        metavar="N",
        help="MoE: every layer on the GPU but the routed experts of N layers in RAM (llama.cpp --n-cpu-moe N)",
    )
    parser.add_argument(
        "--prompt-tokens",
        type=prompt_tokens,
        default=512,
        metavar="N",
        help="prompt length for prefill speed and time to first token, e.g. 512 or 4k (default 512)",
    )
    parser.add_argument(
        "--output-tokens",
        type=context_tokens,
        metavar="N",
        help="answer length: adds completion_time_s, the wait for the whole answer after the prompt, e.g. 256 or 1k",
    )
    parser.add_argument(
        "--kv-quant", choices=("f16", "q8_0", "q4_0"), default="f16", help="KV cache type (llama.cpp -ctk/-ctv)"
    )
    parser.add_argument(
        "--multi-gpu",
        choices=("layer", "tensor"),
        default="layer",
        help="several GPUs: split layers (llama.cpp) or tensor parallel (vLLM)",
    )
    parser.add_argument(
        "--use-case", default="general", help="weights the quality score: general, code, tool-calling, math, vision"
    )
    parser.add_argument(
        "--images",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="a vision model with N images in the prompt: its projector (--mmproj) and the images' tokens and encoding",
    )
    parser.add_argument(
        "--image-size",
        type=image_size,
        default=(1024, 1024),
        metavar="WxH",
        help="each image's pixels (default 1024x1024)",
    )
    add_runtime(parser)
    add_json(parser)


def image_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().replace("×", "x").partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT in pixels, e.g. 1024x768") from None
    if not all(16 <= v <= 16384 for v in size):
        raise argparse.ArgumentTypeError(f"each side must be between 16 and 16384 pixels, got {text}")
    return size


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """The serving engine and, for vLLM, the flags its memory and batches follow."""
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="llama.cpp",
        help="the engine: llama.cpp (GGUF, one stream), vllm or sglang (safetensors, paged KV cache, batches), "
        "mlx (MLX checkpoints on Apple silicon), exllamav2 / exllamav3 (EXL2 / EXL3 under TabbyAPI)",
    )
    vllm = parser.add_argument_group("vLLM and SGLang (with --runtime vllm or sglang)")
    vllm.add_argument(
        "--concurrency", type=positive_int, default=1, metavar="N", help="sessions served at once (default 1)"
    )
    vllm.add_argument(
        "--gpu-memory-utilization",
        type=float,
        metavar="F",
        help="share of each GPU's total memory vLLM takes (default 0.9); SGLang's --mem-fraction-static "
        "(default 0.88 on one GPU to 0.79 on sixteen)",
    )
    vllm.add_argument(
        "--tensor-parallel-size",
        type=positive_int,
        metavar="N",
        help="GPUs one model spans (default: the fewest of 1, 2, 4, 8 that serve every session)",
    )
    vllm.add_argument(
        "--kv-cache-dtype", default="auto", help="auto (the model's 16-bit) or fp8: half the KV cache per token"
    )
    vllm.add_argument("--max-num-seqs", type=positive_int, metavar="N", help="vLLM's batch limit (default by GPU)")
    vllm.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (saves their memory, slower)")
    exl = parser.add_argument_group("ExLlama under TabbyAPI (with --runtime exllamav2 or exllamav3)")
    exl.add_argument(
        "--cache-mode",
        metavar="MODE",
        help="KV cache: FP16 (default), Q8, Q6 or Q4; ExLlamaV3 also K,V bits from 2 to 8, e.g. 4,6",
    )
    exl.add_argument(
        "--cache-size", type=context_tokens, metavar="N", help="tokens the shared cache holds (default --context)"
    )
    exl.add_argument(
        "--chunk-size", type=positive_int, metavar="N", help="prompt tokens per forward pass (default 2048)"
    )


RUNTIMES = ("llama.cpp", "vllm", "sglang", "mlx", "exllamav2", "exllamav3")
EXLLAMA = ("exllamav2", "exllamav3")


def resolve_model(args, catalog):
    if args.model:
        return catalog.model(args.model)
    if args.config:
        from ..modelfiles import model_from_config_file

        return model_from_config_file(args.config, catalog)
    from ..modelfiles import model_from_gguf_file

    return model_from_gguf_file(args.gguf, catalog)


def resolve_quant_name(args, model) -> str:
    if args.quant:
        return args.quant
    if getattr(args, "runtime", "llama.cpp") in ("vllm", "sglang"):
        return "BF16"  # vLLM and SGLang load the published safetensors checkpoint
    if getattr(args, "runtime", "llama.cpp") == "mlx":
        return "MLX-4BIT"  # mlx_lm's default conversion
    if getattr(args, "runtime", "llama.cpp") in EXLLAMA:
        return "EXL2-4.0" if args.runtime == "exllamav2" else "EXL3-4.0"
    if model.file_weights is not None:
        if model.file_weights.file_type:
            return model.file_weights.file_type
        raise UsageError(
            f"--gguf {args.gguf}: the header names no file type fitagent knows; give --quant for the quality score"
        )
    return DEFAULT_QUANT


def run(args) -> int:
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.estimate import estimate
    from ...estimator.results import Options
    from ..catalog_cache import load_catalog
    from ..hardware import resolve_hardware

    catalog = load_catalog()
    if args.runtime in ("vllm", "sglang") and args.gguf:
        raise UsageError(
            f"--runtime {args.runtime} loads safetensors checkpoints, not a GGUF file: use --model or --config"
        )
    model = resolve_model(args, catalog)
    quant, quant_note = catalog.resolve_quant(resolve_quant_name(args, model))
    context = args.context if args.context is not None else min(DEFAULT_CONTEXT, model.max_context)
    serving_flags = [
        flag
        for flag, given in (
            ("--concurrency", args.concurrency != 1),
            ("--gpu-memory-utilization", args.gpu_memory_utilization is not None),
            ("--tensor-parallel-size", args.tensor_parallel_size is not None),
            ("--kv-cache-dtype", args.kv_cache_dtype != "auto"),
            ("--max-num-seqs", args.max_num_seqs is not None),
            ("--enforce-eager", args.enforce_eager),
        )
        if given
    ]
    if serving_flags and args.runtime not in ("vllm", "sglang"):
        raise UsageError(
            f"{', '.join(serving_flags)} go with --runtime vllm or sglang (llama.cpp: --kv-quant, --multi-gpu)"
        )
    exllama_flags = [
        flag
        for flag, given in (
            ("--cache-mode", args.cache_mode is not None),
            ("--cache-size", args.cache_size is not None),
            ("--chunk-size", args.chunk_size is not None),
        )
        if given
    ]
    if exllama_flags and args.runtime not in EXLLAMA:
        raise UsageError(f"{', '.join(exllama_flags)} go with --runtime exllamav2 or exllamav3")
    if args.runtime in EXLLAMA:
        return _run_exllama(args, catalog, model, quant, context)
    if args.runtime in ("vllm", "sglang"):
        return _run_vllm(args, catalog, model, quant, context)
    options = Options(
        context=context,
        use_case=args.use_case,
        method=args.method,
        kv_quant=args.kv_quant,
        gpu_layers=args.gpu_layers,
        n_cpu_moe=args.n_cpu_moe,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
        multi_gpu=args.multi_gpu,
    ).check()
    snapshot, hardware_notes = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    if args.runtime == "mlx":
        from ...estimator.mlx import check_mlx, mlx_calibration

        check_mlx(quant, budget)
        options = replace(options, calibration=mlx_calibration(options.calibration))
    if args.images:
        from ...catalog.vision import tower_for, vision_towers
        from ...estimator.estimate import estimate_with_images

        tower = tower_for(model.id)
        if tower is None:
            known = ", ".join(sorted(vision_towers()))
            raise UsageError(f"--images: fitagent knows the vision tower of {known}; not of {model.id}")
        result = estimate_with_images(model, quant, budget, catalog, options, tower, args.images, args.image_size)
    else:
        result = estimate(model, quant, budget, catalog, options)
    result = replace(result, notes=result.notes + tuple(hardware_notes))
    if args.runtime == "mlx":
        note = (
            f"MLX: one stream in unified memory, no offload; serve the {quant.name} conversion with "
            f"`mlx_lm.server --model <its repo>` (e.g. mlx_lm.convert --hf-path {model.id} -q)"
        )
        result = replace(result, notes=result.notes + (note,))
    if not args.gpu and args.runtime == "llama.cpp":  # this box (probed, or its snapshot): what its runtimes measured
        from ..paths import cache_dir
        from ..runtimes import load_store, recalibrated

        result = recalibrated(result, load_store(cache_dir(os.environ)))
    file_type = model.file_weights.file_type if model.file_weights else None
    if file_type and quant.name != file_type:
        note = f"weights are the file's exact sizes ({file_type}); --quant {quant.name} only sets the quality score"
        result = replace(result, notes=result.notes + (note,))
    if quant_note:
        result = replace(result, notes=result.notes + (quant_note,))
    if model.notes:
        result = replace(result, notes=result.notes + model.notes)
    result = replace(result, notes=result.notes + _beyond_window(model, context))
    if args.json:
        print_json(result.to_dict())
    else:
        from ..render import render_estimate

        print(render_estimate(result, snapshot))
    return 0


def _run_vllm(args, catalog, model, quant, context: int) -> int:
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.vllm import ServeSettings, serve_estimate
    from ..hardware import resolve_hardware

    images = _vllm_images(args, model) if args.images else None
    settings = ServeSettings(
        max_model_len=context,
        concurrency=args.concurrency,
        gpu_memory_utilization=args.gpu_memory_utilization,
        tensor_parallel_size=args.tensor_parallel_size,
        kv_cache_dtype=args.kv_cache_dtype,
        max_num_seqs=args.max_num_seqs,
        enforce_eager=args.enforce_eager,
        prompt_tokens=args.prompt_tokens + (images.tokens * args.images if images else 0),
        runtime=args.runtime,
    ).check()
    snapshot, hardware_notes = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    result = serve_estimate(model, quant, budget.devices, catalog, settings)
    if images is not None:
        from ...estimator.vllm import with_images

        result = with_images(result, images, args.images, budget.devices)
    # the host's RAM plays no part: vLLM holds everything on its GPUs
    gpu_notes = tuple(n for n in hardware_notes if not n.startswith("what-if host"))
    result = replace(result, notes=result.notes + gpu_notes)
    result = replace(result, notes=result.notes + _beyond_window(model, context))
    if args.json:
        print_json(result.to_dict())
    else:
        from ..render import render_serve

        print(render_serve(result))
    return 0


def _vllm_images(args, model):
    """One image's cost in the model's own processor (its tower from data/vision.yaml)."""
    from ...catalog.vision import tower_for, vision_towers
    from ...estimator.vision import image_cost

    tower = tower_for(model.id)
    if tower is None:
        known = ", ".join(sorted(vision_towers()))
        raise UsageError(f"--images: fitagent knows the vision tower of {known}; not of {model.id}")
    return image_cost(tower, *args.image_size, model.architecture.hidden_size)


def _run_exllama(args, catalog, model, quant, context: int) -> int:
    from ...estimator.budget import budget_from_snapshot
    from ...estimator.exllama import ExllamaSettings, exllama_estimate, runtime_for
    from ..hardware import resolve_hardware

    if args.gguf:
        raise UsageError(f"--runtime {args.runtime} loads EXL checkpoints, not a GGUF file: use --model or --config")
    llama_only = [
        flag
        for flag, given in (
            ("--gpu-layers", args.gpu_layers is not None),
            ("--n-cpu-moe", args.n_cpu_moe is not None),
            ("--kv-quant", args.kv_quant != "f16"),
            ("--images", bool(args.images)),
            ("--method seed", args.method != "default"),
        )
        if given
    ]
    if llama_only:
        raise UsageError(
            f"{', '.join(llama_only)} go with llama.cpp; ExLlama holds every layer on the GPUs (its cache: --cache-mode)"
        )
    if quant.format == "exl" and runtime_for(quant) != args.runtime:
        raise UsageError(f"{quant.name} loads in {runtime_for(quant)}: give --runtime {runtime_for(quant)}")
    settings = ExllamaSettings(
        max_seq_len=context,
        cache_mode=args.cache_mode or "FP16",
        cache_size=args.cache_size,
        chunk_size=args.chunk_size or 2048,
        tensor_parallel=args.multi_gpu == "tensor",
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
    ).check()
    snapshot, hardware_notes = resolve_hardware(args.hardware, args.gpu, catalog, host_overrides(args))
    budget = budget_from_snapshot(snapshot, catalog)
    result = exllama_estimate(model, quant, budget, catalog, settings, use_case=args.use_case)
    # the host holds only the embedding table
    gpu_notes = tuple(n for n in hardware_notes if not n.startswith("what-if host"))
    result = replace(result, notes=result.notes + gpu_notes + _beyond_window(model, context))
    if args.json:
        print_json(result.to_dict())
    else:
        from ..render import render_exllama

        print(render_exllama(result))
    return 0


def _beyond_window(model, context: int) -> tuple[str, ...]:
    if context > model.max_context:
        return (f"context {context} is beyond the model's trained window of {model.max_context} tokens",)
    return ()
