"""AMD GPUs through amdgpu's sysfs files: no library, no ROCm needed.

`mem_info_vram_total|used` are bytes (kernel Documentation/gpu/amdgpu/driver-misc.rst).
On an APU (Ryzen iGPU, Strix Halo) VRAM is only the BIOS carve-out; the GPU also maps
system RAM through GTT, so carve-out + GTT is what a model can use. AMD memory clocks do not
follow one rule, so bandwidth comes from gpus.yaml by PCI id.
"""

from __future__ import annotations

from . import drm, gpu_bandwidth
from .document import BackendResult, problem

GiB = 1 << 30
# No discrete card in the ROCm era has under 1 GiB; an unknown device that small is an iGPU.
_SMALLEST_DISCRETE_BYTES = GiB


def probe(ctx, host: dict) -> BackendResult:
    result = BackendResult()
    if ctx.system != "Linux":
        return result
    driver = ctx.read_text("/sys/module/amdgpu/version")  # DKMS (ROCm) builds only; in-tree has none
    for index, card in enumerate(drm.cards(ctx, "0x1002")):
        facts = _read_card(ctx, host, index, card, driver)
        if facts is None:
            result.problems.append(
                problem(
                    "amd",
                    f"{card.name} ({card.pci_id}, driver {card.driver or 'none'}): no amdgpu memory counters"
                    f" in {card.device_dir} — use the amdgpu driver (radeon reports no memory) and make sysfs readable",
                )
            )
            continue
        result.gpus.append(facts)
    result.problems += _apply_visibility(result.gpus, ctx.environ)
    return result


def _read_card(ctx, host: dict, index: int, card, driver: str | None) -> dict | None:
    d = card.device_dir
    vram_total = ctx.read_int(f"{d}/mem_info_vram_total")
    if vram_total is None:
        return None
    vram_used = min(ctx.read_int(f"{d}/mem_info_vram_used") or 0, vram_total)
    gtt_total = ctx.read_int(f"{d}/mem_info_gtt_total") or 0
    gtt_used = ctx.read_int(f"{d}/mem_info_gtt_used") or 0
    spec = ctx.lookup_gpu(card.pci_id)
    unique_id = ctx.read_text(f"{d}/unique_id")
    bw, bw_source, bw_note = gpu_bandwidth.from_table(spec, card.pci_id)
    facts = {
        "index": index,
        "vendor": "amd",
        "name": spec.name if spec else ctx.read_text(f"{d}/product_name") or f"AMD GPU {card.pci_id}",
        "uuid": f"GPU-{unique_id}" if unique_id else None,
        "pci_id": card.pci_id,
        "pci_bus_id": card.pci_bus_id,
        "memory_bandwidth_bytes_per_s": bw,
        "bandwidth_source": bw_source,
        "compute_capability": None,
        "driver_version": driver,
        "mig": None,
        "notes": [bw_note],
    }
    if spec is not None:
        apu = bool(spec.unified_memory or spec.kind == "apu")
    else:
        apu = vram_total < _SMALLEST_DISCRETE_BYTES
        if apu:
            facts["notes"].append(
                f"treated as an APU: {vram_total / GiB:.2f} GiB of VRAM is a carve-out, not a card (inferred)"
            )
    if not apu:
        facts.update(
            memory_total_bytes=vram_total,
            memory_free_bytes=vram_total - vram_used,
            memory_used_bytes=vram_used,
            memory_source="sysfs mem_info_vram",
        )
        return facts
    # GTT pages are host RAM: free GTT is bounded by what the host has available.
    gtt_free = min(max(0, gtt_total - gtt_used), host["memory_available_bytes"])
    total = vram_total + gtt_total
    free = (vram_total - vram_used) + gtt_free
    facts.update(
        memory_total_bytes=total,
        memory_free_bytes=free,
        memory_used_bytes=max(0, total - free),
        unified_memory=True,
        memory_source="sysfs VRAM carve-out + GTT (unified memory)",
    )
    facts["notes"].append(
        f"APU: {vram_total / GiB:.1f} GiB BIOS carve-out + {gtt_total / GiB:.1f} GiB GTT (host RAM the GPU may map;"
        " raise GTT with the ttm.pages_limit kernel parameter); free GTT capped at the host's available RAM"
    )
    return facts


def _apply_visibility(gpus: list[dict], environ) -> list[dict]:
    """ROCR_VISIBLE_DEVICES (indices or GPU-<unique id>) and HIP_VISIBLE_DEVICES (indices)."""
    problems = []
    for variable in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        value = environ.get(variable)
        if value is None:
            continue
        wanted = {t.strip().lower() for t in value.split(",") if t.strip()}
        for gpu in gpus:
            if str(gpu["index"]) in wanted or (gpu.get("uuid") or "").lower() in wanted:
                continue
            gpu["visible"] = False
            gpu["notes"].append(f"hidden by {variable}={value!r}")
        if gpus and not any(g.get("visible", True) for g in gpus):
            problems.append(
                problem("visibility", f"{variable}={value!r} hides all {len(gpus)} AMD GPU(s) — unset it to use them")
            )
    return problems
