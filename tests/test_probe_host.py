"""Host facts: /proc parsing, cgroup caps, containers, WSL, and where RAM bandwidth comes from."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fake_pynvml.catalog import mini_gpu_table

from fitagent.agent.probe import probe_document
from fitagent.agent.probe.context import ProbeContext
from fitagent.agent.probe.dmi import parse_memory_device, peak_bandwidth

GiB = 1 << 30
MiB = 1 << 20


def write_tree(root: Path, files: dict) -> Path:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root


def cpuinfo(model: str, cores: int, threads: int) -> str:
    return "".join(
        f"processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\nphysical id\t: 0\n"
        f"core id\t\t: {i % cores}\n\n"
        for i in range(threads)
    )


def linux_host(
    root: Path,
    model="AMD Ryzen 9 7950X 16-Core Processor",
    total=64 * GiB,
    available=50 * GiB,
    extra: dict | None = None,
) -> Path:
    return write_tree(
        root,
        {
            "proc/meminfo": f"MemTotal:       {total // 1024} kB\nMemFree:        {GiB // 1024} kB\n"
            f"MemAvailable:   {available // 1024} kB\nBuffers: 0 kB\n",
            "proc/cpuinfo": cpuinfo(model, 16, 32),
            "proc/sys/kernel/hostname": "box\n",
            "proc/sys/kernel/osrelease": "6.8.0-45-generic\n",
            "etc/ld.so.cache": b"glibc-ld.so.cache1.1 libc.so.6",
            **(extra or {}),
        },
    )


def probe(root: Path, environ=None, **options) -> dict:
    return probe_document(
        fs_root=str(root), environ=environ or {}, gpu_table=mini_gpu_table(), system="Linux", **options
    )


def test_linux_host_facts(tmp_path):
    doc = probe(linux_host(tmp_path))
    host = doc["host"]
    assert {
        k: host[k]
        for k in (
            "hostname",
            "os",
            "cpu_model",
            "cpu_cores",
            "cpu_threads",
            "memory_total_bytes",
            "memory_available_bytes",
        )
    } == {
        "hostname": "box",
        "os": "Linux 6.8.0-45-generic",
        "cpu_model": "AMD Ryzen 9 7950X 16-Core Processor",
        "cpu_cores": 16,
        "cpu_threads": 32,
        "memory_total_bytes": 64 * GiB,
        "memory_available_bytes": 50 * GiB,
    }
    assert "container" not in host and "wsl" not in host and "memory_limit_bytes" not in host
    assert host["cpu_arch"] == "x86"
    assert doc["gpus"] == []
    assert doc["problems"][0]["message"].startswith("NVML library not found (libnvidia-ml.so.1)")


def test_ram_bandwidth_from_the_platform_table(tmp_path):
    host = probe(linux_host(tmp_path))["host"]
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (83200000000, "table")
    assert (
        "RAM bandwidth 83.2 GB/s peak from data/host_memory.json: AMD Ryzen 7000 desktop (Raphael),"
        " DDR5-5200 dual channel × 128 bit"
    ) in host["notes"]


def test_ram_bandwidth_unknown_says_how_to_get_it(tmp_path):
    host = probe(linux_host(tmp_path, model="AMD EPYC"))["host"]
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (None, "none")
    assert any("measure it once with `fitagent probe --measure-bandwidth` (remembered)" in n for n in host["notes"])


def test_ram_bandwidth_from_the_environment(tmp_path):
    host = probe(linux_host(tmp_path), {"FITAGENT_HOST_MEMORY_BANDWIDTH_BYTES_PER_S": "89.6e9"})["host"]
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (89600000000, "config")


def test_ram_bandwidth_measured_on_request(tmp_path):
    host = probe(linux_host(tmp_path, model="AMD EPYC"), measure_bandwidth=True)["host"]
    assert host["memory_bandwidth_source"] == "measured"
    assert 1e9 < host["memory_bandwidth_bytes_per_s"] < 5e12


def memory_device(
    locator: str,
    bank: str,
    size_mb: int = 16384,
    kind: int = 0x22,
    rated: int = 5600,
    configured: int = 5600,
    width: int = 64,
) -> bytes:
    """An SMBIOS 3.3 type-17 record laid out as DSP0134 §7.18 says."""
    record = bytearray(0x5C)
    record[0], record[1] = 17, len(record)
    struct.pack_into("<HH", record, 0x08, width, width)
    if size_mb >= 0x7FFF:  # 32 GiB and up: the word says "see the extended size" (in MiB)
        struct.pack_into("<H", record, 0x0C, 0x7FFF)
        struct.pack_into("<I", record, 0x1C, size_mb)
    else:
        struct.pack_into("<H", record, 0x0C, size_mb)
    record[0x0E], record[0x10], record[0x11], record[0x12] = 0x1A, 1, 2, kind
    struct.pack_into("<H", record, 0x15, rated)
    struct.pack_into("<H", record, 0x20, configured)
    strings = [locator, bank]
    return bytes(record) + b"\x00".join(s.encode() for s in strings) + b"\x00\x00"


def dmi_tree(records: list[bytes]) -> dict:
    return {f"sys/firmware/dmi/entries/17-{n}/raw": raw for n, raw in enumerate(records)}


def test_dmi_two_channels_of_ddr5_5600(tmp_path):
    records = [
        memory_device("DIMM_A2", "BANK 0"),
        memory_device("DIMM_B2", "BANK 1"),
        memory_device("DIMM_A1", "BANK 0", size_mb=0),
        memory_device("DIMM_B1", "BANK 1", size_mb=0),
    ]
    host = probe(linux_host(tmp_path, extra=dmi_tree(records)))["host"]
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (89600000000, "dmi")
    assert (
        "RAM bandwidth 89.6 GB/s peak from SMBIOS: DDR5 at 5600 MT/s (configured) × 128 bit:"
        " 2 channel(s) named in the module locators"
    ) in host["notes"]


def test_dmi_four_dimms_on_two_channels_and_the_configured_speed():
    devices = [
        parse_memory_device(memory_device(loc, bank, kind=0x1A, rated=3200, configured=2133))
        for loc, bank in (
            ("ChannelA-DIMM0", "BANK 0"),
            ("ChannelA-DIMM1", "BANK 1"),
            ("ChannelB-DIMM0", "BANK 2"),
            ("ChannelB-DIMM1", "BANK 3"),
        )
    ]
    assert devices[0].memory_type == "DDR4" and devices[0].rated_mts == 3200
    assert peak_bandwidth(devices) == (
        2133 * 1_000_000 * 16,
        "DDR4 at 2133 MT/s (configured) × 128 bit: 2 channel(s) named in the module locators",
    )


def test_dmi_twelve_channel_epyc():
    devices = [
        parse_memory_device(memory_device(f"DIMM {c}0", f"P0 CHANNEL {c}", size_mb=65536, rated=4800, configured=4800))
        for c in "ABCDEFGHIJKL"
    ]
    assert peak_bandwidth(devices)[0] == 460800000000


def test_dmi_locators_without_channels_count_one_per_module():
    devices = [parse_memory_device(memory_device(f"DIMM {n}", "")) for n in range(2)]
    value, how = peak_bandwidth(devices)
    assert value == 89600000000 and how.endswith("2 populated module(s), one channel each (locators name no channels)")


def test_dmi_extended_size_record():
    device = parse_memory_device(memory_device("P1-DIMMA1", "P1_Node0_Channel0_Dimm0", size_mb=256 * 1024))
    assert device.size_bytes == 256 * GiB and device.locator == "P1-DIMMA1"
    assert device.bank_locator == "P1_Node0_Channel0_Dimm0"


def test_cgroup_v2_limit_caps_available_ram(tmp_path):
    limit, current, inactive = 8 * GiB, 3 * GiB, 1 * GiB
    root = linux_host(
        tmp_path,
        extra={
            "proc/self/cgroup": "0::/system.slice/fitagent.service\n",
            "proc/self/mountinfo": "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n",
            "sys/fs/cgroup/system.slice/fitagent.service/memory.max": f"{limit}\n",
            "sys/fs/cgroup/system.slice/fitagent.service/memory.current": f"{current}\n",
            "sys/fs/cgroup/system.slice/fitagent.service/memory.stat": f"anon 1\ninactive_file {inactive}\nactive_file 5\n",
            "sys/fs/cgroup/system.slice/fitagent.service/cpu.max": "max 100000\n",
            "sys/fs/cgroup/system.slice/memory.max": "max\n",
            "sys/fs/cgroup/system.slice/cpu.max": "400000 100000\n",
        },
    )
    host = probe(root)["host"]
    assert (host["memory_limit_bytes"], host["memory_limit_source"]) == (limit, "cgroup v2")
    assert host["memory_available_bytes"] == limit - (current - inactive)
    assert host["cpu_cores"] == 4
    assert "CPU cores capped at 4 by the CFS quota in /sys/fs/cgroup/system.slice/cpu.max" in host["notes"]


def test_cgroup_v1_limit_in_a_docker_container(tmp_path):
    root = linux_host(
        tmp_path,
        extra={
            ".dockerenv": "",
            "proc/self/cgroup": "12:cpu,cpuacct:/docker/4f1c\n4:memory:/docker/4f1c\n0::/system.slice/containerd.service\n",
            "proc/self/mountinfo": (
                "40 31 0:32 /docker/4f1c /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
                "41 31 0:33 /docker/4f1c /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
            ),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{4 * GiB}\n",
            "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{GiB}\n",
            "sys/fs/cgroup/memory/memory.stat": "total_inactive_file 0\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        },
    )
    host = probe(root)["host"]
    assert (host["memory_limit_bytes"], host["memory_limit_source"], host["container"]) == (
        4 * GiB,
        "cgroup v1",
        "docker",
    )
    assert host["memory_available_bytes"] == 3 * GiB
    assert host["cpu_cores"] == 16


def test_unlimited_cgroup_v1_is_no_limit(tmp_path):
    root = linux_host(
        tmp_path,
        extra={
            "proc/self/cgroup": "4:memory:/\n",
            "proc/self/mountinfo": "40 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert "memory_limit_bytes" not in probe(root)["host"]


def test_kubernetes_and_wsl_are_recognised(tmp_path):
    root = linux_host(tmp_path, extra={"proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n"})
    host = probe(root, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})["host"]
    assert (host["container"], host["wsl"], host["os"]) == (
        "kubernetes",
        True,
        "Linux 5.15.153.1-microsoft-standard-WSL2",
    )


def test_arm_cpu_named_from_its_part_numbers(tmp_path):
    arm = "".join(
        f"processor\t: {i}\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU part\t: {'0xd85' if i < 10 else '0xd87'}\n\n"
        for i in range(20)
    )
    root = linux_host(tmp_path, extra={"proc/cpuinfo": arm})
    host = probe(root)["host"]
    assert (host["cpu_model"], host["cpu_cores"], host["cpu_threads"]) == ("ARM Cortex-X925 + Cortex-A725", 20, 20)
    assert host["cpu_arch"] == "arm"  # an Arm core moves less of the RAM bandwidth (calibration.host_bandwidth)
    assert "cpu_class" not in host  # Cortex-X925 cores are not an embedded board's


def test_a_raspberry_pi_is_an_embedded_host(tmp_path):
    """A Raspberry Pi 5's /proc/cpuinfo: four Cortex-A76 (implementer 0x41, part 0xd0b), no model name."""
    pi = "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
        f"fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
        f"CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        for i in range(4)
    )
    root = linux_host(
        tmp_path,
        extra={"proc/cpuinfo": pi, "sys/firmware/devicetree/base/model": "Raspberry Pi 5 Model B Rev 1.0\x00"},
    )
    host = probe(root)["host"]
    assert (host["cpu_model"], host["cpu_cores"], host["cpu_arch"]) == ("Raspberry Pi 5 Model B Rev 1.0", 4, "arm")
    assert host["cpu_class"] == "embedded"  # it drives a GPU's layers slower (calibration.embedded_host_layer_seconds)


def test_context_reads_only_under_its_root(tmp_path):
    ctx = ProbeContext(fs_root=str(tmp_path), environ={})
    write_tree(tmp_path, {"sys/x": "0x1002\n", "sys/n": "25753026560\n", "sys/bad": "max\n"})
    assert (ctx.read_text("/sys/x"), ctx.read_int("/sys/x"), ctx.read_int("/sys/n")) == ("0x1002", 0x1002, 25753026560)
    assert ctx.read_int("/sys/bad") is None and ctx.read_text("/sys/missing") is None


@pytest.mark.parametrize("cache, expected", [(b"...libnvidia-ml.so.1...", False), (b"glibc-ld.so.cache1.1", True)])
def test_loader_check_reads_ld_so_cache(tmp_path, cache, expected):
    from fitagent.agent.probe.nvml import library_absent

    write_tree(tmp_path, {"etc/ld.so.cache": cache})
    assert library_absent({}, str(tmp_path)) is expected
    write_tree(tmp_path, {"usr/lib64/libnvidia-ml.so.1": b""})
    assert library_absent({}, str(tmp_path)) is False
