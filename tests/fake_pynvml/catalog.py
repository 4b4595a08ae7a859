"""A small GPU table for probe tests, so they do not move when data/gpus.yaml grows.

Built through the real parser (estimator.catalog.parse_gpus); figures are the vendors' spec
sheets, as in gpus.yaml.
"""

from __future__ import annotations

from fitagent.agent.probe.tables import GpuTable
from fitagent.catalog.parse import parse_gpus

GiB = 1 << 30

_ENTRIES = [
    ("NVIDIA GeForce RTX 4090", "nvidia", "consumer", 24, 1008e9, ["10de:2684"], False),
    ("NVIDIA GeForce RTX 3090", "nvidia", "consumer", 24, 936.2e9, ["10de:2204"], False),
    ("NVIDIA A100 SXM4 80 GB", "nvidia", "datacenter", 80, 2039e9, ["10de:20b2"], False),
    ("NVIDIA H100 SXM5 80 GB", "nvidia", "datacenter", 80, 3350e9, ["10de:2330"], False),
    ("NVIDIA GB10", "nvidia", "apu", 128, 273e9, ["10de:2e12"], True),
    ("AMD Radeon RX 7900 XTX", "amd", "consumer", 24, 960e9, ["1002:744c"], False),
    ("AMD Radeon 8060S Graphics", "amd", "apu", 128, 256e9, ["1002:1586"], True),
    ("Intel Arc A770 16GB", "intel", "consumer", 16, 560e9, ["8086:56a0"], False),
    ("Intel Arc B580", "intel", "consumer", 12, 456e9, ["8086:e20b"], False),
    ("Apple M2", "apple", "apple", 24, 100e9, [], True),
    ("Apple M3 Max (30-core GPU)", "apple", "apple", 96, 300e9, [], True),
    ("Apple M3 Max (40-core GPU)", "apple", "apple", 128, 400e9, [], True),
]


def mini_gpu_table() -> GpuTable:
    doc = {
        "gpus": [
            {
                "name": name,
                "vendor": vendor,
                "kind": kind,
                "memory_bytes": gib * GiB,
                "memory_bandwidth_bytes_per_s": int(bandwidth),
                "unified_memory": unified,
                "pci_ids": pci_ids,
                "sources": ["vendor spec sheet (see data/gpus.yaml)"],
            }
            for name, vendor, kind, gib, bandwidth, pci_ids, unified in _ENTRIES
        ]
    }
    return GpuTable(parse_gpus(doc, origin="test table"))
