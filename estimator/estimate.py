"""One candidate — (model, quantization, context) on a budget — estimated end to end, by the default
method (``candidates``) or the seed document's (``seed``)."""

from __future__ import annotations

from ..catalog.types import Catalog, Model, Quantization
from .budget import Budget
from .candidates import estimate_from_candidate, place_candidate
from .results import Estimate, Options
from .seed_method import estimate_seed


def estimate(
    model: Model, quant: Quantization, budget: Budget, catalog: Catalog, options: Options = Options()
) -> Estimate:
    if options.method == "seed":
        return estimate_seed(model, quant, budget, options)
    return estimate_from_candidate(
        place_candidate(model, quant, budget, catalog, options), model, quant, budget, options
    )
