"""Every (model, quantization) at one context against a budget: frontiers and a ranking."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from .budget import Budget
from .catalog import Catalog, Model, Quantization
from .estimate import Candidate, Estimate, Options, complete, model_terms, sweep_candidate
from .pareto import frontier

MIN_USABLE_TOKENS_PER_S = 5.0  # below this a chat feels broken; such candidates are not ranked


@dataclass(frozen=True)
class Recommendations:
    budget_bytes: int
    context: int
    use_case: str
    method: str
    candidates: tuple[Candidate, ...]  # every runnable candidate, as ranked and plotted
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
    top: int | None = None,
) -> Recommendations:
    """`top` keeps the best `top` of the ranking only: a caller that shows no more (the CLI's
    --top) spares estimating the rest in full."""
    options = options.check()
    runnable, chosen = _sweep(catalog, budget, options, models or catalog.models)
    # The frontiers are over what fits in the budget: the whole model in fast memory.
    fitting = [c for c in runnable if c.fits]
    size = attrgetter("total_bytes")
    frontiers = {
        "quality": frontier(fitting, attrgetter("quality"), size),
        "speed": frontier(fitting, attrgetter("decode_tokens_per_s"), size),
        "efficiency": frontier(fitting, attrgetter("efficiency"), size),
    }
    ranked = rank(runnable, min_tokens_per_s)
    if top:
        ranked = ranked[:top]
    # Only what is returned becomes an Estimate (with prefill and limits if options.detail).
    estimates: dict[tuple[str, str], Estimate] = {}

    def full(c: Candidate) -> Estimate:
        key = (c.model, c.quant)
        if key not in estimates:
            estimates[key] = complete(c, *chosen[key], budget, options)
        return estimates[key]

    return Recommendations(
        budget_bytes=budget.budget_bytes, context=options.context, use_case=options.use_case, method=options.method,
        candidates=tuple(runnable), frontiers={name: [full(c) for c in front] for name, front in frontiers.items()},
        ranked=tuple(full(c) for c in ranked),
    )


def _sweep(catalog: Catalog, budget: Budget, options: Options,
           models: tuple[Model, ...]) -> tuple[list[Candidate], dict[tuple[str, str], tuple[Model, Quantization]]]:
    """Every runnable candidate, and each one's model and quantization by (model id, quant name)."""
    quants = candidate_quants(catalog)
    runnable: list[Candidate] = []
    chosen: dict[tuple[str, str], tuple[Model, Quantization]] = {}
    # Weights alone beyond every byte of GPU and RAM can be placed nowhere: skip them unestimated.
    capacity = budget.gpu_free_bytes + budget.host_available_bytes
    for model in models:
        if not _eligible(model, options):
            continue
        terms = model_terms(model, catalog, options) if options.method == "default" else None
        for quant in quants:
            sized = catalog.weights_table.get((model.id, quant.name))
            if sized is not None and sized[1].total_bytes > capacity:
                continue
            candidate = sweep_candidate(model, quant, budget, catalog, options, terms)
            if candidate.placement != "none":
                runnable.append(candidate)
                chosen[(model.id, quant.name)] = (model, quant)
    return runnable, chosen


def rank(candidates: list[Candidate], min_tokens_per_s: float) -> tuple[Candidate, ...]:
    """The best quantization of each model that runs at a usable speed, best quality first."""
    best: dict[str, tuple[tuple, Candidate]] = {}  # model -> (its best's preference, its best)
    for c in candidates:
        if c.decode_tokens_per_s is not None and c.decode_tokens_per_s < min_tokens_per_s:
            continue
        preference = _preference(c)
        current = best.get(c.model)
        if current is None or preference > current[0]:
            best[c.model] = (preference, c)
    # Whole-model fits first (a user wants what runs at full speed), then best quality.
    return tuple(sorted((c for _, c in best.values()),
                        key=lambda c: (not c.fits, -c.quality, -(c.decode_tokens_per_s or 0), c.total_bytes)))


def _preference(c: Candidate) -> tuple:
    """Prefer what fits whole, then what leaves the seed's 1 GB of headroom, then quality, then speed."""
    return (c.fits, c.safe, round(c.quality, 6), c.decode_tokens_per_s or 0)
