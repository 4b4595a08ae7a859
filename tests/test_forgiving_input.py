"""Input that forgives and checks: names as people write them, ambiguity said rather than guessed,
what-ifs that say which host they assumed, snapshots that cannot be, API papercuts."""

import json
import shutil

import pytest
from conftest import HF_CONFIGS, SNAPSHOTS

from fitagent.agent.events import EventLog, fit_changes, hardware_changes
from fitagent.estimator.hardware import snapshot_from_dict


def _json(cli, *args, env=None):
    out = cli(*args, "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _estimate(cli, *args, env=None):
    return _json(cli, "estimate", "--hardware", str(SNAPSHOTS / "rtx4090.json"), *args, env=env)


# ---------------------------------------------------------------- quantization names


@pytest.mark.parametrize("written", ["q4km", "Q4-K-M", "q4_k_m", "Q4 K M", "Q4_K"])
def test_quant_names_are_normalised(cli, written):
    e = _estimate(cli, "--model", "llama3.1-8b", "--quant", written)
    assert e["quant"] == "Q4_K_M" and not any("read as" in n for n in e["notes"])


def test_a_bare_bit_count_is_ambiguous(cli):
    out = cli("estimate", "--model", "llama3.1-8b", "--quant", "q4", "--hardware", str(SNAPSHOTS / "rtx4090.json"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "'q4' is ambiguous: Q4_0, Q4_K_M, Q4_K_S" in out.stderr


@pytest.mark.parametrize("written", ["Q4_K_XL", "UD-Q4_K_XL"])
def test_unsloth_dynamic_names_map_to_the_nearest_type_with_a_note(cli, written):
    e = _estimate(cli, "--model", "llama3.1-8b", "--quant", written)
    assert e["quant"] == "Q4_K_M"
    assert any(
        n.startswith(f"{written} is an Unsloth Dynamic mix, not a llama.cpp type: sized and scored as Q4_K_M")
        for n in e["notes"]
    )


def test_how_a_file_was_made_is_not_its_type(cli):
    e = _estimate(cli, "--model", "llama3.1-8b", "--quant", "Q5_K_M-imat")
    assert e["quant"] == "Q5_K_M" and any("imatrix is how the file was made" in n for n in e["notes"])


def test_token_counts_take_size_suffixes_everywhere(cli):
    e = _estimate(cli, "--model", "llama3.1-8b", "--prompt-tokens", "4k", "--context", "16k")
    assert (e["prompt_tokens"], e["context"]) == (4096, 16384)


# ---------------------------------------------------------------- model names


@pytest.mark.parametrize(
    "written, model",
    [
        ("Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama 3.1 8b instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        ("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
        ("Qwen/QWEN3-8B", "Qwen/Qwen3-8B"),
        ("gemma-3-12b", "google/gemma-3-12b-it"),
    ],
)
def test_model_names_match_ignoring_case_separators_vendor_and_instruct(cli, written, model):
    assert _estimate(cli, "--model", written)["model"] == model


def test_suggestions_are_ranked_by_the_normalised_distance(cli):
    out = cli("estimate", "--model", "qwen2.5-7x", "--gpu", "RTX 4090")
    assert out.returncode == 2
    assert "did you mean Qwen/Qwen2.5-7B-Instruct," in out.stderr


# ---------------------------------------------------------------- GPUs named ambiguously


@pytest.mark.parametrize(
    "name, variants",
    [
        ("A100", ["NVIDIA A100-PCIE-40GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"]),
        ("RTX 6000", ["NVIDIA RTX 6000 Ada Generation", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"]),
        ("M3 Max", ["Apple M3 Max (30-core GPU)", "Apple M3 Max (40-core GPU)"]),
        ("A100 80GB", ["NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"]),
    ],
)
def test_an_ambiguous_gpu_is_refused_with_its_variants(cli, name, variants):
    out = cli("estimate", "--model", "llama3.1-8b", "--gpu", name)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert f"--gpu '{name}' matches {len(variants)} GPUs" in out.stderr
    assert all(v in out.stderr for v in variants)


@pytest.mark.parametrize("name", ["4090", "RTX 4090", "NVIDIA GeForce RTX 4090", "rtx4090", "RTX 3090"])
def test_a_gpu_named_in_part_is_still_found_when_only_one_fits(cli, name):
    assert _json(cli, "estimate", "--model", "llama3.1-8b", "--gpu", name)["devices"]


def test_an_apple_what_if_gets_the_share_macos_allows(cli):
    e = _json(cli, "estimate", "--model", "llama3.1-8b", "--gpu", "M3 Max 40-core", "--host-ram", "64GB")
    # 64 GB of unified memory; macOS lets the GPU wire 75 % by default above 36 GB.
    assert e["budget_bytes"] == 48_000_000_000
    assert any("the GPU may wire 75% of 64 GB by default" in n for n in e["notes"])


def test_a_what_if_says_which_host_it_assumed_and_takes_another(cli):
    mine = _json(cli, "estimate", "--model", "llama3.1-70b", "--gpu", "RTX 4090")
    assert any(n.startswith("what-if host: this machine's") for n in mine["notes"])
    described = _json(
        cli,
        "estimate",
        "--model",
        "llama3.1-70b",
        "--gpu",
        "RTX 4090",
        "--host-ram",
        "128GB",
        "--host-bandwidth",
        "89.6",
        "--cpu-cores",
        "16",
    )
    assert not any(n.startswith("what-if host") for n in described["notes"])
    assert not any("bandwidth unknown" in n for n in described["notes"])
    replay = _estimate(cli, "--model", "llama3.1-70b")  # the saved 4090 workstation: 89.6 GB/s DDR5, 16 cores
    assert described["placement"] == "partial_offload"
    assert described["decode_tokens_per_s"] == pytest.approx(replay["decode_tokens_per_s"], rel=0.1)


def test_host_figures_need_a_what_if(cli):
    out = cli("estimate", "--model", "llama3.1-8b", "--host-ram", "64GB")
    assert out.returncode == 2 and "--gpu what-if" in out.stderr


# ---------------------------------------------------------------- snapshots that cannot be


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["gpus"][0].update(memory_free_bytes=100_000_000_000_000), "memory_free_bytes"),
        (lambda d: d["gpus"][0].update(memory_bandwidth_bytes_per_s=-5), "memory_bandwidth_bytes_per_s"),
        (lambda d: d["host"].update(memory_bandwidth_bytes_per_s=float("nan")), "NaN"),
        (lambda d: d["host"].update(memory_bandwidth_bytes_per_s=1e300), "memory_bandwidth_bytes_per_s"),
        (
            lambda d: d["host"].update(memory_available_bytes=d["host"]["memory_total_bytes"] + 1),
            "memory_available_bytes",
        ),
        (lambda d: d["host"].update(cpu_cores=0), "cpu_cores"),
    ],
)
def test_impossible_snapshots_are_refused_in_one_line(cli, tmp_path, edit, field):
    data = json.loads((SNAPSHOTS / "rtx4090.json").read_text())
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    out = cli("estimate", "--model", "llama3.1-8b", "--hardware", str(path))
    named = "NaN is not a number a snapshot can hold" if field == "NaN" else f"'{field}'"
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and named in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------- models from files


def test_an_unknown_architecture_is_estimated_with_the_assumption_named(cli, tmp_path):
    config = json.loads((HF_CONFIGS / "llama-3.1-8b.json").read_text())
    config["architectures"] = ["FooBarForCausalLM"]
    path = tmp_path / "foobar.json"
    path.write_text(json.dumps(config))
    e = _estimate(cli, "--config", str(path))
    assert any(
        n.startswith("architecture FooBarForCausalLM is not one fitagent knows: estimated as a standard decoder")
        for n in e["notes"]
    )


def test_a_config_is_named_by_its_path_not_by_name_or_path(cli, tmp_path):
    config = json.loads((HF_CONFIGS / "qwen3-8b.json").read_text())
    config["_name_or_path"] = "/scratch/run-17/checkpoint-4000"
    repo = tmp_path / "hub" / "models--Qwen--Qwen3-8B"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "blobs" / "5f1e0c").write_text(json.dumps(config))
    (snapshot / "config.json").symlink_to("../../blobs/5f1e0c")  # as the hub lays a snapshot out
    assert _estimate(cli, "--config", str(snapshot / "config.json"))["model"] == "Qwen/Qwen3-8B"
    lone = tmp_path / "my-finetune.json"
    shutil.copyfile(snapshot / "config.json", lone)
    assert _estimate(cli, "--config", str(lone))["model"] == "my-finetune"


@pytest.mark.parametrize(
    "config, model",
    [("llama-3.1-8b.json", "llama3.1-8b"), ("qwen3-30b-a3b.json", "qwen3-30b-a3b"), ("phi-4.json", "phi4")],
)
def test_every_route_gives_the_same_parameters_and_quality(cli, config, model):
    by_name = _estimate(cli, "--model", model)
    by_config = _estimate(cli, "--config", str(HF_CONFIGS / config))
    for key in ("model", "params_total", "params_active", "quality", "weights_bytes"):
        assert by_config[key] == by_name[key], key


def test_a_config_that_is_not_in_the_catalog_counts_active_parameters_as_cards_do(cli):
    # Dense: every parameter is active (Llama 2 7B: 6.74 B).
    e = _estimate(cli, "--config", str(HF_CONFIGS / "llama-2-7b.json"))
    assert e["params_active"] == e["params_total"] == 6_738_415_616


# ---------------------------------------------------------------- measured RAM bandwidth is kept


def test_a_measured_ram_bandwidth_is_remembered_and_used(cli, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    before = _json(cli, "probe", env=env)
    if before["host"]["memory_bandwidth_source"] != "none":
        pytest.skip(f"this host's RAM bandwidth is known otherwise ({before['host']['memory_bandwidth_source']})")
    measured = _json(cli, "probe", "--measure-bandwidth", env=env)
    later = _json(cli, "probe", env=env)
    assert later["host"]["memory_bandwidth_source"] == "measured"
    assert later["host"]["memory_bandwidth_bytes_per_s"] == measured["host"]["memory_bandwidth_bytes_per_s"]
    assert (tmp_path / "cache" / "fitagent" / "host-bandwidth.json").stat().st_mode & 0o077 == 0
    e = _json(cli, "estimate", "--model", "llama3.1-8b", env=env)
    assert not any("bandwidth unknown" in n for n in e["notes"])
    human = cli("probe", env={"XDG_CACHE_HOME": str(tmp_path / "other")}).stdout
    assert "bandwidth unknown (`fitagent probe --measure-bandwidth` measures it once)" in human


# ---------------------------------------------------------------- API papercuts


def test_events_page_forward_oldest_first():
    from fitagent.agent.events import Change

    log = EventLog(100)
    for i in range(41):
        log.add(Change("config", f"change {i + 1}", {}), at=0.0)
    first = log.since(0, 10)
    assert [e.id for e in first] == list(range(1, 11))
    assert [e.id for e in log.since(first[-1].id, 10)] == list(range(11, 21))
    assert [e.id for e in log.latest(3)] == [39, 40, 41]


def test_events_cursor_over_http(tmp_path):
    from agent_server import AgentProcess, copy_fixture

    agent = AgentProcess(tmp_path, copy_fixture("rtx4090", tmp_path)).wait_ready()
    try:
        body = agent.get("/v1/events?since=0&limit=10")[1]
        assert body["next"] == 0 and body["events"] == [] and body["oldest_id"] == 1
    finally:
        assert agent.stop() == 0


def test_one_drop_of_free_memory_is_one_event_per_gpu_and_one_for_the_fits():
    base = json.loads((SNAPSHOTS / "2x3090.json").read_text())
    after = json.loads(json.dumps(base))
    gpu = after["gpus"][0]
    gpu["memory_free_bytes"] -= 10_900_000_000
    gpu["memory_used_bytes"] += 10_900_000_000
    gpu["processes"] = [
        {"pid": 4121, "name": "python", "used_bytes": 10_000_000_000},
        {"pid": 4122, "name": "ollama", "used_bytes": 900_000_000},
    ]
    old, new = snapshot_from_dict(base), snapshot_from_dict(after)
    changes = hardware_changes(old, new, 64 << 20)
    assert [c.kind for c in changes] == ["gpu_memory"]
    assert changes[0].message.endswith("(−10.9 GB): pid 4121 python took 10.0 GB; pid 4122 ollama took 0.9 GB")
    before = {f"m{i}": ("Q8_0", 80.0) for i in range(40)}
    later = {f"m{i}": ("Q4_K_M", 78.0) for i in range(40)}
    (fits,) = fit_changes(before, later, 8192, "general", changes, 0, 0)
    assert len(fits.details["lost"]) == 40 and fits.message.count("(best now Q4_K_M)") == 6
    assert "and 34 more" in fits.message and fits.details["cause"] == "pid 4121 python took 10.0 GB"


def test_pick_refuses_a_bad_agent_url_and_says_when_it_computes_locally(cli):
    bad = cli("pick", "--agent", "notaurl")
    assert bad.returncode == 2 and "--agent 'notaurl' is not an agent URL" in bad.stderr
    away = cli("pick", "--agent", "http://127.0.0.1:9")
    assert away.returncode == 0 and away.stdout.count(" ") == 2
    assert away.stderr.count("\n") == 1 and "no agent answers at http://127.0.0.1:9" in away.stderr
