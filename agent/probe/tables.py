"""Lookups the probe needs from data/: GPUs by PCI id, host memory by CPU or chip.

Both are read lazily. The host table is JSON because it is read on every probe, and the
``json`` module is already loaded for output while PyYAML is not (its import alone costs
more than the whole no-GPU probe); gpus.yaml is parsed only once a GPU has been found.
"""

from __future__ import annotations


class GpuTable:
    """PCI id → catalog GpuSpec; ``problem`` says why it is empty when gpus.yaml could not be read."""

    def __init__(self, specs=(), problem: str | None = None):
        self.specs = tuple(specs)
        self._by_pci: dict[str, object] = {}
        for spec in specs:
            for pci_id in spec.pci_ids:
                self._by_pci.setdefault(pci_id.lower(), spec)
        self.problem = problem

    def gpu_by_pci_id(self, pci_id: str | None):
        return self._by_pci.get(pci_id.lower()) if pci_id else None

    def gpu_by_name(self, name: str):
        from ...catalog.errors import FitagentError
        from ...catalog.lookup import find_gpu

        try:
            return find_gpu(self.specs, name)
        except FitagentError:  # unknown or ambiguous: no table facts
            return None


def load_gpu_table() -> GpuTable:
    from ...catalog.errors import FitagentError
    from ...catalog.files import read_data_file
    from ...catalog.parse import parse_gpus

    try:
        return GpuTable(parse_gpus(read_data_file("gpus.yaml")))
    except FitagentError as exc:
        return GpuTable(problem=f"{exc}; bandwidth cannot be cross-checked against the GPU table")


_host_memory = None


def host_memory_table() -> dict:
    global _host_memory
    if _host_memory is None:
        from ...catalog.files import read_json_data

        _host_memory = read_json_data("host_memory.json")
    return _host_memory
