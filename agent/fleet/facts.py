"""One host as the fleet sees it, rebuilt from its ``fitagent_*`` series.

The samples come from Prometheus' API or from an agent's ``/metrics``; either way they are
(name, labels, value) triples. They are turned back into the agent's snapshot document
(schema fitagent.hardware/1, with what the series carry) and parsed by ``snapshot_from_dict``:
the fleet's budgets then come from ``budget_from_snapshot``, the one path every caller takes,
and equal the agent's own (a test checks the round trip).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from ...catalog.errors import FitagentError
from ...catalog.types import Catalog
from ...estimator.budget import Budget, budget_from_snapshot
from ...estimator.hardware import SCHEMA, HardwareSnapshot, snapshot_from_dict


class FleetError(FitagentError):
    """The fleet's source (Prometheus) cannot answer at all; exit 1. A host that cannot is
    reported as down instead."""


class Sample(NamedTuple):  # a tuple: a 10,000-host answer holds a few hundred thousand
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class BestModel:
    """The agent's own top recommendation for one (use case, context), from its
    ``fitagent_best_model_*`` series (model None: nothing runs there at a usable speed)."""

    use_case: str
    context: int
    model: str | None
    quant: str | None
    placement: str
    decode_tokens_per_s: float | None = None
    quality: float | None = None
    gpu_layers: int | None = None
    headroom_bytes: int | None = None


@dataclass(frozen=True)
class GpuFacts:
    gpu: str
    uuid: str
    name: str
    usable: bool
    memory_total_bytes: int
    memory_free_bytes: int


@dataclass(frozen=True)
class HostFacts:
    target: str  # Prometheus' instance label, or the host:port asked directly
    job: str | None = None
    host: str | None = None  # the agent's hostname (fitagent_host_info)
    up: bool = False
    error: str | None = None  # why the host is down (or not ready)
    version: str | None = None
    ready: bool = False
    stale: bool = False
    last_scan_at: float | None = None  # Unix time of the agent's last good scan
    observed_at: float | None = None  # when these facts were read
    gpus: tuple[GpuFacts, ...] = ()
    host_memory_available_bytes: int | None = None
    snapshot: HardwareSnapshot | None = None  # what the series say of the machine (None: not read)
    best: Mapping[tuple[str, int], BestModel] = field(default_factory=dict)  # (use_case, context) -> ...

    @property
    def live(self) -> bool:
        """Up, with a good scan (whose budget the estimator can work from, when it was read)."""
        return self.up and self.ready and self.error is None

    @property
    def name(self) -> str:
        return self.host or self.target

    @property
    def scan_age_s(self) -> float | None:
        if self.last_scan_at is None or self.observed_at is None:
            return None
        return max(0.0, self.observed_at - self.last_scan_at)


def down(target: str, error: str, job: str | None = None, host: str | None = None) -> HostFacts:
    return HostFacts(target=target, job=job, host=host, up=False, error=error)


def _index(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """A host's samples by name (read once: a 10,000-host answer has a few hundred thousand)."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        if s.name.startswith("fitagent_"):
            by_name.setdefault(s.name, []).append(s)
    return by_name


def _one(by_name: dict[str, list[Sample]], name: str) -> float | None:
    found = by_name.get(name)
    return found[0].value if found else None


# The series a host's facts are built from: every value must be a finite, non-negative number.
_READ = frozenset(
    {
        "fitagent_ready",
        "fitagent_stale",
        "fitagent_last_scan_timestamp_seconds",
        "fitagent_host_memory_total_bytes",
        "fitagent_host_memory_available_bytes",
        "fitagent_host_memory_bandwidth_bytes_per_second",
        "fitagent_host_cpu_cores",
        "fitagent_gpu_memory_total_bytes",
        "fitagent_gpu_memory_free_bytes",
        "fitagent_gpu_memory_used_bytes",
        "fitagent_gpu_memory_bandwidth_bytes_per_second",
        "fitagent_gpu_fp16_flops",
        "fitagent_gpu_pcie_link_generation",
        "fitagent_gpu_pcie_link_width",
        "fitagent_gpu_usable",
        "fitagent_host_memory_limit_bytes",
    }
)


def facts_from_samples(
    target: str,
    samples: Iterable[Sample],
    observed_at: float | None,
    job: str | None = None,
    need_budget: bool = True,
    details: bool = True,
) -> HostFacts:
    """The host behind one scrape's ``fitagent_*`` samples (a live scrape: ``up`` is true).
    `need_budget` false: only the host's status was read (``fleet best``), and no budget is built;
    `details` false: no per-GPU list and no best models (``fleet place`` shows neither)."""
    by_name = _index(samples)
    build = by_name.get("fitagent_build_info")
    if not build:
        return down(target, "no fitagent metrics there (no fitagent_build_info): not a fitagent agent?", job)
    broken = sorted(
        name
        for name in _READ.intersection(by_name)
        if not all(math.isfinite(s.value) and 0 <= s.value < 1e18 for s in by_name[name])
    )
    if broken:
        return down(
            target,
            f"exports values no machine has ({', '.join(broken[:3])} is NaN, infinite, negative or absurd): not used",
            job,
        )
    host_info = by_name.get("fitagent_host_info")
    hostname = host_info[0].labels.get("hostname") or None if host_info else None
    ready = _one(by_name, "fitagent_ready") == 1
    snapshot, error = _snapshot(target, by_name) if ready else (None, None)
    if not ready:
        error = "the agent is up but has no successful hardware scan yet"
    elif error is None and snapshot is None and need_budget:
        error = "the agent's metrics lack the host memory series (fitagent too old?)"
    available = _one(by_name, "fitagent_host_memory_available_bytes")
    return HostFacts(
        target=target,
        job=job,
        host=hostname,
        up=True,
        error=error,
        version=build[0].labels.get("version"),
        ready=ready,
        stale=_one(by_name, "fitagent_stale") == 1,
        last_scan_at=_one(by_name, "fitagent_last_scan_timestamp_seconds"),
        observed_at=observed_at,
        gpus=_gpus(by_name) if details else (),
        host_memory_available_bytes=None if available is None else int(available),
        snapshot=snapshot,
        best=_best(by_name) if ready and details else {},
    )


_BEST_GAUGES = {
    "fitagent_best_model_decode_tokens_per_second": "decode_tokens_per_s",
    "fitagent_best_model_quality": "quality",
    "fitagent_best_model_gpu_layers": "gpu_layers",
    "fitagent_best_model_fit_headroom_bytes": "headroom_bytes",
}


def _best(by_name: dict[str, list[Sample]]) -> dict[tuple[str, int], BestModel]:
    """The agent's top recommendation per (use case, context) it exports; a value that is not a
    finite number is left out (the fleet then computes that host's answer itself)."""
    info: dict[tuple[str, int], Mapping[str, str]] = {}
    values: dict[tuple[str, int], dict[str, float]] = {}
    chosen = [s for name in ("fitagent_best_model_info", *_BEST_GAUGES) for s in by_name.get(name, ())]
    for s in chosen:
        try:
            key = (s.labels.get("use_case", ""), int(s.labels.get("context", "")))
        except ValueError:
            continue
        if s.name == "fitagent_best_model_info":
            info[key] = s.labels
        elif s.name in _BEST_GAUGES and math.isfinite(s.value) and abs(s.value) < 1e18:
            values.setdefault(key, {})[_BEST_GAUGES[s.name]] = s.value
    out = {}
    for key, labels in info.items():
        got = values.get(key, {})
        model = labels.get("model") or None
        if model is not None and not {"quality", "gpu_layers", "headroom_bytes"} <= set(got):
            continue  # a partial scrape: not trusted
        out[key] = BestModel(
            use_case=key[0],
            context=key[1],
            model=model,
            quant=labels.get("quant") or None,
            placement=labels.get("placement") or "none",
            decode_tokens_per_s=got.get("decode_tokens_per_s"),
            quality=got.get("quality"),
            gpu_layers=None if "gpu_layers" not in got else int(got["gpu_layers"]),
            headroom_bytes=None if "headroom_bytes" not in got else int(got["headroom_bytes"]),
        )
    return out


def _by_gpu(by_name: dict[str, list[Sample]], name: str) -> dict[tuple[str, str], float]:
    return {(s.labels.get("gpu", ""), s.labels.get("uuid", "")): s.value for s in by_name.get(name, ())}


def _gpu_info(by_name: dict[str, list[Sample]]) -> dict[tuple[str, str], Mapping[str, str]]:
    return {(s.labels.get("gpu", ""), s.labels.get("uuid", "")): s.labels for s in by_name.get("fitagent_gpu_info", ())}


def _gpu_order(key: tuple[str, str]):
    gpu, uuid = key
    return (int(gpu) if gpu.isdigit() else 1 << 30, gpu, uuid)


def _gpus(by_name: dict[str, list[Sample]]) -> tuple[GpuFacts, ...]:
    info = _gpu_info(by_name)
    total = _by_gpu(by_name, "fitagent_gpu_memory_total_bytes")
    free = _by_gpu(by_name, "fitagent_gpu_memory_free_bytes")
    usable = _by_gpu(by_name, "fitagent_gpu_usable")
    return tuple(
        GpuFacts(
            gpu=key[0],
            uuid=key[1],
            name=info[key].get("name", ""),
            usable=usable.get(key) == 1,
            memory_total_bytes=int(total.get(key, 0)),
            memory_free_bytes=int(free.get(key, 0)),
        )
        for key in sorted(info, key=_gpu_order)
    )


def host_budget(facts: HostFacts, catalog: Catalog) -> Budget | None:
    """The estimator's budget for a host the fleet read (None when its series held no machine)."""
    return budget_from_snapshot(facts.snapshot, catalog) if facts.snapshot is not None else None


def budget_from_samples(samples: Iterable[Sample], catalog: Catalog) -> Budget | None:
    """The budget the agent computed, rebuilt from its series (a test's round trip)."""
    snapshot, _ = _snapshot("samples", _index(samples))
    return budget_from_snapshot(snapshot, catalog) if snapshot is not None else None


def snapshot_document(by_name: dict[str, list[Sample]]) -> dict | None:
    """The agent's snapshot as its series describe it: a fitagent.hardware/1 document with what
    they carry (None without the host memory series). A GPU the agent could not place on is
    written invisible; its bandwidth is the one the agent's estimator used."""
    available = _one(by_name, "fitagent_host_memory_available_bytes")
    cores = _one(by_name, "fitagent_host_cpu_cores")
    if available is None or cores is None:
        return None
    host_info = by_name.get("fitagent_host_info")
    labels = host_info[0].labels if host_info else {}
    bandwidth = _one(by_name, "fitagent_host_memory_bandwidth_bytes_per_second")
    total = _one(by_name, "fitagent_host_memory_total_bytes")
    limit = _one(by_name, "fitagent_host_memory_limit_bytes")
    host = {
        "hostname": labels.get("hostname") or "unknown",
        "os": labels.get("os") or "unknown",
        "cpu_model": labels.get("cpu_model") or None,
        "cpu_cores": int(cores),
        "cpu_arch": labels.get("cpu_arch") or None,
        "cpu_class": labels.get("cpu_class") or None,
        "memory_total_bytes": int(total if total is not None else available),
        "memory_available_bytes": int(available),
        "memory_bandwidth_bytes_per_s": bandwidth or None,
        "memory_bandwidth_source": "agent" if bandwidth else "none",
    }
    if limit:
        host["memory_limit_bytes"] = int(limit)
    info = _gpu_info(by_name)
    usable = _by_gpu(by_name, "fitagent_gpu_usable")
    gpu_total = _by_gpu(by_name, "fitagent_gpu_memory_total_bytes")
    free = _by_gpu(by_name, "fitagent_gpu_memory_free_bytes")
    used = _by_gpu(by_name, "fitagent_gpu_memory_used_bytes")
    gpu_bandwidth = _by_gpu(by_name, "fitagent_gpu_memory_bandwidth_bytes_per_second")
    link_generation = _by_gpu(by_name, "fitagent_gpu_pcie_link_generation")
    link_width = _by_gpu(by_name, "fitagent_gpu_pcie_link_width")
    gpus = []
    for position, key in enumerate(sorted(info, key=_gpu_order)):
        if key not in free or key not in gpu_total:
            continue
        labels = info[key]
        role = labels.get("mig_role") or None
        gpus.append(
            {
                "index": int(key[0]) if key[0].isdigit() else position,
                "vendor": labels.get("vendor", ""),
                "name": labels.get("name", ""),
                "uuid": key[1] or None,
                "pci_id": labels.get("pci_id") or None,
                "memory_total_bytes": int(gpu_total[key]),
                "memory_free_bytes": max(0, int(free[key])),  # as the budget floors it (PromQL: clamp_min)
                "memory_used_bytes": int(used.get(key, 0)),
                "memory_bandwidth_bytes_per_s": gpu_bandwidth.get(key),
                "bandwidth_source": "agent",
                "compute_capability": labels.get("compute_capability") or None,
                "driver_version": labels.get("driver") or None,
                "mig": {"role": role, "parent_uuid": labels.get("parent_uuid") or None} if role else None,
                "unified_memory": labels.get("unified_memory") == "true",
                "pcie": (
                    {"max_generation": int(link_generation[key]), "max_width": int(link_width[key])}
                    if key in link_generation and key in link_width
                    else None
                ),
                "visible": usable.get(key) == 1,
            }
        )
    return {"schema": SCHEMA, "taken_at": "", "host": host, "gpus": gpus, "problems": []}


def _snapshot(target: str, by_name: dict[str, list[Sample]]) -> tuple[HardwareSnapshot | None, str | None]:
    document = snapshot_document(by_name)
    if document is None:
        return None, None
    try:
        return snapshot_from_dict(document, origin=f"{target}'s metrics"), None
    except FitagentError as exc:
        return None, f"its series do not describe a machine ({exc}): not used"
