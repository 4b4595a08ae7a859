"""AMD and Intel GPUs from recorded-shape sysfs trees under tests/fixtures/sysfs/."""

from __future__ import annotations

from pathlib import Path

from fake_pynvml.catalog import mini_gpu_table

from fitagent.agent.probe import probe_document

SYSFS = Path(__file__).resolve().parent / "fixtures" / "sysfs"
GiB = 1 << 30
MiB = 1 << 20


def probe(tree: str, environ: dict | None = None) -> dict:
    # nvml_module=None with a fixture root: the loader check finds no libnvidia-ml there.
    return probe_document(fs_root=str(SYSFS / tree), environ=environ or {}, gpu_table=mini_gpu_table(), system="Linux")


def test_rx_7900_xtx_memory_and_table_bandwidth():
    doc = probe("amd-rx7900xtx")
    assert len(doc["gpus"]) == 1  # card1-DP-1 is a connector, renderD128 a render node
    gpu = doc["gpus"][0]
    notes = gpu.pop("notes")
    assert gpu == {
        "index": 0,
        "vendor": "amd",
        "name": "AMD Radeon RX 7900 XTX",
        "uuid": "GPU-5e2c81f0a3b94d17",
        "pci_id": "1002:744c",
        "memory_total_bytes": 24560 * MiB,
        "memory_free_bytes": (24560 - 1337) * MiB,
        "memory_used_bytes": 1337 * MiB,
        "memory_bandwidth_bytes_per_s": 960000000000,
        "bandwidth_source": "table",
        "compute_capability": None,
        "driver_version": "6.10.5",
        "mig": None,
        "memory_source": "sysfs mem_info_vram",
        "pci_bus_id": "0000:03:00.0",
    }
    assert notes == ["bandwidth 960 GB/s from gpus.yaml (AMD Radeon RX 7900 XTX)"]
    # An AMD GPU was found, so the missing NVIDIA driver is not a problem worth a line.
    assert doc["problems"] == []


def test_nvidia_and_amd_in_one_box():
    from fake_pynvml import FakeNvml, rtx_4090

    doc = probe_document(
        fs_root=str(SYSFS / "amd-rx7900xtx"),
        environ={},
        nvml_module=FakeNvml([rtx_4090()]),
        gpu_table=mini_gpu_table(),
        system="Linux",
    )
    assert [(g["vendor"], g["index"], g["name"]) for g in doc["gpus"]] == [
        ("nvidia", 0, "NVIDIA GeForce RTX 4090"),
        ("amd", 0, "AMD Radeon RX 7900 XTX"),
    ]
    assert doc["problems"] == []


def test_strix_halo_counts_carve_out_plus_gtt_as_unified_memory():
    doc = probe("amd-strix-halo")
    gpu = doc["gpus"][0]
    assert gpu["name"] == "AMD Radeon 8060S Graphics" and gpu["unified_memory"] is True
    assert gpu["memory_total_bytes"] == 4 * GiB + 103079215104
    # carve-out free + GTT free (96 GiB − 2 GiB), the latter capped by the host's 96 GiB available
    assert gpu["memory_free_bytes"] == (4 * GiB - 312 * MiB) + min(103079215104 - 2 * GiB, 100663296 * 1024)
    assert gpu["memory_source"] == "sysfs VRAM carve-out + GTT (unified memory)"
    assert any(n.startswith("APU: 4.0 GiB BIOS carve-out + 96.0 GiB GTT") for n in gpu["notes"])
    host = doc["host"]
    assert (host["cpu_model"], host["cpu_cores"], host["cpu_threads"]) == (
        "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S",
        16,
        32,
    )
    assert (host["memory_bandwidth_bytes_per_s"], host["memory_bandwidth_source"]) == (256000000000, "table")


def test_legacy_radeon_driver_is_a_problem_with_the_fix():
    doc = probe("amd-radeon-legacy")
    assert doc["gpus"] == []
    messages = [p["message"] for p in doc["problems"] if p["source"] == "amd"]
    assert messages == [
        "card0 (1002:6779, driver radeon): no amdgpu memory counters in /sys/class/drm/card0/device"
        " — use the amdgpu driver (radeon reports no memory) and make sysfs readable"
    ]
    assert any(p["source"] == "nvml" for p in doc["problems"])  # nothing found: the NVIDIA line explains too


def test_rocr_visible_devices_hides_amd_gpus():
    doc = probe("amd-rx7900xtx", {"ROCR_VISIBLE_DEVICES": "1"})
    assert doc["gpus"][0]["visible"] is False
    assert doc["problems"] == [
        {"source": "visibility", "message": "ROCR_VISIBLE_DEVICES='1' hides all 1 AMD GPU(s) — unset it to use them"}
    ]
    assert probe("amd-rx7900xtx", {"ROCR_VISIBLE_DEVICES": "GPU-5e2c81f0a3b94d17"})["gpus"][0].get("visible", True)


def test_intel_arc_on_i915_and_xe_with_assumed_free_memory():
    doc = probe("intel-arc")
    a770, b580 = doc["gpus"]  # card0 is the iGPU: no local memory, left to the CPU path
    assert (a770["name"], a770["pci_id"], a770["memory_total_bytes"]) == ("Intel Arc A770 16GB", "8086:56a0", 16 * GiB)
    assert a770["memory_free_bytes"] == 16 * GiB - 512 * MiB
    assert a770["memory_source"] == "sysfs i915 lmem_total_bytes; free assumed = total − 512 MiB"
    assert (b580["name"], b580["memory_total_bytes"], b580["memory_bandwidth_bytes_per_s"]) == (
        "Intel Arc B580",
        12 * GiB,
        456000000000,
    )
    assert b580["memory_source"].startswith("sysfs xe tile*/physical_vram_size_bytes")
    assert [g["index"] for g in doc["gpus"]] == [0, 1]
