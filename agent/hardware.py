"""Where the hardware facts come from: the probe, a saved snapshot, or catalog GPUs."""

from __future__ import annotations

import json
import os
from dataclasses import replace

from ..estimator.catalog import Catalog
from ..estimator.errors import UsageError
from ..estimator.hardware import GpuSnapshot, HardwareSnapshot, snapshot_from_dict


def load_snapshot_file(path: str | os.PathLike) -> HardwareSnapshot:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise UsageError(f"--hardware {path}: no such file (save one with `fitagent probe --json > {os.path.basename(path)}`)") from None
    except IsADirectoryError:
        raise UsageError(f"--hardware {path}: is a directory, not a snapshot file") from None
    except OSError as exc:
        raise UsageError(f"--hardware {path}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--hardware {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return replace(snapshot_from_dict(data, origin=f"--hardware {path}"), source=f"file:{path}")


def snapshot_from_gpu_names(names: list[str], catalog: Catalog, base: HardwareSnapshot) -> HardwareSnapshot:
    """The base snapshot's host with the named catalog GPUs, all of their memory free."""
    gpus = []
    for index, name in enumerate(names):
        spec = catalog.gpu(name)
        gpus.append(GpuSnapshot(
            index=index, vendor=spec.vendor, name=spec.name, uuid=None,
            pci_id=spec.pci_ids[0] if spec.pci_ids else None, memory_total_bytes=spec.memory_bytes,
            memory_free_bytes=spec.memory_bytes, memory_used_bytes=0,
            memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s, bandwidth_source="table",
            compute_capability=None, driver_version=None, mig=None, unified_memory=spec.unified_memory or None,
        ))
    return replace(base, gpus=tuple(gpus), problems=(), source="gpu-spec")


def resolve_snapshot(hardware: str | None, gpu_names: list[str] | None, catalog: Catalog | None = None) -> HardwareSnapshot:
    """--hardware FILE, else --gpu NAME… on this host's RAM, else a fresh probe."""
    if hardware and gpu_names:
        raise UsageError("give either --hardware FILE or --gpu NAME, not both")
    if hardware:
        return load_snapshot_file(hardware)
    from .probe import take_snapshot

    snapshot = take_snapshot()
    if gpu_names:
        if catalog is None:
            from .catalog import load_catalog

            catalog = load_catalog()
        return snapshot_from_gpu_names(gpu_names, catalog, snapshot)
    return snapshot
