"""The fleet's three questions, answered from each live host's rebuilt budget.

Pure: ``HostFacts`` in, JSON-ready dicts out (``render`` turns them into text). The numbers
are the estimator's, the same code the agents run.

A host *fits* a candidate when the estimator says it fits whole in fast memory (all layers
on GPUs, or the CPU of a host without GPUs) and it decodes at a usable speed — at least
``MIN_USABLE_TOKENS_PER_S``, the floor below which the recommender ranks nothing. A 70B
model in a CPU server's RAM at 2 tokens/s "fits" the RAM but is not a place to run it.
"""

from __future__ import annotations

from typing import Iterable

from ...estimator.catalog import Catalog
from ...estimator.estimate import Estimate, Options, estimate
from ...estimator.recommend import MIN_USABLE_TOKENS_PER_S, recommend
from .facts import HostFacts


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def down_list(hosts: Iterable[HostFacts]) -> list[dict]:
    return [{"target": h.target, "host": h.host, "error": h.error} for h in hosts if not h.live]


def _where(h: HostFacts) -> dict:
    return {"host": h.name, "target": h.target, "stale": h.stale, "scan_age_s": _round(h.scan_age_s, 1)}


# ---------------------------------------------------------------- fleet hosts

def hosts_answer(hosts: list[HostFacts]) -> dict:
    rows = []
    for h in hosts:
        status = "down" if not h.live else "stale" if h.stale else "up"
        budget = h.budget
        rows.append({
            **_where(h), "status": status, "job": h.job, "version": h.version, "error": h.error,
            "gpus": [{"gpu": g.gpu, "uuid": g.uuid, "name": g.name, "usable": g.usable,
                      "memory_total_bytes": g.memory_total_bytes, "memory_free_bytes": g.memory_free_bytes}
                     for g in h.gpus],
            "gpu_memory_free_bytes": budget.gpu_free_bytes if budget else None,
            "host_memory_available_bytes": budget.host_available_bytes if budget else h.host_memory_available_bytes,
        })
    rows.sort(key=lambda r: (r["status"] == "down", r["host"] or "", r["target"]))
    return {"hosts": rows, "down": down_list(hosts)}


# ---------------------------------------------------------------- fleet place

def _usable(e: Estimate) -> bool:
    """Fits the host's budget whole, loads there as placed, and decodes at a usable speed."""
    return (e.fits and e.loads and e.placement in ("gpu", "cpu") and e.decode_tokens_per_s is not None
            and e.decode_tokens_per_s >= MIN_USABLE_TOKENS_PER_S)


def _placement_row(h: HostFacts, e: Estimate) -> dict:
    fits = _usable(e)
    note = None
    if e.fits and not fits:
        speed = "an unknown speed" if e.decode_tokens_per_s is None else f"{e.decode_tokens_per_s:.1f} tokens/s"
        note = f"fits whole, but decodes at {speed}, below the usable {MIN_USABLE_TOKENS_PER_S:g} tokens/s"
    elif e.placement == "partial_offload":
        note = f"partial offload: {e.gpu_layers} of {e.total_layers} layers on GPUs, the rest in RAM"
    return {
        **_where(h), "fits": fits, "placement": e.placement, "gpu_layers": e.gpu_layers, "total_layers": e.total_layers,
        "decode_tokens_per_s": _round(e.decode_tokens_per_s), "headroom_bytes": e.headroom_bytes,
        "total_bytes": e.total_bytes, "devices": [{"name": d.name, "layers": d.layers, "bytes": d.bytes} for d in e.devices],
        "note": note,
    }


def place_answer(hosts: list[HostFacts], catalog: Catalog, model_id: str, quant_name: str, context: int) -> dict:
    model = catalog.model(model_id)
    quant = catalog.quant(quant_name)
    options = Options(context=context).check()
    rows = []
    cannot = []
    for h in hosts:
        if not h.live:
            continue
        e = estimate(model, quant, h.budget, catalog, options)
        if e.placement == "none":
            cannot.append({**_where(h), "total_bytes": e.total_bytes, "budget_bytes": e.budget_bytes})
        else:
            rows.append(_placement_row(h, e))
    # best first: what fits, fastest first (then most headroom); then the rest, fastest first
    rows.sort(key=lambda r: (not r["fits"], -(r["decode_tokens_per_s"] or 0), -r["headroom_bytes"], r["host"]))
    fitting = [r for r in rows if r["fits"]]
    offload = next((r for r in rows if not r["fits"] and r["placement"] == "partial_offload"), None)
    cpu = next((r for r in rows if not r["fits"] and r["placement"] == "cpu"), None)
    notes = []
    if context > model.max_context:
        notes.append(f"context {context} is beyond the model's trained window of {model.max_context} tokens")
    return {
        "model": model.id, "quant": quant.name, "context": context,
        "fits_anywhere": bool(fitting),
        "summary": _place_summary(fitting, offload, cpu, cannot),
        "placements": rows,
        "best_partial_offload": offload,
        "cannot_run": cannot,
        "down": down_list(hosts),
        "notes": notes,
    }


def _speed(r: dict) -> str:
    tps = r["decode_tokens_per_s"]
    return "unknown speed" if tps is None else f"{tps:.1f} tokens/s"


def _place_summary(fitting: list[dict], offload: dict | None, cpu: dict | None, cannot: list[dict]) -> str:
    if fitting:
        best = fitting[0]
        where = "on GPUs" if best["placement"] == "gpu" else "on the CPU"
        return (f"fits on {len(fitting)} host{'s' if len(fitting) != 1 else ''}; best: {best['host']} "
                f"({best['target']}) {where}, {_speed(best)}")
    parts = []
    if offload:
        parts.append(f"best partial offload: {offload['host']} ({offload['target']}) with {offload['gpu_layers']} of "
                     f"{offload['total_layers']} layers on GPUs, {_speed(offload)}")
    if cpu:
        parts.append(f"CPU only: {cpu['host']} ({cpu['target']}), {_speed(cpu)}")
    if not parts:
        return "nowhere fits, and no live host can run it at all"
    return "nowhere fits; " + "; ".join(parts)


# ---------------------------------------------------------------- fleet best

def best_answer(hosts: list[HostFacts], catalog: Catalog, use_case: str, context: int) -> dict:
    options = Options(context=context, use_case=use_case).check()
    rows = []
    for h in hosts:
        if not h.live:
            continue
        ranked = recommend(catalog, h.budget, options).ranked
        if not ranked:
            rows.append({**_where(h), "model": None, "note": "nothing in the catalog runs here at a usable speed"})
            continue
        e = ranked[0]
        rows.append({
            **_where(h), "model": e.model, "quant": e.quant, "fits": _usable(e), "placement": e.placement,
            "gpu_layers": e.gpu_layers, "total_layers": e.total_layers,
            "decode_tokens_per_s": _round(e.decode_tokens_per_s), "headroom_bytes": e.headroom_bytes,
            "quality": round(e.quality, 2), "note": None,
        })
    rows.sort(key=lambda r: (r["model"] is None, not r.get("fits"), -(r.get("quality") or 0),
                             -(r.get("decode_tokens_per_s") or 0), r["host"]))
    return {"use_case": use_case, "context": context, "hosts": rows, "down": down_list(hosts)}
