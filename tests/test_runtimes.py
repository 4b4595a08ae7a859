"""What the runtimes serving here reach (#15): llama-server, vLLM and SGLang's own Prometheus
endpoints, served for real over HTTP with the runtimes' metric names and exposition format, read by
`fitagent runtimes` and by the agent's scan, beside fitagent's estimate and into this box's factor."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agent_server import Prober
from conftest import SNAPSHOTS

from fitagent.agent.config import Config, ConfigError, load_config
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.runtimes import Reading, name_model, read_llama_cpp, read_sglang, read_vllm
from fitagent.agent.server import EXTENSION, create_app

# llama-server --metrics (tools/server: the names and help texts it writes)
LLAMA_CPP = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 3870
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 1.234
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 2048
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 16
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 2071
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode counter
llamacpp:n_busy_slots_per_decode 1
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 3136.14
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 128
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""
LLAMA_CPP_MODELS = {
    "object": "list",
    "data": [
        {
            "id": "/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
            "object": "model",
            "created": 1733300000,
            "owned_by": "llamacpp",
            "meta": {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": 131072, "n_embd": 4096},
        }
    ],
}

# vllm serve (prometheus_client histograms with the model_name label)
VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM = f"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{VLLM_MODEL}"}} 0.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{VLLM_MODEL}"}} 2000.0
# HELP vllm:time_per_output_token_seconds Histogram of time per output token in seconds.
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{{engine="0",le="0.005",model_name="{VLLM_MODEL}"}} 0.0
vllm:time_per_output_token_seconds_bucket{{engine="0",le="0.01",model_name="{VLLM_MODEL}"}} 1900.0
vllm:time_per_output_token_seconds_bucket{{engine="0",le="+Inf",model_name="{VLLM_MODEL}"}} 1990.0
vllm:time_per_output_token_seconds_count{{engine="0",model_name="{VLLM_MODEL}"}} 1990.0
vllm:time_per_output_token_seconds_sum{{engine="0",model_name="{VLLM_MODEL}"}} 16.4
"""

# python -m sglang.launch_server --enable-metrics
SGLANG = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="Qwen/Qwen2.5-7B-Instruct"} 4.0
# HELP sglang:gen_throughput The generation throughput (token/s).
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{model_name="Qwen/Qwen2.5-7B-Instruct"} 230.5
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="Qwen/Qwen2.5-7B-Instruct"} 5000.0
"""


def serve(pages: dict[str, str]):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            kind = "application/json" if self.path.startswith("/v1") else "text/plain; version=0.0.4; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def runtimes():
    servers = [
        serve({"/metrics": LLAMA_CPP, "/v1/models": json.dumps(LLAMA_CPP_MODELS)}),
        serve({"/metrics": VLLM}),
        serve({"/metrics": SGLANG}),
    ]
    yield {"llama.cpp": servers[0][1], "vllm": servers[1][1], "sglang": servers[2][1]}
    for server, _ in servers:
        server.shutdown()


def test_each_runtimes_metrics_give_one_streams_pace():
    llama = read_llama_cpp(LLAMA_CPP, LLAMA_CPP_MODELS, "u", 0.0)
    assert [(r.served_name, r.decode_tokens_per_s, r.tokens) for r in llama] == [
        ("/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 2048 / 16, 2048)
    ]
    (vllm,) = read_vllm(VLLM, "u", 0.0)
    assert (vllm.served_name, vllm.decode_tokens_per_s) == (VLLM_MODEL, pytest.approx(1990 / 16.4))
    (sglang,) = read_sglang(SGLANG, "u", 0.0)  # its throughput is the batch's: per stream, ÷ the running
    assert (sglang.served_name, sglang.decode_tokens_per_s) == ("Qwen/Qwen2.5-7B-Instruct", pytest.approx(230.5 / 4))
    # too few tokens say nothing yet
    assert read_llama_cpp(LLAMA_CPP.replace(" 2048\n", " 10\n"), None, "u", 0.0) == []


@pytest.mark.parametrize(
    "runtime, served, model, quant",
    [
        ("llama.cpp", "/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "meta-llama/Llama-3.1-8B-Instruct", "Q4_K_M"),
        ("llama.cpp", "qwen2.5-7b-instruct-q5_k_m.gguf", "Qwen/Qwen2.5-7B-Instruct", "Q5_K_M"),
        ("vllm", "Qwen/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct", "AWQ-INT4"),
        ("vllm", "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "meta-llama/Llama-3.1-8B-Instruct", "FP8"),
        ("vllm", "my-finetune", None, None),
    ],
)
def test_served_names_become_catalog_models(catalog, runtime, served, model, quant):
    found, q = name_model(Reading(runtime, "u", served, 1.0, 1.0, 0.0), catalog)
    assert (found.id if found else None, q) == (model, quant)


def test_fitagent_runtimes_reads_them_and_keeps_the_boxs_factor(cli, runtimes, tmp_path):
    urls = [a for rt, url in runtimes.items() for a in ("--url", f"{rt}={url}")]
    snapshot = str(SNAPSHOTS / "rtx4090.json")
    out = cli("runtimes", *urls, "--hardware", snapshot, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_runtime = {r["runtime"]: r for r in data["readings"]}
    llama = by_runtime["llama.cpp"]
    assert (llama["model"], llama["quant"], llama["decode_tokens_per_s"]) == (
        "meta-llama/Llama-3.1-8B-Instruct",
        "Q4_K_M",
        128.0,
    )
    same = json.loads(
        cli("estimate", "--model", "llama3.1-8b", "--quant", "Q4_K_M", "--gpu", "RTX 4090", "--json").stdout
    )
    estimate_here = json.loads(cli("estimate", "--model", "llama3.1-8b", "--hardware", snapshot, "--json").stdout)
    assert llama["estimate_tokens_per_s"] == pytest.approx(same["decode_tokens_per_s"], rel=0.02)
    assert llama["ratio"] == pytest.approx(128.0 / llama["estimate_tokens_per_s"], rel=1e-3)
    assert by_runtime["vllm"]["quant"] == "BF16" and by_runtime["vllm"]["estimate_tokens_per_s"] > 0
    assert data["factors"]["llama.cpp"] == {"ratio": llama["ratio"], "readings": 1}
    # an estimate for this box now shows what was measured here and is recalibrated by the factor
    assert any(n.startswith("measured here: 128.0 tokens/s (llama.cpp") for n in estimate_here["notes"])
    assert any(n.startswith("recalibrated for this box: decode ×") for n in estimate_here["notes"])
    assert estimate_here["decode_tokens_per_s"] == pytest.approx(
        128.0 * same["decode_tokens_per_s"] / llama["estimate_tokens_per_s"], rel=0.03
    )
    # an imagined GPU (--gpu) is not this box: nothing measured applies
    assert not any("measured here" in n for n in same["notes"])


def test_the_agents_scan_reads_the_configured_runtimes(runtimes):
    config = Config(runtimes=tuple({"runtime": rt, "url": url} for rt, url in runtimes.items()))
    app = create_app(config, prober=Prober(load_snapshot_file(SNAPSHOTS / "rtx4090.json")), start=False)
    app.extensions[EXTENSION].scan_once()
    body = app.test_client().get("/v1/hardware").get_json()
    readings = {r["runtime"]: r for r in body["runtimes"]["readings"]}
    assert set(readings) == {"llama.cpp", "vllm", "sglang"}
    assert readings["sglang"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert body["runtimes"]["factors"]["llama.cpp"]["readings"] == 1
    assert body["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"  # the snapshot is still all there


def test_runtimes_config_is_checked(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("runtimes:\n  - {runtime: tgi, url: http://127.0.0.1:80}\n")
    with pytest.raises(ConfigError, match=r"runtimes\[0\]\.runtime"):
        load_config(str(bad), {})
    bad.write_text("runtimes:\n  - {runtime: vllm, url: localhost:8000}\n")
    with pytest.raises(ConfigError, match=r"runtimes\[0\]\.url must start with http"):
        load_config(str(bad), {})


def test_a_runtime_that_is_not_there_is_said_in_one_line(cli):
    out = cli("runtimes", "--url", "vllm=http://127.0.0.1:9", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["unreachable"][0].startswith("vllm at http://127.0.0.1:9:")
    bad = cli("runtimes", "--url", "tgi=http://x")
    assert bad.returncode == 2 and "RUNTIME=URL" in bad.stderr


def test_an_empty_runtimes_list_reads_none(cli, tmp_path):
    from fitagent.agent.runtimes import DEFAULT_ENDPOINTS, endpoints

    assert endpoints(None) == list(DEFAULT_ENDPOINTS) and endpoints(()) == []
    config = tmp_path / "fitagent.yaml"
    config.write_text("runtimes: []\n")
    out = cli("runtimes", "--config", str(config))
    assert out.returncode == 2 and "the config's `runtimes` is empty" in out.stderr
