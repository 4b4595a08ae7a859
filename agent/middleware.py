"""WSGI middleware in front of the Flask app: loopback-only hosts, and answers cached per state."""

from __future__ import annotations

import json

from .scheduler import Agent

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
