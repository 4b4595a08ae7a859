"""The NVIDIA backend against the fake NVML: every field of every fake board, and every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
import pytest
from fake_pynvml import (
    FakeNvml,
    a100_80gb_mig,
    gb10,
    h100_sxm,
    h200,
    lost_gpu,
    rtx_3090,
    rtx_4090,
)
from fake_pynvml.catalog import mini_gpu_table

from fitagent.agent.hardware import take_snapshot
from fitagent.agent.probe import probe_document
from fitagent.estimator.hardware import snapshot_from_dict, snapshot_to_dict

MiB = 1 << 20
GiB = 1 << 30


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


@pytest.fixture
def workstation(tmp_path) -> Path:
    """A bare Linux host: 64 GiB, a 16-core Ryzen, no cgroup limit, not in a container."""
    cpuinfo = "".join(
        f"processor\t: {i}\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\nphysical id\t: 0\n"
        f"core id\t\t: {i % 16}\n\n"
        for i in range(32)
    )
    return write_tree(
        tmp_path,
        {
            "proc/meminfo": f"MemTotal:       {64 * GiB // 1024} kB\nMemFree:        1 kB\nMemAvailable:   {52 * GiB // 1024} kB\n",
            "proc/cpuinfo": cpuinfo,
            "proc/sys/kernel/hostname": "ws-test\n",
            "proc/sys/kernel/osrelease": "6.8.0-45-generic\n",
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
        },
    )


def probe(nvml, root: Path, environ: dict | None = None) -> dict:
    return probe_document(
        fs_root=str(root), environ=environ or {}, nvml_module=nvml, gpu_table=mini_gpu_table(), system="Linux"
    )


def test_rtx_4090_every_field(workstation):
    doc = probe(FakeNvml([rtx_4090()]), workstation)
    assert doc["problems"] == []
    gpu = doc["gpus"][0]
    notes = gpu.pop("notes")
    assert gpu == {
        "index": 0,
        "vendor": "nvidia",
        "name": "NVIDIA GeForce RTX 4090",
        "uuid": "GPU-5b1c7d2e-0000-4000-8000-000000004090",
        "pci_id": "10de:2684",
        "memory_total_bytes": 25757220864,
        "memory_free_bytes": 24747442176,
        "memory_used_bytes": 638582784,
        "memory_bandwidth_bytes_per_s": 1008096000000,
        "bandwidth_source": "nvml",
        "compute_capability": "8.9",
        "driver_version": "550.54.15",
        "mig": None,
        "memory_reserved_bytes": 371195904,
        "memory_source": "nvml v2",
        "cuda_driver_version": "12.4",
        "pci_bus_id": "00000000:01:00.0",
        "pcie": {
            "max_generation": 3,
            "max_width": 16,
            "current_generation": 1,
            "current_width": 16,
            "gpu_max_generation": 4,
        },
        "processes": [
            {"pid": 40112, "name": "python3", "used_bytes": 404750336},
            {"pid": 1873, "name": "Xorg", "used_bytes": 222298112},
        ],
        "cuda_ordinal": 0,
    }
    assert notes == ["bandwidth 1,008 GB/s = 2 × 10501 MHz × 384 bit / 8 (NVML); gpus.yaml agrees (1,008 GB/s)"]


def test_h100_sxm_bandwidth_is_3_35_tb_per_s(workstation):
    gpu = probe(FakeNvml([h100_sxm()]), workstation)["gpus"][0]
    assert gpu["memory_bandwidth_bytes_per_s"] == 3352320000000
    assert abs(gpu["memory_bandwidth_bytes_per_s"] - 3.35e12) <= 0.02 * 3.35e12
    assert (gpu["name"], gpu["pci_id"], gpu["compute_capability"]) == ("NVIDIA H100 80GB HBM3", "10de:2330", "9.0")
    assert (
        gpu["memory_total_bytes"],
        gpu["memory_reserved_bytes"],
        gpu["memory_used_bytes"],
        gpu["memory_free_bytes"],
    ) == (81559 * MiB, 511 * MiB, 4 * MiB, 81559 * MiB - 511 * MiB - 4 * MiB)
    assert gpu["pcie"]["max_generation"] == 5
    assert "processes" not in gpu  # nothing holds memory: the extra is left out
    assert gpu["mig"] is None  # MIG-capable, MIG off


def test_two_3090s_each_reported_with_who_holds_the_memory(workstation):
    doc = probe(FakeNvml([rtx_3090(bus=1, serial=0), rtx_3090(bus=2, serial=1, busy=True)]), workstation)
    idle, busy = doc["gpus"]
    assert (idle["memory_free_bytes"], idle["memory_used_bytes"]) == (24576 * MiB - 256 * MiB - 6 * MiB, 6 * MiB)
    assert (busy["memory_free_bytes"], busy["memory_used_bytes"]) == (
        24576 * MiB - 256 * MiB - 20486 * MiB,
        20486 * MiB,
    )
    assert busy["processes"] == [{"pid": 5151, "name": "llama-server", "used_bytes": 20480 * MiB}]
    assert "processes" not in idle
    assert [g["memory_bandwidth_bytes_per_s"] for g in doc["gpus"]] == [936096000000, 936096000000]
    assert [g["cuda_ordinal"] for g in doc["gpus"]] == [0, 1]


def test_driver_without_memory_v2_falls_back_to_v1_and_says_reserved_is_counted_as_used(workstation):
    gpu = probe(FakeNvml([rtx_4090()], memory_v2=False, driver_version="470.256.02"), workstation)["gpus"][0]
    assert gpu["memory_source"] == "nvml v1"
    assert "memory_reserved_bytes" not in gpu
    assert gpu["memory_used_bytes"] == (609 + 354) * MiB
    assert gpu["memory_free_bytes"] == 24747442176  # free is the same through both calls
    assert any("reserved memory is counted as used" in n for n in gpu["notes"])


def test_mig_instances_are_the_devices_and_the_parent_is_marked(workstation):
    doc = probe(FakeNvml([a100_80gb_mig()]), workstation)
    parent, first, second = doc["gpus"]
    assert parent["mig"] == {"role": "parent", "mode": "enabled", "instances": 2}
    # An unprivileged caller gets NoPermission for the parent's memory: it is the instances' sum.
    assert parent["memory_total_bytes"] == 2 * 40192 * MiB
    assert parent["memory_bandwidth_bytes_per_s"] == 2039040000000
    assert first["name"] == "NVIDIA A100-SXM4-80GB MIG 3g.40gb"
    assert first["uuid"] == "MIG-7e1d6a3c-1111-5b2e-9f00-00000000a101"
    assert first["mig"] == {
        "role": "instance",
        "parent_uuid": "GPU-a1000000-0000-4000-8000-0000000a1000",
        "parent_name": "NVIDIA A100-SXM4-80GB",
        "profile": "3g.40gb",
        "gpu_instance_id": 1,
        "compute_instance_id": 0,
        "mig_device_index": 0,
    }
    assert (first["memory_total_bytes"], first["memory_used_bytes"], first["memory_free_bytes"]) == (
        40192 * MiB,
        20013 * MiB,
        (40192 - 20013) * MiB,
    )
    assert first["processes"] == [{"pid": 7001, "name": "python3", "used_bytes": 19968 * MiB}]
    assert second["mig"]["gpu_instance_id"] == 2 and second["memory_free_bytes"] == (40192 - 13) * MiB
    # 40192 of 81920 MiB: the instance's share of the parent's 2039 GB/s
    assert first["bandwidth_source"] == "mig-share"
    assert first["memory_bandwidth_bytes_per_s"] == 2039040000000 * 40192 // 81920

    snapshot = take_snapshot(
        fs_root=str(workstation),
        environ={},
        nvml_module=FakeNvml([a100_80gb_mig()]),
        gpu_table=mini_gpu_table(),
        system="Linux",
    )
    assert [g.uuid for g in snapshot.usable_gpus] == [first["uuid"], second["uuid"]]


def test_mig_parent_aggregate_when_the_caller_may_read_it(workstation):
    parent = probe(FakeNvml([a100_80gb_mig()], mig_parent_memory="aggregate"), workstation)["gpus"][0]
    assert (parent["memory_total_bytes"], parent["memory_used_bytes"]) == (81920 * MiB, 87 * MiB)


def test_mig_budget_keeps_instances_apart(workstation, catalog):
    from fitagent.estimator.budget import budget_from_snapshot

    snapshot = take_snapshot(
        fs_root=str(workstation),
        environ={},
        nvml_module=FakeNvml([a100_80gb_mig()]),
        gpu_table=mini_gpu_table(),
        system="Linux",
    )
    budget = budget_from_snapshot(snapshot, catalog)
    assert [d.free_bytes for d in budget.devices] == [(40192 - 20013) * MiB, (40192 - 13) * MiB]


def test_lost_gpu_is_data_and_the_rest_is_reported(workstation):
    doc = probe(FakeNvml([rtx_3090(bus=1), lost_gpu(bus=2)]), workstation)
    healthy, lost = doc["gpus"]
    assert healthy["memory_free_bytes"] == (24576 - 256 - 6) * MiB and healthy["cuda_ordinal"] == 0
    assert lost["error"] == "GPU is lost (fell off the bus)"
    assert (lost["name"], lost["memory_total_bytes"], lost["bandwidth_source"]) == ("NVIDIA GPU 1", 0, "none")
    assert "cuda_ordinal" not in lost
    assert doc["problems"] == [
        {
            "source": "nvml",
            "message": "GPU 1: GPU is lost (fell off the bus) — check `sudo dmesg | grep -i xid`, then reset it"
            " (`nvidia-smi -r`) or reboot; the other GPUs are still reported",
        }
    ]
    assert doc["host"]["memory_total_bytes"] == 64 * GiB
    snapshot = snapshot_from_dict(doc)
    assert [g.index for g in snapshot.usable_gpus] == [0]


def test_unified_memory_gpu_reports_the_hosts_ram(workstation):
    doc = probe(FakeNvml([gb10()], driver_version="580.95.05", cuda_version=13000), workstation)
    gpu = doc["gpus"][0]
    assert (gpu["memory_total_bytes"], gpu["memory_free_bytes"]) == (64 * GiB, 52 * GiB)
    assert gpu["unified_memory"] is True
    assert (gpu["memory_bandwidth_bytes_per_s"], gpu["bandwidth_source"]) == (273000000000, "table")
    assert gpu["cuda_driver_version"] == "13.0"
    # CPU and GPU share that memory, so the host's bandwidth is the GB10's.
    assert (doc["host"]["memory_bandwidth_bytes_per_s"], doc["host"]["memory_bandwidth_source"]) == (
        273000000000,
        "table",
    )


INIT_FAILURES = [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this host"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "kernel module is not loaded — run `sudo modprobe nvidia`"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to open the NVIDIA devices"),
    (
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        "driver was upgraded but the old kernel module is still loaded — reboot",
    ),
    (pynvml.NVML_ERROR_UNKNOWN, "unknown error — run `nvidia-smi`"),
    (pynvml.NVML_ERROR_NOT_SUPPORTED, "NVML failed to start (Not Supported, code 3)"),
]


@pytest.mark.parametrize("code, expected", INIT_FAILURES)
def test_every_init_failure_is_one_problem_line_and_host_facts_stay(workstation, code, expected):
    doc = probe(FakeNvml([rtx_4090()], init_error=code), workstation)
    assert doc["gpus"] == []
    assert len(doc["problems"]) == 1 and doc["problems"][0]["source"] == "nvml"
    assert expected in doc["problems"][0]["message"]
    assert doc["host"]["cpu_model"] == "AMD Ryzen 9 7950X 16-Core Processor"


def test_process_list_without_permission_is_a_note(workstation):
    gpu = probe(FakeNvml([rtx_4090()], processes_error=pynvml.NVML_ERROR_NO_PERMISSION), workstation)["gpus"][0]
    assert "processes" not in gpu
    assert "process list not readable without more privileges" in gpu["notes"]
    assert gpu["memory_free_bytes"] == 24747442176


def test_process_names_are_not_guessed_inside_a_container(workstation):
    (workstation / ".dockerenv").write_text("")
    (workstation / "proc/self/status").write_text("Name:\tpython3\nNSpid:\t7\t40112\n")  # own PID namespace
    gpu = probe(FakeNvml([rtx_4090()]), workstation)["gpus"][0]
    assert [p["name"] for p in gpu["processes"]] == [None, None]
    assert (
        "process names not resolved: this container has its own PID namespace and NVML reports host PIDs"
        in gpu["notes"]
    )


def test_process_names_are_read_where_the_pid_namespace_is_the_hosts(workstation):
    # Seen on the H200 check machine (tests/fixtures/device/h200): a container marker, but the
    # root PID namespace, so NVML's PIDs are this system's own and their names can be read.
    (workstation / ".dockerenv").write_text("")
    (workstation / "proc/self/status").write_text("Name:\tpython3\nNSpid:\t445\n")
    gpu = probe(FakeNvml([rtx_4090()]), workstation)["gpus"][0]
    assert [p["name"] for p in gpu["processes"]] == ["python3", "Xorg"]
    assert not any("not resolved" in n for n in gpu["notes"])


def test_a_binding_that_is_not_nvidia_ml_py_is_refused_with_the_fix(workstation):
    class OldBinding:  # like py3nvml: no nvmlMemory_v2
        NVMLError = pynvml.NVMLError

        def nvmlInit(self):
            raise AssertionError("must not be initialised")

        def nvmlDeviceGetMemoryInfo(self, handle):
            raise AssertionError("must not be called")

    doc = probe(OldBinding(), workstation)
    message = doc["problems"][0]["message"]
    assert "is not NVIDIA's nvidia-ml-py (it lacks nvmlMemory_v2" in message
    assert "pip install nvidia-ml-py" in message


def test_a_bug_in_a_backend_is_one_line_and_the_rest_is_reported(workstation):
    class BrokenDriver(FakeNvml):
        def nvmlDeviceGetCount(self):
            raise TypeError("garbage from the driver")

    doc = probe(BrokenDriver([rtx_4090()]), workstation)
    assert doc["problems"] == [
        {
            "source": "nvml",
            "message": "internal error (TypeError: garbage from the driver) — please"
            " report it with `fitagent probe --json`; the other backends still ran",
        }
    ]
    assert doc["host"]["memory_total_bytes"] == 64 * GiB


def test_the_fake_enforces_nvml_init_like_the_driver():
    nvml = FakeNvml([rtx_4090()])
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetMigMode(handle)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(1)
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2), pynvml.c_nvmlMemory_v2_t)
    nvml.nvmlShutdown()
    assert nvml.initialised == 0


def test_probe_shuts_nvml_down_even_when_a_gpu_is_lost(workstation):
    nvml = FakeNvml([lost_gpu(bus=1)])
    probe(nvml, workstation)
    assert nvml.initialised == 0


MACHINES = {
    "rtx4090": [rtx_4090()],
    "2x3090": [rtx_3090(bus=1, serial=0), rtx_3090(bus=2, serial=1, busy=True)],
    "a100-mig": [a100_80gb_mig()],
    "h100": [h100_sxm()],
    "mixed-with-lost": [rtx_4090(), lost_gpu(bus=2), h100_sxm()],
    "gb10": [gb10()],
}


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_json_path_and_dataclass_path_print_the_same_bytes(workstation, name):
    doc = probe(FakeNvml(MACHINES[name]), workstation)
    assert json.dumps(snapshot_to_dict(snapshot_from_dict(doc))) == json.dumps(doc)


def test_the_fake_h200_answers_as_the_real_one_did(workstation):
    """The probe over the fake NVML, set to what a real H200 answered, prints what the probe printed
    on that machine (tests/fixtures/device/h200/probe-idle.json, 2026-12-04)."""
    from fitagent.agent.probe.tables import load_gpu_table

    recorded = json.loads((Path(__file__).parent / "fixtures/device/h200/probe-idle.json").read_text())["gpus"][0]
    nvml = FakeNvml([h200()], driver_version="580.159.04", cuda_version=13000)
    gpu = probe_document(
        fs_root=str(workstation), environ={}, nvml_module=nvml, gpu_table=load_gpu_table(), system="Linux"
    )["gpus"][0]
    assert gpu == recorded
