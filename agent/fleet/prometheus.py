"""Reading the fleet from Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/targets``).

Prometheus is used for discovery and liveness, and as the store of each host's series. Every
question costs two instant queries with config/fitagent-rules.yml loaded, whatever the fleet's size:

1. discovery: the jobs with a recorded ``fitagent:build_version:hosts`` series in the last hour (a
   few series; without the rules, the jobs with a ``fitagent_build_info`` series, every host's),
   and for ``place`` the recorded candidates (``prefilter``: hosts that could run the model at
   all) and how many agents are ready;
2. one query that returns, joined with ``or``, only the series the question needs — for ``place``
   the candidates' (selected by instance), for ``best`` each host's status and its agent's own
   ``fitagent_best_model_*`` series, for ``hosts`` every host's facts — plus, marked with a
   ``fitagent_fleet`` label, the targets that are down (``up == 0``: not merely missing series,
   since Prometheus keeps serving a series' last value for five minutes) and what else the
   question lists (agents not ready, targets up without fitagent series).

Only when hosts are down is more asked (their hostnames; Prometheus' last scrape errors below
2,000 targets); only when nothing fits among the candidates does ``place`` read every host (for
the best partial offload); only hosts that do not export the asked-for best model are read
again, for their budget.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ...catalog.errors import UsageError
from ..config import shown
from .facts import FleetError, HostFacts, Sample, down, facts_from_samples
from .prefilter import RECORDED_BUDGET, Bound, candidates_promql, hosts_promql

LOOKBACK = "1h"  # how far back a job counts as a fitagent job (and a down host's name is found)
MAX_ANSWER_BYTES = 512 << 20  # a 10,000-host `hosts` answer is ~25 MB
MAX_GET_URL = 6000  # longer queries are POSTed (Prometheus takes both)
MAX_NAMED_INSTANCES = 500  # more down hosts than this: their names are looked up without naming them
# Prometheus' scrape errors come only with its whole target list (~1 KB a target): asked for when
# the fleet is no larger than this; above, a down host's reason points to Prometheus' targets page.
MAX_TARGETS_FOR_ERRORS = 2000
RECORDED_VERSIONS = "fitagent:build_version:hosts"  # config/fitagent-rules.yml: hosts per job and version
FLEET_LABEL = "fitagent_fleet"  # marks the parts of a combined query that are not a host's own series

# What a host's facts and estimator budget are built from (`hosts`, `place`).
FACT_SERIES = (
    "build_info",
    "host_info",
    "ready",
    "stale",
    "last_scan_timestamp_seconds",
    "host_memory_available_bytes",
    "host_memory_limit_bytes",
    "host_memory_bandwidth_bytes_per_second",
    "host_cpu_cores",
    "gpu_info",
    "gpu_usable",
    "gpu_memory_total_bytes",
    "gpu_memory_free_bytes",
    "gpu_memory_bandwidth_bytes_per_second",
    "gpu_fp16_flops",
)
# What a row of `best` shows about the host itself (the best model comes from its own series).
STATUS_SERIES = ("build_info", "host_info", "ready", "stale", "last_scan_timestamp_seconds")


def names_selector(names: tuple[str, ...]) -> str:
    return f'__name__=~"fitagent_({"|".join(names)})"'


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--prometheus {shown(url)}: expected Prometheus' base URL, e.g. http://prometheus:9090")
    return url.strip().rstrip("/")


def promql_string(text: str) -> str:
    """A PromQL string literal (Go's escapes, which JSON's are a subset of)."""
    return json.dumps(text)


def _alternatives(values) -> str:
    """A PromQL regex string matching exactly these values (Prometheus anchors regexes)."""
    return promql_string("|".join(re.escape(v) for v in sorted(values)))


class PrometheusAPI:
    def __init__(self, url: str, timeout_s: float):
        self.url = check_url(url)
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict | None = None) -> dict:
        from .fetch import FetchFailed, fetch

        query = urllib.parse.urlencode(params) if params else ""
        full = f"{self.url}{path}"
        try:
            if len(query) > MAX_GET_URL:
                body = fetch(
                    full,
                    self.timeout_s,
                    MAX_ANSWER_BYTES,
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    query.encode(),
                )
            else:
                body = fetch(full + (f"?{query}" if query else ""), self.timeout_s, MAX_ANSWER_BYTES)
        except FetchFailed as exc:
            if exc.status is None:
                raise FleetError(f"cannot reach Prometheus at {self.url}: {exc}") from None
            try:
                data = json.loads(exc.body)
            except ValueError:
                data = None
            if not isinstance(data, dict) or data.get("status") != "error":
                raise FleetError(
                    f"{self.url} answered {exc} to {path}: is it Prometheus? "
                    "(give its base URL, e.g. http://prometheus:9090)"
                ) from None
            what = f"the query {shown(params['query'], 100)}" if params and "query" in params else path
            raise FleetError(
                f"Prometheus at {self.url} refused {what}: {shown(data.get('error') or exc, 200)}"
            ) from None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise FleetError(f"{self.url}{path} did not answer JSON: is {self.url} Prometheus?") from None
        if not isinstance(data, dict) or data.get("status") != "success" or not isinstance(data.get("data"), dict):
            raise FleetError(
                f"Prometheus at {self.url}: {shown(data.get('error') if isinstance(data, dict) else data, 200)}"
            )
        return data["data"]

    def query(self, promql: str) -> list[dict]:
        data = self._get("/api/v1/query", {"query": promql})
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise FleetError(
                f"Prometheus at {self.url} answered {data.get('resultType')} to {shown(promql, 100)}, not a vector"
            )
        return [
            r
            for r in data["result"]
            if isinstance(r, dict)
            and isinstance(r.get("metric"), dict)
            and isinstance(r.get("value"), list)
            and len(r["value"]) == 2
        ]

    def target_errors(self, jobs: list[str]) -> dict[tuple[str, str], str]:
        """(job, instance) → the last scrape error, for the reason a host is down (best effort)."""
        params = {"state": "active"}
        if len(jobs) == 1:
            params["scrapePool"] = jobs[0]  # Prometheus ≥ 2.42 answers for that job only; older ones for all
        try:
            data = self._get("/api/v1/targets", params)
        except FleetError:
            return {}
        out = {}
        for t in data.get("activeTargets", []):
            labels = t.get("labels", {}) if isinstance(t, dict) else {}
            if isinstance(labels, dict) and t.get("lastError"):
                out[(labels.get("job", ""), labels.get("instance", ""))] = str(t["lastError"])
        return out


def _number(text) -> float:
    """A sample value as Prometheus' API writes it ("1", "NaN", "+Inf"); anything else is NaN,
    which makes that host down with the reason rather than the whole answer fail."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


Key = tuple[str, str]  # (job, instance)


def _key(metric: dict) -> Key:
    return metric.get("job", ""), metric.get("instance", "")


@dataclass(frozen=True)
class Fleet:
    """What discovery found: the fitagent jobs, and whether Prometheus records their budgets."""

    jobs: tuple[str, ...]
    recorded: bool
    queries: int = 1  # discovery queries asked

    @property
    def selector(self) -> str:
        return f"job=~{_alternatives(self.jobs)}"


@dataclass
class FleetRead:
    """The hosts one question needs, and what the whole fleet says besides."""

    hosts: list[HostFacts]
    versions: dict[str, int] = field(default_factory=dict)  # fitagent version -> hosts running it
    filtered_out: int = 0  # live hosts the pre-filter left out (place)
    queries: int = 0  # PromQL queries asked


def _marked(expr: str, mark: str) -> str:
    return f'label_replace({expr}, "{FLEET_LABEL}", "{mark}", "", "")'


@dataclass
class _Parsed:
    samples: dict[Key, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    jobs: set[str] = field(default_factory=set)
    recorded_jobs: set[str] = field(default_factory=set)
    down: set[Key] = field(default_factory=set)
    not_fitagent: set[Key] = field(default_factory=set)
    not_ready: set[Key] = field(default_factory=set)
    candidates: set[Key] = field(default_factory=set)  # hosts the pre-filter admits (their series come later)
    unrecorded: set[Key] = field(default_factory=set)  # ready hosts without a recorded budget yet
    ready: Counter = field(default_factory=Counter)  # fitagent_ready value ("0", "1") -> hosts
    versions: Counter = field(default_factory=Counter)
    budgets: Counter = field(default_factory=Counter)  # job -> hosts with a budget (candidates or not)
    evaluated_at: float | None = None

    @property
    def targets(self) -> int:
        """Targets seen (at least): those read, down, or up without fitagent series, or the agents
        counted ready or not plus the down ones."""
        seen = len(set(self.samples) | self.down | self.not_fitagent | self.candidates | self.not_ready)
        return max(seen, sum(self.ready.values()) + len(self.down))


def _count(value: float) -> int:
    return int(value) if value == value else 0


def _parse(results: list[dict], into: _Parsed | None = None) -> _Parsed:
    out = into or _Parsed()
    for r in results:
        metric = r["metric"]
        mark = metric.get(FLEET_LABEL)
        value = _number(r["value"][1])
        if out.evaluated_at is None:
            out.evaluated_at = _number(r["value"][0])
        key = _key(metric)
        if mark is None:  # the labels as Prometheus gave them (job and instance too: nothing reads all of them)
            out.samples[key].append(Sample(metric.get("__name__", ""), metric, value))
        elif mark == "job":
            out.jobs.add(key[0])
        elif mark == "recorded":
            out.recorded_jobs.add(key[0])
            out.budgets[key[0]] += _count(value)
        elif mark == "budgets":
            out.budgets[key[0]] += _count(value)
        elif mark == "down":
            out.down.add(key)
        elif mark == "not_fitagent":
            out.not_fitagent.add(key)
        elif mark == "not_ready":
            out.not_ready.add(key)
        elif mark == "candidate":
            out.candidates.add(key)
        elif mark == "unrecorded":
            out.unrecorded.add(key)
        elif mark == "ready":
            out.ready[metric.get("ready", "")] += _count(value)
        elif mark == "versions":
            out.versions[metric.get("version", "")] += _count(value)
    return out


def discover(api: PrometheusAPI, job: str | None = None, extra: tuple[str, ...] = ()) -> tuple[Fleet, _Parsed]:
    """The fitagent jobs: those with a recorded version count (config/fitagent-rules.yml) in the
    last hour — one or two series — else, without the rules, those with a fitagent_build_info
    series in the last hour (every host's). `extra` parts ride along with the first query."""
    selector = f"job={promql_string(job)}" if job else ""
    parsed = _parse(
        api.query(
            " or ".join(
                [
                    _marked(f"count by (job) (last_over_time({RECORDED_VERSIONS}{{{selector}}}[{LOOKBACK}]))", "job"),
                    _marked(f"{RECORDED_VERSIONS}{{{selector}}}", "versions"),
                    _marked(f"count by (job) ({RECORDED_BUDGET}{{{selector}}})", "recorded"),
                    *extra,
                ]
            )
        )
    )
    queries = 1
    recorded = bool(parsed.jobs) and parsed.jobs <= parsed.recorded_jobs
    if not parsed.jobs:
        _parse(
            api.query(
                _marked(f"count by (job) (last_over_time(fitagent_build_info{{{selector}}}[{LOOKBACK}]))", "job")
            ),
            parsed,
        )
        queries = 2
    jobs = parsed.jobs | ({job} if job else set())
    if not jobs:
        raise FleetError(
            f"Prometheus at {api.url} has no fitagent targets (no fitagent_build_info series in the last "
            f"{LOOKBACK}); add a scrape job for the agents (config/prometheus.yml is an example)"
        )
    return Fleet(tuple(sorted(jobs)), recorded=recorded, queries=queries), parsed


def _check_scraped(api: PrometheusAPI, fleet: Fleet, parsed: _Parsed) -> None:
    if not parsed.targets:
        raise FleetError(f"Prometheus at {api.url} scrapes no target of job {', '.join(fleet.jobs)} now")


def _instances(keys) -> str:
    """A selector for exactly these instances: Prometheus matches a literal alternation through
    its postings index, so this costs what the few hosts cost, not the whole fleet."""
    return f"instance=~{_alternatives({instance for _, instance in keys})}"


def _down_hosts(api: PrometheusAPI, fleet: Fleet, parsed: _Parsed) -> tuple[list[HostFacts], int]:
    """The hosts that cannot answer, each with its hostname and why, and the queries that took
    (asked only when there are down hosts)."""
    hosts = []
    names: dict[Key, str] = {}
    errors: dict[Key, str] = {}
    queries = 0
    if parsed.down:
        named = f",{_instances(parsed.down)}" if len(parsed.down) <= MAX_NAMED_INSTANCES else ""
        names = {
            _key(r["metric"]): r["metric"].get("hostname")
            for r in api.query(f"last_over_time(fitagent_host_info{{{fleet.selector}{named}}}[{LOOKBACK}])")
        }
        queries += 1
        if parsed.targets <= MAX_TARGETS_FOR_ERRORS:
            errors = api.target_errors(list(fleet.jobs))
    unsaid = (
        "the last scrape failed"
        if parsed.targets <= MAX_TARGETS_FOR_ERRORS
        else "the last scrape failed; Prometheus' targets page says why"
    )
    for key in sorted(parsed.down):
        reason = errors.get(key) or unsaid
        hosts.append(down(key[1], f"Prometheus: up == 0 ({reason})", key[0], names.get(key)))
    for key in sorted(parsed.not_fitagent - parsed.down):
        hosts.append(down(key[1], "scraped, but it exports no fitagent metrics", key[0]))
    for key in sorted(parsed.not_ready - parsed.down - set(parsed.samples)):
        hosts.append(down(key[1], "the agent is up but has no successful hardware scan yet", key[0]))
    return hosts, queries


def _facts(parsed: _Parsed, need_budget: bool = True, details: bool = True) -> list[HostFacts]:
    return [
        facts_from_samples(instance, samples, parsed.evaluated_at, job, need_budget=need_budget, details=details)
        for (job, instance), samples in sorted(parsed.samples.items())
        if samples and (job, instance) not in parsed.down
    ]


def _versions(hosts: list[HostFacts]) -> dict[str, int]:
    return dict(Counter(h.version for h in hosts if h.up and h.version))


def read_hosts(api: PrometheusAPI, job: str | None = None, fleet: Fleet | None = None) -> FleetRead:
    """Every host's facts and budget (`fleet hosts`, and `place` when nothing fits a candidate):
    discovery, then one query for every host's series, the down targets and those up without
    fitagent series."""
    queries = 0
    if fleet is None:
        fleet, _ = discover(api, job)
        queries = fleet.queries
    s = fleet.selector
    parsed = _parse(
        api.query(
            " or ".join(
                [
                    f"{{{names_selector(FACT_SERIES)},{s}}}",
                    _marked(f"up{{{s}}} == 0", "down"),
                    _marked(f"up{{{s}}} == 1 unless on (job, instance) fitagent_build_info{{{s}}}", "not_fitagent"),
                ]
            )
        )
    )
    _check_scraped(api, fleet, parsed)
    down_hosts, more = _down_hosts(api, fleet, parsed)
    hosts = _facts(parsed) + down_hosts
    return FleetRead(hosts, _versions(hosts), queries=queries + 1 + more)


def read_candidates(api: PrometheusAPI, bound: Bound, job: str | None = None) -> tuple[FleetRead, Fleet]:
    """The facts of the hosts that could run `bound`'s model at all, the down ones, and how many
    live hosts were left out (`fleet place`).

    With the recording rules (config/fitagent-rules.yml) the discovery query also returns the
    candidates (one recorded series per host, filtered in Prometheus), the versions and how many
    agents are ready; the second asks for the candidates' series alone, by instance, with the
    targets that are down (and, when counted, the agents not ready and the ready hosts the rules
    have not evaluated yet, which count as candidates: never dropped): two queries, a third for
    the down hosts' names. Without the rules the budget is computed inline, and the candidates'
    series take one more query."""
    selector = f"job={promql_string(job)}" if job else ""
    fleet, early = discover(
        api,
        job,
        extra=(
            _marked(candidates_promql(bound, selector, recorded=True), "candidate"),
            _marked(f'count_values by (job) ("ready", fitagent_ready{{{selector}}})', "ready"),
        ),
    )
    queries = fleet.queries
    s = fleet.selector
    series_of = names_selector(FACT_SERIES)
    if fleet.recorded:
        parsed = early
        parsed.candidates = {key for key in parsed.candidates if key[0] in fleet.jobs}
        parts = [_marked(f"up{{{s}}} == 0", "down")]
        if parsed.candidates:
            parts.insert(0, f"{{{series_of},{s},{_instances(parsed.candidates)}}}")
        # agents not ready, and ready hosts the rule has not evaluated yet: listed when counted
        if parsed.ready["0"]:
            parts.append(_marked(f"fitagent_ready{{{s}}} == 0", "not_ready"))
        if parsed.ready["1"] > sum(parsed.budgets[j] for j in fleet.jobs):
            parts.append(
                _marked(f"fitagent_ready{{{s}}} == 1 unless on (job, instance) {RECORDED_BUDGET}{{{s}}}", "unrecorded")
            )
        _parse(api.query(" or ".join(parts)), parsed)
        queries += 1
        late = parsed.unrecorded
    else:
        parsed = _parse(
            api.query(
                " or ".join(
                    [
                        _marked(candidates_promql(bound, s, recorded=False), "candidate"),
                        _marked(hosts_promql(s, recorded=False), "budgets"),
                        _marked(f"up{{{s}}} == 0", "down"),
                        _marked(f"fitagent_ready{{{s}}} == 0", "not_ready"),
                        _marked(f"count by (job, version) (fitagent_build_info{{{s}}})", "versions"),
                    ]
                )
            )
        )
        queries += 1
        late = set()
    wanted = (parsed.candidates | late) - parsed.down
    filtered_out = max(0, sum(parsed.budgets[j] for j in fleet.jobs) - len(parsed.candidates))
    missing = {key for key in wanted if not parsed.samples.get(key)}
    if missing:
        more = _parse(api.query(f"{{{series_of},{s},{_instances(missing)}}}"))
        queries += 1
        for key, samples in more.samples.items():
            if key in missing:
                parsed.samples[key] = samples
        parsed.evaluated_at = parsed.evaluated_at or more.evaluated_at
    parsed.samples = defaultdict(list, {key: v for key, v in parsed.samples.items() if key in wanted and v})
    _check_scraped(api, fleet, parsed)
    down_hosts, more_queries = _down_hosts(api, fleet, parsed)
    hosts = _facts(parsed, details=False) + down_hosts  # place shows no per-GPU list, reads no best model
    return FleetRead(hosts, dict(parsed.versions), filtered_out=filtered_out, queries=queries + more_queries), fleet


def read_best(api: PrometheusAPI, use_case: str, context: int, job: str | None = None) -> FleetRead:
    """Each host's status and its agent's own top recommendation for (use_case, context): two
    queries. A live host that does not export it (another default context, an older agent) is
    read again with its budget, for the fleet to recommend there itself."""
    fleet, _ = discover(api, job)
    s = fleet.selector
    parsed = _parse(
        api.query(
            " or ".join(
                [
                    f"{{{names_selector(STATUS_SERIES)},{s}}}",
                    f'{{__name__=~"fitagent_best_model_.+",use_case={promql_string(use_case)},context={promql_string(str(context))},{s}}}',
                    _marked(f"up{{{s}}} == 0", "down"),
                ]
            )
        )
    )
    _check_scraped(api, fleet, parsed)
    hosts = _facts(parsed, need_budget=False)
    queries = fleet.queries + 1
    missing = {(h.job, h.target) for h in hosts if h.live and (use_case, context) not in h.best}
    if missing:
        queries += 1
        again = _parse(api.query(f"{{{names_selector(FACT_SERIES)},{s},{_instances(missing)}}}"))
        again.evaluated_at = again.evaluated_at or parsed.evaluated_at
        full = {(h.job, h.target): h for h in _facts(again)}
        hosts = [full.get((h.job, h.target), h) if (h.job, h.target) in missing else h for h in hosts]
    down_hosts, more = _down_hosts(api, fleet, parsed)
    hosts += down_hosts
    return FleetRead(hosts, _versions(hosts), queries=queries + more)
