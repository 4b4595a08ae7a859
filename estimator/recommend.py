"""Every (model, quantization) at one context against a budget: frontiers and a ranking."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .budget import Budget
from .catalog import Catalog, Model, Quantization
from .estimate import Estimate, Options, estimate
from .pareto import frontier

MIN_USABLE_TOKENS_PER_S = 5.0  # below this a chat feels broken; such candidates are not ranked


@dataclass(frozen=True)
class Recommendations:
    budget_bytes: int
    context: int
    use_case: str
    method: str
    candidates: tuple[Estimate, ...]  # every runnable candidate
    frontiers: dict[str, list[Estimate]]
    ranked: tuple[Estimate, ...]

    def to_dict(self, top: int | None = None) -> dict:
        ranked = self.ranked[:top] if top else self.ranked
        return {
            "budget_bytes": self.budget_bytes,
            "context": self.context,
            "use_case": self.use_case,
            "method": self.method,
            "candidates_considered": len(self.candidates),
            "frontiers": {k: [e.to_dict() for e in v] for k, v in self.frontiers.items()},
            "ranked": [e.to_dict() for e in ranked],
        }


# Left to `estimate`: FP8 (a vLLM format), MXFP4 (gpt-oss only), F32, and BF16, which weighs
# and scores exactly as F16 does, so it could only tie with it on every frontier and ranking.
_NOT_SWEPT = ("FP8", "MXFP4", "F32", "BF16")


def candidate_quants(catalog: Catalog) -> tuple[Quantization, ...]:
    """Formats a recommendation sweeps: llama.cpp's, less legacy types and uploaders' variants
    (``recommend: false`` in quantizations.yaml) and the formats in _NOT_SWEPT."""
    return tuple(q for q in catalog.quantizations if q.recommend and q.name not in _NOT_SWEPT)


def _eligible(model: Model, options: Options) -> bool:
    if options.use_case == "vision" and model.modality != "vision":
        return False
    return options.context <= model.max_context


def recommend(
    catalog: Catalog,
    budget: Budget,
    options: Options = Options(),
    models: tuple[Model, ...] | None = None,
    min_tokens_per_s: float = MIN_USABLE_TOKENS_PER_S,
) -> Recommendations:
    options = options.check()
    sweep = replace(options, detail=False)  # prefill and limits only for what is returned (below)
    runnable = []
    chosen: dict[tuple[str, str], tuple[Model, Quantization]] = {}
    # Weights alone beyond every byte of GPU and RAM can be placed nowhere: skip them unestimated.
    capacity = budget.gpu_free_bytes + budget.host_available_bytes
    for model in models or catalog.models:
        if not _eligible(model, options):
            continue
        for quant in candidate_quants(catalog):
            sized = catalog.weights_table.get((model.id, quant.name))
            if sized is not None and sized[1].total_bytes > capacity:
                continue
            est = estimate(model, quant, budget, catalog, sweep)
            if est.placement != "none":
                runnable.append(est)
                chosen[(est.model, est.quant)] = (model, quant)
    # The frontiers are over what fits in the budget: the whole model in fast memory.
    fitting = [e for e in runnable if e.fits]
    frontiers = {
        "quality": frontier(fitting, lambda e: e.quality, lambda e: e.total_bytes),
        "speed": frontier(fitting, lambda e: e.decode_tokens_per_s, lambda e: e.total_bytes),
        "efficiency": frontier(fitting, lambda e: e.efficiency, lambda e: e.total_bytes),
    }
    ranked = rank(runnable, min_tokens_per_s)
    if options.detail:
        detailed: dict[tuple[str, str], Estimate] = {}

        def full(e: Estimate) -> Estimate:
            key = (e.model, e.quant)
            if key not in detailed:
                model, quant = chosen[key]
                detailed[key] = estimate(model, quant, budget, catalog, options)
            return detailed[key]

        frontiers = {name: [full(e) for e in front] for name, front in frontiers.items()}
        ranked = tuple(full(e) for e in ranked)
    return Recommendations(
        budget_bytes=budget.budget_bytes, context=options.context, use_case=options.use_case, method=options.method,
        candidates=tuple(runnable), frontiers=frontiers, ranked=ranked,
    )


def rank(candidates: list[Estimate], min_tokens_per_s: float) -> tuple[Estimate, ...]:
    """The best quantization of each model that runs at a usable speed, best quality first."""
    best: dict[str, Estimate] = {}
    for e in candidates:
        if e.decode_tokens_per_s is not None and e.decode_tokens_per_s < min_tokens_per_s:
            continue
        current = best.get(e.model)
        if current is None or _better(e, current):
            best[e.model] = e
    # Whole-model fits first (a user wants what runs at full speed), then best quality.
    return tuple(sorted(best.values(), key=lambda e: (not e.fits, -e.quality, -(e.decode_tokens_per_s or 0), e.total_bytes)))


def _better(a: Estimate, b: Estimate) -> bool:
    """Prefer what fits whole, then what leaves the seed's 1 GB of headroom, then quality, then speed."""
    def key(e: Estimate):
        return (e.fits, e.safe, round(e.quality, 6), e.decode_tokens_per_s or 0)

    return key(a) > key(b)

