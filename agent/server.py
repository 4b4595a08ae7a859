"""The HTTP face of the agent: a Flask app factory over one Agent.

``create_app(config, prober=…)`` builds the Agent (scheduler + state), registers the views
(``views``) and the error handlers, and wraps the app in the middleware (``middleware``); the
app is served by waitress (``serving``: one process, threads — the scheduler must exist once per host).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import cast

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..catalog.errors import FitagentError
from ..estimator.hardware import HardwareSnapshot
from .config import Config, config_from_mapping
from .middleware import CachedAnswers, LoopbackHosts
from .scheduler import Agent
from .views import json_response, register_views

log = logging.getLogger("fitagent.server")
EXTENSION = "fitagent"  # app.extensions[EXTENSION] is the Agent (the metrics collector reads agent.state)


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
    cast(DefaultJSONProvider, app.json).sort_keys = False  # Flask's default provider
    _register_errors(app)
    register_views(app, agent)
    app.wsgi_app = LoopbackHosts(CachedAnswers(app.wsgi_app, agent), config.host)  # type: ignore[method-assign]  # Flask's documented way to wrap the WSGI app
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
        return json_response(
            {"error": message}, exc.code or 500, headers={k: v for k, v in response.headers if k == "Allow"}
        )

    @app.errorhandler(FitagentError)
    def fitagent_error(exc: FitagentError):
        return json_response({"error": str(exc)}, exc.http_status)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("error answering %s %s", request.method, request.path)
        return json_response({"error": "internal error; the agent's log has the details"}, 500)
