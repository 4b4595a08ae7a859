"""The snapshot in its JSON form (schema fitagent.hardware/1), built without dataclasses.

`fitagent probe --json` prints this document directly: importing ``dataclasses`` (and
the ``inspect`` and ``typing`` it drags in) costs more start-up time than the whole probe
on a small machine. ``agent.hardware.take_snapshot`` turns the same document into the frozen
``HardwareSnapshot``; a test checks that both paths give byte-identical JSON, so the key
orders below must follow the field order in ``estimator/hardware.py``.
"""

from __future__ import annotations

SCHEMA = "fitagent.hardware/1"

HOST_REQUIRED = (
    "hostname",
    "os",
    "cpu_model",
    "cpu_cores",
    "memory_total_bytes",
    "memory_available_bytes",
    "memory_bandwidth_bytes_per_s",
    "memory_bandwidth_source",
)
HOST_OPTIONAL = (
    "cpu_threads",
    "cpu_arch",
    "cpu_class",
    "memory_limit_bytes",
    "memory_limit_source",
    "container",
    "wsl",
    "notes",
)

GPU_REQUIRED = (
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
)
GPU_OPTIONAL = (
    "memory_reserved_bytes",
    "memory_source",
    "unified_memory",
    "cuda_driver_version",
    "pci_bus_id",
    "pcie",
    "processes",
    "cuda_ordinal",
    "visible",
    "error",
    "notes",
)

_EMPTY: tuple[object, ...] = (None, (), [], {})


def _ordered(values: dict, required: tuple, optional: tuple) -> dict:
    out = {key: values.get(key) for key in required}
    for key in optional:
        value = values.get(key)
        # The snapshot writes an extra only when it says something; `visible` defaults to true.
        if value in _EMPTY or (key == "visible" and value is True):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def host_entry(**values) -> dict:
    return _ordered(values, HOST_REQUIRED, HOST_OPTIONAL)


def gpu_entry(**values) -> dict:
    return _ordered(values, GPU_REQUIRED, GPU_OPTIONAL)


def problem(source: str, message: str) -> dict:
    return {"source": source, "message": message}


def document(taken_at: str, host: dict, gpus: list, problems: list) -> dict:
    return {"schema": SCHEMA, "taken_at": taken_at, "host": host, "gpus": gpus, "problems": problems}


class BackendResult:
    """What every GPU backend returns: GPU facts, and why it found nothing or less than all.

    ``absent`` holds problems that only explain an empty machine ("no NVIDIA driver"): they
    are reported when no backend found any GPU, and dropped as noise on, say, an AMD box.
    """

    __slots__ = ("gpus", "problems", "absent")

    def __init__(self, gpus: list | None = None, problems: list | None = None, absent: list | None = None):
        self.gpus = gpus or []
        self.problems = problems or []
        self.absent = absent or []
