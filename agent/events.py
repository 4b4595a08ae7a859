"""What changed between two scans, and a bounded log of it.

Changes are computed from two snapshots and two sets of precomputed recommendations
(pure), then written to the log, which also sends each one to the journal.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..estimator.hardware import GpuSnapshot, HardwareSnapshot
from ..estimator.results import Estimate

log = logging.getLogger("fitagent.events")


@dataclass(frozen=True)
class Change:
    kind: str  # gpu_memory | gpu_added | gpu_lost | fit_changed | fit_lost | fit_gained (watched models) | scan_failed | scan_recovered | config
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    change: Change

    def to_dict(self) -> dict:
        at = dt.datetime.fromtimestamp(self.at, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {
            "id": self.id,
            "at": at,
            "kind": self.change.kind,
            "message": self.change.message,
            **self.change.details,
        }


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
        """The events after `after_id`, oldest first, at most `limit` of them: a client pages
        forward by passing the last id it got (nothing is skipped while the log still holds it)."""
        with self._lock:
            events = [e for e in self._events if e.id > after_id]
        return events[:limit] if limit else events

    def latest(self, n: int) -> list[Event]:
        with self._lock:
            return list(self._events)[-n:]

    @property
    def oldest_id(self) -> int:
        with self._lock:
            return self._events[0].id if self._events else self._next_id

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
    """At most one change per GPU per scan: its free memory and the processes that moved, in one line."""
    threshold = max(1, min_change_bytes)
    changes: list[Change] = []
    old_gpus = {_gpu_key(g): g for g in old.gpus}
    new_gpus = {_gpu_key(g): g for g in new.gpus}
    for key, gpu in new_gpus.items():
        before = old_gpus.get(key)
        if before is None:
            changes.append(
                Change(
                    "gpu_added",
                    f"{_gpu_label(gpu)} appeared with {_gb(gpu.memory_free_bytes)} free",
                    {"gpu": key, "free_bytes": gpu.memory_free_bytes},
                )
            )
            continue
        if before.usable and not gpu.usable:
            why = gpu.error or ("not visible" if not gpu.visible else "unusable")
            changes.append(Change("gpu_lost", f"{_gpu_label(gpu)} can no longer be used: {why}", {"gpu": key}))
        elif not before.usable and gpu.usable:
            changes.append(Change("gpu_added", f"{_gpu_label(gpu)} is usable again", {"gpu": key}))
        delta = gpu.memory_free_bytes - before.memory_free_bytes
        moved = _process_moves(before, gpu, threshold)
        if abs(delta) < threshold and not moved:
            continue
        sign = "+" if delta > 0 else "−"
        message = f"{_gpu_label(gpu)}: free {_gb(before.memory_free_bytes)} → {_gb(gpu.memory_free_bytes)} ({sign}{_gb(abs(delta))})"
        if moved:
            message += ": " + "; ".join(m["text"] for m in moved)
        changes.append(
            Change(
                "gpu_memory",
                message,
                {
                    "gpu": key,
                    "gpu_index": gpu.index,
                    "gpu_name": gpu.name,
                    "free_bytes_before": before.memory_free_bytes,
                    "free_bytes": gpu.memory_free_bytes,
                    "delta_bytes": delta,
                    "processes": [{k: v for k, v in m.items() if k != "text"} for m in moved],
                },
            )
        )
    for key, gpu in old_gpus.items():
        if key not in new_gpus:
            changes.append(Change("gpu_lost", f"{_gpu_label(gpu)} is gone", {"gpu": key}))
    return changes


def _process_moves(before: GpuSnapshot, after: GpuSnapshot, threshold: int) -> list[dict]:
    """The processes whose memory on this GPU changed by at least `threshold`, largest first."""
    old, new = _processes(before), _processes(after)
    moves: list[dict[str, Any]] = []
    for pid in sorted(set(old) | set(new)):
        was = int(old.get(pid, {}).get("used_bytes") or 0)
        now = int(new.get(pid, {}).get("used_bytes") or 0)
        delta = now - was
        if abs(delta) < threshold:
            continue
        entry = new.get(pid) or old.get(pid)
        assert entry is not None  # pid is a key of one or the other, and an entry holds its pid
        name = entry.get("name") or "?"
        verb = "took" if delta > 0 else "released"
        moves.append(
            {
                "pid": pid,
                "process": name,
                "delta_bytes": delta,
                "used_bytes": now,
                "text": f"pid {pid} {name} {verb} {_gb(abs(delta))}",
            }
        )
    moves.sort(key=lambda m: -abs(m["delta_bytes"]))
    return moves


def _cause(hardware: list[Change], old_host: int, new_host: int, lost: bool) -> str:
    """The likeliest reason in this scan's changes: a process, else a GPU, else host RAM."""
    wanted = (lambda d: d > 0) if lost else (lambda d: d < 0)
    procs = [p for c in hardware if c.kind == "gpu_memory" for p in c.details["processes"] if wanted(p["delta_bytes"])]
    if procs:
        top = max(procs, key=lambda p: abs(p["delta_bytes"]))
        return f"pid {top['pid']} {top['process']} {'took' if lost else 'released'} {_gb(abs(top['delta_bytes']))}"
    gpus = [c for c in hardware if c.kind == "gpu_memory" and wanted(-c.details["delta_bytes"])]
    if gpus:
        top = max(gpus, key=lambda c: abs(c.details["delta_bytes"]))
        return f"GPU {top.details['gpu_index']} ({top.details['gpu_name']}) free memory {'fell' if lost else 'rose'} by {_gb(abs(top.details['delta_bytes']))}"
    if old_host != new_host:
        return f"available RAM {'fell' if new_host < old_host else 'rose'} by {_gb(abs(new_host - old_host))}"
    return "the estimate's inputs changed"


_LISTED = 6  # models named in a fit change's message; the details list them all


def fit_changes(
    before: Mapping[str, tuple[str, float]],
    after: Mapping[str, tuple[str, float]],
    context: int,
    use_case: str,
    hardware: list[Change],
    old_host_bytes: int,
    new_host_bytes: int,
) -> list[Change]:
    """One change per scan for the models whose best whole-fit quantization changed
    (model -> (quant, quality)): which no longer fit as before, which now fit better, and why."""
    lost, gained = [], []
    for model in sorted(set(before) | set(after)):
        a, b = before.get(model), after.get(model)
        if a is not None and b is not None and a[0] == b[0]:
            continue
        if b is None or (a is not None and b[1] < a[1]):
            assert a is not None  # the model is in before or after
            lost.append({"model": model, "quant": a[0], "now_quant": b[0] if b else None})
        else:
            gained.append({"model": model, "quant": b[0], "was_quant": a[0] if a else None})
    if not lost and not gained:
        return []
    cause = _cause(hardware, old_host_bytes, new_host_bytes, bool(lost) and len(lost) >= len(gained))
    parts = []
    if lost:
        named = [
            f"{x['model']} {x['quant']}" + (f" (best now {x['now_quant']})" if x["now_quant"] else "") for x in lost
        ]
        parts.append(f"{len(lost)} no longer fit{'s' if len(lost) == 1 else ''}: " + _listed(named))
    if gained:
        named = [f"{x['model']} {x['quant']}" + (f" (was {x['was_quant']})" if x["was_quant"] else "") for x in gained]
        parts.append(f"{len(gained)} now fit{'s' if len(gained) == 1 else ''}: " + _listed(named))
    message = f"at {context:,} tokens ({use_case}), {cause}: " + "; ".join(parts)
    return [
        Change(
            "fit_changed",
            message,
            {"context": context, "use_case": use_case, "cause": cause, "lost": lost, "gained": gained},
        )
    ]


def _listed(names: list[str]) -> str:
    more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def watched_changes(
    old: tuple[Estimate, ...],
    new: tuple[Estimate, ...],
    hardware: list[Change],
    old_host_bytes: int,
    new_host_bytes: int,
) -> list[Change]:
    before = {(e.model, e.quant, e.context): e for e in old}
    changes = []
    for e in new:
        was = before.get((e.model, e.quant, e.context))
        if was is None or was.fits == e.fits:
            continue
        lost = not e.fits
        cause = _cause(hardware, old_host_bytes, new_host_bytes, lost)
        verb = "no longer fits" if lost else "now fits"
        changes.append(
            Change(
                "fit_lost" if lost else "fit_gained",
                f"watched {e.model} {e.quant} {verb} at {e.context:,} tokens: {cause}",
                {"model": e.model, "quant": e.quant, "context": e.context, "watched": True, "cause": cause},
            )
        )
    return changes
