"""NVIDIA GPUs through NVML: one set of facts per GPU, a lost GPU becoming data, not an exception."""

from __future__ import annotations

from . import nvml
from .document import BackendResult, problem


def probe(ctx, host: dict) -> BackendResult:
    if ctx.system == "Darwin":  # no NVIDIA driver for Apple Silicon or current macOS
        return BackendResult()
    try:
        session = nvml.open_session(ctx.nvml_module, ctx.environ, ctx.fs_root)
    except nvml.NvmlUnavailable as exc:
        if exc.driver_absent:
            return BackendResult(absent=[problem("nvml", str(exc))])
        return BackendResult(problems=[problem("nvml", str(exc))])
    # Only a machine with a working driver pays for importing the rest of the backend.
    from . import visibility

    try:
        result = _read_all(session, ctx, host)
    finally:
        session.close()
    result.problems += visibility.apply(result.gpus, ctx.environ)
    return result


def _read_all(session, ctx, host) -> BackendResult:
    lib = session.lib
    driver = _optional(session, "nvmlSystemGetDriverVersion")
    cuda = _cuda_version(_optional(session, "nvmlSystemGetCudaDriverVersion"))
    try:
        count = lib.nvmlDeviceGetCount()
    except lib.NVMLError as exc:
        return BackendResult(problems=[problem("nvml", f"cannot count the GPUs: {nvml.host_error_message(exc)}")])
    result = BackendResult()
    for index in range(count):
        base = {
            "index": index,
            "vendor": "nvidia",
            "driver_version": driver,
            "cuda_driver_version": cuda,
            "mig": None,
            "notes": [],
        }
        try:
            result.gpus += _read_device(session, ctx, host, index, base)
        except lib.NVMLError as exc:
            cause, fix = nvml.device_error(exc)
            result.gpus.append(_failed(base, cause))
            where = f" ({base['pci_bus_id']})" if base.get("pci_bus_id") else ""
            result.problems.append(problem("nvml", f"GPU {index}{where}: {cause} — {fix}"))
    if count == 0:
        result.problems.append(
            problem(
                "nvml",
                "the NVIDIA driver is loaded but reports no GPU"
                " — check `nvidia-smi`; in a container, start it with `--gpus all`",
            )
        )
    return result


def _failed(base: dict, message: str) -> dict:
    return {
        **base,
        "name": base.get("name") or f"NVIDIA GPU {base['index']}",
        "memory_total_bytes": 0,
        "memory_free_bytes": 0,
        "memory_used_bytes": 0,
        "memory_bandwidth_bytes_per_s": None,
        "bandwidth_source": "none",
        "error": message,
    }


def _read_device(session, ctx, host, index: int, facts: dict) -> list[dict]:
    """Facts for GPU `index` (and its MIG instances); NVML errors on essentials propagate."""
    from . import gpu_bandwidth, mig, processes

    lib = session.lib
    handle = lib.nvmlDeviceGetHandleByIndex(index)
    pci = lib.nvmlDeviceGetPciInfo(handle)
    facts["pci_bus_id"] = nvml.text(pci.busId)
    facts["pci_id"] = pci_id_of(pci.pciDeviceId)
    facts["name"] = nvml.text(lib.nvmlDeviceGetName(handle))
    facts["uuid"] = nvml.text(lib.nvmlDeviceGetUUID(handle))
    capability = session.call("nvmlDeviceGetCudaComputeCapability", handle)
    facts["compute_capability"] = f"{capability[0]}.{capability[1]}" if capability else None
    facts["pcie"] = _pcie(session, handle)
    spec = ctx.lookup_gpu(facts["pci_id"])

    width = session.call("nvmlDeviceGetMemoryBusWidth", handle)
    clock = session.call("nvmlDeviceGetMaxClockInfo", handle, lib.NVML_CLOCK_MEM)
    board = gpu_bandwidth.from_clock(width, clock)
    derivation = f"2 × {clock} MHz × {width} bit / 8"
    bw, bw_source, bw_note = gpu_bandwidth.choose(board, derivation, spec, facts["pci_id"])
    facts.update(memory_bandwidth_bytes_per_s=bw, bandwidth_source=bw_source)
    facts["notes"].append(bw_note)

    mig_mode = session.call("nvmlDeviceGetMigMode", handle)
    if mig_mode and mig_mode[0] == getattr(lib, "NVML_DEVICE_MIG_ENABLE", 1):
        return mig.read(session, ctx, handle, facts, host)

    _read_memory(session, handle, facts, host)
    facts["processes"] = processes.read(session, ctx, handle, facts["notes"], bool(host.get("container")))
    return [facts]


def _read_memory(session, handle, facts: dict, host: dict) -> None:
    lib = session.lib
    try:
        total, free, used, reserved, api = session.memory_info(handle)
    except lib.NVMLError as exc:
        if nvml.error_code(exc) != nvml.NOT_SUPPORTED:
            raise
        total = 0
    if not total:
        # Unified memory (GB10, Grace, Jetson): NVML has no framebuffer to report; the GPU
        # allocates from system RAM, so what a model can use is what the host has free.
        facts.update(
            memory_total_bytes=host["memory_total_bytes"],
            memory_free_bytes=host["memory_available_bytes"],
            memory_used_bytes=max(0, host["memory_total_bytes"] - host["memory_available_bytes"]),
            unified_memory=True,
            memory_source="host RAM (unified memory; NVML reports no framebuffer)",
        )
        facts["notes"].append(
            "unified memory: total and free are the host's RAM total and available"
            + (" after the cgroup limit" if host.get("memory_limit_bytes") else "")
        )
        return
    facts.update(
        memory_total_bytes=total, memory_free_bytes=free, memory_used_bytes=used, memory_reserved_bytes=reserved
    )
    if api == "v2":
        facts["memory_source"] = "nvml v2"
    else:
        facts["memory_source"] = "nvml v1"
        facts["notes"].append(
            "driver before R510 has no nvmlDeviceGetMemoryInfo_v2: reserved memory is counted as used"
        )


def _pcie(session, handle) -> dict | None:
    link = {
        "max_generation": session.call("nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "max_width": session.call("nvmlDeviceGetMaxPcieLinkWidth", handle),
        "current_generation": session.call("nvmlDeviceGetCurrPcieLinkGeneration", handle),
        "current_width": session.call("nvmlDeviceGetCurrPcieLinkWidth", handle),
        "gpu_max_generation": session.call("nvmlDeviceGetGpuMaxPcieLinkGeneration", handle),
    }
    link = {k: v for k, v in link.items() if v is not None}
    return link or None


def pci_id_of(pci_device_id: int) -> str:
    """NVML packs device id << 16 | vendor id; we write vendor:device, as lspci -n does."""
    return f"{pci_device_id & 0xFFFF:04x}:{pci_device_id >> 16 & 0xFFFF:04x}"


def _optional(session, name: str, *args):
    try:
        return nvml.text(session.call(name, *args))
    except session.lib.NVMLError:
        return None


def _cuda_version(value) -> str | None:
    return f"{value // 1000}.{value % 1000 // 10}" if isinstance(value, int) and value > 0 else None
