"""CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, resolved the way CUDA and the container toolkit do."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_pynvml import FakeNvml, a100_80gb_mig, rtx_3090, rtx_4090
from fake_pynvml.catalog import mini_gpu_table

from fitagent.agent.probe import probe_document

GiB = 1 << 30
FIRST_3090 = "GPU-0c3a9f10-0000-4000-8000-000000003090"
SECOND_3090 = "GPU-0c3a9f10-0001-4000-8000-000000003090"
RTX_4090 = "GPU-5b1c7d2e-0000-4000-8000-000000004090"


@pytest.fixture
def host_root(tmp_path) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text(f"MemTotal: {64 * GiB // 1024} kB\nMemAvailable: {60 * GiB // 1024} kB\n")
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU\n")
    return tmp_path


def mixed_box():
    """NVML order (PCI bus): 3090 @01, 4090 @02, 3090 @03. FASTEST_FIRST puts the 4090 (8.9) first."""
    return FakeNvml([rtx_3090(bus=1, serial=0), rtx_4090(bus=2), rtx_3090(bus=3, serial=1)])


def probe(host_root, environ, nvml=None):
    doc = probe_document(
        fs_root=str(host_root),
        environ=environ,
        nvml_module=nvml or mixed_box(),
        gpu_table=mini_gpu_table(),
        system="Linux",
    )
    return doc


def seen(doc):
    """(uuid, visible, cuda_ordinal) per device, NVML order."""
    return [(g["uuid"], g.get("visible", True), g.get("cuda_ordinal")) for g in doc["gpus"]]


def test_unset_shows_all_in_fastest_first_order(host_root):
    doc = probe(host_root, {})
    assert seen(doc) == [(FIRST_3090, True, 1), (RTX_4090, True, 0), (SECOND_3090, True, 2)]
    assert any("FASTEST_FIRST" in n for n in doc["gpus"][0]["notes"])
    assert doc["problems"] == []


def test_pci_bus_order_makes_ordinals_follow_nvml(host_root):
    doc = probe(host_root, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert seen(doc) == [(FIRST_3090, True, 0), (RTX_4090, True, 1), (SECOND_3090, True, 2)]
    assert not any("FASTEST_FIRST" in n for g in doc["gpus"] for n in g.get("notes", []))


def test_empty_means_no_gpu_and_says_so(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": ""})
    assert [v for _, v, _ in seen(doc)] == [False, False, False]
    assert doc["problems"] == [
        {
            "source": "visibility",
            "message": "CUDA_VISIBLE_DEVICES='' hides all 3 NVIDIA GPU(s) — unset it, or list the GPUs to use,"
            " to let models run on them",
        }
    ]
    assert "hidden by CUDA_VISIBLE_DEVICES=''" in doc["gpus"][0]["notes"]


def test_an_index_counts_in_cuda_order_not_nvml_order(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "1"})
    assert seen(doc) == [(FIRST_3090, True, 0), (RTX_4090, False, None), (SECOND_3090, False, None)]


def test_uuid_prefixes_select_and_order(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "GPU-0c3a9f10-0001, GPU-5b1c"})
    assert seen(doc) == [(FIRST_3090, False, None), (RTX_4090, True, 1), (SECOND_3090, True, 0)]


def test_an_invalid_entry_ends_the_list(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "0,7,1"})
    assert seen(doc) == [(FIRST_3090, False, None), (RTX_4090, True, 0), (SECOND_3090, False, None)]
    assert doc["problems"][0]["source"] == "visibility"
    assert doc["problems"][0]["message"].startswith(
        "CUDA_VISIBLE_DEVICES entry '7' matches no GPU, so CUDA ignores it and every entry after it"
    )


def test_an_ambiguous_uuid_prefix_is_invalid(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "GPU-0c3a9f10"})  # both 3090s start so
    assert [v for _, v, _ in seen(doc)] == [False, False, False]
    assert "'GPU-0c3a9f10' matches no GPU" in doc["problems"][0]["message"]


def test_a_gpu_named_twice_leaves_none(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "0,GPU-5b1c"})
    assert [v for _, v, _ in seen(doc)] == [False, False, False]
    assert "names a GPU twice, so CUDA sees no GPU" in doc["problems"][0]["message"]


def test_a_mig_instance_by_uuid(host_root):
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": "MIG-7e1d6a3c-2222"}, FakeNvml([a100_80gb_mig()]))
    parent, first, second = doc["gpus"]
    assert (parent.get("visible", True), first.get("visible", True), second.get("visible", True)) == (
        False,
        False,
        True,
    )
    assert second["cuda_ordinal"] == 0


def test_a_mig_instance_in_the_legacy_form(host_root):
    value = "MIG-GPU-a1000000-0000-4000-8000-0000000a1000/1/0"
    doc = probe(host_root, {"CUDA_VISIBLE_DEVICES": value}, FakeNvml([a100_80gb_mig()]))
    assert [g.get("visible", True) for g in doc["gpus"]] == [False, True, False]


def test_container_none_hides_everything(host_root):
    doc = probe(host_root, {"NVIDIA_VISIBLE_DEVICES": "none"})
    assert [v for _, v, _ in seen(doc)] == [False, False, False]
    assert "NVIDIA_VISIBLE_DEVICES='none' hides all 3" in doc["problems"][0]["message"]


def test_container_all_changes_nothing(host_root):
    assert [v for _, v, _ in seen(probe(host_root, {"NVIDIA_VISIBLE_DEVICES": "all"}))] == [True, True, True]


def test_container_uuid_list_is_applied(host_root):
    doc = probe(host_root, {"NVIDIA_VISIBLE_DEVICES": RTX_4090})
    assert [v for _, v, _ in seen(doc)] == [False, True, False]


def test_container_indices_already_applied_by_the_runtime_are_not_applied_twice(host_root):
    # Inside the container NVML sees the two GPUs it was given, renumbered 0 and 1.
    nvml = FakeNvml([rtx_3090(bus=1, serial=0), rtx_3090(bus=2, serial=1)])
    doc = probe(host_root, {"NVIDIA_VISIBLE_DEVICES": "2,3"}, nvml)
    assert [v for _, v, _ in seen(doc)] == [True, True]


def test_container_indices_the_runtime_did_not_apply(host_root):
    doc = probe(host_root, {"NVIDIA_VISIBLE_DEVICES": "0,2"})  # NVML sees 3: nothing was filtered
    assert [v for _, v, _ in seen(doc)] == [True, False, True]
