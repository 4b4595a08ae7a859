"""The fleet's three questions, answered from each live host's rebuilt budget.

Pure: ``HostFacts`` in, JSON-ready dicts out (``render`` turns them into text). The numbers
are the estimator's, the same code the agents run.

A host *fits* a candidate when the estimator says it fits whole in fast memory (all layers
on GPUs, or the CPU of a host without GPUs) and it decodes at a usable speed — at least
``MIN_USABLE_TOKENS_PER_S``, the floor below which the recommender ranks nothing. A 70B
model in a CPU server's RAM at 2 tokens/s "fits" the RAM but is not a place to run it.

``place`` estimates only the hosts whose budget could hold the model at all (``prefilter``),
with the model's terms worked out once for every host; ``best`` takes each agent's own top
recommendation from its series and recommends here only for a host that does not export it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...catalog.types import Catalog
from ...estimator.candidates import model_terms, place_candidate
from ...estimator.recommend import MIN_USABLE_TOKENS_PER_S, recommend, usable_now
from ...estimator.results import Options
from .facts import BestModel, HostFacts, host_budget
from .prefilter import bound_for


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def down_list(hosts: Iterable[HostFacts]) -> list[dict]:
    return [{"target": h.target, "host": h.host, "error": h.error} for h in hosts if not h.live]


def _where(h: HostFacts) -> dict:
    return {"host": h.name, "target": h.target, "stale": h.stale, "scan_age_s": _round(h.scan_age_s, 1)}


# ---------------------------------------------------------------- fleet hosts


def hosts_answer(hosts: list[HostFacts], catalog: Catalog) -> dict:
    rows = []
    for h in hosts:
        status = "down" if not h.live else "stale" if h.stale else "up"
        budget = host_budget(h, catalog)
        rows.append(
            {
                **_where(h),
                "status": status,
                "job": h.job,
                "version": h.version,
                "error": h.error,
                "gpus": [
                    {
                        "gpu": g.gpu,
                        "uuid": g.uuid,
                        "name": g.name,
                        "usable": g.usable,
                        "memory_total_bytes": g.memory_total_bytes,
                        "memory_free_bytes": g.memory_free_bytes,
                    }
                    for g in h.gpus
                ],
                "gpu_memory_free_bytes": budget.gpu_free_bytes if budget else None,
                "host_memory_available_bytes": budget.host_available_bytes if budget else h.host_memory_available_bytes,
            }
        )
    rows.sort(key=lambda r: (r["status"] == "down", r["host"] or "", r["target"]))
    return {"hosts": rows, "down": down_list(hosts)}


# ---------------------------------------------------------------- fleet place


def _placement_row(h: HostFacts, c, total_layers: int) -> dict:
    """A host's row from the estimator's Candidate: `estimate` less what `place` does not show
    (prefill, limits), which is most of its cost."""
    fits = usable_now(c)
    placed = c.placed
    note = None
    if c.fits and not fits:
        speed = "an unknown speed" if c.decode_tokens_per_s is None else f"{c.decode_tokens_per_s:.1f} tokens/s"
        note = f"fits whole, but decodes at {speed}, below the usable {MIN_USABLE_TOKENS_PER_S:g} tokens/s"
    elif c.placement == "partial_offload":
        note = f"partial offload: {placed.gpu_layers} of {total_layers} layers on GPUs, the rest in RAM"
    return {
        **_where(h),
        "fits": fits,
        "placement": c.placement,
        "gpu_layers": placed.gpu_layers,
        "total_layers": total_layers,
        "decode_tokens_per_s": _round(c.decode_tokens_per_s),
        "headroom_bytes": c.headroom_bytes,
        "total_bytes": c.total_bytes,
        "devices": [{"name": d.device.name, "layers": d.layers, "bytes": d.total_bytes} for d in placed.shares],
        "note": note,
    }


def place_answer(
    hosts: list[HostFacts],
    catalog: Catalog,
    model_id: str,
    quant_name: str,
    context: int,
    filtered_out: int = 0,
    prefilter: bool = True,
) -> dict:
    """Where the model fits, best first. With `prefilter`, a live host whose budget is below the
    model's minimum footprint cannot fit and is not estimated — unless nothing fits anywhere,
    when every host given is, for the best partial offload. `filtered_out`: live hosts a reader
    already left out for the same reason (Prometheus' side of the filter)."""
    model = catalog.model(model_id)
    quant = catalog.quant(quant_name)
    options = Options(context=context, detail=False).check()
    terms = model_terms(model, catalog, options)  # the same for every host: worked out once
    bound = bound_for(model, quant, catalog, context)
    budgets = {id(h): budget for h in hosts if h.live and (budget := host_budget(h, catalog)) is not None}
    live = [h for h in hosts if budgets.get(id(h)) is not None]
    admitted = [h for h in live if bound.admits(budgets[id(h)])] if prefilter else live
    rows: list[dict] = []
    cannot: list[dict] = []

    def estimate_on(chosen: list[HostFacts]) -> None:
        for h in chosen:
            budget = budgets[id(h)]
            c = place_candidate(model, quant, budget, catalog, options, terms)
            if c.placement == "none":
                cannot.append({**_where(h), "total_bytes": c.total_bytes, "budget_bytes": budget.budget_bytes})
            else:
                rows.append(_placement_row(h, c, model.architecture.layers))

    estimate_on(admitted)
    estimated = len(admitted)
    if not any(r["fits"] for r in rows) and len(admitted) < len(live):
        chosen = {id(h) for h in admitted}
        estimate_on([h for h in live if id(h) not in chosen])
        estimated = len(live)
    # best first: what fits, fastest first (then most headroom); then the rest, fastest first
    rows.sort(key=lambda r: (not r["fits"], -(r["decode_tokens_per_s"] or 0), -r["headroom_bytes"], r["host"]))
    fitting = [r for r in rows if r["fits"]]
    offload = next((r for r in rows if not r["fits"] and r["placement"] == "partial_offload"), None)
    cpu = next((r for r in rows if not r["fits"] and r["placement"] == "cpu"), None)
    notes = []
    if context > model.max_context:
        notes.append(f"context {context} is beyond the model's trained window of {model.max_context} tokens")
    left_out = filtered_out + len(live) - estimated
    if left_out:
        slow = (
            ""
            if bound.cpu_min_bandwidth <= 0
            else (
                "; or no GPU and RAM too slow for 5 tokens/s with it"
                + (
                    f" (at most {bound.cpu_min_bandwidth / 1e9:.0f} GB/s)"
                    if bound.cpu_min_bandwidth != float("inf")
                    else ""
                )
            )
        )
        notes.append(
            f"{left_out} live host{'s' if left_out != 1 else ''} not estimated: they cannot run it at a usable "
            f"speed — memory below its minimum footprint ({bound.min_bytes / 1e9:.1f} GB: weights, KV cache, "
            f"one compute buffer){slow}"
        )
    return {
        "model": model.id,
        "quant": quant.name,
        "context": context,
        "fits_anywhere": bool(fitting),
        "summary": _place_summary(fitting, offload, cpu, cannot),
        "placements": rows,
        "best_partial_offload": offload,
        "cannot_run": cannot,
        "down": down_list(hosts),
        "prefilter": {
            "min_bytes": bound.min_bytes,
            "cpu_min_bandwidth_bytes_per_s": None
            if bound.cpu_min_bandwidth == float("inf")
            else round(bound.cpu_min_bandwidth),
            "estimated": estimated,
            "filtered_out": left_out,
        },
        "notes": notes,
    }


def _speed(r: dict) -> str:
    tps = r["decode_tokens_per_s"]
    return "unknown speed" if tps is None else f"{tps:.1f} tokens/s"


def _place_summary(fitting: list[dict], offload: dict | None, cpu: dict | None, cannot: list[dict]) -> str:
    if fitting:
        best = fitting[0]
        where = "on GPUs" if best["placement"] == "gpu" else "on the CPU"
        return (
            f"fits on {len(fitting)} host{'s' if len(fitting) != 1 else ''}; best: {best['host']} "
            f"({best['target']}) {where}, {_speed(best)}"
        )
    parts = []
    if offload:
        parts.append(
            f"best partial offload: {offload['host']} ({offload['target']}) with {offload['gpu_layers']} of "
            f"{offload['total_layers']} layers on GPUs, {_speed(offload)}"
        )
    if cpu:
        parts.append(f"CPU only: {cpu['host']} ({cpu['target']}), {_speed(cpu)}")
    if not parts:
        return "nowhere fits, and no live host can run it at all"
    return "nowhere fits; " + "; ".join(parts)


# ---------------------------------------------------------------- fleet best


def _layers(catalog: Catalog, model: str, known: dict) -> int | None:
    if model not in known:
        try:
            known[model] = catalog.model(model).architecture.layers
        except Exception:  # noqa: BLE001 - a model this fitagent's catalog lacks (another version)
            known[model] = None
    return known[model]


def _best_row(h: HostFacts, best: BestModel, catalog: Catalog, known: dict) -> dict:
    """A host's row from its agent's exported top recommendation."""
    if best.model is None:
        return {
            **_where(h),
            "model": None,
            "note": "nothing in the catalog runs here at a usable speed",
            "source": "agent",
        }
    total_layers = _layers(catalog, best.model, known)
    decode = best.decode_tokens_per_s
    fits = (
        best.placement in ("gpu", "cpu")
        and (best.headroom_bytes or 0) >= 0
        and decode is not None
        and decode >= MIN_USABLE_TOKENS_PER_S
    )
    return {
        **_where(h),
        "model": best.model,
        "quant": best.quant,
        "fits": fits,
        "placement": best.placement,
        "gpu_layers": best.gpu_layers,
        "total_layers": total_layers,
        "decode_tokens_per_s": _round(decode),
        "headroom_bytes": best.headroom_bytes,
        "quality": _round(best.quality),
        "note": None,
        "source": "agent",
    }


def best_answer(hosts: list[HostFacts], catalog: Catalog, use_case: str, context: int) -> dict:
    """Each host's top recommendation: its agent's own (``fitagent_best_model_*``) when it exports
    that use case at that context, else recommended here on its budget (a full sweep per host)."""
    options = Options(context=context, use_case=use_case).check()
    rows = []
    computed_here = 0
    known: dict[str, int | None] = {}  # model -> layers
    for h in hosts:
        if not h.live:
            continue
        exported = h.best.get((use_case, context))
        if exported is not None:
            rows.append(_best_row(h, exported, catalog, known))
            continue
        budget = host_budget(h, catalog)
        if budget is None:
            continue
        computed_here += 1
        ranked = recommend(catalog, budget, options, top=1).ranked
        if not ranked:
            rows.append(
                {
                    **_where(h),
                    "model": None,
                    "note": "nothing in the catalog runs here at a usable speed",
                    "source": "fleet",
                }
            )
            continue
        e = ranked[0]
        rows.append(
            {
                **_where(h),
                "model": e.model,
                "quant": e.quant,
                "fits": usable_now(e),
                "placement": e.placement,
                "gpu_layers": e.gpu_layers,
                "total_layers": e.total_layers,
                "decode_tokens_per_s": _round(e.decode_tokens_per_s),
                "headroom_bytes": e.headroom_bytes,
                "quality": round(e.quality, 2),
                "note": None,
                "source": "fleet",
            }
        )
    rows.sort(
        key=lambda r: (
            r["model"] is None,
            not r.get("fits"),
            -(r.get("quality") or 0),
            -(r.get("decode_tokens_per_s") or 0),
            r["host"],
        )
    )
    notes = []
    if computed_here:
        notes.append(
            f"{computed_here} host{'s' if computed_here != 1 else ''} do not export the best model for "
            f"{use_case} at {context} tokens (their agents precompute other contexts or use cases, or are "
            "older): recommended here, a full sweep each"
        )
    return {"use_case": use_case, "context": context, "hosts": rows, "down": down_list(hosts), "notes": notes}


# ---------------------------------------------------------------- versions


def version_warnings(versions: dict[str, int], local: str) -> list[str]:
    """A warning when hosts run different fitagent versions, or one other than this fitagent's
    (whose catalog and estimator answer for them)."""
    counted = {v or "unknown": n for v, n in versions.items() if n}
    if not counted:
        return []
    listed = ", ".join(
        f"{v} on {n:,} host{'s' if n != 1 else ''}" for v, n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    if len(counted) > 1:
        return [
            f"hosts run different fitagent versions: {listed}; answers use this fitagent's catalog and "
            f"estimator ({local}), which may differ from some agents' own"
        ]
    (only,) = counted
    if only != local:
        return [f"the hosts run fitagent {only}, this is {local}: answers use this fitagent's catalog and estimator"]
    return []
