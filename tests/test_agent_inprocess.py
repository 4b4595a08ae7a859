"""The agent in-process: app factory with a fake prober (the hardware boundary), state swaps, OpenAPI."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest
from agent_server import Prober
from conftest import SNAPSHOTS

from fitagent.agent.config import Config
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.server import EXTENSION, create_app
from fitagent.agent.state import ResponseCache, ScanAborted, precompute

SMALL = Config(contexts=(8192,), use_cases=("general",), token="t")


def snapshot(name="rtx4090"):
    return load_snapshot_file(SNAPSHOTS / f"{name}.json")


def with_free(snap, free_bytes: int):
    return replace(snap, gpus=(replace(snap.gpus[0], memory_free_bytes=free_bytes),))


def test_openapi_describes_every_route_and_nothing_else():
    app = create_app(SMALL, prober=Prober(snapshot()), start=False)
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    doc = app.test_client().get("/openapi.json").get_json()
    documented = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    assert routes == documented
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert op["summary"] and "400" in op["responses"], (path, method)


def test_requests_before_the_first_scan_get_503():
    app = create_app(SMALL, prober=Prober(snapshot()), start=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz").get_json()["status"] == "starting"
    response = client.get("/v1/pick")
    assert response.status_code == 503 and "first scan" in response.get_json()["error"]
    assert client.get("/").status_code == 200


def test_first_scan_failing_is_reported():
    app = create_app(SMALL, prober=Prober(RuntimeError("NVML: driver/library version mismatch")), start=False)
    agent = app.extensions[EXTENSION]
    agent.scan_once()
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["error"]) == ("error", "RuntimeError: NVML: driver/library version mismatch")


def test_small_jitter_reuses_the_precomputed_results_and_a_real_change_does_not():
    base = snapshot()
    free = base.gpus[0].memory_free_bytes
    prober = Prober(base, with_free(base, free - 10_000_000), with_free(base, free - 2_000_000_000))
    agent = create_app(SMALL, prober=prober, start=False).extensions[EXTENSION]
    first = agent.scan_once()
    second = agent.scan_once()
    assert second.generation == 2 and second.snapshot.gpus[0].memory_free_bytes == free - 10_000_000
    assert second.computed is first.computed  # 10 MB of jitter: same recommendations
    assert agent.events.last_id == 0
    third = agent.scan_once()
    assert third.computed is not first.computed
    assert third.computed.budget.devices[0].free_bytes == free - 2_000_000_000
    assert [e.change.kind for e in agent.events.since(0)][0] == "gpu_memory"


def test_a_state_is_swapped_whole_while_readers_hold_the_old_one():
    base = snapshot()
    prober = Prober(base, with_free(base, 5_000_000_000))
    agent = create_app(SMALL, prober=prober, start=False).extensions[EXTENSION]
    held = agent.scan_once()
    recs_before = held.computed.recommendations[("general", 8192)]
    agent.scan_once()
    assert agent.state is not held
    assert held.snapshot.gpus[0].memory_free_bytes == base.gpus[0].memory_free_bytes
    assert held.computed.recommendations[("general", 8192)] is recs_before
    assert agent.state.computed.budget.devices[0].free_bytes == 5_000_000_000


def test_stopping_aborts_a_scan_in_progress(catalog):
    stop = threading.Event()
    stop.set()
    with pytest.raises(ScanAborted):
        precompute(snapshot(), catalog, SMALL, stop=stop)


def test_watched_models_are_estimated_each_scan(catalog):
    from fitagent.agent.config import WatchedModel

    config = replace(SMALL, watch_models=(WatchedModel("Qwen/Qwen2.5-7B-Instruct", "Q4_K_M", 4096),))
    computed = precompute(snapshot(), catalog, config)
    assert [(e.model, e.quant, e.context, e.fits) for e in computed.watched] == [
        ("Qwen/Qwen2.5-7B-Instruct", "Q4_K_M", 4096, True)
    ]


def test_response_cache_is_bounded_by_entries_and_bytes():
    cache = ResponseCache(max_entries=3, max_bytes=10)
    for i in range(5):
        cache.get_or_make(i, lambda: b"xx")
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) == b"xx"
    cache.get_or_make("big", lambda: b"x" * 9)
    assert len(cache) == 1 and cache.get("big") == b"x" * 9


def test_a_70b_model_on_two_gpus_gets_a_layer_split(catalog):
    app = create_app(SMALL, prober=Prober(snapshot("2x3090")), start=False)
    app.extensions[EXTENSION].scan_once()
    est = app.test_client().get("/v1/estimate?model=meta-llama/Llama-3.3-70B-Instruct&quant=Q4_K_M").get_json()
    assert est["placement"] == "gpu" and est["total_layers"] == 80
    layers = {d["id"]: d["layers"] for d in est["devices"]}
    in_order = [layers["GPU-0c3a9f10-0000-4000-8000-000000003090"], layers["GPU-0c3a9f10-0001-4000-8000-000000003090"]]
    assert sum(in_order) == 80
    assert est["launch"]["llama_cpp"]["args"] == ["-ngl", "81", "-c", "8192", "-ts", f"{in_order[0]},{in_order[1]}"]
    assert est["launch"]["vllm"]["args"][-2:] == ["--tensor-parallel-size", "2"]


@pytest.mark.parametrize("name", ["rtx4090", "2x3090", "cpu-only"])
def test_page_renders_for_each_kind_of_machine(name):
    app = create_app(SMALL, prober=Prober(snapshot(name)), start=False)
    agent = app.extensions[EXTENSION]
    agent.scan_once()
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    recs = client.get("/v1/recommendations").get_json()
    assert page.count("class='frontier-point'") == sum(len(v) for v in recs["frontiers"].values())
    assert page.count("class='fit-region'") == 3
    assert page.count("data-gpu='") == len(agent.state.snapshot.gpus) + 1  # the GPUs and RAM
    other = client.get("/?use_case=code&context=16384").get_data(as_text=True)
    assert "Pareto frontiers · code · context 16,384" in other
    assert client.get("/?context=abc").status_code == 400


def test_a_rescan_asked_for_during_a_scan_runs_after_it():
    """The scheduler skips a job that is already running; a rescan asked for then must not be lost
    (POST /v1/rescan?wait= would time out): the running job scans once more."""
    app = create_app(SMALL, prober=Prober(snapshot()), start=False)
    agent = app.extensions[EXTENSION]
    started, release = threading.Event(), threading.Event()
    real_scan = agent.scan_once
    calls = []

    def slow_scan():
        calls.append(len(calls))
        if len(calls) == 1:
            started.set()
            release.wait(5)
        return real_scan()

    class BusyScheduler:  # APScheduler with the scan job's one instance running: a modify_job is skipped
        running = True

        def modify_job(self, *args, **kwargs):
            pass

    agent.scan_once = slow_scan
    agent._scheduler = BusyScheduler()
    job = threading.Thread(target=agent._scheduled_scan)
    job.start()
    assert started.wait(5)
    agent.request_rescan()  # while the first scan runs: the running job takes it
    release.set()
    job.join(10)
    agent._scheduler = None
    assert calls == [0, 1] and agent.state.generation == 2
