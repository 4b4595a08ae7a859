"""The estimate's JSON: every key documented, the design's contract keys kept, the new limits present."""

import json
from pathlib import Path

from fitagent.estimator.results import ESTIMATE_FIELDS

DOC = Path(__file__).resolve().parent.parent / "docs" / "estimator.md"
CONTRACT = (
    "model",
    "quant",
    "context",
    "weights_bytes",
    "kv_cache_bytes",
    "overhead_bytes",
    "total_bytes",
    "fits",
    "safe",
    "headroom_bytes",
    "placement",
    "gpu_layers",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "time_to_first_token_s",
    "quality",
    "efficiency",
)


def test_every_key_is_documented_and_the_contract_is_kept(cli):
    out = cli("estimate", "--model", "llama3.1-8b", "--gpu", "RTX 4090", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data) == list(ESTIMATE_FIELDS)
    assert set(CONTRACT) <= set(data)
    assert isinstance(data["max_context"], int) and isinstance(data["concurrent_sessions"], int)


def test_docs_table_matches_the_field_descriptions():
    text = DOC.read_text(encoding="utf-8")
    for key, meaning in ESTIMATE_FIELDS.items():
        assert f"| `{key}` | {meaning} |" in text, key


def test_kv_quant_and_n_cpu_moe_flags(cli):
    def run(*args):
        out = cli("estimate", "--json", *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    f16 = run("--model", "llama3.1-8b", "--gpu", "RTX 4090", "--context", "8192")
    q8 = run("--model", "llama3.1-8b", "--gpu", "RTX 4090", "--context", "8192", "--kv-quant", "q8_0")
    assert (f16["kv_cache_bytes"], q8["kv_cache_bytes"]) == (1073741824, 570425344)  # × 34/32 ÷ 2
    moe = run("--model", "qwen3-30b-a3b", "--gpu", "RTX 4090", "--n-cpu-moe", "20")
    assert moe["n_cpu_moe"] == 20 and moe["placement"] == "partial_offload"
    both = cli("estimate", "--model", "qwen3-30b-a3b", "--gpu", "RTX 4090", "--n-cpu-moe", "2", "--gpu-layers", "3")
    assert both.returncode == 2 and both.stderr.count("\n") == 1
