"""What changed between two scans, and a bounded log of it.

Changes are computed from two snapshots and two sets of precomputed recommendations
(pure), then written to the log, which also sends each one to the journal.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..estimator.estimate import Estimate
from ..estimator.hardware import GpuSnapshot, HardwareSnapshot

log = logging.getLogger("fitagent.events")


@dataclass(frozen=True)
class Change:
    kind: str  # gpu_memory | process | gpu_added | gpu_lost | fit_lost | fit_gained | scan_failed | scan_recovered | config
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    change: Change

    def to_dict(self) -> dict:
        at = dt.datetime.fromtimestamp(self.at, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {"id": self.id, "at": at, "kind": self.change.kind, "message": self.change.message, **self.change.details}


class EventLog:
    """The last `max_events` changes, each with an increasing id (for `?since=`)."""

    def __init__(self, max_events: int):
        self._events: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, change: Change, at: float) -> Event:
        with self._lock:
            event = Event(self._next_id, at, change)
            self._next_id += 1
            self._events.append(event)
        log.info("%s", change.message)
        return event

    def extend(self, changes: Iterable[Change], at: float) -> None:
        for change in changes:
            self.add(change, at)

    def since(self, after_id: int = 0, limit: int | None = None) -> list[Event]:
        with self._lock:
            events = [e for e in self._events if e.id > after_id]
        return events[-limit:] if limit else events

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def resize(self, max_events: int) -> None:
        with self._lock:
            if max_events != self._events.maxlen:
                self._events = deque(self._events, maxlen=max_events)


# ---------------------------------------------------------------- differences

def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _gpu_key(gpu: GpuSnapshot) -> str:
    return gpu.uuid or f"{gpu.vendor}:{gpu.index}"


def _gpu_label(gpu: GpuSnapshot) -> str:
    return f"GPU {gpu.index} ({gpu.name})"


def _processes(gpu: GpuSnapshot) -> dict[int, Mapping]:
    out = {}
    for proc in gpu.processes:
        pid = proc.get("pid")
        if isinstance(pid, int):
            out[pid] = proc
    return out


def hardware_changes(old: HardwareSnapshot, new: HardwareSnapshot, min_change_bytes: int) -> list[Change]:
    threshold = max(1, min_change_bytes)
    changes: list[Change] = []
    old_gpus = {_gpu_key(g): g for g in old.gpus}
    new_gpus = {_gpu_key(g): g for g in new.gpus}
    for key, gpu in new_gpus.items():
        before = old_gpus.get(key)
        if before is None:
            changes.append(Change("gpu_added", f"{_gpu_label(gpu)} appeared with {_gb(gpu.memory_free_bytes)} free",
                                  {"gpu": key, "free_bytes": gpu.memory_free_bytes}))
            continue
        if before.usable and not gpu.usable:
            why = gpu.error or ("not visible" if not gpu.visible else "unusable")
            changes.append(Change("gpu_lost", f"{_gpu_label(gpu)} can no longer be used: {why}", {"gpu": key}))
        elif not before.usable and gpu.usable:
            changes.append(Change("gpu_added", f"{_gpu_label(gpu)} is usable again", {"gpu": key}))
        delta = gpu.memory_free_bytes - before.memory_free_bytes
        if abs(delta) >= threshold:
            sign = "+" if delta > 0 else "−"
            changes.append(Change(
                "gpu_memory",
                f"{_gpu_label(gpu)}: free {_gb(before.memory_free_bytes)} → {_gb(gpu.memory_free_bytes)} ({sign}{_gb(abs(delta))})",
                {"gpu": key, "gpu_index": gpu.index, "gpu_name": gpu.name, "free_bytes_before": before.memory_free_bytes,
                 "free_bytes": gpu.memory_free_bytes, "delta_bytes": delta},
            ))
        changes += _process_changes(before, gpu, threshold)
    for key, gpu in old_gpus.items():
        if key not in new_gpus:
            changes.append(Change("gpu_lost", f"{_gpu_label(gpu)} is gone", {"gpu": key}))
    return changes


def _process_changes(before: GpuSnapshot, after: GpuSnapshot, threshold: int) -> list[Change]:
    old, new = _processes(before), _processes(after)
    changes = []
    for pid in sorted(set(old) | set(new)):
        was = int(old.get(pid, {}).get("used_bytes") or 0)
        now = int(new.get(pid, {}).get("used_bytes") or 0)
        delta = now - was
        if abs(delta) < threshold:
            continue
        name = (new.get(pid) or old.get(pid)).get("name") or "?"
        verb = "took" if delta > 0 else "released"
        changes.append(Change(
            "process", f"pid {pid} {name} {verb} {_gb(abs(delta))} on {_gpu_label(after)}",
            {"gpu": _gpu_key(after), "pid": pid, "process": name, "delta_bytes": delta, "used_bytes": now},
        ))
    return changes


def _cause(hardware: list[Change], old_host: int, new_host: int, lost: bool) -> str:
    """The likeliest reason in this scan's changes: a process, else a GPU, else host RAM."""
    wanted = (lambda d: d > 0) if lost else (lambda d: d < 0)
    procs = [c for c in hardware if c.kind == "process" and wanted(c.details["delta_bytes"])]
    if procs:
        return max(procs, key=lambda c: abs(c.details["delta_bytes"])).message.split(" on GPU")[0]
    gpus = [c for c in hardware if c.kind == "gpu_memory" and wanted(-c.details["delta_bytes"])]
    if gpus:
        top = max(gpus, key=lambda c: abs(c.details["delta_bytes"]))
        return f"GPU {top.details['gpu_index']} ({top.details['gpu_name']}) free memory {'fell' if lost else 'rose'} by {_gb(abs(top.details['delta_bytes']))}"
    if old_host != new_host:
        return f"available RAM {'fell' if new_host < old_host else 'rose'} by {_gb(abs(new_host - old_host))}"
    return "the estimate's inputs changed"


def fit_changes(before: Mapping[str, tuple[str, float]], after: Mapping[str, tuple[str, float]], context: int,
                use_case: str, hardware: list[Change], old_host_bytes: int, new_host_bytes: int) -> list[Change]:
    """One change per model whose best whole-fit quantization changed (model -> (quant, quality))."""
    changes = []
    for model in sorted(set(before) | set(after)):
        a, b = before.get(model), after.get(model)
        if a is not None and b is not None and a[0] == b[0]:
            continue
        lost = b is None or (a is not None and b[1] < a[1])
        cause = _cause(hardware, old_host_bytes, new_host_bytes, lost)
        where = f"at {context:,} tokens"
        if lost:
            rest = f" (best now {b[0]})" if b is not None else ""
            message = f"{model} {a[0]} no longer fits {where}{rest}: {cause}"
            details = {"model": model, "quant": a[0], "now_quant": b[0] if b else None}
        else:
            rest = f" (was {a[0]})" if a is not None else ""
            message = f"{model} {b[0]} now fits {where}{rest}: {cause}"
            details = {"model": model, "quant": b[0], "was_quant": a[0] if a else None}
        changes.append(Change("fit_lost" if lost else "fit_gained", message,
                              {**details, "context": context, "use_case": use_case, "cause": cause}))
    return changes


def watched_changes(old: tuple[Estimate, ...], new: tuple[Estimate, ...], hardware: list[Change],
                    old_host_bytes: int, new_host_bytes: int) -> list[Change]:
    before = {(e.model, e.quant, e.context): e for e in old}
    changes = []
    for e in new:
        was = before.get((e.model, e.quant, e.context))
        if was is None or was.fits == e.fits:
            continue
        lost = not e.fits
        cause = _cause(hardware, old_host_bytes, new_host_bytes, lost)
        verb = "no longer fits" if lost else "now fits"
        changes.append(Change("fit_lost" if lost else "fit_gained",
                              f"watched {e.model} {e.quant} {verb} at {e.context:,} tokens: {cause}",
                              {"model": e.model, "quant": e.quant, "context": e.context, "watched": True, "cause": cause}))
    return changes
