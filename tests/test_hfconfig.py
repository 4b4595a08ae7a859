"""--config reads real Hugging Face config.json files of every supported family."""

import json

import pytest
from conftest import HF_CONFIGS

from fitagent.catalog.errors import UsageError
from fitagent.estimator.hfconfig import model_from_hf_config

# fixture file -> catalog model whose architecture it is
CASES = {
    "llama-3.1-8b.json": "meta-llama/Llama-3.1-8B-Instruct",
    "mistral-7b-v0.3.json": "mistralai/Mistral-7B-Instruct-v0.3",
    "mixtral-8x7b.json": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "gemma-2-9b.json": "google/gemma-2-9b-it",
    "gemma-3-27b.json": "google/gemma-3-27b-it",
    "phi-3-mini-4k.json": "microsoft/Phi-3-mini-4k-instruct",
    "phi-4.json": "microsoft/phi-4",
    "qwen2.5-7b.json": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3-8b.json": "Qwen/Qwen3-8B",
    "qwen3-30b-a3b.json": "Qwen/Qwen3-30B-A3B",
    "qwen3-32b.json": "Qwen/Qwen3-32B",
    "deepseek-v2-lite.json": "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "deepseek-v3.json": "deepseek-ai/DeepSeek-V3",
    "gpt-oss-20b.json": "openai/gpt-oss-20b",
}


@pytest.mark.parametrize("fixture, model_id", sorted(CASES.items()))
def test_config_reads_like_the_catalog_entry(catalog, fixture, model_id):
    model = model_from_hf_config(json.loads((HF_CONFIGS / fixture).read_text()), origin=fixture)
    expected = catalog.model(model_id)
    a, b = model.architecture, expected.architecture
    for field in (
        "layers",
        "hidden_size",
        "attention_heads",
        "kv_heads",
        "vocab_size",
        "experts",
        "experts_per_token",
        "kv_lora_rank",
        "tied_embeddings",
    ):
        assert getattr(a, field) == getattr(b, field), (fixture, field)
    if not b.uses_mla:
        assert a.head_dim == b.head_dim
    assert bool(a.sliding_window_layers) == bool(b.sliding_window_layers), fixture
    if expected.modality == "text":
        assert model.params_total == pytest.approx(expected.params_total, rel=0.03)


def test_moe_active_parameters_of_qwen3_30b_a3b():
    model = model_from_hf_config(json.loads((HF_CONFIGS / "qwen3-30b-a3b.json").read_text()))
    # Qwen's card: 30.5B total, 3.3B activated (the activated figure includes the embeddings' row reads).
    assert model.params_total == pytest.approx(30.5e9, rel=0.01)
    assert 2.9e9 < model.params_active < 3.4e9


def test_sliding_window_layers_by_family():
    gemma2 = model_from_hf_config(json.loads((HF_CONFIGS / "gemma-2-9b.json").read_text()))
    assert (gemma2.architecture.sliding_window, gemma2.architecture.sliding_window_layers) == (4096, 21)
    gemma3 = model_from_hf_config(json.loads((HF_CONFIGS / "gemma-3-27b.json").read_text()))
    assert (gemma3.architecture.sliding_window, gemma3.architecture.sliding_window_layers) == (1024, 62 - 62 // 6)
    gptoss = model_from_hf_config(json.loads((HF_CONFIGS / "gpt-oss-20b.json").read_text()))
    assert (gptoss.architecture.sliding_window, gptoss.architecture.sliding_window_layers) == (128, 12)
    qwen = model_from_hf_config(json.loads((HF_CONFIGS / "qwen2.5-7b.json").read_text()))
    assert qwen.architecture.sliding_window_layers == 0  # use_sliding_window: false


def test_missing_field_is_named():
    with pytest.raises(UsageError, match=r"cfg.json: field 'num_attention_heads' is missing"):
        model_from_hf_config({"num_hidden_layers": 2, "hidden_size": 64}, origin="cfg.json")
    with pytest.raises(UsageError, match=r"field 'hidden_size' must be a non-negative number"):
        model_from_hf_config(
            {"num_hidden_layers": 2, "hidden_size": "big", "num_attention_heads": 4}, origin="cfg.json"
        )
