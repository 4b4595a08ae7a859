"""Fit the default method's quantization-quality constants from data/quant_loss.yaml and check them.

    python -m benchmarks.quant_quality

Prints the reference divergence of each llama.cpp type (Meta-Llama-3-8B), the two fitted
constants (kld_to_loss, size_exponent) beside the ones shipped in data/quantizations.yaml, the
perplexity-based cross-check of the size exponent, and how well the model predicts task scores it
was not fitted on: Meta-Llama-3-70B-Instruct's MMLU at ten GGUF types (predicted from the 8B fit),
and leave-one-type-out on the 8B's own MMLU.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import yaml

from fitagent.agent.catalog_cache import load_catalog
from fitagent.estimator import quantloss as ql

DATA = Path(__file__).resolve().parent.parent / "data" / "quant_loss.yaml"
REFERENCE = "Meta-Llama-3-8B"
REFERENCE_SCORED = "Meta-Llama-3-8B-Instruct"


def load() -> dict:
    return yaml.safe_load(DATA.read_text(encoding="utf-8"))


def fitted(doc: dict) -> tuple[dict[str, float], float, float]:
    kld = ql.reference_klds(doc["measurements"], REFERENCE)
    return kld, ql.fit_kld_to_loss(kld, doc["benchmarks"], REFERENCE_SCORED), ql.fit_size_exponent(doc["benchmarks"])


def out_of_sample_70b(doc: dict, model: ql.QuantLossModel, kld: dict[str, float]) -> list[tuple[str, float, float]]:
    """(quant, measured MMLU kept relative to Q5_K_M, predicted) for Meta-Llama-3-70B-Instruct."""
    rows = [b for b in doc["benchmarks"] if b["model"] == "Meta-Llama-3-70B-Instruct"]
    base = next(b["score"] for b in rows if b["quant"] == "Q5_K_M")
    params = 70.55e9
    ref = ql.retention(kld["Q5_K_M"], params, model)
    return [
        (b["quant"], b["score"] / base, ql.retention(kld[b["quant"]], params, model) / ref)
        for b in rows
        if b["quant"] != "Q5_K_M" and b["quant"] in kld
    ]


def leave_one_type_out(doc: dict, kld: dict[str, float]) -> list[tuple[str, float, float]]:
    """(quant, measured kept, predicted by a fit without that type) on the reference model's MMLU."""
    rows = [
        b
        for b in doc["benchmarks"]
        if b["model"] == REFERENCE_SCORED
        and b.get("base_score")
        and b.get("format", "gguf") == "gguf"
        and b["quant"] in kld
        and kld[b["quant"]] <= 1.0
    ]
    out = []
    for held in rows:
        a = ql.fit_kld_to_loss(kld, [b for b in rows if b is not held], REFERENCE_SCORED)
        out.append((held["quant"], held["score"] / held["base_score"], math.exp(-a * kld[held["quant"]])))
    return out


def main() -> int:
    doc = load()
    kld, kld_to_loss, size_exponent = fitted(doc)
    shipped = load_catalog().quant_loss
    print(f"reference divergence (mean KLD vs F16, {REFERENCE}), from {len(doc['measurements'])} measurement rows:")
    for quant, value in sorted(kld.items(), key=lambda kv: kv[1]):
        print(f"  {quant:8} {value:.4f}")
    ppl_exponent, fits = ql.perplexity_size_exponent(doc["measurements"])
    pairs = ql.size_exponent_pairs(doc["benchmarks"])
    print(
        f"\nkld_to_loss    fitted {kld_to_loss:.3f}  shipped {shipped.kld_to_loss:.3f}  "
        f"(least squares on {REFERENCE_SCORED} MMLU)"
    )
    print(
        f"size_exponent  fitted {size_exponent:.3f}  shipped {shipped.size_exponent:.3f}  "
        f"(median of {len(pairs)} task-score pairs; perplexity cross-check: {ppl_exponent:.3f} over {fits} table fits)"
    )
    model = ql.QuantLossModel(shipped.reference_params, size_exponent, kld_to_loss)
    print("\nout of sample: Meta-Llama-3-70B-Instruct MMLU kept vs its Q5_K_M (predicted from the 8B fit):")
    errors = []
    for quant, measured, predicted in out_of_sample_70b(doc, model, kld):
        errors.append(abs(predicted - measured))
        print(f"  {quant:8} measured {measured:.3f}  predicted {predicted:.3f}  error {predicted - measured:+.3f}")
    print(f"  median |error| {statistics.median(errors):.3f} of the score (max {max(errors):.3f})")
    print("\nleave-one-type-out on the 8B's own MMLU:")
    errors = []
    for quant, measured, predicted in leave_one_type_out(doc, kld):
        errors.append(abs(predicted - measured))
        print(f"  {quant:8} measured {measured:.3f}  predicted {predicted:.3f}  error {predicted - measured:+.3f}")
    print(f"  median |error| {statistics.median(errors):.3f} (max {max(errors):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
