"""The HTTP face of the agent: a Flask app factory whose views only read the current state.

``create_app(config, prober=…)`` builds the Agent (scheduler + state) and the views; the
app is served by waitress (one process, threads: the scheduler must exist once per host).
Every answer is JSON with bytes and tokens/s, errors are ``{"error": "…"}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..catalog.errors import FitagentError, UsageError
from ..estimator.estimate import estimate
from ..estimator.hardware import HardwareSnapshot, snapshot_to_dict
from ..estimator.recommend import Recommendations, explain, recommend
from ..estimator.results import Options
from . import package_version
from .config import Config, config_from_mapping
from .openapi import openapi_document
from .params import ParamError, parse_query
from .scheduler import Agent
from .state import AgentState, candidate_dict, slim

log = logging.getLogger("fitagent.server")
EXTENSION = "fitagent"  # app.extensions[EXTENSION] is the Agent (the metrics collector reads agent.state)


class NotReady(FitagentError):
    http_status = 503


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
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
    return {
        "status": status,
        "stale": stale,
        "generation": state.generation,
        "scanned_at": iso(state.scanned_at),
        "age_s": None if state.scanned_at is None else round(state.age_s(now), 3),
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


# ---------------------------------------------------------------- the app


def create_app(
    config: Config | Mapping | None = None,
    prober: Callable[[], HardwareSnapshot] | None = None,
    catalog=None,
    start: bool = True,
    agent: Agent | None = None,
) -> Flask:
    """The Flask app over one Agent. `prober` replaces the hardware probe (tests, what-if runs);
    `start=False` leaves the scheduler off (call `app.extensions["fitagent"].scan_once()`)."""
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        config = config_from_mapping(config, "create_app(config)")
    agent = agent or Agent(config, prober=prober, catalog=catalog)
    app = Flask(__name__, static_folder=None)
    app.extensions[EXTENSION] = agent
    app.json.sort_keys = False
    _register_errors(app)
    _register_views(app, agent)
    app.wsgi_app = LoopbackHosts(CachedAnswers(app.wsgi_app, agent), config.host)
    if start and not app.testing:
        agent.start()
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, NotFound):
            message = f"no such endpoint: {request.path} (see /openapi.json)"
        elif isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(m for m in (exc.valid_methods or ()) if m not in ("HEAD", "OPTIONS"))
            message = f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
        else:
            message = exc.description or exc.name
        response = exc.get_response()
        return _json({"error": message}, exc.code or 500, headers={k: v for k, v in response.headers if k == "Allow"})

    @app.errorhandler(FitagentError)
    def fitagent_error(exc: FitagentError):
        return _json({"error": str(exc)}, exc.http_status)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("error answering %s %s", request.method, request.path)
        return _json({"error": "internal error; the agent's log has the details"}, 500)


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


class LoopbackHosts:
    """WSGI middleware: an agent bound to loopback answers only requests addressed to loopback, so a
    web page that rebinds its own DNS name to 127.0.0.1 cannot read the agent through the victim's
    browser (the process list, the hardware). Agents bound to other addresses are left alone."""

    def __init__(self, wsgi_app, bind_host: str):
        self.wsgi_app = wsgi_app
        self.check = bind_host in ("127.0.0.1", "::1", "localhost") or bind_host.startswith("127.")

    def __call__(self, environ, start_response):
        if self.check:
            host = environ.get("HTTP_HOST", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host and name.lower() not in _LOOPBACK_NAMES and not name.startswith("127."):
                body = json.dumps(
                    {
                        "error": f"this agent answers requests to localhost only, not to {host[:80]!r} "
                        "(set host in the config to serve other names)"
                    }
                ).encode()
                start_response(
                    "421 Misdirected Request",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
        return self.wsgi_app(environ, start_response)


class CachedAnswers:
    """WSGI middleware: a GET whose exact path and query the app already answered from this
    state is answered again from the state's cache, without routing (the hot path of
    launchers polling /v1/pick). Anything else goes to the Flask app."""

    def __init__(self, wsgi_app, agent: Agent):
        self.wsgi_app = wsgi_app
        self.agent = agent

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            body = self.agent.state.cache.get(("raw", environ.get("PATH_INFO"), environ.get("QUERY_STRING", "")))
            if body is not None:
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
        return self.wsgi_app(environ, start_response)


def _register_views(app: Flask, agent: Agent) -> None:
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
        return _json(body, 200 if agent.state.ready else 503)

    @app.get("/openapi.json")
    def openapi():
        return _json(openapi_document(version))

    @app.get("/v1/hardware")
    def hardware():
        parse_query(request.args, ())
        state = ready_state(agent)
        return body_response(
            state.cache.get_or_make(("hardware",), lambda: _json_bytes(snapshot_to_dict(state.snapshot))), state
        )

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
        q = parse_query(request.args, ("use_case", "context"))
        state = ready_state(agent)
        use_case, context = defaults(q)

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
            return _json(
                {
                    "error": f"nothing in the catalog runs at a usable speed here for use case {use_case} "
                    f"at context {context:,} (try a smaller context)"
                },
                404,
            )
        return body_response(body, state)

    @app.get("/v1/estimate")
    def estimate_one():
        q = parse_query(
            request.args, ("model", "quant", "context", "use_case", "kv_quant", "gpu_layers"), required=("model",)
        )
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
        return _json(body)

    @app.post("/v1/rescan")
    def rescan():
        q = parse_query(request.args, ("wait",))
        expected = agent.token
        if not expected:
            return _json(
                {"error": "rescans on request are off: no token is configured (set token or token_file)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = request.headers.get("Authorization", "")
        given = given[7:].strip() if given[:7].lower() == "bearer " else request.headers.get("X-Fitagent-Token", "")
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            return _json(
                {"error": "missing or wrong token (send `Authorization: Bearer TOKEN`)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        generation = agent.state.generation
        agent.request_rescan()
        if q.get("wait"):
            state = agent.wait_for_scan(generation, q["wait"])
            if state.generation > generation:
                return _json(health(agent), 200)
        return _json({"scheduled": True, "generation": generation}, 202)

    metrics_registry = []  # made on the first scrape: prometheus_client is not imported before
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


def _estimate_body(agent: Agent, state: AgentState, q: dict) -> dict:
    catalog = agent.catalog
    try:
        model = catalog.model(q["model"])
    except FitagentError as exc:
        raise type(exc)(f"model: {exc}") from None
    try:
        quant, quant_note = catalog.resolve_quant(q.get("quant", "Q4_K_M"))
    except FitagentError as exc:
        raise type(exc)(f"quant: {exc}") from None
    context = q.get("context", min(agent.config.default_context, model.max_context))
    options = Options(
        context=context,
        use_case=q.get("use_case", agent.config.default_use_case),
        kv_quant=q.get("kv_quant", "f16"),
        gpu_layers=q.get("gpu_layers"),
    )
    try:
        options.check()
    except UsageError as exc:
        raise ParamError(str(exc)) from None
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


# ---------------------------------------------------------------- serving


def _whole_response_writes() -> dict:
    """Every answer here is one in-memory bytes object. With waitress's default send_bytes=1
    the worker thread flushes the headers and then the body while the main loop spins on the
    same socket; buffering up to 512 KiB lets the main loop send each answer once the task is
    done, which costs about a third less CPU per request (benchmarks/serve.py). The setting
    is deprecated in waitress 3, so it is passed only while waitress still has it."""
    import warnings

    from waitress.adjustments import Adjustments

    if not hasattr(Adjustments, "send_bytes"):
        return {}
    warnings.filterwarnings("ignore", message="send_bytes will be removed", category=DeprecationWarning)
    return {"send_bytes": 512 * 1024}


# Limits that keep slow or greedy clients from starving the agent: no route takes a body, so a
# request announcing one over 1 KiB is refused (413) instead of buffered to a temporary file; an
# idle connection is closed after 10 s; a request must arrive whole within REQUEST_DEADLINE_S of
# its first byte (a client dripping a header line at a time is dropped); up to 512 connections.
SERVER_LIMITS = {
    "max_request_body_size": 1024,
    "max_request_header_size": 64 * 1024,
    "channel_timeout": 10,
    "cleanup_interval": 2,
    "connection_limit": 512,
}
REQUEST_DEADLINE_S = 10.0
STOP_GRACE_S = 1.5  # SIGTERM ends the process within this (plus waitress's own close) whatever a scan is doing


@functools.lru_cache(maxsize=1)
def _deadline_channel_class():
    from waitress.channel import HTTPChannel

    class DeadlineChannel(HTTPChannel):
        """waitress's channel, closed at the next clean-up once a request has taken longer than
        REQUEST_DEADLINE_S to arrive (waitress alone only times out silence, not a slow drip)."""

        partial_since: float | None = None

        def received(self, data):
            before = self.request
            result = super().received(data)
            if self.request is None:
                self.partial_since = None
            elif self.request is not before or self.partial_since is None:
                self.partial_since = time.monotonic()  # a new request began
            elif time.monotonic() - self.partial_since > REQUEST_DEADLINE_S:
                self.last_activity = 0  # the server's maintenance closes it
            return result

    return DeadlineChannel


def serve(
    app: Flask, config: Config, reload: Callable[[], None] | None = None, on_bound: Callable[[str], None] | None = None
) -> int:
    """Serve with waitress until SIGTERM/SIGINT; SIGHUP calls `reload`. Returns the exit code."""
    import signal

    from waitress.server import create_server

    from . import sdnotify

    agent: Agent = app.extensions[EXTENSION]

    class _Stop(SystemExit):
        """Raised in the main thread by SIGTERM/SIGINT; waitress's loop re-raises SystemExit
        (any plain Exception it would log and swallow, and the server would not stop)."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop(0)

    try:
        server = create_server(
            app,
            host=config.host,
            port=config.port,
            threads=config.threads,
            ident="fitagent",
            **SERVER_LIMITS,
            **_whole_response_writes(),
        )
        server.channel_class = _deadline_channel_class()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); "
            "is another agent running? (set port in the config or --port)"
        ) from None
    url = f"http://{config.host}:{server.effective_port}"
    log.info("serving on %s", url)
    if on_bound:
        on_bound(url)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if reload is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda signum, frame: reload())
    try:
        agent.start()
        server.run()
    except _Stop:
        pass
    finally:
        sdnotify.notify("STOPPING=1")
        agent.stop()
        server.close()
        scan_over = agent.wait_idle(STOP_GRACE_S)
        log.info("stopped" if scan_over else "stopped (a scan still running was abandoned)")
    if not scan_over:
        # The scan's worker thread is not a daemon: returning would wait for it (a slow probe, a
        # stuck driver call). The state is only in memory, so nothing is lost by leaving now.
        logging.shutdown()
        os._exit(0)
    return 0
