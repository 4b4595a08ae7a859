"""Serving the app with waitress: limits against slow or greedy clients, signals, a clean stop."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable

from flask import Flask

from ..catalog.errors import UsageError
from .config import Config
from .scheduler import Agent
from .server import EXTENSION

log = logging.getLogger("fitagent.server")


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
