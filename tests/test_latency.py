"""The wait for a whole answer: completion_time_s = time to first token + each further token's
decode step, the KV cache growing from the prompt's depth (seed 004: prefill, then generation)."""

from __future__ import annotations

import json

import pytest
from agent_server import Prober
from conftest import SNAPSHOTS

from fitagent.agent.config import Config
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.server import EXTENSION, create_app
from fitagent.estimator.budget import budget_from_snapshot
from fitagent.estimator.estimate import estimate
from fitagent.estimator.results import Options


@pytest.fixture(scope="module")
def rtx4090(catalog):
    return budget_from_snapshot(load_snapshot_file(SNAPSHOTS / "rtx4090.json"), catalog)


def answer(catalog, budget, output_tokens, prompt_tokens=2048, model="llama3.1-8b"):
    options = Options(context=32768, prompt_tokens=prompt_tokens, output_tokens=output_tokens).check()
    return estimate(catalog.model(model), catalog.quant("Q4_K_M"), budget, catalog, options)


def test_one_token_is_the_time_to_first_token(catalog, rtx4090):
    e = answer(catalog, rtx4090, 1)
    assert e.completion_time_s == pytest.approx(e.time_to_first_token_s)


def test_each_further_token_is_slower_as_the_cache_grows(catalog, rtx4090):
    e = answer(catalog, rtx4090, 8192)
    after_prompt = e.time_to_first_token_s + 8191 / e.decode_tokens_per_s  # every step at the prompt's depth
    assert e.completion_time_s > after_prompt
    # at most every step at the depth of the last one (the whole 32K context would be slower still)
    deepest = answer(catalog, rtx4090, 1, prompt_tokens=2048 + 8192).decode_tokens_per_s
    assert e.completion_time_s < e.time_to_first_token_s + 8191 / deepest
    # Llama-3.1-8B Q4_K_M on an RTX 4090: ~140 tokens/s after a 2K prompt, so 8,192 tokens take about a minute
    assert 55 < e.completion_time_s < 75


def test_not_asked_is_null_and_bad_lengths_are_refused(catalog, rtx4090, cli):
    assert answer(catalog, rtx4090, None).to_dict()["completion_time_s"] is None
    result = cli("estimate", "--model", "llama3.1-8b", "--output-tokens", "0", "--gpu", "RTX 4090")
    assert result.returncode == 2 and "--output-tokens" in result.stderr and "Traceback" not in result.stderr


def test_the_http_estimate_takes_prompt_and_output_lengths(catalog):
    app = create_app(
        Config(contexts=(8192,), use_cases=("general",), token="t"),
        prober=Prober(load_snapshot_file(SNAPSHOTS / "rtx4090.json")),
        start=False,
    )
    app.extensions[EXTENSION].scan_once()
    client = app.test_client()
    body = client.get("/v1/estimate?model=llama3.1-8b&prompt_tokens=2k&output_tokens=512").get_json()
    assert (body["prompt_tokens"], body["output_tokens"]) == (2048, 512)
    assert body["completion_time_s"] == pytest.approx(
        body["time_to_first_token_s"] + 511 / body["decode_tokens_per_s"], rel=0.02
    )
    bad = client.get("/v1/estimate?model=llama3.1-8b&output_tokens=0")
    assert bad.status_code == 400 and "output_tokens" in bad.get_json()["error"]


def test_pick_takes_the_best_model_whose_answer_arrives_in_time(cli):
    """RTX 4090: the top pick (Qwen2.5-32B Q4_K_M, ~39 tokens/s) needs about 14 s for 512 tokens
    after a 4K prompt; within 5 s the best that makes it is a mixture of experts (3B active)."""
    app = create_app(
        Config(contexts=(8192,), use_cases=("general",), token="t"),
        prober=Prober(load_snapshot_file(SNAPSHOTS / "rtx4090.json")),
        start=False,
    )
    app.extensions[EXTENSION].scan_once()
    client = app.test_client()
    top = client.get("/v1/pick").get_json()
    timed = client.get("/v1/pick?max_latency_s=5&output_tokens=512&prompt_tokens=4k").get_json()
    assert top["model"] == "Qwen/Qwen2.5-32B-Instruct"
    assert timed["model"] != top["model"] and timed["completion_time_s"] <= 5
    assert (timed["prompt_tokens"], timed["output_tokens"]) == (4096, 512)
    relaxed = client.get("/v1/pick?max_latency_s=60&output_tokens=512&prompt_tokens=4k").get_json()
    assert relaxed["model"] == top["model"] and relaxed["completion_time_s"] > 5
    impossible = client.get("/v1/pick?max_latency_s=0.5&output_tokens=512&prompt_tokens=4k")
    assert impossible.status_code == 404 and "the quickest" in impossible.get_json()["error"]
    assert client.get("/v1/pick?max_latency_s=-1").status_code == 400
    # the same answer computed locally by the CLI
    here = cli(
        "pick", "--hardware", str(SNAPSHOTS / "rtx4090.json"), "--max-latency", "5",
        "--output-tokens", "512", "--prompt-tokens", "4k", "--json",
    )  # fmt: skip
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)["model"] == timed["model"]
