"""Weights tensor by tensor, in the types llama.cpp's quantizer really gives each tensor."""

import pytest

from fitagent.estimator import memory
from fitagent.estimator.quantmix import group_types, use_more_bits
from fitagent.estimator.tensors import tensor_groups


def weights(catalog, model_id, quant):
    return memory.weights(catalog.model(model_id).architecture, catalog.quant(quant), catalog.ggml_types).total_bytes


def types_of(catalog, model_id, quant, role):
    arch = catalog.model(model_id).architecture
    group = next(g for g in tensor_groups(arch) if g.role == role)
    return dict(group_types(group, arch, catalog.quant(quant)))


@pytest.mark.parametrize(
    "model_id, quant, real_bytes",
    [
        # Exact LFS sizes of real files (tests/data/measurements.csv cites each).
        ("meta-llama/Llama-3.1-8B-Instruct", "Q4_K_M", 4920739232),  # bartowski
        ("meta-llama/Llama-3.1-8B-Instruct", "Q8_0", 8540775808),  # ThomasBaruzier
        ("Qwen/Qwen2.5-7B-Instruct", "Q4_K_M", 4683074048),  # bartowski
        ("google/gemma-2-27b-it", "Q6_K", 22343523840),  # bartowski
        ("Qwen/Qwen2.5-14B-Instruct", "Q4_K_L", 9565954176),  # bartowski "_L": embeddings and output at Q8_0
    ],
)
def test_weights_land_within_half_a_percent_of_real_files(catalog, model_id, quant, real_bytes):
    # The file adds a few MB of metadata (the vocabulary) to the tensor bytes estimated here.
    assert weights(catalog, model_id, quant) == pytest.approx(real_bytes, rel=0.005)


def test_llama_8b_q4_k_m_is_within_5_percent_of_4_92_gb(catalog):
    assert weights(catalog, "meta-llama/Llama-3.1-8B-Instruct", "Q4_K_M") == pytest.approx(4.92e9, rel=0.05)


def test_use_more_bits_picks_llama_cpp_layers():
    # n = 32: the first 4, the last 4, and every third from layer 6 (i - 4 ≡ 2 mod 3).
    chosen = [i for i in range(32) if use_more_bits(i, 32)]
    assert chosen == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def test_q4_k_m_mix_on_llama_8b(catalog):
    m = "meta-llama/Llama-3.1-8B-Instruct"
    assert types_of(catalog, m, "Q4_K_M", "attn_v") == {"Q6_K": 16, "Q4_K": 16}
    assert types_of(catalog, m, "Q4_K_M", "ffn_down") == {"Q6_K": 16, "Q4_K": 16}
    assert types_of(catalog, m, "Q4_K_M", "attn_q") == {"Q4_K": 32}
    assert types_of(catalog, m, "Q4_K_M", "output") == {"Q6_K": 1}
    assert types_of(catalog, m, "Q4_K_M", "attn_norm") == {"F32": 32}
    # bartowski's Q4_K_L: the same mix with the embeddings and the output head at Q8_0.
    assert types_of(catalog, m, "Q4_K_L", "output") == {"Q8_0": 1}
    assert types_of(catalog, m, "Q4_K_L", "token_embd") == {"Q8_0": 1}
    assert types_of(catalog, m, "Q4_K_L", "ffn_down") == {"Q6_K": 16, "Q4_K": 16}


def test_eight_expert_models_keep_attention_k_and_v_at_q8_0(catalog):
    m = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert types_of(catalog, m, "Q4_K_M", "attn_v") == {"Q8_0": 32}
    assert types_of(catalog, m, "Q4_K_M", "attn_k") == {"Q8_0": 32}
    assert types_of(catalog, m, "Q4_K_M", "attn_output") == {"Q5_K": 32}
    # The experts' ffn_down follow the layer rule like a dense model's.
    assert types_of(catalog, m, "Q4_K_M", "ffn_down_exps") == {"Q6_K": 16, "Q4_K": 16}


def test_phi_3_keeps_its_fused_qkv_and_the_pre_refactor_rule(catalog):
    # phi-4 Q4_K_M: attn_qkv → Q5_K in every layer (bartowski's file: 9.05 GB; estimated 9.08 GB).
    assert types_of(catalog, "microsoft/phi-4", "Q4_K_M", "attn_qkv") == {"Q5_K": 40}
    assert weights(catalog, "microsoft/phi-4", "Q4_K_M") == pytest.approx(9.05e9, rel=0.01)


def test_iq2_m_gives_its_own_upgrades(catalog):
    m = "meta-llama/Llama-3.1-8B-Instruct"  # 32 heads over 8 KV heads: n_gqa 4
    assert types_of(catalog, m, "IQ2_M", "attn_v") == {"Q4_K": 32}
    assert types_of(catalog, m, "IQ2_M", "ffn_down") == {"IQ3_S": 4, "IQ2_S": 28}  # first eighth
    assert types_of(catalog, m, "IQ2_M", "attn_output") == {"IQ3_S": 32}
    assert types_of(catalog, m, "IQ2_M", "token_embd") == {"IQ3_S": 1}
    assert types_of(catalog, m, "IQ2_M", "output") == {"Q5_K": 1}
    # bartowski's IQ2_M of it is listed at 2.95 GB.
    assert weights(catalog, m, "IQ2_M") == pytest.approx(2.95e9, rel=0.01)


def test_rows_that_are_not_whole_super_blocks_fall_back(catalog):
    # DeepSeek-V2-Lite's experts are 1408 wide (5.5 × 256): their ffn_down rows fall back from Q6_K to Q8_0.
    assert types_of(catalog, "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", "Q6_K", "ffn_down_exps") == {"Q8_0": 26}


def test_mxfp4_keeps_experts_in_mxfp4_and_the_rest_at_q8_0(catalog):
    m = "openai/gpt-oss-20b"
    assert types_of(catalog, m, "MXFP4", "ffn_up_exps") == {"MXFP4": 24}
    assert types_of(catalog, m, "MXFP4", "attn_q") == {"Q8_0": 24}
    # llama-bench reports 11.27 GiB for ggml-org's file.
    assert weights(catalog, m, "MXFP4") == pytest.approx(11.27 * 2**30, rel=0.01)


def test_the_id_keyed_caches_stay_bounded_and_give_the_same_sizes(catalog, monkeypatch):
    """A long-running agent meets new architecture objects (local models, catalog reloads): the
    caches keyed by id() are emptied together at their ceiling, and sizes do not change."""
    import dataclasses

    from fitagent.estimator import quantmix

    ceilings = (
        (quantmix._BREAKDOWNS, 6),
        (quantmix._TALLIES, 10_000),
        (quantmix._PLANS, 4),
        (quantmix._QUANTS, 100),
        (quantmix._RULES, 10_000),
    )
    monkeypatch.setattr(quantmix, "_CEILINGS", ceilings)
    base = catalog.model("llama3.1-8b").architecture
    quant = catalog.quant("Q4_K_M")
    expected = quantmix.weights_breakdown(base, quant, catalog.ggml_types)
    peak = 0
    for i in range(30):
        arch = dataclasses.replace(base, vocab_size=base.vocab_size + i * 256)  # a new object each time
        sizes = quantmix.weights_breakdown(arch, quant, catalog.ggml_types)
        peak = max(peak, len(quantmix._PLANS), len(quantmix._BREAKDOWNS))
        embedding = dict((role, size) for role, size, *_ in sizes)["token_embd"]
        assert embedding > dict((role, size) for role, size, *_ in expected)["token_embd"] or i == 0
    assert peak <= 7
    assert quantmix.weights_breakdown(base, quant, catalog.ggml_types) == expected
