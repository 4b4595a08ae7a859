"""The hardware snapshot: what the probe saw, as a frozen value.

Schema ``fitagent.hardware/1`` (design.md). The probe builds it, ``--hardware FILE``
replays it, and the estimator reads it. Contract fields are always written; the
optional extras (processes, PCIe link, reserved memory, …) only when they hold
something, so a snapshot written by an older or simpler probe replays unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..catalog.errors import UsageError

SCHEMA = "fitagent.hardware/1"


@dataclass(frozen=True)
class Problem:
    source: str
    message: str


@dataclass(frozen=True)
class HostSnapshot:
    hostname: str
    os: str
    cpu_model: str | None
    cpu_cores: int
    memory_total_bytes: int
    memory_available_bytes: int
    memory_bandwidth_bytes_per_s: int | None
    memory_bandwidth_source: str
    # optional extras
    cpu_threads: int | None = None
    cpu_arch: str | None = None  # "x86" or "arm": what a core's share of the RAM bandwidth follows
    cpu_class: str | None = None  # "embedded": Cortex-A cores (Raspberry Pi, Jetson), slow to drive a GPU
    memory_limit_bytes: int | None = None  # cgroup limit, when one caps RAM
    memory_limit_source: str | None = None
    container: str | None = None
    wsl: bool | None = None
    notes: tuple[str, ...] = ()  # how the probe derived what it reports (cgroup cap, bandwidth table row, …)


@dataclass(frozen=True)
class GpuSnapshot:
    index: int
    vendor: str
    name: str
    uuid: str | None
    pci_id: str | None
    memory_total_bytes: int
    memory_free_bytes: int
    memory_used_bytes: int
    memory_bandwidth_bytes_per_s: int | None
    bandwidth_source: str
    compute_capability: str | None
    driver_version: str | None
    mig: Mapping[str, object] | None
    # optional extras
    memory_reserved_bytes: int | None = None
    memory_source: str | None = None
    unified_memory: bool | None = None
    cuda_driver_version: str | None = None
    pci_bus_id: str | None = None
    pcie: Mapping[str, object] | None = None
    processes: tuple[Mapping[str, object], ...] = ()
    cuda_ordinal: int | None = None
    visible: bool = True
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_mig_parent(self) -> bool:
        return bool(self.mig and self.mig.get("role") == "parent")

    @property
    def usable(self) -> bool:
        """Whether a workload can be placed here: visible, healthy, not a MIG parent."""
        return self.visible and self.error is None and not self.is_mig_parent


@dataclass(frozen=True)
class HardwareSnapshot:
    taken_at: str
    host: HostSnapshot
    gpus: tuple[GpuSnapshot, ...] = ()
    problems: tuple[Problem, ...] = ()
    schema: str = SCHEMA
    source: str | None = None  # "probe", "file:<path>", "gpu-spec"; not serialised

    @property
    def usable_gpus(self) -> tuple[GpuSnapshot, ...]:
        return tuple(g for g in self.gpus if g.usable)


_OPTIONAL_EMPTY: tuple[object, ...] = (None, (), [], {})


def _dataclass_to_dict(obj, required: set[str]) -> dict:
    out: dict[str, object] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name not in required and (value in _OPTIONAL_EMPTY or (f.name == "visible" and value is True)):
            continue
        if isinstance(value, tuple):
            value = [dict(v) if isinstance(v, Mapping) else v for v in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out


_HOST_REQUIRED = {
    "hostname",
    "os",
    "cpu_model",
    "cpu_cores",
    "memory_total_bytes",
    "memory_available_bytes",
    "memory_bandwidth_bytes_per_s",
    "memory_bandwidth_source",
}
_GPU_REQUIRED = {
    "index",
    "vendor",
    "name",
    "uuid",
    "pci_id",
    "memory_total_bytes",
    "memory_free_bytes",
    "memory_used_bytes",
    "memory_bandwidth_bytes_per_s",
    "bandwidth_source",
    "compute_capability",
    "driver_version",
    "mig",
}


def snapshot_to_dict(snap: HardwareSnapshot) -> dict:
    return {
        "schema": snap.schema,
        "taken_at": snap.taken_at,
        "host": _dataclass_to_dict(snap.host, _HOST_REQUIRED),
        "gpus": [_dataclass_to_dict(g, _GPU_REQUIRED) for g in snap.gpus],
        "problems": [{"source": p.source, "message": p.message} for p in snap.problems],
    }


def _check_type(where: str, name: str, value, kinds) -> None:
    if value is None and None in kinds:
        return
    types = tuple(k for k in kinds if k is not None)
    # bool is an int in Python; a count given as true/false is still wrong.
    if isinstance(value, bool) and bool not in types:
        raise UsageError(f"{where}: field '{name}' must be {_describe(kinds)}, got {value!r}")
    if not isinstance(value, types):
        raise UsageError(f"{where}: field '{name}' must be {_describe(kinds)}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and name.endswith(("_bytes", "_per_s")) and value < 0:
        raise UsageError(f"{where}: field '{name}' must not be negative, got {value}")


def _describe(kinds) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
        dict: "an object",
        list: "a list",
        None: "null",
    }
    return " or ".join(names.get(k, str(k)) for k in kinds)


def _build(cls, data: Mapping, where: str, required: set[str], spec: Mapping[str, tuple]):
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: expected an object, got {type(data).__name__}")
    missing = sorted(required - set(data))
    if missing:
        raise UsageError(
            f"{where}: missing field '{missing[0]}' (schema {SCHEMA}; see `fitagent probe --json` for the format)"
        )
    kwargs = {}
    known = {f.name for f in fields(cls)}
    for key, value in data.items():
        if key not in known:
            continue  # newer probes may add fields; ignore what we don't know
        if key in spec:
            _check_type(where, key, value, spec[key])
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


_N = (int, None)
_S = (str, None)
_HOST_SPEC = {
    "hostname": (str,),
    "os": (str,),
    "cpu_model": _S,
    "cpu_cores": (int,),
    "memory_total_bytes": (int,),
    "memory_available_bytes": (int,),
    "memory_bandwidth_bytes_per_s": (int, float, None),
    "memory_bandwidth_source": (str,),
    "cpu_threads": _N,
    "cpu_arch": _S,
    "cpu_class": _S,
    "memory_limit_bytes": _N,
    "memory_limit_source": _S,
    "container": _S,
    "wsl": (bool, None),
    "notes": (list,),
}
_GPU_SPEC = {
    "index": (int,),
    "vendor": (str,),
    "name": (str,),
    "uuid": _S,
    "pci_id": _S,
    "memory_total_bytes": (int,),
    "memory_free_bytes": (int,),
    "memory_used_bytes": (int,),
    "memory_bandwidth_bytes_per_s": (int, float, None),
    "bandwidth_source": (str,),
    "compute_capability": _S,
    "driver_version": _S,
    "mig": (dict, None),
    "memory_reserved_bytes": _N,
    "memory_source": _S,
    "unified_memory": (bool, None),
    "cuda_driver_version": _S,
    "pci_bus_id": _S,
    "pcie": (dict, None),
    "processes": (list,),
    "cuda_ordinal": _N,
    "visible": (bool,),
    "error": _S,
    "notes": (list,),
}


# Beyond these a figure is a typo or a corrupt file, not a machine: a petabyte of memory,
# 100 TB/s of bandwidth (an HBM3e GPU has about 8), a million cores.
_MAX_BYTES = 10**15
_MAX_BANDWIDTH = 100e12
_MAX_CORES = 1_000_000
MAX_GPUS = 256  # the largest single hosts carry 8–16 GPUs (64 MIG slices at most); more is not one machine


def _check_plausible(obj, where: str, part: str, whole: str) -> None:
    """One line naming the field for what the types let through but no machine reports."""
    import math

    for name in (part, whole, "memory_used_bytes", "memory_limit_bytes", "memory_reserved_bytes"):
        value = getattr(obj, name, None)
        if value is not None and value > _MAX_BYTES:
            raise UsageError(
                f"{where}: field '{name}' is {value:,} bytes, beyond any machine (a petabyte is the limit)"
            )
    if getattr(obj, part) > getattr(obj, whole):
        raise UsageError(
            f"{where}: field '{part}' ({getattr(obj, part):,}) exceeds '{whole}' "
            f"({getattr(obj, whole):,}): free memory cannot exceed the total"
        )
    for name in ("memory_bandwidth_bytes_per_s",):
        value = getattr(obj, name)
        if value is not None and not (math.isfinite(value) and 0 < value <= _MAX_BANDWIDTH):
            raise UsageError(
                f"{where}: field '{name}' is {value!r}: give bytes/s between 1 and {_MAX_BANDWIDTH:.0e}, "
                "or null when unknown"
            )
    cores = getattr(obj, "cpu_cores", None)
    if cores is not None and not 1 <= cores <= _MAX_CORES:
        raise UsageError(f"{where}: field 'cpu_cores' is {cores}: give the CPU cores, 1 or more")


def snapshot_from_dict(data: Mapping, origin: str = "snapshot") -> HardwareSnapshot:
    """Validate a parsed snapshot; raise UsageError naming the file and field on bad input."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{origin}: not a hardware snapshot (expected a JSON object with schema {SCHEMA})")
    schema = data.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise UsageError(f"{origin}: schema '{schema}' is not supported (expected {SCHEMA})")
    for key in ("taken_at", "host"):
        if key not in data:
            raise UsageError(
                f"{origin}: missing field '{key}' (schema {SCHEMA}; see `fitagent probe --json` for the format)"
            )
    host = _build(HostSnapshot, data["host"], f"{origin}: host", _HOST_REQUIRED, _HOST_SPEC)
    gpus_raw = data.get("gpus", [])
    if not isinstance(gpus_raw, list):
        raise UsageError(f"{origin}: field 'gpus' must be a list")
    if len(gpus_raw) > MAX_GPUS:
        raise UsageError(
            f"{origin}: {len(gpus_raw):,} GPUs; a host has at most {MAX_GPUS} (split a cluster into one "
            "snapshot per host)"
        )
    gpus = tuple(
        _build(GpuSnapshot, g, f"{origin}: gpus[{i}]", _GPU_REQUIRED, _GPU_SPEC) for i, g in enumerate(gpus_raw)
    )
    problems = []
    for i, p in enumerate(data.get("problems", []) or []):
        if not isinstance(p, Mapping) or not isinstance(p.get("message"), str):
            raise UsageError(f"{origin}: problems[{i}] must be an object with 'source' and 'message'")
        problems.append(Problem(source=str(p.get("source", "")), message=p["message"]))
    if not isinstance(data["taken_at"], str):
        raise UsageError(f"{origin}: field 'taken_at' must be an ISO 8601 string")
    _check_plausible(host, f"{origin}: host", "memory_available_bytes", "memory_total_bytes")
    for i, gpu in enumerate(gpus):
        _check_plausible(gpu, f"{origin}: gpus[{i}]", "memory_free_bytes", "memory_total_bytes")
    return HardwareSnapshot(taken_at=data["taken_at"], host=host, gpus=gpus, problems=tuple(problems))
