"""Measure llama.cpp's decode and prefill on this machine's GPU with hollow GGUFs, beside fitagent's
estimate for the same machine.

    PYTHONPATH=tests python -m benchmarks.llamacpp_speed --llama-bench PATH --out DIR \\
        [--models llama3.1-8b:Q4_K_M,qwen3-30b-a3b:Q4_K_M,...] [--reps 3]

Each model is written as a hollow GGUF (tests/hollow_gguf.py: the real header and tensor table,
sparse zero data — llama.cpp reads and multiplies every byte, so decode, which streams the weights,
runs at the real speed) and run with `llama-bench -ngl 99 -fa 1 -p 512 -n 128 -o json`. fitagent's
estimate uses this machine's own probe. Prints a table and writes DIR/llamacpp_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_MODELS = (
    "llama3.2-1b:Q4_K_M,llama3.1-8b:Q4_K_M,llama3.1-8b:Q8_0,llama3.1-8b:F16,qwen2.5-14b:Q4_K_M,"
    "qwen3-30b-a3b:Q4_K_M,gemma-3-27b-it:Q4_K_M,qwen2.5-32b:Q4_K_M,gpt-oss-20b:MXFP4,"
    "llama3.1-70b:Q4_K_M,gpt-oss-120b:MXFP4"
)


def estimate_here(catalog, snapshot, model, quant, prompt: int, depth: int):
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    options = Options(context=max(4096, prompt + depth + 256), prompt_tokens=prompt, decode_depth=depth)
    return estimate(model, quant, budget_from_snapshot(snapshot, catalog), catalog, options)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-bench", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hollow"))
    args = parser.parse_args(argv)

    from hollow_gguf import write_hollow_gguf  # tests/ on PYTHONPATH

    from fitagent.agent.catalog_cache import load_catalog
    from fitagent.agent.hardware import take_snapshot

    catalog = load_catalog()
    snapshot = take_snapshot()
    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.models.split(","):
        name, quant_name = spec.split(":")
        model, quant = catalog.model(name), catalog.quant(quant_name)
        path = args.workdir / f"{name}-{quant_name}.gguf"
        started = time.perf_counter()
        row = {"model": model.id, "quant": quant.name}
        try:
            write_hollow_gguf(path, model, quant, catalog)
            run = subprocess.run(
                [
                    args.llama_bench,
                    "-m",
                    str(path),
                    "-ngl",
                    "99",
                    "-fa",
                    "1",
                    "-p",
                    "512",
                    "-n",
                    "128",
                    "-r",
                    str(args.reps),
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            row["llama_bench_rc"] = run.returncode
            if run.returncode != 0:
                row["error"] = run.stderr[-1500:]
            else:
                results = json.loads(run.stdout)
                for r in results:
                    key = "tg128" if r.get("n_gen") else "pp512"
                    row[key] = r["avg_ts"]
                    row[key + "_stdev"] = r.get("stddev_ts")
                    row["model_size_bytes"] = r.get("model_size")
                    row["build"] = r.get("build_commit")
                    row["gpu"] = r.get("gpu_info")
        except Exception as exc:  # noqa: BLE001 - a check run: record and go on
            row["error"] = f"{type(exc).__name__}: {exc}"
        e = estimate_here(catalog, snapshot, model, quant, 512, 512 + 64)
        row.update(
            est_decode=e.decode_tokens_per_s,
            est_prefill=e.prefill_tokens_per_s,
            est_weights_bytes=e.weights_bytes,
            placement=e.placement,
            seconds=round(time.perf_counter() - started, 1),
        )
        path.unlink(missing_ok=True)
        rows.append(row)
        tg, pp = row.get("tg128"), row.get("pp512")
        print(
            f"{model.id:45} {quant.name:7} tg128 {tg or 0:8.1f} (est {e.decode_tokens_per_s or 0:8.1f})  "
            f"pp512 {pp or 0:9.0f} (est {e.prefill_tokens_per_s or 0:9.0f})  {row.get('error', '')[:200]}",
            flush=True,
        )
        (args.out / "llamacpp_speed.json").write_text(
            json.dumps({"gpu": [g.name for g in snapshot.gpus], "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
