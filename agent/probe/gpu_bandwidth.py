"""GPU memory bandwidth: from what the board reports, checked against the GPU table.

NVML reports the memory clock as half the per-pin data rate for every memory type NVIDIA
ships (GDDR5/6/6X/7, HBM2/2e/3/3e): peak = 2 × max memory clock × bus width / 8. Checked
against spec sheets for GDDR6X (RTX 4090: 10501 MHz × 384 bit → 1008 GB/s), GDDR7
(RTX 5090 → 1792 GB/s), HBM2/2e/3 (A100 1555/2039, H100 SXM 3352 GB/s); CUDA C++ Best
Practices Guide ("multiplied by 2 due to the double data rate"). AMD clocks do not follow
one rule (ROCm/rocm-systems#5034), so AMD takes the table.
"""

from __future__ import annotations

TRANSFERS_PER_NVML_CLOCK = 2
AGREEMENT = 0.03  # HBM3e (H200) lands 2.4 % above its sheet with the ×2 rule
PLAUSIBLE_BYTES_PER_S = (10e9, 20e12)


def gb_s(value: float) -> str:
    return f"{value / 1e9:,.0f} GB/s"


def from_clock(bus_width_bits: int | None, max_memory_clock_mhz: int | None) -> int | None:
    if not bus_width_bits or not max_memory_clock_mhz:
        return None
    return TRANSFERS_PER_NVML_CLOCK * max_memory_clock_mhz * 1_000_000 * bus_width_bits // 8


def choose(measured: int | None, derivation: str, spec, pci_id: str | None) -> tuple[int | None, str, str]:
    """(bytes/s, bandwidth_source, a note saying why) from the board's figure and the table's."""
    table = getattr(spec, "memory_bandwidth_bytes_per_s", None) if spec is not None else None
    if measured is not None and PLAUSIBLE_BYTES_PER_S[0] <= measured <= PLAUSIBLE_BYTES_PER_S[1]:
        if table is None:
            return measured, "nvml", f"bandwidth {gb_s(measured)} = {derivation} (NVML); {pci_id} is not in gpus.yaml"
        if abs(measured - table) <= AGREEMENT * table:
            return (
                measured,
                "nvml",
                f"bandwidth {gb_s(measured)} = {derivation} (NVML); gpus.yaml agrees ({gb_s(table)})",
            )
        # One PCI id can carry two memory configurations (GTX 1650 GDDR5/GDDR6): the board knows best.
        return (
            measured,
            "nvml",
            (
                f"bandwidth {gb_s(measured)} = {derivation} (NVML); gpus.yaml says {gb_s(table)}"
                f" for {spec.name} — kept the board's own figure"
            ),
        )
    if table is not None:
        why = (
            f"NVML gave an implausible {gb_s(measured)}"
            if measured
            else "NVML does not report memory clock and bus width"
        )
        return table, "table", f"bandwidth {gb_s(table)} from gpus.yaml ({spec.name}): {why}"
    return None, "none", "bandwidth unknown: NVML does not report it and the PCI id is not in gpus.yaml"


def from_table(spec, pci_id: str | None, vendor_note: str = "") -> tuple[int | None, str, str]:
    if spec is not None:
        return (
            spec.memory_bandwidth_bytes_per_s,
            "table",
            f"bandwidth {gb_s(spec.memory_bandwidth_bytes_per_s)} from gpus.yaml ({spec.name}){vendor_note}",
        )
    return None, "none", f"bandwidth unknown: {pci_id} is not in gpus.yaml"
