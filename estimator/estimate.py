"""One candidate — (model, quantization, context) on a budget — estimated end to end, by the default
method (``candidates``) or the seed document's (``seed``)."""

from __future__ import annotations

from dataclasses import replace

from ..catalog.types import Catalog, Model, Quantization
from ..catalog.vision import VisionTower
from . import vision
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


def estimate_with_images(
    model: Model,
    quant: Quantization,
    budget: Budget,
    catalog: Catalog,
    options: Options,
    tower: VisionTower,
    images: int,
    size: tuple[int, int] = (1024, 1024),
) -> Estimate:
    """The estimate of a vision model asked about `images` images of `size` pixels in its prompt:
    the projector (llama.cpp's mmproj) and the encoder's buffer take their room on the first GPU
    before the model is placed, the images' tokens join the prompt, and their encoding joins the
    time to the first token."""
    text_hidden = model.architecture.hidden_size
    cost = vision.image_cost(tower, size[0], size[1], text_hidden)
    projector = vision.projector_bytes(tower, text_hidden)
    buffer = vision.encoder_buffer_bytes(cost, tower)
    room = budget
    if budget.devices:
        first = budget.devices[0]
        room = replace(
            budget,
            devices=(replace(first, free_bytes=max(0, first.free_bytes - projector - buffer)), *budget.devices[1:]),
        )
    else:
        room = replace(budget, host_available_bytes=max(0, budget.host_available_bytes - projector - buffer))
    asked = replace(options, prompt_tokens=options.prompt_tokens + images * cost.tokens)
    result = estimate(model, quant, room, catalog, asked)
    seconds = vision.encode_seconds(cost, budget, options.calibration)
    encode = None if seconds is None else images * seconds
    ttft = result.time_to_first_token_s
    completion = result.completion_time_s
    where = budget.devices[0].name if budget.devices else "the CPU"
    facts = {
        "images": images,
        "image_size": list(size),
        "tokens_per_image": cost.tokens,
        "image_tokens": images * cost.tokens,
        "projector_bytes": projector,
        "encoder_buffer_bytes": buffer,
        "encode_seconds": None if encode is None else round(encode, 4),
        "encoder": tower.encoder,
        "source": tower.source,
    }
    note = (
        f"{images} image(s) of {size[0]}×{size[1]}: {images * cost.tokens:,} prompt tokens; the projector "
        f"(--mmproj, {projector / 1e9:.2f} GB) and the encoder's buffer ({buffer / 1e9:.2f} GB) take room on {where}"
    )
    notes: tuple[str, ...] = (note,)
    if tower.encoder == "llama4":  # mtmd.cpp's own warning when it loads the projector (PR #13282)
        notes += ("llama.cpp warns that its Llama 4 vision is known to have degraded quality",)
    return replace(
        result,
        total_bytes=result.total_bytes + projector + buffer,
        overhead_bytes=result.overhead_bytes + projector + buffer,
        budget_bytes=budget.budget_bytes,
        time_to_first_token_s=None if ttft is None or encode is None else ttft + encode,
        completion_time_s=None if completion is None or encode is None else completion + encode,
        vision=facts,
        notes=result.notes + notes,
    )
