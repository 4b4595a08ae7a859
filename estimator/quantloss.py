"""What a quantization costs in quality, from measurements (the default method's quality factor).

Each llama.cpp type carries the mean KL divergence it adds on a reference model (Llama-3-8B,
llama.cpp's own scoreboard). A model of P parameters loses less to the same type the larger it is:
its divergence is scaled by (P / P_ref)^-size_exponent. The benchmark score it keeps is
exp(-kld_to_loss × divergence). Both constants are fitted here from public measurements
(data/quant_loss.yaml); `python -m benchmarks.quant_quality` runs the fit and prints them, and a
test checks that the shipped constants are what the fit gives. `--method seed` keeps the seed's table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from ..catalog.types import QuantLossModel

# The fits below import statistics themselves: it pulls in decimal, fractions and random, which
# every command that loads the catalog would otherwise pay for at start-up.


def divergence(kld_ref: float, params: float, model: QuantLossModel) -> float:
    """The mean KL divergence a type adds to a model of `params` parameters."""
    if kld_ref <= 0:
        return 0.0
    return kld_ref * (max(params, 1e8) / model.reference_params) ** -model.size_exponent


def retention(kld_ref: float, params: float, model: QuantLossModel) -> float:
    """The share of its benchmark score a model keeps at this type (1.0 = lossless)."""
    return math.exp(-model.kld_to_loss * divergence(kld_ref, params, model))


# ---------------------------------------------------------------- fitting the two constants

NOISE_FLOOR = 0.005  # a smaller loss of a task score is within a benchmark run's noise


def size_exponent_pairs(benchmarks: Iterable[Mapping]) -> list[tuple[float, str, str, str]]:
    """Task scores of one family quantized the same way at two sizes, from one source: each pair's
    exponent ln(loss_small / loss_large) / ln(P_large / P_small), where loss = -ln(score / 16-bit
    score) (or the source's Q8_0 / Q5_K_M row when it ran no 16-bit model). (exponent, benchmark,
    quant, sizes) per pair; losses under the noise floor are left out."""
    groups: dict[tuple, dict[str, dict[str, Mapping]]] = defaultdict(lambda: defaultdict(dict))
    for b in benchmarks:
        groups[(b["source"], b["benchmark"].split(" ")[0])][b["model"]][b["quant"]] = b
    pairs = []
    for (_, bench), models in groups.items():
        if len(models) < 2:
            continue
        losses: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for quants in models.values():
            reference = quants.get("Q8_0") or quants.get("Q5_K_M")
            for quant, b in quants.items():
                base = b.get("base_score")
                if base is None:
                    if reference is None or b is reference:
                        continue
                    base = reference["score"]
                loss = -math.log(b["score"] / base)
                if loss > NOISE_FLOOR and b.get("params"):
                    losses[quant].append((float(b["params"]), loss))
        for quant, points in losses.items():
            points.sort()
            for i, (p1, l1) in enumerate(points):
                for p2, l2 in points[i + 1 :]:
                    pairs.append(
                        (math.log(l1 / l2) / math.log(p2 / p1), bench, quant, f"{p1 / 1e9:.1f}B→{p2 / 1e9:.1f}B")
                    )
    return pairs


def fit_size_exponent(benchmarks: Iterable[Mapping]) -> float:
    """The median exponent over every pair (robust to the noisy small-model and INT8 rows)."""
    import statistics

    return statistics.median(p[0] for p in size_exponent_pairs(benchmarks))


def _ln_ppl_ratio(row: Mapping) -> float | None:
    if row.get("ln_ppl_ratio") is not None:
        return float(row["ln_ppl_ratio"])
    if row.get("ppl_ratio") is not None:
        return math.log(row["ppl_ratio"])
    if row.get("ppl") and row.get("ppl_base"):
        return math.log(row["ppl"] / row["ppl_base"])
    if row.get("ppl_delta_pct") is not None:
        return math.log1p(row["ppl_delta_pct"] / 100)
    return None


def perplexity_size_exponent(rows: Iterable[Mapping]) -> tuple[float, int]:
    """The same exponent read off perplexity instead of task scores (a cross-check): within each
    published table, for each type measured at two sizes or more, the slope of log(ln PPL ratio)
    against log(params); the median and the number of fits."""
    import statistics

    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        loss = _ln_ppl_ratio(r)
        if loss is None or loss <= 0 or r["quant"] in ("F16", "BF16", "F32"):
            continue
        groups[(r["source"], r["quant"], r.get("imatrix"))][float(r["params"])].append(loss)
    slopes = []
    for by_size in groups.values():
        if len(by_size) < 2:
            continue
        xs = [math.log(p) for p in by_size]
        ys = [math.log(statistics.median(v)) for v in by_size.values()]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slopes.append(-sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs))
    return statistics.median(slopes), len(slopes)


def fit_kld_to_loss(
    kld_ref: Mapping[str, float], benchmarks: Iterable[Mapping], model_name: str, max_kld: float = 1.0
) -> float:
    """Least squares through the origin of -ln(score / base score) on the reference divergence, over
    the quantized files of the reference model whose task scores were measured beside the 16-bit
    model's. Types past `max_kld` (IQ1) are left out: their scores sit at chance, not on the curve."""
    xs, ys = [], []
    for b in benchmarks:
        if b.get("model") != model_name or not b.get("base_score") or b.get("format", "gguf") != "gguf":
            continue
        k = kld_ref.get(b["quant"])
        if k is None or k > max_kld:
            continue
        xs.append(k)
        ys.append(-math.log(b["score"] / b["base_score"]))
    return sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)


def reference_klds(rows: Iterable[Mapping], model_name: str) -> dict[str, float]:
    """The median mean-KLD per type measured on the reference model (all its tables, imatrix or not)."""
    import statistics

    by_quant: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("model") == model_name and r.get("kld_mean") is not None and r["quant"] not in ("F16", "BF16", "F32"):
            by_quant[r["quant"]].append(float(r["kld_mean"]))
    return {q: statistics.median(v) for q, v in by_quant.items()}
