"""The agent's current state: one snapshot and what was precomputed from it, swapped whole.

A scan builds a new ``AgentState`` and the scheduler replaces the reference; nothing in a
state is changed afterwards except its response cache (answers derived from that state
alone, so a new state starts with an empty one). Views and the metrics collector read
``agent.state`` once per request and use that object throughout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..catalog.types import Catalog
from ..estimator.budget import Budget, Device, budget_from_snapshot
from ..estimator.estimate import estimate
from ..estimator.hardware import HardwareSnapshot
from ..estimator.launch import launch_settings
from ..estimator.recommend import Recommendations, recommend
from ..estimator.results import Estimate, Options
from .config import Config

if TYPE_CHECKING:
    from .localmodels import Installed

RecKey = tuple[str, int]  # (use_case, context)


class ScanAborted(Exception):
    """The agent is stopping; a half-built state is dropped."""


class ResponseCache:
    """Answers derived from one state, keyed by request; bounded, safe to share between threads."""

    def __init__(self, max_entries: int = 512, max_bytes: int = 4 * 1024 * 1024):
        self._items: dict[Hashable, object] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self._max_bytes = max_bytes  # counts bytes values (response bodies) only
        self._bytes = 0

    def get(self, key: Hashable):
        return self._items.get(key)  # a dict read is atomic; misses take the lock below

    def get_or_make(self, key: Hashable, make: Callable[[], object]):
        value = self._items.get(key)
        if value is not None:
            return value
        with self._lock:  # one computation per key, even under concurrent misses
            value = self._items.get(key)
            if value is None:
                value = make()
                size = len(value) if isinstance(value, bytes) else 0
                while self._items and (len(self._items) >= self._max or self._bytes + size > self._max_bytes):
                    dropped = self._items.pop(next(iter(self._items)))  # oldest first
                    self._bytes -= len(dropped) if isinstance(dropped, bytes) else 0
                self._items[key] = value
                self._bytes += size
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if key not in self._items:
            self.get_or_make(key, lambda: value)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, eq=False)
class Precomputed:
    """What a scan derived from a budget; reused by later scans while the budget hardly moves."""

    budget: Budget
    devices: tuple[Device, ...]  # the budget's GPUs in runtime (CUDA ordinal) order
    # Each key's frontiers and ranking only: every candidate of 20 keys would be ~50 MB.
    recommendations: Mapping[RecKey, Recommendations]
    considered: Mapping[RecKey, int]  # how many candidates each key weighed
    default_key: RecKey
    best_fitting: Mapping[str, tuple[str, float]]  # default key: model -> (quant, quality) of its best whole fit
    scatter: tuple[tuple[int, float, float | None, float | None], ...]  # default key: every candidate's
    # (total_bytes, quality, decode tokens/s, efficiency), for the page's plot
    watched: tuple[Estimate, ...]
    computed_at: float
    duration_s: float
    settings: tuple  # the config values the results depend on


@dataclass(frozen=True, eq=False)
class AgentState:
    generation: int
    snapshot: HardwareSnapshot | None  # None until a scan has succeeded
    computed: Precomputed | None
    scanned_at: float | None  # epoch seconds of the last good scan
    scan_duration_s: float | None
    rescan_interval_s: float
    error: str | None = None  # the last scan's error, while scans fail
    error_at: float | None = None
    consecutive_failures: int = 0
    scans_total: int = 0
    scan_failures_total: int = 0
    installed: Installed | None = field(default=None, compare=False)  # models on disk (agent/localmodels), by the scan
    cache: ResponseCache = field(default_factory=lambda: ResponseCache(256), compare=False)  # response bodies
    # recommendations for contexts the scan did not precompute (each ~1 MB before slimming)
    on_demand: ResponseCache = field(default_factory=lambda: ResponseCache(8), compare=False)

    @property
    def ready(self) -> bool:
        return self.snapshot is not None and self.computed is not None

    def age_s(self, now: float | None = None) -> float | None:
        if self.scanned_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.scanned_at)

    def stale(self, now: float | None = None) -> bool:
        """The last scan failed, or no scan has succeeded for three intervals."""
        age = self.age_s(now)
        return self.error is not None or age is None or age > 3 * self.rescan_interval_s + 60


def settings_key(config: Config) -> tuple:
    return (
        config.precomputed_use_cases,
        config.precomputed_contexts,
        (config.default_use_case, config.default_context),
        config.watch_models,
        config.max_quant_loss,
        tuple(sorted(config.quality_floor.items())),
    )


def runtime_devices(snapshot: HardwareSnapshot, budget: Budget) -> tuple[Device, ...]:
    """The budget's devices in the order runtimes number them (CUDA ordinal, else index)."""
    paired = list(zip(snapshot.usable_gpus, budget.devices))
    paired.sort(key=lambda gd: (gd[0].cuda_ordinal if gd[0].cuda_ordinal is not None else gd[0].index, gd[0].index))
    return tuple(d for _, d in paired)


def budget_moved(old: Budget, new: Budget, min_change_bytes: int) -> bool:
    """Whether results computed for `old` may be wrong for `new`.

    Free memory jitters by a few MB between scans (allocator caches, the desktop);
    recomputing the whole catalog for that would cost a scan's CPU every interval.
    """
    if [d.id for d in old.devices] != [d.id for d in new.devices]:
        return True
    for a, b in zip(old.devices, new.devices):
        if (a.total_bytes, a.bandwidth_bytes_per_s, a.fp16_flops, a.unified) != (
            b.total_bytes,
            b.bandwidth_bytes_per_s,
            b.fp16_flops,
            b.unified,
        ):
            return True
        if abs(a.free_bytes - b.free_bytes) > min_change_bytes:
            return True
    host_tolerance = max(min_change_bytes, new.host_available_bytes // 100)
    if abs(old.host_available_bytes - new.host_available_bytes) > host_tolerance:
        return True
    return (old.host_bandwidth_bytes_per_s, old.cpu_cores) != (new.host_bandwidth_bytes_per_s, new.cpu_cores)


def precompute(
    snapshot: HardwareSnapshot,
    catalog: Catalog,
    config: Config,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> Precomputed:
    started = time.monotonic()
    budget = budget_from_snapshot(snapshot, catalog)
    default_key = (config.default_use_case, config.default_context)
    recs: dict[RecKey, Recommendations] = {}
    considered: dict[RecKey, int] = {}
    best: dict[str, tuple[str, float]] = {}
    scatter: tuple = ()
    for use_case in config.precomputed_use_cases:
        for context in config.precomputed_contexts:
            if stop is not None and stop.is_set():
                raise ScanAborted()
            key = (use_case, context)
            full = recommend(catalog, budget, Options(context=context, use_case=use_case), floor=config.floor(use_case))
            considered[key] = len(full.candidates)
            recs[key] = slim(full)
            if key == default_key:
                best = best_fitting(full)
                scatter = tuple(
                    (e.total_bytes, e.quality, e.decode_tokens_per_s, e.efficiency) for e in full.candidates
                )
            del full
    watched = tuple(
        estimate(
            catalog.model(w.model),
            catalog.quant(w.quant),
            budget,
            catalog,
            Options(context=w.context, use_case=config.default_use_case),
        )
        for w in config.watch_models
    )
    return Precomputed(
        budget=budget,
        devices=runtime_devices(snapshot, budget),
        recommendations=recs,
        considered=considered,
        default_key=default_key,
        best_fitting=best,
        scatter=scatter,
        watched=watched,
        computed_at=clock(),
        duration_s=time.monotonic() - started,
        settings=settings_key(config),
    )


def best_fitting(recs: Recommendations) -> dict[str, tuple[str, float]]:
    """Each model's highest-quality quantization that fits whole: model -> (quant, quality)."""
    best: dict[str, tuple[str, float]] = {}
    for e in recs.candidates:
        if e.whole and (e.model not in best or e.quality > best[e.model][1]):
            best[e.model] = (e.quant, e.quality)
    return best


def release_freed_memory() -> None:
    """After a scan: collect its garbage, give the freed heap pages back to the OS, and
    freeze what is left (catalog, state) out of the cyclic GC's sight, so requests'
    collections don't walk hundreds of thousands of long-lived objects."""
    import ctypes
    import gc

    gc.unfreeze()  # the previous state may be garbage now
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
    gc.freeze()


def slim(recs: Recommendations) -> Recommendations:
    """Only what answers need (frontiers, ranking); the full candidate list is dropped."""
    return replace(recs, candidates=())


def candidate_dict(est: Estimate, devices: tuple[Device, ...]) -> dict:
    """A candidate as the API shows it: the estimate plus the flags to run it."""
    return {**est.to_dict(), "launch": launch_settings(est, devices)}
