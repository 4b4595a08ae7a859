"""Reading the fleet from Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/targets``).

Prometheus is used for discovery and liveness: the jobs that scrape fitagent are those with
a ``fitagent_build_info`` series in the last hour (or ``--job``); every target of those jobs
that Prometheus scrapes now is a host, down when its ``up`` is 0 — not merely when series
are missing, since Prometheus keeps serving the last value of a series for five minutes.
The hardware series of the hosts that are up are read in one instant query.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import defaultdict

from ...estimator.errors import UsageError
from ..config import shown
from .facts import FleetError, HostFacts, Sample, down, facts_from_samples

LOOKBACK = "1h"  # how far back a job counts as a fitagent job
MAX_ANSWER_BYTES = 512 << 20  # ~250 series per host: 10,000 hosts' instant query is a few hundred MB at most
# everything but the model series: the fleet rebuilds budgets and runs the estimator itself
HOST_SERIES = '__name__=~"fitagent_.+",__name__!~"fitagent_model_.+"'


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--prometheus {shown(url)}: expected Prometheus' base URL, e.g. http://prometheus:9090")
    return url.strip().rstrip("/")


def promql_string(text: str) -> str:
    """A PromQL string literal (Go's escapes, which JSON's are a subset of)."""
    return json.dumps(text)


class PrometheusAPI:
    def __init__(self, url: str, timeout_s: float):
        self.url = check_url(url)
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict | None = None) -> dict:
        from .fetch import FetchFailed, fetch

        full = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            body = fetch(full, self.timeout_s, MAX_ANSWER_BYTES)
        except FetchFailed as exc:
            if exc.status is None:
                raise FleetError(f"cannot reach Prometheus at {self.url}: {exc}") from None
            try:
                data = json.loads(exc.body)
            except ValueError:
                data = None
            if not isinstance(data, dict) or data.get("status") != "error":
                raise FleetError(f"{self.url} answered {exc} to {path}: is it Prometheus? "
                                 "(give its base URL, e.g. http://prometheus:9090)") from None
            what = f"the query {shown(params['query'], 100)}" if params and "query" in params else path
            raise FleetError(f"Prometheus at {self.url} refused {what}: {shown(data.get('error') or exc, 200)}") from None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise FleetError(f"{self.url}{path} did not answer JSON: is {self.url} Prometheus?") from None
        if not isinstance(data, dict) or data.get("status") != "success":
            raise FleetError(f"Prometheus at {self.url}: {shown(data.get('error') if isinstance(data, dict) else data, 200)}")
        return data["data"]

    def query(self, promql: str) -> list[dict]:
        data = self._get("/api/v1/query", {"query": promql})
        if data.get("resultType") != "vector":
            raise FleetError(f"Prometheus at {self.url} answered {data.get('resultType')} to {promql!r}, not a vector")
        return data["result"]

    def target_errors(self) -> dict[tuple[str, str], str]:
        """(job, instance) → the last scrape error, for the reason a host is down (best effort)."""
        try:
            data = self._get("/api/v1/targets", {"state": "active"})
        except FleetError:
            return {}
        out = {}
        for t in data.get("activeTargets", []):
            labels = t.get("labels", {})
            if t.get("lastError"):
                out[(labels.get("job", ""), labels.get("instance", ""))] = t["lastError"]
        return out


def _number(text) -> float:
    """A sample value as Prometheus' API writes it ("1", "NaN", "+Inf"); anything else is NaN,
    which makes that host down with the reason rather than the whole answer fail."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _key(result: dict) -> tuple[str, str]:
    metric = result["metric"]
    return metric.get("job", ""), metric.get("instance", "")


def read_fleet(api: PrometheusAPI, job: str | None = None) -> list[HostFacts]:
    selector = f"job={promql_string(job)}" if job else ""
    known = api.query(f"last_over_time(fitagent_build_info{{{selector}}}[{LOOKBACK}])")
    jobs = sorted({_key(r)[0] for r in known} | ({job} if job else set()))
    if not jobs:
        raise FleetError(f"Prometheus at {api.url} has no fitagent targets (no fitagent_build_info series in the last "
                         f"{LOOKBACK}); add a scrape job for the agents (config/prometheus.yml is an example)")
    jobs_re = promql_string("|".join(re.escape(j) for j in jobs))
    up = {_key(r): (_number(r["value"][1]), _number(r["value"][0])) for r in api.query(f"up{{job=~{jobs_re}}}")}
    if not up:
        raise FleetError(f"Prometheus at {api.url} scrapes no target of job {', '.join(jobs)} now")
    samples: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for r in api.query(f"{{{HOST_SERIES},job=~{jobs_re}}}"):
        labels = {k: v for k, v in r["metric"].items() if k not in ("__name__", "job", "instance")}
        samples[_key(r)].append(Sample(r["metric"]["__name__"], labels, _number(r["value"][1])))
    names = {_key(r): r["metric"].get("hostname") for r in
             api.query(f"last_over_time(fitagent_host_info{{job=~{jobs_re}}}[{LOOKBACK}])")}
    errors = api.target_errors() if any(value != 1 for value, _ in up.values()) else {}
    hosts = []
    for key, (value, evaluated_at) in sorted(up.items()):
        job_name, instance = key
        if value != 1:
            reason = errors.get(key) or "the last scrape failed"
            hosts.append(down(instance, f"Prometheus: up == 0 ({reason})", job_name, names.get(key)))
        elif not samples.get(key):
            hosts.append(down(instance, "scraped, but it exports no fitagent metrics", job_name, names.get(key)))
        else:
            hosts.append(facts_from_samples(instance, samples[key], evaluated_at, job_name))
    return hosts
