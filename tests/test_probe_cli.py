"""`fitagent probe` end to end: this machine, and saved snapshots replayed byte for byte."""

from __future__ import annotations

import json
import os
from dataclasses import fields

import pytest

from fitagent.agent.hardware import take_snapshot
from fitagent.agent.probe import document, nvml, probe_document
from fitagent.estimator.hardware import GpuSnapshot, HostSnapshot, snapshot_to_dict

NO_NVIDIA_DRIVER = nvml.library_absent(os.environ)


@pytest.mark.skipif(not NO_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver")
def test_probe_json_on_a_machine_without_gpu(cli):
    done = cli("probe", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    doc = json.loads(done.stdout)
    assert doc["schema"] == "fitagent.hardware/1"
    assert doc["gpus"] == []
    assert doc["problems"][0]["source"] == "nvml"
    assert doc["problems"][0]["message"].startswith(
        "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this host"
    )
    host = doc["host"]
    assert host["hostname"] and host["os"].startswith("Linux ")
    assert host["cpu_cores"] >= 1 and host["memory_total_bytes"] >= host["memory_available_bytes"] > 0
    assert host["memory_bandwidth_source"] in ("dmi", "table", "none")


@pytest.mark.skipif(not NO_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver")
def test_probe_human_output_names_units_and_the_problem(cli):
    done = cli("probe")
    assert done.returncode == 0, done.stderr
    assert " GB total" in done.stdout and "No usable GPU found" in done.stdout
    assert "nvml: NVML library not found" in done.stdout


@pytest.mark.parametrize("name", ["rtx4090", "2x3090", "cpu-only"])
def test_hardware_file_is_replayed_exactly(cli, snapshot_path, name):
    done = cli("probe", "--json", "--hardware", snapshot_path(name))
    assert done.returncode == 0, done.stderr
    with open(snapshot_path(name), encoding="utf-8") as handle:
        assert done.stdout.rstrip("\n") == handle.read().rstrip("\n")


def test_replayed_snapshot_reads_as_a_table(cli, snapshot_path):
    done = cli("probe", "--hardware", snapshot_path("2x3090"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("NVIDIA GeForce RTX 3090") == 2
    assert "25.1 / 25.8 GB" in done.stdout and "936 GB/s (nvml)" in done.stdout


def test_this_machine_through_both_paths_gives_the_same_document():
    doc = probe_document()
    again = snapshot_to_dict(take_snapshot())
    doc.pop("taken_at"), again.pop("taken_at")
    for d in (doc, again):  # these two move between two reads of the machine
        d["host"].pop("memory_available_bytes")
        for gpu in d["gpus"]:
            gpu.pop("memory_free_bytes"), gpu.pop("memory_used_bytes")
    assert again == doc


def test_document_key_order_follows_the_snapshot_types():
    assert list(document.HOST_REQUIRED + document.HOST_OPTIONAL) == [f.name for f in fields(HostSnapshot)]
    assert list(document.GPU_REQUIRED + document.GPU_OPTIONAL) == [f.name for f in fields(GpuSnapshot)]
