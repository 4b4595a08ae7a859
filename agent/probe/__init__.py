"""Reads the machine once and returns a HardwareSnapshot (placeholder: host only)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket

from ...estimator.hardware import HardwareSnapshot, HostSnapshot, Problem


def take_snapshot(measure_bandwidth: bool = False) -> HardwareSnapshot:
    import psutil

    vm = psutil.virtual_memory()
    host = HostSnapshot(
        hostname=socket.gethostname(), os=f"{platform.system()} {platform.release()}", cpu_model=platform.processor() or None,
        cpu_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1, memory_total_bytes=vm.total,
        memory_available_bytes=vm.available, memory_bandwidth_bytes_per_s=None, memory_bandwidth_source="none",
    )
    return HardwareSnapshot(
        taken_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), host=host,
        problems=(Problem("nvml", "probe not implemented yet"),), source="probe",
    )
