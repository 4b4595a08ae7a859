"""MIG: a GPU split into instances, each reported as the device a workload actually gets.

Per-instance memory comes only from the MIG device handle; on the parent NVML gives the
aggregate to privileged callers only (NVML docs, quoted in nvitop's libnvml.py). A model
runs inside one instance, so the parent is marked and left out of the budget, never summed.
"""

from __future__ import annotations

import re

from . import nvml, processes

_PROFILE = re.compile(r"(\d+g\.\d+gb(?:\+\w+)?)", re.IGNORECASE)


def read(session, ctx, handle, parent: dict, host: dict) -> list[dict]:
    lib = session.lib
    try:
        total, free, used, reserved, api = session.memory_info(handle)
        parent.update(
            memory_total_bytes=total,
            memory_free_bytes=free,
            memory_used_bytes=used,
            memory_reserved_bytes=reserved,
            memory_source=f"nvml {api} (aggregate of the MIG instances)",
        )
        parent_total = total
    except lib.NVMLError as exc:
        if nvml.error_code(exc) not in (nvml.NO_PERMISSION, nvml.NOT_SUPPORTED):
            raise
        parent_total = getattr(ctx.lookup_gpu(parent["pci_id"]), "memory_bytes", None)

    instances = []
    slots = session.call("nvmlDeviceGetMaxMigDeviceCount", handle) or 0
    for slot in range(slots):
        try:
            mig_handle = lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except lib.NVMLError as exc:
            # Slots are sparse once instances have been destroyed and re-created.
            if nvml.error_code(exc) != nvml.NOT_FOUND:
                parent["notes"].append(f"MIG slot {slot}: {nvml.device_error_message(exc)}")
            continue
        instances.append(_instance(session, ctx, mig_handle, slot, parent, parent_total, host))

    parent["mig"] = {"role": "parent", "mode": "enabled", "instances": len(instances)}
    parent["notes"].append("MIG enabled: each instance is listed as its own device; the whole GPU is not placeable")
    if "memory_total_bytes" not in parent:
        parent.update(
            memory_total_bytes=sum(m["memory_total_bytes"] for m in instances),
            memory_free_bytes=sum(m["memory_free_bytes"] for m in instances),
            memory_used_bytes=sum(m["memory_used_bytes"] for m in instances),
            memory_source="sum of the MIG instances (NVML gives the parent's figures to privileged callers only)",
        )
    return [parent, *instances]


def _instance(session, ctx, mig_handle, slot: int, parent: dict, parent_total: int | None, host: dict) -> dict:
    lib = session.lib
    name = nvml.text(lib.nvmlDeviceGetName(mig_handle))
    match = _PROFILE.search(name or "")
    total, free, used, reserved, api = session.memory_info(mig_handle)
    notes: list[str] = []
    facts = {
        "index": parent["index"],
        "vendor": "nvidia",
        "name": name,
        "uuid": nvml.text(lib.nvmlDeviceGetUUID(mig_handle)),
        "pci_id": parent["pci_id"],
        "pci_bus_id": parent["pci_bus_id"],
        "memory_total_bytes": total,
        "memory_free_bytes": free,
        "memory_used_bytes": used,
        "memory_reserved_bytes": reserved,
        "memory_source": f"nvml {api} (MIG instance)",
        "compute_capability": parent["compute_capability"],
        "driver_version": parent["driver_version"],
        "cuda_driver_version": parent["cuda_driver_version"],
        "notes": notes,
        "mig": {
            "role": "instance",
            "parent_uuid": parent["uuid"],
            "parent_name": parent["name"],
            "profile": match.group(1).lower() if match else None,
            "gpu_instance_id": session.call("nvmlDeviceGetGpuInstanceId", mig_handle),
            "compute_instance_id": session.call("nvmlDeviceGetComputeInstanceId", mig_handle),
            "mig_device_index": slot,
        },
    }
    parent_bw = parent.get("memory_bandwidth_bytes_per_s")
    if parent_bw and parent_total:
        # Instances share the memory system in proportion to their memory slices (inferred:
        # the profile's memory share and its share of the memory controllers go together).
        share = min(1.0, total / parent_total)
        facts.update(memory_bandwidth_bytes_per_s=int(parent_bw * share), bandwidth_source="mig-share")
        notes.append(
            f"bandwidth = {share:.0%} of the parent's {parent_bw / 1e9:,.0f} GB/s, its share of the memory (inferred)"
        )
    else:
        facts.update(memory_bandwidth_bytes_per_s=None, bandwidth_source="none")
    facts["processes"] = processes.read(session, ctx, mig_handle, notes, bool(host.get("container")))
    return facts
