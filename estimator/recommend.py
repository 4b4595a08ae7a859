"""Every (model, quantization) at one context against a budget: frontiers, a ranking, and why.

What an experienced user would run: each model at its best quantization that fits with room to
spare, never a 16-bit file where Q8_0 is as good and faster, nothing that loses more to its
quantization than a usable floor allows (extreme IQ1/IQ2 types on small models) or scores below a
floor for the use case — unless asked for with `all_quants` — and the count of what was left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from ..catalog.errors import NotFoundError
from ..catalog.types import Catalog, Model, Quantization
from .budget import Budget
from .candidates import Candidate, estimate_from_candidate, model_terms, place_candidate
from .estimate import estimate
from .pareto import frontier
from .results import Estimate, Options
from .tensors import NATIVE_EXPERT_TYPES

MIN_USABLE_TOKENS_PER_S = 5.0  # below this a chat feels broken; such candidates are not ranked


def usable_now(e) -> bool:
    """Fits the budget whole, loads as placed, and decodes at a usable speed (an Estimate, or a
    swept Candidate, which has the same fields)."""
    return bool(
        e.fits
        and e.loads
        and e.placement in ("gpu", "cpu")
        and e.decode_tokens_per_s is not None
        and e.decode_tokens_per_s >= MIN_USABLE_TOKENS_PER_S
    )


SIXTEEN_BIT_TIE = 0.5  # a 16-bit file gives way to the model's Q8_0 when Q8_0 is within this much quality
QUALITY_TIE = 0.1  # quality points no benchmark tells apart: within this, the faster quantization wins
_SIXTEEN_BIT = ("F16", "BF16", "F32")


@dataclass(frozen=True)
class Floor:
    """What a recommendation leaves out unless asked for everything (config: max_quant_loss,
    quality_floor; documented in config/fitagent.yaml)."""

    max_quant_loss: float = 0.10  # share of the benchmark score a quantization may cost
    quality_floor: float = 50.0  # the use case's quality below which a candidate is not offered
    all_quants: bool = False  # True: nothing is left out

    def why_out(self, c: Candidate) -> str | None:
        if self.all_quants:
            return None
        if 1 - c.retention > self.max_quant_loss:
            return "quant_loss"
        if c.quality < self.quality_floor:
            return "below_quality_floor"
        return None


@dataclass(frozen=True)
class Recommendations:
    budget_bytes: int
    context: int
    use_case: str
    method: str
    candidates: tuple[Candidate, ...]  # every runnable candidate, as ranked and plotted
    frontiers: dict[str, list[Estimate]]
    ranked: tuple[Estimate, ...]
    notes: tuple[str, ...] = ()
    floor: Floor = Floor()
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> runnable candidates left out

    def to_dict(self, top: int | None = None) -> dict:
        ranked = self.ranked[:top] if top else self.ranked
        return {
            "budget_bytes": self.budget_bytes,
            "context": self.context,
            "use_case": self.use_case,
            "method": self.method,
            "candidates_considered": len(self.candidates),
            "left_out": {
                "count": sum(self.left_out.values()),
                **self.left_out,
                "max_quant_loss": self.floor.max_quant_loss,
                "quality_floor": self.floor.quality_floor,
                "min_tokens_per_s": MIN_USABLE_TOKENS_PER_S,
                "all_quants": self.floor.all_quants,
            },
            "frontiers": {k: [e.to_dict() for e in v] for k, v in self.frontiers.items()},
            "ranked": [e.to_dict() for e in ranked],
            "notes": list(self.notes),
        }

    def left_out_line(self) -> str | None:
        """One line saying how many candidates were left out and why (None when none were)."""
        parts = []
        if self.left_out.get("quant_loss"):
            parts.append(
                f"{self.left_out['quant_loss']} lose more than {self.floor.max_quant_loss:.0%} of their score "
                "to the quantization"
            )
        if self.left_out.get("below_quality_floor"):
            parts.append(
                f"{self.left_out['below_quality_floor']} score below {self.floor.quality_floor:g} for {self.use_case}"
            )
        if self.left_out.get("too_slow"):
            parts.append(f"{self.left_out['too_slow']} decode under {MIN_USABLE_TOKENS_PER_S:g} tokens/s")
        if not parts:
            return None
        total = sum(self.left_out.values())
        return f"left out below the floor: {total} candidates ({'; '.join(parts)}) — --all-quants shows them"


# Left to `estimate`: FP8 (a vLLM format), F32, and BF16, which weighs and scores exactly as F16
# does, so it could only tie with it on every frontier and ranking. A model published in a low-bit
# format of its own (gpt-oss: MXFP4 experts, which its llama.cpp files keep whatever their type
# says) is offered in that format alone: the file people run, and the only one priced right.
_NOT_SWEPT = ("FP8", "MXFP4", "F32", "BF16")


def candidate_quants(catalog: Catalog) -> tuple[Quantization, ...]:
    """Formats a recommendation sweeps: llama.cpp's, less legacy types and uploaders' variants
    (``recommend: false`` in quantizations.yaml) and the formats in _NOT_SWEPT."""
    return tuple(q for q in catalog.quantizations if q.recommend and q.name not in _NOT_SWEPT)


def _model_quants(model: Model, catalog: Catalog, swept: tuple[Quantization, ...]) -> tuple[Quantization, ...]:
    native = NATIVE_EXPERT_TYPES.get(model.architecture.hf_architecture or "")
    return (catalog.quant(native),) if native else swept


def _eligible(model: Model, options: Options) -> bool:
    if model.modality == "embedding":
        return False  # an embedding model answers no prompt: it is sized and placed, not recommended
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
    notes: list[str] | tuple[str, ...] = (),
    floor: Floor = Floor(),
) -> Recommendations:
    """`top` keeps the best `top` of the ranking only: a caller that shows no more (the CLI's
    --top) spares estimating the rest in full."""
    options = options.check()
    runnable, chosen = _sweep(catalog, budget, options, catalog.models if models is None else models)
    offered, left_out = _apply_floor(runnable, floor, min_tokens_per_s)
    notes = tuple(notes)
    if runnable and not any(c.decode_tokens_per_s and c.decode_tokens_per_s >= min_tokens_per_s for c in offered):
        # Nothing here reaches the floor (a small machine): what runs is still the answer.
        offered, left_out = [c for c in runnable if c.decode_tokens_per_s], {}
        notes += (
            "nothing here reaches the usable floor (quality, quantization loss, speed): showing everything that runs",
        )
    # The frontiers are over what fits in the budget: the whole model in fast memory.
    fitting = [c for c in offered if c.whole]
    size = attrgetter("total_bytes")
    frontiers = {
        "quality": frontier(fitting, attrgetter("quality"), size),
        "speed": frontier(fitting, attrgetter("decode_tokens_per_s"), size),
        "efficiency": frontier(fitting, attrgetter("efficiency"), size),
        # the trade a user faces: how much quality for how much more speed, whatever the memory
        "quality_speed": frontier(fitting, attrgetter("quality"), lambda c: -(c.decode_tokens_per_s or 0.0)),
    }
    ranked = rank(offered, min_tokens_per_s)
    if top:
        ranked = ranked[:top]
    # Only what is returned becomes an Estimate (with prefill and limits if options.detail).
    estimates: dict[tuple[str, str], Estimate] = {}

    def full(c: Candidate) -> Estimate:
        key = (c.model, c.quant)
        if key not in estimates:
            estimates[key] = estimate_from_candidate(c, *chosen[key], budget, options)
        return estimates[key]

    return Recommendations(
        budget_bytes=budget.budget_bytes,
        context=options.context,
        use_case=options.use_case,
        method=options.method,
        candidates=tuple(runnable),
        frontiers={name: [full(c) for c in front] for name, front in frontiers.items()},
        ranked=tuple(full(c) for c in ranked),
        notes=notes,
        floor=floor,
        left_out=left_out,
    )


def _apply_floor(
    runnable: list[Candidate], floor: Floor, min_tokens_per_s: float
) -> tuple[list[Candidate], dict[str, int]]:
    offered: list[Candidate] = []
    reasons: Counter[str] = Counter()
    for c in runnable:
        why = floor.why_out(c)
        if why is None and c.decode_tokens_per_s is not None and c.decode_tokens_per_s < min_tokens_per_s:
            why = "too_slow"
        if why is None:
            offered.append(c)
        else:
            reasons[why] += 1
    return offered, dict(reasons)


def _sweep(
    catalog: Catalog, budget: Budget, options: Options, models: tuple[Model, ...]
) -> tuple[list[Candidate], dict[tuple[str, str], tuple[Model, Quantization]]]:
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
        for quant in _model_quants(model, catalog, quants):
            sized = catalog.weights_table.get((model.id, quant.name))
            if sized is not None and sized[1].total_bytes > capacity:
                continue
            candidate = place_candidate(model, quant, budget, catalog, options, terms)
            if candidate.placement != "none":
                runnable.append(candidate)
                chosen[(model.id, quant.name)] = (model, quant)
    return runnable, chosen


def rank(candidates: list[Candidate], min_tokens_per_s: float) -> tuple[Candidate, ...]:
    """The best quantization of each model that runs at a usable speed; what fits whole first,
    then quality, ties (to a tenth of a point) broken by speed, then memory."""
    by_model: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.decode_tokens_per_s is not None and c.decode_tokens_per_s < min_tokens_per_s:
            continue
        by_model.setdefault(c.model, []).append(c)
    best = [pick_for_model(cs) for cs in by_model.values()]
    return tuple(
        sorted(best, key=lambda c: (not c.whole, -round(c.quality, 1), -(c.decode_tokens_per_s or 0), c.total_bytes))
    )


def pick_for_model(candidates: list[Candidate]) -> Candidate:
    """One model's pick: of its best tier (fits whole with the safe headroom, else whole, else what
    loads), the best quality — a 16-bit file giving way to Q8_0 within SIXTEEN_BIT_TIE (as good,
    twice as fast) — then, within QUALITY_TIE of it, the fastest and smallest: no pick is dominated
    by a sibling (more quality, more speed, no more memory)."""
    tier = max((c.whole, c.safe) for c in candidates)
    pool = [c for c in candidates if (c.whole, c.safe) == tier]
    top = max(pool, key=lambda c: (c.quality, c.decode_tokens_per_s or 0))
    if top.quant in _SIXTEEN_BIT:
        q8 = next((c for c in pool if c.quant == "Q8_0"), None)
        if (
            q8 is not None
            and top.quality - q8.quality <= SIXTEEN_BIT_TIE
            and (q8.decode_tokens_per_s or 0) >= (top.decode_tokens_per_s or 0)
        ):
            top = q8
    near = [c for c in pool if c.quality >= top.quality - QUALITY_TIE]
    return min(near, key=lambda c: (-(c.decode_tokens_per_s or 0), c.total_bytes, -c.quality))


# ---------------------------------------------------------------- explain one model


def explain(
    recs: Recommendations,
    catalog: Catalog,
    budget: Budget,
    options: Options,
    model_name: str,
    min_tokens_per_s: float = MIN_USABLE_TOKENS_PER_S,
) -> dict:
    """Where one model stands in these recommendations and why: each quantization with its fate
    (chosen, fits, too slow, left out below the floor, does not load), the pick and what beats it."""
    model = catalog.model(model_name)
    options = options.check()
    if not _eligible(model, options):
        reason = (
            f"{model.id} is not a vision model"
            if options.use_case == "vision" and model.modality != "vision"
            else f"{model.id} reads at most {model.max_context:,} tokens, less than the context {options.context:,}"
        )
        return {"model": model.id, "rank": None, "chosen": None, "quants": [], "beaten_by": [], "why": [reason]}
    terms = model_terms(model, catalog, options) if options.method == "default" else None
    swept = _model_quants(model, catalog, candidate_quants(catalog))
    candidates = [place_candidate(model, q, budget, catalog, options, terms) for q in swept]
    ranked_ids = [e.model for e in recs.ranked]
    rank_of = ranked_ids.index(model.id) + 1 if model.id in ranked_ids else None
    offered = [
        c
        for c in candidates
        if c.placement != "none" and recs.floor.why_out(c) is None and (c.decode_tokens_per_s or 0) >= min_tokens_per_s
    ]
    chosen = pick_for_model(offered) if offered else None
    rows = []
    for c in sorted(candidates, key=lambda c: c.total_bytes):
        if c.placement == "none":
            fate = "does not load"
        elif chosen is not None and c.quant == chosen.quant:
            fate = "chosen"
        elif recs.floor.why_out(c) == "quant_loss":
            fate = f"left out: loses {1 - c.retention:.0%} of its score to the quantization"
        elif recs.floor.why_out(c) == "below_quality_floor":
            fate = f"left out: quality under {recs.floor.quality_floor:g}"
        elif (c.decode_tokens_per_s or 0) < min_tokens_per_s:
            fate = f"too slow (under {min_tokens_per_s:g} tokens/s)"
        else:
            fate = _beaten_within(c, chosen)
        rows.append(
            {
                "quant": c.quant,
                "total_bytes": c.total_bytes,
                "placement": c.placement,
                "fits": c.fits,
                "loads": c.loads,
                "safe": c.safe,
                "quality": round(c.quality, 2),
                "quant_retention": round(c.retention, 4),
                "decode_tokens_per_s": None if c.decode_tokens_per_s is None else round(c.decode_tokens_per_s, 2),
                "fate": fate,
            }
        )
    why = []
    if chosen is None:
        why.append("no quantization of it runs here at a usable speed above the floor")
    else:
        why.append(f"{chosen.quant} is its best pick: " + _why_chosen(chosen, offered))
    above = [e for e in recs.ranked[: (rank_of - 1) if rank_of else len(recs.ranked)]][:5]
    beaten_by = [
        {
            "model": e.model,
            "quant": e.quant,
            "quality": round(e.quality, 2),
            "quality_ahead": round(e.quality - (chosen.quality if chosen else 0), 2),
            "decode_tokens_per_s": None if e.decode_tokens_per_s is None else round(e.decode_tokens_per_s, 2),
        }
        for e in above
    ]
    if rank_of:
        why.append(
            f"ranked {rank_of} of {len(recs.ranked)}"
            + (f": {len(above)} shown ahead, by quality (then speed)" if above else ": first")
        )
    elif chosen is not None:
        why.append("not in the ranking shown (raise --top)")
    return {
        "model": model.id,
        "rank": rank_of,
        "chosen": chosen.quant if chosen else None,
        "quality_source": candidates[0].quality_source if candidates else None,
        "quants": rows,
        "beaten_by": beaten_by,
        "why": why,
    }


def _beaten_within(c: Candidate, chosen: Candidate | None) -> str:
    if chosen is None:
        return "runs"
    if (c.whole, c.safe) < (chosen.whole, chosen.safe):
        return "runs, but " + ("does not fit whole" if not c.whole else "leaves under 1 GB of headroom")
    if c.quality > chosen.quality:
        return (
            f"runs: {c.quality - chosen.quality:.2f} more quality, but {chosen.quant} is "
            f"{(chosen.decode_tokens_per_s or 0) / (c.decode_tokens_per_s or 1):.2f}× as fast"
        )
    return f"runs: {chosen.quant} scores {chosen.quality - c.quality:.2f} more"


def _why_chosen(chosen: Candidate, offered: list[Candidate]) -> str:
    where = (
        "fits whole with more than 1 GB to spare"
        if chosen.safe
        else "fits whole"
        if chosen.whole
        else "loads partly offloaded"
    )
    best = max(offered, key=lambda c: c.quality)
    if best.quant != chosen.quant and best.quality > chosen.quality:
        return (
            f"{where}; {best.quality - chosen.quality:.2f} quality below {best.quant}, a difference no benchmark tells apart, "
            f"and {(chosen.decode_tokens_per_s or 0) / (best.decode_tokens_per_s or 1):.2f}× as fast"
        )
    return f"{where}, the best quality of its quantizations that do"


DEFAULT_OUTPUT_TOKENS = 256  # the answer length a latency bound is checked for when none is named


def pick_within(
    ranked: Sequence[Estimate], catalog: Catalog, budget: Budget, options: Options, max_latency_s: float
) -> Estimate:
    """The first of a ranking whose whole answer — options.output_tokens (DEFAULT_OUTPUT_TOKENS when
    unset) after a prompt of options.prompt_tokens — arrives within `max_latency_s`, re-estimated
    with those lengths; NotFoundError naming the quickest one when none does."""
    options = replace(options, output_tokens=options.output_tokens or DEFAULT_OUTPUT_TOKENS, detail=True).check()
    quickest = None
    for e in ranked:
        timed = estimate(catalog.model(e.model), catalog.quant(e.quant), budget, catalog, options)
        if timed.completion_time_s is None:
            continue
        if timed.completion_time_s <= max_latency_s:
            return timed
        if quickest is None or timed.completion_time_s < (quickest.completion_time_s or math.inf):
            quickest = timed
    closest = (
        f"; the quickest, {quickest.model} {quickest.quant}, takes {quickest.completion_time_s:.1f} s"
        if quickest is not None and quickest.completion_time_s is not None
        else ""
    )
    raise NotFoundError(
        f"no recommended model answers {options.output_tokens:,} tokens after a {options.prompt_tokens:,}-token "
        f"prompt within {max_latency_s:g} s here{closest}"
    )
