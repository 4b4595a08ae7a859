"""Apple Silicon through sysctl and vm_stat, handed in as a command runner."""

from __future__ import annotations

from fake_pynvml.catalog import mini_gpu_table

from fitagent.agent.probe import probe_document

GiB = 1 << 30
MiB = 1 << 20

VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               500000.
Pages active:                             800000.
Pages inactive:                           700000.
Pages speculative:                         40000.
Pages wired down:                         300000.
"""


def mac(chip: str, memsize: int, performance_cores: int | None = None, wired_limit_mb: int | None = 0):
    lines = [
        f"hw.memsize: {memsize}",
        "hw.physicalcpu: 14",
        "hw.logicalcpu: 14",
        f"machdep.cpu.brand_string: {chip}",
        "kern.hostname: mbp",
        "kern.osrelease: 24.1.0",
    ]
    if performance_cores is not None:
        lines.append(f"hw.perflevel0.physicalcpu: {performance_cores}")
    if wired_limit_mb is not None:  # absent before macOS 14
        lines.append(f"iogpu.wired_limit_mb: {wired_limit_mb}")
    outputs = {"sysctl": "\n".join(lines) + "\n", "vm_stat": VM_STAT}
    commands = []

    def run(argv):
        commands.append(argv[0])
        return outputs.get(argv[0])

    return run, commands


def probe(run):
    return probe_document(environ={}, run=run, gpu_table=mini_gpu_table(), system="Darwin")


AVAILABLE = (500000 + 700000) * 16384


def test_m3_max_default_share_and_variant_by_performance_cores():
    run, commands = mac("Apple M3 Max", 36 * GiB, performance_cores=10)
    doc = probe(run)
    assert commands.count("sysctl") == 1  # host and GPU share one sysctl call
    gpu = doc["gpus"][0]
    assert (gpu["vendor"], gpu["name"], gpu["unified_memory"]) == ("apple", "Apple M3 Max (30-core GPU)", True)
    assert gpu["memory_total_bytes"] == 25771092266  # 2/3 of 36 GiB: the default GPU share
    assert gpu["memory_free_bytes"] == AVAILABLE  # less than the cap: RAM available binds
    assert gpu["memory_source"] == "default GPU share of RAM (67%, inferred)"
    assert (gpu["memory_bandwidth_bytes_per_s"], gpu["bandwidth_source"]) == (300000000000, "table")
    host = doc["host"]
    assert (
        host["hostname"],
        host["os"],
        host["cpu_model"],
        host["memory_total_bytes"],
        host["memory_available_bytes"],
    ) == ("mbp", "Darwin 24.1.0", "Apple M3 Max", 36 * GiB, AVAILABLE)
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (300000000000, "table")
    assert doc["problems"] == []


def test_wired_limit_sets_the_cap():
    run, _ = mac("Apple M3 Max", 128 * GiB, performance_cores=12, wired_limit_mb=120000)
    gpu = probe(run)["gpus"][0]
    assert (gpu["name"], gpu["memory_total_bytes"], gpu["memory_source"]) == (
        "Apple M3 Max (40-core GPU)",
        120000 * MiB,
        "sysctl iogpu.wired_limit_mb",
    )
    assert gpu["memory_bandwidth_bytes_per_s"] == 400000000000


def test_large_machine_default_share_is_three_quarters_and_unknown_variant_is_the_slower_one():
    run, _ = mac("Apple M3 Max", 128 * GiB, performance_cores=None, wired_limit_mb=None)
    gpu = probe(run)["gpus"][0]
    assert gpu["memory_total_bytes"] == 103079215104
    assert gpu["name"] == "Apple M3 Max (30-core GPU)"
    assert "Apple M3 Max GPU variant unknown (? performance cores): assumed Apple M3 Max (30-core GPU)" in gpu["notes"]


def test_chip_with_one_variant_is_looked_up_by_name():
    run, _ = mac("Apple M2", 24 * GiB)
    gpu = probe(run)["gpus"][0]
    assert (gpu["name"], gpu["memory_bandwidth_bytes_per_s"], gpu["memory_total_bytes"]) == (
        "Apple M2",
        100000000000,
        17180728177,
    )


def test_intel_mac_has_no_unified_gpu():
    run, _ = mac("Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", 32 * GiB)
    doc = probe(run)
    assert doc["gpus"] == []
    assert doc["host"]["cpu_model"] == "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz"
