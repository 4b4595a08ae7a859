"""Reads the machine once: the only place that touches NVML, sysfs, sysctl and psutil.

``probe_document`` returns the snapshot in its JSON form (schema fitagent.hardware/1), the
probe's only product: ``agent.hardware.take_snapshot`` turns it into the estimator's frozen
``HardwareSnapshot``, so the probe imports nothing from the estimator. Each backend (host,
nvidia, amd, intel, apple) reads through one ``ProbeContext``; a failing backend becomes a
line in ``problems`` and the rest of the machine is still reported.
"""

from __future__ import annotations

import importlib
import os
import time

from . import document, host, ram_bandwidth
from .context import ProbeContext


def _gpu_backends(ctx) -> list[str]:
    """The backend modules worth importing here: every import is start-up time on a CLI."""
    if ctx.system == "Darwin":
        return ["apple"]
    names = ["nvidia"]
    if any(name.startswith("card") for name in ctx.listdir("/sys/class/drm")):
        names += ["amd", "intel"]
    return names


def _internal_error(source: str, exc: Exception) -> dict:
    return document.problem(
        source,
        f"internal error ({type(exc).__name__}: {exc}) — please report it with"
        " `fitagent probe --json`; the other backends still ran",
    )


def _bare_host() -> dict:
    return {
        "hostname": os.uname().nodename if hasattr(os, "uname") else "unknown",
        "os": "unknown",
        "cpu_model": None,
        "cpu_cores": os.cpu_count() or 1,
        "memory_total_bytes": 0,
        "memory_available_bytes": 0,
        "notes": [],
    }


def probe_document(
    measure_bandwidth: bool = False,
    *,
    fs_root: str = "/",
    environ=None,
    run=None,
    nvml_module=None,
    gpu_table=None,
    system: str | None = None,
) -> dict:
    """The machine as a fitagent.hardware/1 document; parameters replace the real machine in tests."""
    ctx = ProbeContext(
        fs_root=fs_root,
        environ=environ,
        run=run,
        nvml_module=nvml_module,
        gpu_table=gpu_table,
        system=system,
        measure_bandwidth=measure_bandwidth,
    )
    taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    problems: list[dict] = []
    try:
        host_facts = host.probe(ctx)
    except Exception as exc:  # noqa: BLE001 - a probe bug must not cost the user the whole snapshot
        problems.append(_internal_error("host", exc))
        host_facts = _bare_host()
    gpus: list[dict] = []
    absent: list[dict] = []
    for name in _gpu_backends(ctx):
        source = "nvml" if name == "nvidia" else name
        try:
            backend = importlib.import_module(f"{__name__}.{name}")
            result = backend.probe(ctx, host_facts)
        except Exception as exc:  # noqa: BLE001
            problems.append(_internal_error(source, exc))
            continue
        gpus += result.gpus
        problems += result.problems
        absent += result.absent
    if not gpus:
        problems = absent + problems
    table_problem = getattr(ctx.gpu_table, "problem", None)
    if table_problem:
        problems.append(document.problem("gpus.yaml", table_problem))
    try:
        ram_bandwidth.fill(ctx, host_facts, gpus)
    except Exception as exc:  # noqa: BLE001
        problems.append(_internal_error("ram-bandwidth", exc))
        host_facts.update(memory_bandwidth_bytes_per_s=None, memory_bandwidth_source="none")
    return document.document(
        taken_at, document.host_entry(**host_facts), [document.gpu_entry(**gpu) for gpu in gpus], problems
    )
