"""Asking agents directly: each target's ``/metrics``, all at once, each with a timeout.

For small fleets without Prometheus. Targets are ``host:port`` (or a base URL), from the
command line or a Prometheus file_sd file (JSON or YAML: ``[{"targets": [...], "labels":
{...}}]``; the ``__scheme__`` and ``__metrics_path__`` labels are honoured as Prometheus
does). A target that does not answer in time is down; the others are still answered for.
"""

from __future__ import annotations

import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ...catalog.errors import UsageError
from ..config import shown
from .facts import HostFacts, Sample, down, facts_from_samples

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_WORKERS = 32


@dataclass(frozen=True)
class Target:
    name: str  # as given: host:port (what answers call `target`)
    url: str  # the full /metrics URL


def _target(text: str, scheme: str = "http", path: str = "/metrics", where: str = "--targets") -> Target:
    raw = text.strip()
    if "://" in raw:  # a base URL (a proxy prefix is kept), or the metrics URL itself
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"{where}: {shown(raw)} is not host:port or an http(s) URL")
        base = raw.rstrip("/")
        return Target(parts.netloc, base if base.endswith("/metrics") else base + "/metrics")
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in raw:
        raise UsageError(f"{where}: {shown(raw)} is not host:port (e.g. gpu-01:8765)")
    return Target(raw, f"{scheme}://{raw}{path}")


def parse_targets(text: str) -> list[Target]:
    items = [t for t in (p.strip() for p in text.split(",")) if t]
    if not items:
        raise UsageError("--targets: give at least one host:port (comma-separated)")
    return _unique([_target(t) for t in items])


def read_targets_file(path: str) -> list[Target]:
    """A Prometheus file_sd file: a list of {targets: [...], labels: {...}} groups."""
    import yaml

    from ..files import read_text

    where = f"--targets-file {path}"
    try:
        data = yaml.safe_load(read_text(path, "--targets-file"))
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except yaml.YAMLError as exc:
        raise UsageError(
            f"{where}: not valid JSON or YAML ({shown(getattr(exc, 'problem', None) or exc, 100)})"
        ) from None
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply to be a targets file") from None
    if not isinstance(data, list):
        raise UsageError(f'{where}: expected a file_sd list of {{"targets": [...], "labels": {{...}}}} groups')
    targets = []
    for i, group in enumerate(data):
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise UsageError(f'{where}: group {i} needs a "targets" list of host:port')
        labels = group.get("labels") or {}
        if not isinstance(labels, dict):
            raise UsageError(f'{where}: group {i}: "labels" must be a mapping')
        scheme = str(labels.get("__scheme__", "http"))
        metrics_path = str(labels.get("__metrics_path__", "/metrics"))
        for t in group["targets"]:
            if not isinstance(t, str):
                raise UsageError(f"{where}: group {i}: target {shown(t)} is not a host:port string")
            targets.append(_target(t, scheme, metrics_path, where))
    if not targets:
        raise UsageError(f"{where}: lists no targets")
    return _unique(targets)


def _unique(targets: list[Target]) -> list[Target]:
    return list({t.url: t for t in targets}.values())


def scrape(target: Target, timeout_s: float) -> HostFacts:
    """One agent's facts, or a down entry saying why; never raises for a bad host."""
    from prometheus_client.parser import text_string_to_metric_families

    from .fetch import FetchFailed, fetch

    try:
        body = fetch(target.url, timeout_s, MAX_BODY_BYTES, {"Accept": "text/plain;version=0.0.4"})
        observed_at = time.time()
        samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(body.decode("utf-8"))
            for s in family.samples
        ]
    except FetchFailed as exc:
        return down(target.name, f"{target.url}: {exc}")
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        return down(target.name, f"{target.url}: not Prometheus metrics ({shown(str(exc), 100)})")
    return facts_from_samples(target.name, samples, observed_at)


def read_targets(targets: list[Target], timeout_s: float) -> list[HostFacts]:
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(targets)), thread_name_prefix="fleet") as pool:
        return list(pool.map(lambda t: scrape(t, timeout_s), targets))
