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
    if held and in_container:
        notes.append("process names not resolved: in a container NVML reports host PIDs")
    processes = [{"pid": pid, "name": None if in_container else _process_name(session, ctx, pid), "used_bytes": used}
                 for pid, used in held.items()]
    processes.sort(key=lambda p: (-(p["used_bytes"] or 0), p["pid"]))
    return processes


def _process_name(session, ctx, pid: int) -> str | None:
    try:
        name = session.call("nvmlSystemGetProcessName", pid)
    except session.lib.NVMLError:
        name = None
    name = nvml.text(name) if name else ctx.read_text(f"/proc/{pid}/comm")
    return os.path.basename(name) if name else None
