"""Host RAM bandwidth, from the best source available, saying which it was.

Order: the user's figure (environment) → SMBIOS (speed × channels, root only) → the memory
of a unified-memory GPU (Apple, Strix Halo, GB10: CPU and GPU share it) → the platform table
in data/host_memory.json → a short measurement when asked for → unknown.
psutil cannot tell (it knows capacity, not speed).
"""

from __future__ import annotations

import re

from . import tables

ENV = "FITAGENT_HOST_MEMORY_BANDWIDTH_BYTES_PER_S"


def fill(ctx, host: dict, gpus: list[dict]) -> None:
    """Set memory_bandwidth_bytes_per_s / memory_bandwidth_source on the host facts."""
    value, source, note = _choose(ctx, host, gpus)
    host["memory_bandwidth_bytes_per_s"] = value
    host["memory_bandwidth_source"] = source
    host["notes"].append(note)


def _choose(ctx, host: dict, gpus: list[dict]) -> tuple[int | None, str, str]:
    configured = ctx.environ.get(ENV)
    if configured:
        try:
            value = int(float(configured))
            if value > 0:
                return value, "config", f"RAM bandwidth {value / 1e9:,.1f} GB/s from {ENV}"
        except ValueError:
            pass
        host["notes"].append(f"{ENV}={configured!r} is not a number of bytes per second (e.g. 89.6e9); ignored")

    unreadable: str | None
    peak, unreadable = None, "no SMBIOS memory records (/sys/firmware/dmi absent: VM, container or non-x86)"
    if ctx.listdir("/sys/firmware/dmi/entries"):  # absent in most VMs and containers: no parser to import
        from . import dmi

        devices, unreadable = dmi.read_memory_devices(ctx)
        peak = dmi.peak_bandwidth(devices) if devices else None
    if peak:
        return peak[0], "dmi", f"RAM bandwidth {peak[0] / 1e9:,.1f} GB/s peak from SMBIOS: {peak[1]}"

    for gpu in gpus:
        if gpu.get("unified_memory") and gpu.get("memory_bandwidth_bytes_per_s"):
            value = gpu["memory_bandwidth_bytes_per_s"]
            return (
                value,
                "table",
                f"RAM bandwidth {value / 1e9:,.0f} GB/s: the unified memory of the {gpu['name']} (gpus.yaml)",
            )

    row = platform_row(host.get("cpu_model"))
    if row:
        value = row["transfer_rate_mt_per_s"] * 1_000_000 * row["bus_width_bits"] // 8
        return (
            value,
            "table",
            (
                f"RAM bandwidth {value / 1e9:,.1f} GB/s peak from data/host_memory.json: {row['platform']},"
                f" {row['memory']} × {row['bus_width_bits']} bit"
            ),
        )

    from . import measured

    if ctx.measure_bandwidth:
        from .ram_measure import measure

        value, how = measure(host["memory_available_bytes"])
        kept = measured.remember(ctx, host, value, how)
        where = f"; remembered in {kept}" if kept else ""
        return value, "measured", f"RAM bandwidth {value / 1e9:,.1f} GB/s measured: {how}{where}"

    stored = measured.recall(ctx, host)
    if stored:
        value = stored["bytes_per_s"]
        return (
            value,
            "measured",
            (
                f"RAM bandwidth {value / 1e9:,.1f} GB/s measured on this machine at "
                f"{stored.get('measured_at', '?')} (`fitagent probe --measure-bandwidth` measures again)"
            ),
        )

    why = unreadable or "SMBIOS records give no speed"
    return (
        None,
        "none",
        (
            f"RAM bandwidth unknown ({why}; CPU {host.get('cpu_model')!r} not in data/host_memory.json)"
            f" — measure it once with `fitagent probe --measure-bandwidth` (remembered) or set {ENV}"
        ),
    )


def platform_row(cpu_model: str | None) -> dict | None:
    if not cpu_model:
        return None
    try:
        rows = tables.host_memory_table()["platforms"]
    except (OSError, ValueError, KeyError):
        return None
    lowered = cpu_model.lower()
    for row in rows:
        if row["cpu_model_contains"].lower() in lowered and re.search(
            row["cpu_model_pattern"], cpu_model, re.IGNORECASE
        ):
            return row
    return None
