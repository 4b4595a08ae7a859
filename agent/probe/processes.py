"""Who holds memory on an NVIDIA device, so a user sees who took the VRAM."""

from __future__ import annotations

import os

from . import nvml


def read(session, ctx, handle, notes: list, in_container: bool) -> list[dict]:
    """Who holds memory on this device: pid, name, bytes (best effort; never fails the probe)."""
    lib = session.lib
    held: dict[int, int | None] = {}
    for call in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            listed = session.call(call, handle) or []
        except lib.NVMLError as exc:
            if nvml.error_code(exc) == nvml.NO_PERMISSION:
                notes.append("process list not readable without more privileges")
            continue
        for proc in listed:
            used = getattr(proc, "usedGpuMemory", None)
            previous = held.get(proc.pid)
            held[proc.pid] = used if previous is None else max(previous, used or 0)
    # NVML reports PIDs of the root PID namespace. A container with its own namespace sees other
    # numbers (a name looked up here would be another process's); one that shares the host's —
    # or a VM that merely looks like a container — sees the same ones.
    foreign = in_container and held and not _root_pid_namespace(ctx)
    if foreign:
        notes.append("process names not resolved: this container has its own PID namespace and NVML reports host PIDs")
    processes: list[dict] = [
        {"pid": pid, "name": None if foreign else _process_name(session, ctx, pid), "used_bytes": used}
        for pid, used in held.items()
    ]
    processes.sort(key=lambda p: (-(p["used_bytes"] or 0), p["pid"]))
    return processes


def _process_name(session, ctx, pid: int) -> str | None:
    try:
        name = session.call("nvmlSystemGetProcessName", pid)
    except session.lib.NVMLError:
        name = None
    name = nvml.text(name) if name else ctx.read_text(f"/proc/{pid}/comm")
    return os.path.basename(name) if name else None


def _root_pid_namespace(ctx) -> bool:
    """True when this process's PID namespace is the root one: /proc/self/status lists one NSpid."""
    status = ctx.read_text("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return len(line.split()) == 2
    return False
