"""`fitagent serve` as a real process on a real socket, answering every endpoint from a snapshot file."""

from __future__ import annotations

import json
import signal
import time

import pytest
from agent_server import FAST_CONFIG, AgentProcess, copy_fixture, write_snapshot
from conftest import SNAPSHOTS

GB = 1_000_000_000


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    directory = tmp_path_factory.mktemp("agent")
    process = AgentProcess(directory, copy_fixture("rtx4090", directory)).wait_ready()
    yield process
    assert process.stop() == 0


def local_recommend(name: str, use_case: str, context: int):
    from fitagent.agent.catalog_cache import load_catalog
    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.recommend import recommend
    from fitagent.estimator.results import Options

    catalog = load_catalog()
    budget = budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog)
    return recommend(catalog, budget, Options(context=context, use_case=use_case))


def test_healthz_and_hardware(agent):
    status, health = agent.get("/healthz")
    assert status == 200
    assert (health["status"], health["stale"], health["error"], health["scans_total"]) == ("ok", False, None, 1)
    assert health["hardware_source"].endswith("rtx4090.json")
    status, hardware = agent.get("/v1/hardware")
    fixture = json.loads((SNAPSHOTS / "rtx4090.json").read_text())
    assert status == 200
    assert hardware["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"
    assert hardware["gpus"][0]["memory_free_bytes"] == fixture["gpus"][0]["memory_free_bytes"] == 24_900_000_000
    assert hardware["host"]["memory_available_bytes"] == 55_834_574_848


def test_recommendations_match_the_estimator_and_carry_flags(agent):
    status, body = agent.get("/v1/recommendations?use_case=code&context=16384&top=3")
    assert status == 200
    expected = local_recommend("rtx4090", "code", 16384)
    assert (body["use_case"], body["context"], body["budget_bytes"]) == ("code", 16384, 24_900_000_000)
    assert [(e["model"], e["quant"]) for e in body["ranked"]] == [(e.model, e.quant) for e in expected.ranked[:3]]
    assert {k: [(e["model"], e["quant"]) for e in v] for k, v in body["frontiers"].items()} == {
        k: [(e.model, e.quant) for e in v] for k, v in expected.frontiers.items()
    }
    assert body["candidates_considered"] == len(expected.candidates)
    first = body["ranked"][0]
    assert first["placement"] == "gpu"
    assert first["launch"]["llama_cpp"]["args"][:4] == ["-ngl", str(first["total_layers"] + 1), "-c", "16384"]
    assert first["launch"]["ollama"]["options"] == {"num_gpu": first["total_layers"] + 1, "num_ctx": 16384}
    assert first["launch"]["vllm"]["args"][2:] == ["--max-model-len", "16384", "--tensor-parallel-size", "1"]


def test_defaults_come_from_the_config(agent):
    status, body = agent.get("/v1/recommendations")
    assert (status, body["use_case"], body["context"], len(body["ranked"])) == (200, "general", 8192, 10)


def test_pick_is_the_top_ranked(agent):
    expected = local_recommend("rtx4090", "general", 8192).ranked[0]
    status, pick = agent.get("/v1/pick")
    assert status == 200
    assert (pick["model"], pick["quant"], pick["context"], pick["gpu_layers"]) == (
        expected.model,
        expected.quant,
        8192,
        expected.gpu_layers,
    )
    assert pick["launch"]["llama_cpp"]["args"][:2] == ["-ngl", str(expected.total_layers + 1)]


def test_pick_at_a_context_the_scan_did_not_precompute(agent):
    expected = local_recommend("rtx4090", "math", 12288).ranked[0]
    status, pick = agent.get("/v1/pick?use_case=math&context=12k")
    assert (status, pick["model"], pick["quant"], pick["context"]) == (200, expected.model, expected.quant, 12288)


def test_estimate_and_models(agent):
    status, est = agent.get("/v1/estimate?model=Qwen/Qwen2.5-7B-Instruct&quant=Q8_0&context=4096")
    assert status == 200
    assert (est["model"], est["quant"], est["context"], est["placement"]) == (
        "Qwen/Qwen2.5-7B-Instruct",
        "Q8_0",
        4096,
        "gpu",
    )
    assert est["launch"]["llama_cpp"]["args"][:4] == ["-ngl", str(est["total_layers"] + 1), "-c", "4096"]
    status, models = agent.get("/v1/models")
    assert status == 200
    from fitagent.agent.catalog_cache import load_catalog

    assert [m["id"] for m in models["models"]] == [m.id for m in load_catalog().models]
    ranked = local_recommend("rtx4090", "general", 8192).ranked
    best = {m["id"]: m["best"] for m in models["models"]}
    assert best[ranked[0].model]["quant"] == ranked[0].quant


def test_estimate_for_vllm_and_mlx_over_http(agent, catalog):
    """runtime=vllm answers with estimator.vllm on the agent's own snapshot (the RTX 4090 fixture);
    sglang and the ExLlama runtimes answer their own JSON."""
    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.vllm import ServeSettings, serve_estimate

    status, body = agent.get("/v1/estimate?model=llama3.1-8b&runtime=vllm&context=8192&concurrency=4")
    assert status == 200, body
    snapshot = load_snapshot_file(SNAPSHOTS / "rtx4090.json")
    local = serve_estimate(
        catalog.model("llama3.1-8b"),
        catalog.quant("BF16"),
        budget_from_snapshot(snapshot, catalog).devices,
        catalog,
        ServeSettings(max_model_len=8192, concurrency=4),
    )
    assert (body["runtime"], body["quant"], body["kv_blocks"]) == ("vllm", "BF16", local.kv_blocks)
    assert body["aggregate_tokens_per_s"] == round(local.aggregate_tokens_per_s, 2)
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&runtime=mlx")
    assert status == 400 and "Apple silicon only" in body["error"]
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&concurrency=4")
    assert status == 400 and "go with runtime=vllm" in body["error"]
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&runtime=sglang&context=8192")
    assert (
        status == 200
        and body["runtime"] == "sglang"
        and body["launch"]["sglang"][:3]
        == [
            "python",
            "-m",
            "sglang.launch_server",
        ]
    )
    # ExLlama: the same JSON as `estimate --runtime exllamav3`, on the 4090 of the snapshot
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&runtime=exllamav3&cache_mode=Q4&context=32k")
    assert status == 200, body
    assert (body["quant"], body["cache_mode"], body["cache_size"], body["loads"]) == ("EXL3-4.0", "Q4", 32768, True)
    assert body["gpus"][0]["cache_bytes"] == 32768 * 32 * 2 * 8 * 128 * 0.5625
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&cache_mode=Q4")
    assert status == 400 and "runtime=exllamav2 or exllamav3" in body["error"]
    status, body = agent.get("/v1/estimate?model=llama3.1-8b&runtime=exllamav2&quant=EXL3-4.0")
    assert status == 400 and "loads in exllamav3" in body["error"]


def test_events_openapi_and_page_answer(agent):
    status, events = agent.get("/v1/events")
    assert status == 200 and events["events"] == [] and events["last_id"] == 0
    status, doc = agent.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    status, page = agent.get("/")
    assert status == 200 and "<svg id='frontiers'" in page and "ws-4090" in page


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/v1/pick?context=abc", 400, ["context:", "'abc'", "allowed: a positive number of tokens"]),
        ("/v1/recommendations?context=0", 400, ["context:", "allowed:"]),
        (
            "/v1/recommendations?use_case=poetry",
            400,
            ["use_case:", "'poetry'", "general, code, tool-calling, math, vision"],
        ),
        ("/v1/recommendations?top=0", 400, ["top:", "from 1 to 1000"]),
        ("/v1/pick?ctx=8192", 400, ["unknown parameter 'ctx'", "allowed: use_case, context"]),
        ("/v1/estimate", 400, ["model: missing"]),
        ("/v1/estimate?model=no-such-model", 404, ["model: unknown model 'no-such-model'"]),
        ("/v1/estimate?model=Qwen/Qwen2.5-7B-Instruct&kv_quant=q2", 400, ["kv_quant:", "f16, q8_0, q4_0"]),
        ("/v1/events?since=-1", 400, ["since:"]),
        ("/v1/estimate?model=llama3.1-8b&runtime=tgi", 400, ["runtime:", "llama.cpp, vllm, sglang, mlx, exllamav2"]),
        ("/v1/estimate?model=llama3.1-8b&runtime=vllm&gpu_memory_utilization=2", 400, ["gpu_memory_utilization:"]),
        ("/v2/nothing", 404, ["no such endpoint: /v2/nothing"]),
    ],
)
def test_bad_requests_get_json_errors(agent, path, status, words):
    got, body = agent.get(path)
    assert got == status
    assert set(body) == {"error"}
    for word in words:
        assert word in body["error"]


def test_wrong_method_is_405_with_allow(agent):
    status, headers, body = agent.request("POST", "/v1/pick")
    assert status == 405
    assert "GET" in headers["Allow"]
    assert json.loads(body) == {"error": "method POST is not allowed on /v1/pick (allowed: GET)"}


def test_rescan_needs_the_token(agent):
    status, body = agent.post("/v1/rescan")
    assert status == 401 and "token" in body["error"]
    status, body = agent.post("/v1/rescan", token="wrong")
    assert status == 401
    before = agent.get("/healthz")[1]["generation"]
    status, body = agent.post("/v1/rescan?wait=30", token="test-token")
    assert status == 200 and body["generation"] == before + 1 and body["status"] == "ok"
    status, body = agent.post("/v1/rescan", token="test-token")
    assert status == 202 and body["scheduled"] is True


def test_pick_cli_asks_the_agent_and_agrees_with_local(agent, cli):
    status, pick = agent.get("/v1/pick?use_case=code&context=16384")
    line = f"{pick['model']} {pick['quant']} {pick['launch']['ollama']['options']['num_gpu']}"
    remote = cli("pick", "--agent", agent.url, "--use-case", "code", "--context", "16384")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == line + "\n"
    local = cli("pick", "--hardware", str(SNAPSHOTS / "rtx4090.json"), "--use-case", "code", "--context", "16384")
    assert local.stdout == line + "\n"
    flags = cli("pick", "--agent", agent.url, "--use-case", "code", "--context", "16k", "--format", "llama.cpp")
    assert flags.stdout.split() == pick["launch"]["llama_cpp"]["args"]
    as_json = json.loads(cli("pick", "--agent", agent.url, "--json").stdout)
    assert as_json["source"] == agent.url
    bad = cli("pick", "--agent", agent.url, "--context", "abc")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_pick_cli_computes_here_when_no_agent_answers(cli):
    result = cli("pick", "--agent", "http://127.0.0.1:9", "--json")  # nothing listens on port 9
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["source"] == "local" and body["context"] == 8192 and "launch" in body


# ---------------------------------------------------------------- changes between scans


def take_memory(data: dict, nbytes: int, pid: int, name: str) -> dict:
    gpu = data["gpus"][0]
    gpu["memory_free_bytes"] -= nbytes
    gpu["memory_used_bytes"] += nbytes
    gpu["processes"] = [{"pid": pid, "name": name, "used_bytes": nbytes}]
    return data


def events_since(agent, since: int) -> list[dict]:
    return agent.get(f"/v1/events?since={since}")[1]["events"]


def test_memory_taken_and_released_shows_in_events(tmp_path):
    hardware = copy_fixture("rtx4090", tmp_path)
    original = json.loads(hardware.read_text())
    agent = AgentProcess(tmp_path, hardware).wait_ready()
    try:
        before = agent.get("/v1/pick")[1]
        write_snapshot(hardware, take_memory(json.loads(hardware.read_text()), 9_800_000_000, 4121, "python"))
        agent.rescan()
        events = events_since(agent, 0)
        # One event for the GPU with the process that moved, one for every fit that changed.
        assert [e["kind"] for e in events] == ["gpu_memory", "fit_changed"]
        memory, fits = events
        assert memory["delta_bytes"] == -9_800_000_000 and memory["free_bytes"] == 15_100_000_000
        assert memory["message"] == (
            "GPU 0 (NVIDIA GeForce RTX 4090): free 24.9 GB → 15.1 GB (−9.8 GB): pid 4121 python took 9.8 GB"
        )
        assert memory["processes"] == [
            {"pid": 4121, "process": "python", "delta_bytes": 9_800_000_000, "used_bytes": 9_800_000_000}
        ]
        lost = fits["lost"]
        assert lost and fits["cause"] == "pid 4121 python took 9.8 GB" and not fits["gained"]
        assert fits["message"].startswith(
            f"at 8,192 tokens (general), pid 4121 python took 9.8 GB: {len(lost)} no longer fit"
        )
        previous_pick = [e for e in lost if e["model"] == before["model"]]
        assert previous_pick and previous_pick[0]["quant"] == before["quant"]
        after = agent.get("/v1/pick")[1]
        assert after["total_bytes"] < 15_100_000_000 < before["total_bytes"]

        last = events[-1]["id"]
        write_snapshot(hardware, original)
        agent.rescan()
        events = events_since(agent, last)
        assert events[0]["message"].endswith(": pid 4121 python released 9.8 GB")
        (fits,) = [e for e in events if e["kind"] == "fit_changed"]
        assert {(e["model"], e["quant"]) for e in fits["gained"]} == {(e["model"], e["quant"]) for e in lost}
        assert fits["cause"] == "pid 4121 python released 9.8 GB" and not fits["lost"]
        assert agent.get("/v1/pick")[1]["model"] == before["model"]
        journal = "\n".join(agent.log)
        assert "(−9.8 GB): pid 4121 python took 9.8 GB" in journal
    finally:
        assert agent.stop() == 0


def test_failed_scan_keeps_the_last_good_state(tmp_path):
    hardware = copy_fixture("rtx4090", tmp_path)
    agent = AgentProcess(tmp_path, hardware).wait_ready()
    try:
        pick = agent.get("/v1/pick")[1]
        hardware.write_text("{ this is not json")
        health = agent.rescan()
        assert health["status"] == "stale" and health["stale"] is True
        assert "not valid JSON" in health["error"] and health["consecutive_failures"] == 1
        assert health["age_s"] is not None and health["scanned_at"] is not None
        status, again = agent.get("/v1/pick")
        assert status == 200 and again == pick
        page = agent.get("/")[1]
        assert "id='stale'" in page and "not valid JSON" in page
        copy_fixture("rtx4090", tmp_path)
        health = agent.rescan()
        assert (health["status"], health["error"], health["scan_failures_total"]) == ("ok", None, 1)
        kinds = [e["kind"] for e in events_since(agent, 0)]
        assert kinds == ["scan_failed", "scan_recovered"]
    finally:
        assert agent.stop() == 0


def wait_for_event(agent, kind: str, since: int, tries: int = 200) -> dict:
    for _ in range(tries):
        found = [e for e in events_since(agent, since) if e["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event; log:\n" + "\n".join(agent.log))


def test_sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad(tmp_path):
    agent = AgentProcess(tmp_path, copy_fixture("rtx4090", tmp_path)).wait_ready()
    try:
        agent.config_path.write_text(FAST_CONFIG + "colour: blue\n")
        agent.signal(signal.SIGHUP)
        event = wait_for_event(agent, "config", 0)
        assert event["message"].startswith("config reload failed, keeping the running one:")
        assert "'colour' is not a known key" in event["message"]
        assert agent.post("/v1/rescan", token="test-token")[0] == 202
        agent.config_path.write_text(FAST_CONFIG.replace("token: test-token", "token: new-token"))
        agent.signal(signal.SIGHUP)
        event = wait_for_event(agent, "config", event["id"])
        assert event["message"] == f"configuration reloaded from {agent.config_path}"
        assert agent.post("/v1/rescan", token="test-token")[0] == 401
        assert agent.post("/v1/rescan", token="new-token")[0] == 202
    finally:
        assert agent.stop() == 0
    assert agent.log[-1].endswith("stopped")


def test_serve_refuses_a_missing_hardware_file(tmp_path, cli):
    result = cli("serve", "--hardware", str(tmp_path / "nope.json"), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fitagent serve: --hardware {tmp_path / 'nope.json'}: no such file "
        "(save one with `fitagent probe --json > nope.json`)"
    ]


def test_the_timer_rescans_and_picks_up_a_changed_file(tmp_path):
    hardware = copy_fixture("rtx4090", tmp_path)
    agent = AgentProcess(
        tmp_path, hardware, FAST_CONFIG.replace("rescan_interval_s: 3600", "rescan_interval_s: 1")
    ).wait_ready()
    try:
        write_snapshot(hardware, take_memory(json.loads(hardware.read_text()), 4_000_000_000, 777, "ollama"))
        for _ in range(600):  # bounded wait for the timer, not a speed check
            status, hw = agent.get("/v1/hardware")
            if hw["gpus"][0]["memory_free_bytes"] == 20_900_000_000:
                break
            time.sleep(0.05)
        assert hw["gpus"][0]["memory_free_bytes"] == 20_900_000_000
        assert agent.get("/healthz")[1]["scans_total"] >= 2
        assert any(e["message"].endswith("(−4.0 GB): pid 777 ollama took 4.0 GB") for e in events_since(agent, 0))
    finally:
        assert agent.stop() == 0
