"""Apple Silicon: one unified memory, of which the GPU may wire a share.

Metal caps a process's GPU working set at ``recommendedMaxWorkingSetSize`` (about 2/3 to
3/4 of RAM by default; llama.cpp PR #2011, llmfit PR #754); ``sysctl iogpu.wired_limit_mb``
lets an admin raise it and Metal follows. Reading Metal's figure needs pyobjc, so we use the
sysctl when set and the default share (data/host_memory.json) otherwise, and say which.
"""

from __future__ import annotations

from . import tables
from .document import BackendResult, problem
from .host import darwin_sysctl, sysctl_int

MiB = 1 << 20


def probe(ctx, host: dict) -> BackendResult:
    if ctx.system != "Darwin":
        return BackendResult()
    values = darwin_sysctl(ctx)
    chip = values.get("machdep.cpu.brand_string") or ""
    if not chip.startswith("Apple"):
        return BackendResult()  # an Intel Mac: no unified-memory GPU to place models on
    ram = sysctl_int(values.get("hw.memsize")) or host["memory_total_bytes"]
    try:
        apple = tables.host_memory_table()["apple"]
    except (OSError, ValueError, KeyError) as exc:
        return BackendResult(
            problems=[problem("apple", f"data/host_memory.json unreadable ({exc}); reinstall fitagent")]
        )
    notes = []
    wired_mb = sysctl_int(values.get("iogpu.wired_limit_mb")) or 0
    if wired_mb > 0:
        cap, source = min(wired_mb * MiB, ram), "sysctl iogpu.wired_limit_mb"
    else:
        share = next(row["share"] for row in apple["gpu_share_of_ram"] if ram <= row.get("up_to_bytes", ram))
        cap, source = int(ram * share), f"default GPU share of RAM ({share:.0%}, inferred)"
        notes.append("raise the GPU's share with `sudo sysctl iogpu.wired_limit_mb=<MiB>`")
    free = min(cap, host["memory_available_bytes"])
    spec = _chip_spec(ctx, chip, values, apple, notes)
    if spec is not None:
        bw, bw_source = spec.memory_bandwidth_bytes_per_s, "table"
        notes.insert(0, f"bandwidth {bw / 1e9:,.0f} GB/s from gpus.yaml ({spec.name})")
    else:
        bw, bw_source = None, "none"
        notes.insert(0, f"bandwidth unknown: {chip} is not in gpus.yaml")
    notes.append(f"unified memory: usable = min(GPU cap {cap / 1e9:.1f} GB, RAM available)")
    return BackendResult(
        gpus=[
            {
                "index": 0,
                "vendor": "apple",
                "name": spec.name if spec else chip,
                "uuid": None,
                "pci_id": None,
                "memory_total_bytes": cap,
                "memory_free_bytes": free,
                "memory_used_bytes": cap - free,
                "memory_source": source,
                "unified_memory": True,
                "memory_bandwidth_bytes_per_s": bw,
                "bandwidth_source": bw_source,
                "compute_capability": None,
                "driver_version": None,
                "mig": None,
                "notes": notes,
            }
        ]
    )


def _chip_spec(ctx, chip: str, values: dict, apple: dict, notes: list):
    """The gpus.yaml entry; chips sold with two GPU sizes are told apart by performance cores."""
    variants = [v for v in apple["variants"] if v["chip"] == chip]
    if not variants:
        return ctx.lookup_gpu_name(chip)
    performance_cores = sysctl_int(values.get("hw.perflevel0.physicalcpu")) or 0
    chosen = next((v for v in variants if v["performance_cores"] == performance_cores), None)
    if chosen is None:
        chosen = variants[0]  # listed slowest first: the cautious guess
        notes.append(
            f"{chip} GPU variant unknown ({performance_cores or '?'} performance cores): assumed {chosen['catalog_name']}"
        )
    return ctx.lookup_gpu_name(chosen["catalog_name"])
