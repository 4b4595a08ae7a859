"""The shipped catalog: complete, validated, with sources; bad entries named precisely."""

import pytest

from fitagent.catalog.errors import DataError, NotFoundError, UsageError
from fitagent.catalog.lookup import find_gpu
from fitagent.catalog.parse import parse_gpus, parse_models, parse_quantizations
from fitagent.estimator.tensors import parameter_count


def test_catalog_sizes(catalog):
    assert len(catalog.models) >= 60
    assert len(catalog.gpus) >= 60
    names = {q.name for q in catalog.quantizations}
    seed_rows = {
        "F16",
        "Q8_0",
        "Q6_K",
        "Q5_K_M",
        "Q5_K_S",
        "Q4_K_M",
        "Q4_K_S",
        "IQ4_XS",
        "Q4_0",
        "Q3_K_M",
        "Q3_K_S",
        "IQ3_M",
        "IQ3_S",
        "Q2_K",
        "IQ2_M",
        "IQ2_S",
        "IQ2_XS",
        "IQ2_XXS",
        "IQ1_M",
        "IQ1_S",
    }
    assert seed_rows | {"BF16", "F32", "FP8", "IQ3_XS"} <= names


def test_seed_table_numbers_are_kept(catalog):
    q = catalog.quant("Q4_K_M")
    assert (q.bits_per_weight, q.ppl_increase, q.quality_factor, q.tier) == (4.83, 0.054, 0.991, "Recommended")
    assert catalog.quant("IQ1_S").quality_factor == 0.4


def test_every_entry_cites_sources(catalog):
    for m in catalog.models:
        assert m.sources.get("config_source", "").startswith("http"), m.id
    for g in catalog.gpus:
        assert g.sources, g.name
    for q in catalog.quantizations:
        assert q.source, q.name


def test_catalog_covers_the_architectures_that_matter(catalog):
    archs = [m.architecture for m in catalog.models]
    assert any(a.is_moe for a in archs)
    assert any(a.sliding_window_layers for a in archs)
    assert any(a.uses_mla for a in archs)
    assert any(a.kv_heads < a.attention_heads for a in archs)
    for model_id in (
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen3-30B-A3B",
        "openai/gpt-oss-20b",
        "deepseek-ai/DeepSeek-V2-Lite-Chat",
        "google/gemma-3-27b-it",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    ):
        catalog.model(model_id)


def test_text_models_parameter_counts_match_their_architecture(catalog):
    # The architecture must describe the model: its tensors add up to the published count.
    for m in catalog.models:
        if m.modality != "text":
            continue  # vision encoders are not part of the language model's tensors
        computed = parameter_count(m.architecture)
        assert computed == pytest.approx(m.params_total, rel=0.03), m.id


@pytest.mark.parametrize("name", ["4090", "RTX 4090", "rtx-4090", "NVIDIA GeForce RTX 4090", "GeForce RTX 4090"])
def test_gpu_names_match_forgivingly(catalog, name):
    assert catalog.gpu(name).name == "NVIDIA GeForce RTX 4090"


def test_unknown_names_suggest_close_ones(catalog):
    with pytest.raises(
        NotFoundError, match=r"unknown model 'llama3.1-8x' — did you mean meta-llama/Llama-3.1-8B-Instruct"
    ):
        catalog.model("llama3.1-8x")
    with pytest.raises(NotFoundError, match=r"unknown GPU 'RTX 4099'"):
        catalog.gpu("RTX 4099")
    with pytest.raises(NotFoundError, match=r"unknown quantization 'Q4_K_Z' — did you mean .*Q4_K_M"):
        catalog.quant("Q4_K_Z")


def test_model_lookup_by_alias_and_repo_name(catalog):
    assert catalog.model("llama3.1-8b").id == "meta-llama/Llama-3.1-8B-Instruct"
    assert catalog.model("Llama-3.1-8B-Instruct").id == "meta-llama/Llama-3.1-8B-Instruct"


GOOD_MODEL = {
    "id": "org/model",
    "alias": "m",
    "family": "llama",
    "modality": "text",
    "params_total": 100,
    "params_active": 100,
    "max_context": 4096,
    "config_source": "https://example.org/config.json",
    "architecture": {
        "layers": 2,
        "hidden_size": 64,
        "attention_heads": 4,
        "kv_heads": 2,
        "head_dim": 16,
        "intermediate_size": 128,
        "vocab_size": 1000,
    },
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"params_total": -5}, r"models.yaml: entry 'org/model': field 'params_total' must be positive"),
        (
            {"architecture": {**GOOD_MODEL["architecture"], "layers": "many"}},
            r"entry 'org/model'.architecture: field 'layers' must be int, got 'many'",
        ),
        ({"modality": "audio"}, r"field 'modality' must be one of text, vision"),
        ({"benchmarks": {"mmlu": {"score": 120, "source": "x"}}}, r"field 'score' must be within 0–100, got 120"),
        ({"config_source": None}, r"field 'config_source' is missing"),
        ({"architecture": {**GOOD_MODEL["architecture"], "experts_per_token": 2}}, r"field 'experts' is missing"),
    ],
)
def test_bad_model_entries_name_file_entry_and_field(change, message):
    with pytest.raises(DataError, match=message):
        parse_models({"models": [{**GOOD_MODEL, **change}]})


def test_bad_quantization_and_gpu_entries():
    with pytest.raises(DataError, match="expected a top-level 'ggml_types:' mapping"):
        parse_quantizations({"quantizations": []})
    with pytest.raises(DataError, match=r"gpus.yaml: entry 'X': field 'memory_bytes' is missing"):
        parse_gpus(
            {
                "gpus": [
                    {
                        "name": "X",
                        "vendor": "nvidia",
                        "kind": "consumer",
                        "memory_bandwidth_bytes_per_s": 1,
                        "sources": ["s"],
                    }
                ]
            }
        )
    with pytest.raises(DataError, match=r"field 'pci_ids' '10de2684' is not of the form"):
        parse_gpus(
            {
                "gpus": [
                    {
                        "name": "X",
                        "vendor": "nvidia",
                        "kind": "consumer",
                        "memory_bytes": 1,
                        "memory_bandwidth_bytes_per_s": 1,
                        "pci_ids": ["10de2684"],
                        "sources": ["s"],
                    }
                ]
            }
        )


def test_ambiguous_gpu_name_is_refused():
    gpus = parse_gpus(
        {
            "gpus": [
                {
                    "name": "NVIDIA A100-SXM4-40GB",
                    "vendor": "nvidia",
                    "kind": "datacenter",
                    "memory_bytes": 1,
                    "memory_bandwidth_bytes_per_s": 1,
                    "sources": ["s"],
                },
                {
                    "name": "NVIDIA A100-SXM4-80GB",
                    "vendor": "nvidia",
                    "kind": "datacenter",
                    "memory_bytes": 2,
                    "memory_bandwidth_bytes_per_s": 1,
                    "sources": ["s"],
                },
            ]
        }
    )
    with pytest.raises(UsageError, match="matches 2 GPUs"):
        find_gpu(gpus, "A100")
    assert find_gpu(gpus, "A100 SXM4 80GB").memory_bytes == 2


def test_catalog_cache_is_rebuilt_when_corrupt(tmp_path, monkeypatch):
    from fitagent.agent import catalog_cache as loader

    monkeypatch.setenv("FITAGENT_CACHE_DIR", str(tmp_path))
    loader.load_catalog.cache_clear()
    try:
        first = loader.load_catalog()
        cached = list(tmp_path.glob("catalog-*.pickle"))
        assert len(cached) == 1
        cached[0].write_bytes(b"not a pickle")
        loader.load_catalog.cache_clear()
        again = loader.load_catalog()
        assert [m.id for m in again.models] == [m.id for m in first.models]
        assert len(list(tmp_path.glob("catalog-*.pickle"))) == 1
    finally:
        loader.load_catalog.cache_clear()


def test_catalog_loads_without_a_writable_cache(tmp_path, monkeypatch):
    from fitagent.agent import catalog_cache as loader

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("FITAGENT_CACHE_DIR", str(blocker / "sub"))
    loader.load_catalog.cache_clear()
    try:
        assert len(loader.load_catalog().models) >= 60
    finally:
        loader.load_catalog.cache_clear()


def test_at_least_150_models_each_with_a_sourced_benchmark(cli):
    import json

    out = cli("catalog", "models", "--json")
    models = json.loads(out.stdout)["models"]
    assert len(models) >= 150
    for m in models:
        assert m["benchmarks"], m["id"]
        for name in m["benchmarks"]:
            assert m["sources"][f"benchmark.{name}"].startswith("http"), (m["id"], name)
