"""The agent's HTTP views: each reads the current state (or the catalog) and answers JSON with
bytes and tokens/s; errors are ``{"error": "…"}``."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from ..catalog.errors import FitagentError, UsageError
from ..estimator.estimate import estimate
from ..estimator.hardware import snapshot_to_dict
from ..estimator.recommend import Recommendations, explain, pick_within, recommend
from ..estimator.results import Options
from . import package_version
from .openapi import openapi_document
from .params import ESTIMATE_PARAMS, ParamError, parse_query
from .scheduler import Agent
from .state import AgentState, candidate_dict, slim

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class NotReady(FitagentError):
    http_status = 503


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_json_bytes(data), status=status, mimetype="application/json", headers=headers)


# ---------------------------------------------------------------- reading the state


def ready_state(agent: Agent) -> AgentState:
    state = agent.state
    if not state.ready:
        why = f"the last scan failed: {state.error}" if state.error else "the first scan is still running"
        raise NotReady(f"no hardware scan has succeeded yet ({why}); try again shortly")
    return state


def recommendations_for(
    agent: Agent, state: AgentState, use_case: str, context: int, all_quants: bool = False
) -> tuple[Recommendations, int]:
    """Precomputed when the scan did it, else computed now and kept with this state."""
    computed = state.computed
    assert computed is not None  # a ready state's
    key = (use_case, context)
    if key in computed.recommendations and not all_quants:
        return computed.recommendations[key], computed.considered[key]

    def make():
        full = recommend(
            agent.catalog,
            computed.budget,
            Options(context=context, use_case=use_case),
            floor=agent.config.floor(use_case, all_quants),
        )
        return slim(full), len(full.candidates)

    return state.on_demand.get_or_make((use_case, context, all_quants), make)


def recommendations_body(state: AgentState, recs: Recommendations, considered: int, top: int | None) -> dict:
    assert state.computed is not None and state.snapshot is not None
    devices = state.computed.devices
    body = {"hardware": snapshot_to_dict(state.snapshot), **recs.to_dict(top=top)}
    body["candidates_considered"] = considered
    body["frontiers"] = {name: [candidate_dict(e, devices) for e in points] for name, points in recs.frontiers.items()}
    body["ranked"] = [candidate_dict(e, devices) for e in (recs.ranked[:top] if top else recs.ranked)]
    installed = installed_of(state)
    for entry in (e for points in (*body["frontiers"].values(), body["ranked"]) for e in points):
        entry.update(installed.fields(entry["model"], entry["quant"]))
    body["scanned_at"] = iso(state.scanned_at)
    return body


def installed_of(state: AgentState):
    """The models the last scan found on disk (none before the first)."""
    from .localmodels import NOTHING

    return state.installed or NOTHING


def runtimes_here() -> dict:
    """The runtimes' readings the scans keep (agent/runtimes.py) and this box's factor per runtime."""
    import os

    from .paths import cache_dir
    from .runtimes import box_factor, load_store

    stored = load_store(cache_dir(os.environ))
    factors = {}
    for runtime in ("llama.cpp", "vllm", "sglang"):
        found = box_factor(stored, runtime)
        if found:
            factors[runtime] = {"ratio": found[0], "readings": found[1]}
    return {"readings": stored, "factors": factors}


def health(agent: Agent, now: float | None = None) -> dict:
    state = agent.state
    now = time.time() if now is None else now
    stale = state.stale(now)
    status = (
        "starting"
        if not state.ready and state.error is None
        else "error"
        if not state.ready
        else "stale"
        if stale
        else "ok"
    )
    computed = state.computed
    age = state.age_s(now)
    return {
        "status": status,
        "stale": stale,
        "generation": state.generation,
        "scanned_at": iso(state.scanned_at),
        "age_s": None if age is None else round(age, 3),
        "scan_duration_s": None if state.scan_duration_s is None else round(state.scan_duration_s, 4),
        "recommendations_computed_at": iso(computed.computed_at) if computed else None,
        "error": state.error,
        "error_at": iso(state.error_at),
        "consecutive_failures": state.consecutive_failures,
        "scans_total": state.scans_total,
        "scan_failures_total": state.scan_failures_total,
        "rescan_interval_s": agent.config.rescan_interval_s,
        "hardware_source": agent.config.hardware or "probe",
        "uptime_s": round(now - agent.started_at, 3),
        "last_event_id": agent.events.last_id,
    }


def register_views(app: Flask, agent: Agent) -> None:
    version = package_version()

    def body_response(body: bytes, state: AgentState | None = None) -> Response:
        if state is not None and body:
            # remember the exact request, so CachedAnswers can answer it next time
            state.cache.put(("raw", request.path, request.query_string.decode("latin-1")), body)
        return Response(body, mimetype="application/json")

    def defaults(q: dict) -> tuple[str, int]:
        cfg = agent.config
        return q.get("use_case", cfg.default_use_case), q.get("context", cfg.default_context)

    @app.get("/healthz")
    def healthz():
        body = health(agent)
        return json_response(body, 200 if agent.state.ready else 503)

    @app.get("/openapi.json")
    def openapi():
        return json_response(openapi_document(version))

    @app.get("/v1/hardware")
    def hardware():
        parse_query(request.args, ())
        state = ready_state(agent)

        def make() -> bytes:
            return _json_bytes({**snapshot_to_dict(state.snapshot), "runtimes": runtimes_here()})

        return body_response(state.cache.get_or_make(("hardware",), make), state)

    @app.get("/v1/recommendations")
    def recommendations():
        q = parse_query(request.args, ("use_case", "context", "top", "all_quants", "explain"))
        state = ready_state(agent)
        use_case, context = defaults(q)
        top = q.get("top", agent.config.top)
        all_quants = q.get("all_quants", False)
        explained = q.get("explain")

        def make():
            recs, considered = recommendations_for(agent, state, use_case, context, all_quants)
            body = recommendations_body(state, recs, considered, top)
            if explained:
                try:
                    body["explain"] = explain(
                        recs,
                        agent.catalog,
                        state.computed.budget,
                        Options(context=context, use_case=use_case),
                        explained,
                    )
                except FitagentError as exc:
                    raise type(exc)(f"explain: {exc}") from None
            return _json_bytes(body)

        key = ("recommendations", use_case, context, top, all_quants, explained)
        return body_response(state.cache.get_or_make(key, make), state)

    @app.get("/v1/pick")
    def pick():
        q = parse_query(request.args, ("use_case", "context", "max_latency_s", "output_tokens", "prompt_tokens"))
        state = ready_state(agent)
        use_case, context = defaults(q)
        if "max_latency_s" in q:
            return body_response(_pick_within(agent, state, use_case, context, q), state)

        def make():
            recs, _ = recommendations_for(agent, state, use_case, context)
            if not recs.ranked:
                return None
            best = recs.ranked[0]
            return _json_bytes(
                {
                    **candidate_dict(best, state.computed.devices),
                    **installed_of(state).fields(best.model, best.quant),
                    "scanned_at": iso(state.scanned_at),
                }
            )

        body = state.cache.get_or_make(("pick", use_case, context), lambda: make() or b"")
        if not body:
            return json_response(
                {
                    "error": f"nothing in the catalog runs at a usable speed here for use case {use_case} "
                    f"at context {context:,} (try a smaller context)"
                },
                404,
            )
        return body_response(body, state)

    @app.get("/v1/estimate")
    def estimate_one():
        q = parse_query(request.args, ESTIMATE_PARAMS, required=("model",))
        state = ready_state(agent)
        key = ("estimate",) + tuple(sorted(q.items()))
        return body_response(state.cache.get_or_make(key, lambda: _json_bytes(_estimate_body(agent, state, q))), state)

    @app.get("/v1/models")
    def models():
        q = parse_query(request.args, ("use_case", "context", "installed"))
        state = ready_state(agent)
        use_case, context = defaults(q)
        on_disk = q.get("installed", False)

        def make():
            if on_disk:
                return _json_bytes(_installed_models_body(agent, state, use_case, context))
            recs, _ = recommendations_for(agent, state, use_case, context)
            return _json_bytes(_models_body(agent, state, recs))

        return body_response(state.cache.get_or_make(("models", use_case, context, on_disk), make), state)

    @app.get("/v1/events")
    def events():
        q = parse_query(request.args, ("since", "limit"))
        since = q.get("since", 0)
        found = agent.events.since(since, q.get("limit", EVENTS_PAGE))
        oldest = agent.events.oldest_id
        body = {
            "events": [e.to_dict() for e in found],
            "next": found[-1].id if found else since,
            "last_id": agent.events.last_id,
            "oldest_id": oldest,
        }
        if since + 1 < oldest:
            body["missed"] = oldest - since - 1  # dropped from the bounded log before this client asked
        return json_response(body)

    @app.post("/v1/rescan")
    def rescan():
        q = parse_query(request.args, ("wait",))
        expected = agent.token
        if not expected:
            return json_response(
                {"error": "rescans on request are off: no token is configured (set token or token_file)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = request.headers.get("Authorization", "")
        given = given[7:].strip() if given[:7].lower() == "bearer " else request.headers.get("X-Fitagent-Token", "")
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            return json_response(
                {"error": "missing or wrong token (send `Authorization: Bearer TOKEN`)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        generation = agent.state.generation
        agent.request_rescan()
        if q.get("wait"):
            state = agent.wait_for_scan(generation, q["wait"])
            if state.generation > generation:
                return json_response(health(agent), 200)
        return json_response({"scheduled": True, "generation": generation}, 202)

    metrics_registry: list[CollectorRegistry] = []  # made on the first scrape: prometheus_client is not imported before
    metrics_lock = threading.Lock()

    @app.get("/metrics")
    def metrics():
        from .metrics import exposition, make_registry

        with metrics_lock:
            if not metrics_registry:
                metrics_registry.append(make_registry(agent))
        body, content_type = exposition(metrics_registry[0], request.headers.get("Accept"))
        return Response(body, content_type=content_type)

    @app.get("/")
    def page():
        from .page import render_page

        q = parse_query(request.args, ("use_case", "context"))
        use_case, context = defaults(q)
        state = agent.state
        recs = recommendations_for(agent, state, use_case, context)[0] if state.ready else None
        html = render_page(agent, state, recs, use_case, context, health(agent))
        return Response(html, mimetype="text/html")


EVENTS_PAGE = 100  # events per answer when the client names no limit


def _pick_within(agent: Agent, state: AgentState, use_case: str, context: int, q: dict) -> bytes:
    """/v1/pick?max_latency_s=: the best-ranked model whose whole answer arrives in time."""
    options = Options(
        context=context,
        use_case=use_case,
        prompt_tokens=q.get("prompt_tokens", 512),
        output_tokens=q.get("output_tokens"),
    )
    try:
        options.check()
    except UsageError as exc:
        raise ParamError(str(exc)) from None

    def make() -> bytes:
        recs, _ = recommendations_for(agent, state, use_case, context)
        assert state.computed is not None
        chosen = pick_within(recs.ranked, agent.catalog, state.computed.budget, options, q["max_latency_s"])
        return _json_bytes(
            {
                **candidate_dict(chosen, state.computed.devices),
                **installed_of(state).fields(chosen.model, chosen.quant),
                "scanned_at": iso(state.scanned_at),
            }
        )

    return state.cache.get_or_make(("pick-within", use_case, context, tuple(sorted(q.items()))), make)


def _estimate_body(agent: Agent, state: AgentState, q: dict) -> dict:
    catalog = agent.catalog
    try:
        model = catalog.model(q["model"])
    except FitagentError as exc:
        raise type(exc)(f"model: {exc}") from None
    runtime = q.get("runtime", "llama.cpp")
    default_quant = {
        "vllm": "BF16",
        "sglang": "BF16",
        "mlx": "MLX-4BIT",
        "exllamav2": "EXL2-4.0",
        "exllamav3": "EXL3-4.0",
    }.get(runtime, "Q4_K_M")
    try:
        quant, quant_note = catalog.resolve_quant(q.get("quant", default_quant))
    except FitagentError as exc:
        raise type(exc)(f"quant: {exc}") from None
    context = q.get("context", min(agent.config.default_context, model.max_context))
    if "cache_mode" in q and not runtime.startswith("exllama"):
        raise ParamError("cache_mode goes with runtime=exllamav2 or exllamav3")
    if runtime in ("vllm", "sglang"):
        return _vllm_estimate_body(agent, state, q, model, quant, context, runtime)
    if ("concurrency" in q or "gpu_memory_utilization" in q) and runtime not in ("vllm", "sglang"):
        raise ParamError("concurrency and gpu_memory_utilization go with runtime=vllm or sglang")
    if runtime.startswith("exllama"):
        if "kv_quant" in q or "gpu_layers" in q:
            raise ParamError("kv_quant and gpu_layers go with llama.cpp; ExLlama's cache takes cache_mode")
        return _exllama_estimate_body(agent, state, q, model, quant, context, runtime)
    options = Options(
        context=context,
        use_case=q.get("use_case", agent.config.default_use_case),
        kv_quant=q.get("kv_quant", "f16"),
        gpu_layers=q.get("gpu_layers"),
        prompt_tokens=q.get("prompt_tokens", 512),
        output_tokens=q.get("output_tokens"),
    )
    try:
        options.check()
    except UsageError as exc:
        raise ParamError(str(exc)) from None
    assert state.computed is not None
    if runtime == "mlx":
        from ..estimator.mlx import check_mlx, mlx_calibration

        try:
            check_mlx(quant, state.computed.budget)
        except UsageError as exc:
            raise ParamError(f"runtime: {exc}") from None
        options = replace(options, calibration=mlx_calibration(options.calibration))
    result = estimate(model, quant, state.computed.budget, catalog, options)
    body = candidate_dict(result, state.computed.devices)
    body.update(installed_of(state).fields(result.model, result.quant))
    if context > model.max_context:
        body["notes"] = body["notes"] + [
            f"context {context} is beyond the model's trained window of {model.max_context} tokens"
        ]
    if quant_note:
        body["notes"] = body["notes"] + [quant_note]
    body["scanned_at"] = iso(state.scanned_at)
    return body


def _exllama_estimate_body(agent: Agent, state: AgentState, q: dict, model, quant, context: int, runtime) -> dict:
    """runtime=exllamav2|exllamav3: estimator.exllama on the current snapshot's GPUs (the CLI's JSON)."""
    from ..estimator.exllama import ExllamaSettings, exllama_estimate, runtime_for

    assert state.computed is not None
    if quant.format == "exl" and runtime_for(quant) != runtime:
        raise ParamError(f"runtime: {quant.name} loads in {runtime_for(quant)}")
    try:
        settings = ExllamaSettings(
            max_seq_len=context,
            cache_mode=q.get("cache_mode", "FP16"),
            prompt_tokens=q.get("prompt_tokens", 512),
            output_tokens=q.get("output_tokens"),
        ).check()
        result = exllama_estimate(model, quant, state.computed.budget, agent.catalog, settings)
    except UsageError as exc:
        raise ParamError(f"runtime: {exc}") from None
    body = result.to_dict()
    body["scanned_at"] = iso(state.scanned_at)
    return body


def _vllm_estimate_body(
    agent: Agent, state: AgentState, q: dict, model, quant, context: int, runtime: str = "vllm"
) -> dict:
    """runtime=vllm or sglang: estimator.vllm on the current snapshot's GPUs (the `estimate --runtime vllm` JSON)."""
    from ..estimator.vllm import ServeSettings, serve_estimate

    assert state.computed is not None
    settings = ServeSettings(
        max_model_len=context,
        concurrency=q.get("concurrency", 1),
        gpu_memory_utilization=q.get("gpu_memory_utilization"),
        prompt_tokens=q.get("prompt_tokens", 512),
        runtime=runtime,
    )
    try:
        body = serve_estimate(model, quant, state.computed.budget.devices, agent.catalog, settings).to_dict()
    except UsageError as exc:
        raise ParamError(f"runtime: {exc}") from None
    body["scanned_at"] = iso(state.scanned_at)
    return body


def _models_body(agent: Agent, state: AgentState, recs: Recommendations) -> dict:
    best = {e.model: e for e in recs.ranked}
    on_disk = installed_of(state).index
    rows = []
    for m in agent.catalog.models:
        e = best.get(m.id)
        rows.append(
            {
                "id": m.id,
                "alias": m.alias,
                "family": m.family,
                "modality": m.modality,
                "params_total": m.params_total,
                "params_active": m.params_active,
                "max_context": m.max_context,
                "moe": m.is_moe,
                "installed": m.id in on_disk,
                "installed_quants": sorted(on_disk.get(m.id, ())),
                "best": None
                if e is None
                else {
                    "quant": e.quant,
                    "fits": e.fits,
                    "placement": e.placement,
                    "gpu_layers": e.gpu_layers,
                    "total_bytes": e.total_bytes,
                    "headroom_bytes": e.headroom_bytes,
                    "decode_tokens_per_s": e.to_dict()["decode_tokens_per_s"],
                    "quality": round(e.quality, 2),
                },
            }
        )
    return {"use_case": recs.use_case, "context": recs.context, "models": rows, "scanned_at": iso(state.scanned_at)}


def _installed_models_body(agent: Agent, state: AgentState, use_case: str, context: int) -> dict:
    """/v1/models?installed=true: what `fitagent models --local --json` says, from the last scan."""
    from .localmodels import local_rows

    installed = installed_of(state)
    assert state.computed is not None
    rows = local_rows(
        installed,
        agent.catalog,
        state.computed.budget,
        state.computed.devices,
        Options(context=context, use_case=use_case),
    )
    return {
        "use_case": use_case,
        "context": context,
        "budget_bytes": state.computed.budget.budget_bytes,
        "roots": [r.to_dict() for r in installed.scan.roots],
        "models": rows,
        "problems": installed.problems(),
        "scanned_at": iso(state.scanned_at),
    }
