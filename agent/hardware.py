"""Where the hardware facts come from: the probe, a saved snapshot, or catalog GPUs."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import NamedTuple

from ..catalog.errors import UsageError
from ..catalog.types import Catalog
from ..estimator.hardware import GpuSnapshot, HardwareSnapshot, snapshot_from_dict


def take_snapshot(measure_bandwidth: bool = False, **machine) -> HardwareSnapshot:
    """This machine as a frozen HardwareSnapshot: the probe's document through the one parser
    every snapshot takes (``machine`` replaces the real machine in tests: probe_document's keywords)."""
    from .probe import probe_document

    document = probe_document(measure_bandwidth, **machine)
    return replace(snapshot_from_dict(document, origin="probe"), source="probe")


def load_snapshot_file(path: str | os.PathLike) -> HardwareSnapshot:
    from .files import read_text

    path = os.fspath(path)
    try:
        text = read_text(path, "--hardware", limit=MAX_SNAPSHOT_BYTES)
    except FileNotFoundError:
        raise UsageError(
            f"--hardware {path}: no such file (save one with `fitagent probe --json > {os.path.basename(path)}`)"
        ) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--hardware {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise UsageError(f"--hardware {path}: nested too deeply to be a snapshot") from None
    except ValueError as exc:
        raise UsageError(f"--hardware {path}: {exc}") from None
    return replace(snapshot_from_dict(data, origin=f"--hardware {path}"), source=f"file:{path}")


class HostOverrides(NamedTuple):
    """What a --gpu what-if says of its host (None: this machine's figure)."""

    ram_bytes: int | None = None
    bandwidth_bytes_per_s: float | None = None
    cpu_cores: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in self)


def apple_gpu_share(ram_bytes: int) -> float:
    """The share of RAM macOS lets the GPU wire by default (the probe reads the real limit)."""
    from ..catalog.files import read_json_data

    rows = read_json_data("host_memory.json")["apple"]["gpu_share_of_ram"]
    return next(row["share"] for row in rows if ram_bytes <= row.get("up_to_bytes", ram_bytes))


MAX_SNAPSHOT_BYTES = 4 << 20  # a snapshot of a 64-GPU box with every process listed is well under this


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a snapshot can hold (bytes and bytes/s are finite)")


def snapshot_from_gpu_names(
    names: list[str], catalog: Catalog, base: HardwareSnapshot, host: HostOverrides = HostOverrides()
) -> tuple[HardwareSnapshot, list[str]]:
    """The named catalog GPUs, all of their memory free, on the base snapshot's host (as far as
    `host` does not describe another), and notes saying which host figures were used."""
    notes: list[str] = []
    specs = [catalog.gpu(name) for name in names]
    unified = [spec for spec in specs if spec.unified_memory]
    if unified and len(specs) > 1:
        raise UsageError(
            "a unified-memory GPU (Apple silicon, Strix Halo, GB10) is the whole machine: give it alone to --gpu"
        )
    h = base.host
    ram = host.ram_bytes
    if unified and ram is None:
        ram = unified[0].memory_bytes
        notes.append(
            f"{unified[0].name}: the catalog's configuration of {ram / 1e9:.0f} GB of unified memory "
            "(--host-ram sets another)"
        )
    gpus = []
    for index, spec in enumerate(specs):
        total = spec.memory_bytes
        bandwidth_source = "table"
        if spec.unified_memory:
            assert ram is not None  # set above for a unified-memory GPU
            total = ram
            if spec.vendor == "apple":
                share = apple_gpu_share(ram)
                total = int(ram * share)
                notes.append(
                    f"{spec.name}: the GPU may wire {share:.0%} of {ram / 1e9:.0f} GB by default "
                    f"({total / 1e9:.1f} GB; raise it with `sudo sysctl iogpu.wired_limit_mb`)"
                )
        gpus.append(
            GpuSnapshot(
                index=index,
                vendor=spec.vendor,
                name=spec.name,
                uuid=None,
                pci_id=spec.pci_ids[0] if spec.pci_ids else None,
                memory_total_bytes=total,
                memory_free_bytes=total,
                memory_used_bytes=0,
                memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
                bandwidth_source=bandwidth_source,
                compute_capability=None,
                driver_version=None,
                mig=None,
                unified_memory=spec.unified_memory or None,
            )
        )
    bandwidth = host.bandwidth_bytes_per_s
    if unified and bandwidth is None:
        bandwidth = unified[0].memory_bandwidth_bytes_per_s  # one memory for CPU and GPU
    new_host = replace(
        h,
        memory_total_bytes=ram if ram is not None else h.memory_total_bytes,
        memory_available_bytes=ram if ram is not None else h.memory_available_bytes,
        memory_limit_bytes=None if ram is not None else h.memory_limit_bytes,
        memory_bandwidth_bytes_per_s=int(bandwidth) if bandwidth is not None else h.memory_bandwidth_bytes_per_s,
        memory_bandwidth_source="what-if" if bandwidth is not None else h.memory_bandwidth_source,
        cpu_cores=host.cpu_cores or h.cpu_cores,
    )
    mine = [
        what
        for what, given in (("RAM", ram), ("RAM bandwidth", bandwidth), ("CPU cores", host.cpu_cores))
        if given is None
    ]
    if mine:
        figures = {
            "RAM": f"{h.memory_available_bytes / 1e9:.1f} GB of RAM available",
            "RAM bandwidth": (
                f"{h.memory_bandwidth_bytes_per_s / 1e9:.1f} GB/s RAM bandwidth"
                if h.memory_bandwidth_bytes_per_s
                else "RAM bandwidth unknown (51.2 GB/s assumed)"
            ),
            "CPU cores": f"{h.cpu_cores} CPU cores",
        }
        notes.append(
            "what-if host: this machine's "
            + ", ".join(figures[m] for m in mine)
            + " — describe another with --host-ram, --host-bandwidth, --cpu-cores"
        )
    return replace(base, host=new_host, gpus=tuple(gpus), problems=(), source="gpu-spec"), notes


def resolve_hardware(
    hardware: str | None,
    gpu_names: list[str] | None,
    catalog: Catalog | None = None,
    host: HostOverrides = HostOverrides(),
) -> tuple[HardwareSnapshot, list[str]]:
    """--hardware FILE, else --gpu NAME… (on this host or the one described), else a fresh
    probe; with notes on what a what-if assumed."""
    if hardware and gpu_names:
        raise UsageError("give either --hardware FILE or --gpu NAME, not both")
    if hardware:
        return load_snapshot_file(hardware), []
    snapshot = take_snapshot()
    if gpu_names:
        if catalog is None:
            from .catalog_cache import load_catalog

            catalog = load_catalog()
        return snapshot_from_gpu_names(gpu_names, catalog, snapshot, host)
    return snapshot, []
