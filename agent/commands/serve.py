"""Run the agent: rescan on a schedule and answer local launchers over HTTP (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from .common import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config (default: $FITAGENT_CONFIG, ~/.config/fitagent/fitagent.yaml, /etc/fitagent/fitagent.yaml)",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, metavar="N", help="port to bind (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--hardware", metavar="FILE", help="serve a saved snapshot instead of probing; re-read at every rescan"
    )
    parser.add_argument(
        "--rescan-interval",
        type=positive_int,
        metavar="S",
        dest="rescan_interval_s",
        help="seconds between rescans (default 30)",
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # "Task queue depth is N": a burst of requests waiting a millisecond is not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def check_config(config, catalog) -> None:
    """What the schema cannot know: that watched models and the hardware file exist."""
    from ...catalog.errors import FitagentError
    from ..config import ConfigError

    named = [(f"watch_models[{i}]", w.model, w.quant) for i, w in enumerate(config.watch_models)]
    if config.metrics_reference_model:
        named.append(("metrics_reference_model", config.metrics_reference_model, config.metrics_reference_quant))
    for key, model, quant in named:
        try:
            catalog.model(model)
            catalog.quant(quant)
        except FitagentError as exc:
            raise ConfigError(f"{config.source}: {key}: {exc}") from None
    if config.hardware:
        from ..hardware import load_snapshot_file

        load_snapshot_file(config.hardware)


def run(args) -> int:
    from ...catalog.errors import FitagentError
    from ..catalog_cache import load_catalog
    from ..config import load_config
    from ..events import Change
    from ..server import EXTENSION, create_app
    from ..serving import serve

    overrides = {
        "host": args.host,
        "port": args.port,
        "hardware": args.hardware,
        "rescan_interval_s": args.rescan_interval_s,
    }
    config = load_config(args.config, os.environ, overrides)
    _setup_logging(config.log_level)
    catalog = load_catalog()
    check_config(config, catalog)
    app = create_app(config, catalog=catalog, start=False)
    agent = app.extensions[EXTENSION]
    log = logging.getLogger("fitagent.agent")

    def reload() -> None:  # runs in a signal handler: it must not raise
        try:
            new = load_config(args.config, os.environ, overrides)
            check_config(new, catalog)
            new.read_token()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running config
            message = str(exc) if isinstance(exc, FitagentError) else f"{type(exc).__name__}: {exc}"
            log.error("config reload failed, keeping the running configuration: %s", message)
            agent.events.add(
                Change("config", f"config reload failed, keeping the running one: {message}", {"error": message}),
                time.time(),
            )
            return
        logging.getLogger().setLevel(getattr(logging, new.log_level.upper()))
        skipped = agent.reload(new)
        log.info(
            "configuration reloaded from %s%s", new.source, f" ({', '.join(skipped)} need a restart)" if skipped else ""
        )

    return serve(app, config, reload=reload)
