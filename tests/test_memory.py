"""KV cache, compute buffers and the limits, with every expected value worked out by hand."""

import pytest

from fitagent.estimator import memory
from fitagent.estimator.budget import Budget, device_from_spec
from fitagent.estimator.calibration import DEFAULT_CALIBRATION
from fitagent.estimator.estimate import estimate
from fitagent.estimator.results import Options

F16 = 2.0


def kv(catalog, model_id, context, kv_quant="f16"):
    arch = catalog.model(model_id).architecture
    return memory.kv_cache_bytes(arch, context, memory.kv_bytes_per_element(kv_quant, catalog.ggml_types))


def test_gqa_kv_of_llama_70b_at_8k_is_the_seeds_figure(catalog):
    # 2 (K and V) × 80 layers × 8 KV heads × 128 dims × 8192 tokens × 2 bytes
    assert kv(catalog, "meta-llama/Llama-3.1-70B-Instruct", 8192) == 2 * 80 * 8 * 128 * 8192 * 2 == 2684354560


def test_context_is_padded_to_256_cells_as_llama_cpp_does(catalog):
    # 1000 tokens → 1024 cells: 2 × 32 layers × 8 heads × 128 × 1024 × 2 bytes
    assert kv(catalog, "meta-llama/Llama-3.1-8B-Instruct", 1000) == 2 * 32 * 8 * 128 * 1024 * 2 == 134217728


def test_sliding_window_layers_of_gemma_2_keep_window_plus_a_micro_batch(catalog):
    # Gemma 2 9B: 42 layers, 21 of them local with a 4096 window; 8 KV heads × 256 dims.
    # One cell of one layer: 2 × 8 × 256 × 2 bytes = 8192.
    # 32768 tokens: 21 global layers × 32768 cells + 21 local layers × pad(4096 + 512) = 4608 cells.
    expected = 21 * 32768 * 8192 + 21 * 4608 * 8192
    assert expected == 6429868032
    assert kv(catalog, "google/gemma-2-9b-it", 32768) == expected
    # Below the window every layer holds the whole context.
    assert kv(catalog, "google/gemma-2-9b-it", 2048) == 42 * 2048 * 8192


def test_gpt_oss_alternates_128_token_windows(catalog):
    # gpt-oss-20b: 24 layers, 12 with a 128-token window; 8 KV heads × 64 dims → 2048 bytes a cell.
    # 8192 tokens: 12 × 8192 cells + 12 × pad256(128 + 512 = 640) = 768 cells.
    assert kv(catalog, "openai/gpt-oss-20b", 8192) == 12 * 8192 * 2048 + 12 * 768 * 2048 == 220200960


def test_latent_attention_caches_one_compressed_vector_per_token(catalog):
    # DeepSeek-V3 (MLA): kv_lora_rank 512 + 64 RoPE dims per token and layer, 61 layers, f16.
    assert kv(catalog, "deepseek-ai/DeepSeek-V3", 4096) == 61 * (512 + 64) * 4096 * 2 == 287834112
    # The per-head cache MLA avoids would be 61 × 2 × 128 heads × 128 dims per token: 60× more.


@pytest.mark.parametrize(
    "kv_quant, expected",
    [
        ("f16", 32 * 2048 * 8192 * 2),  # 1,073,741,824
        ("q8_0", 32 * 2048 * 8192 * 34 // 32),  # 34 bytes per 32 values: 570,425,344
        ("q4_0", 32 * 2048 * 8192 * 18 // 32),  # 18 bytes per 32 values: 301,989,888
    ],
)
def test_kv_cache_quantization(catalog, kv_quant, expected):
    # Llama 3.1 8B: 32 layers × (2 × 8 heads × 128) = 2048 values per token and layer, 8192 tokens.
    assert kv(catalog, "meta-llama/Llama-3.1-8B-Instruct", 8192, kv_quant) == expected


def test_unknown_kv_quant_is_a_usage_error(catalog):
    from fitagent.catalog.errors import UsageError

    with pytest.raises(UsageError, match="--kv-quant"):
        memory.kv_bytes_per_element("q3_k", catalog.ggml_types)


def test_compute_buffer_peaks_at_the_logits_and_grows_with_the_mask(catalog):
    arch = catalog.model("meta-llama/Llama-3.1-8B-Instruct").architecture
    # Logits of a 512-token micro-batch: 512 × 4 bytes × (128256 vocab + 2 × 4096) = 279,445,504;
    # the f16 KQ mask adds 512 × 8192 cells × 2 bytes = 8,388,608.
    assert memory.compute_buffer_bytes(arch, 8192, DEFAULT_CALIBRATION) == 279445504 + 8388608
    # A GPU without the head peaks in the FFN: 512 × 4 × (2 × 14336 + 3 × 4096) = 83,886,080.
    assert memory.compute_buffer_bytes(arch, 8192, DEFAULT_CALIBRATION, with_output=False) == 83886080 + 8388608
    # Two GPUs: reserve (457 MiB) + compute buffer on each, the logits only on the last.
    reserve = 457 * 2**20
    assert memory.overhead_bytes(arch, 8192, DEFAULT_CALIBRATION, devices=2) == (
        2 * reserve + 83886080 + 8388608 + 279445504 + 8388608
    )


def _on(catalog, gpu, devices=1):
    spec = catalog.gpu(gpu)
    return Budget(tuple(device_from_spec(spec, i) for i in range(devices)), 64 * 2**30, 80e9, 16)


def test_longest_context_and_sessions_on_a_16_gb_card(catalog):
    model = catalog.model("meta-llama/Llama-3.1-8B-Instruct")
    est = estimate(model, catalog.quant("Q4_K_M"), _on(catalog, "RTX 4080"), catalog, Options(context=8192))
    # On the GPU: every layer and the head (weights 4,912,898,048 less the 295,501,824-byte
    # embedding table, which stays in RAM) = 4,617,396,224; + reserve 479,199,232 + the compute
    # buffer's fixed part 279,445,504 = 5,376,040,960. The RTX 4080 has 17,179,869,184 bytes:
    # 11,803,828,224 left. Each cell costs 32 layers × 2048 values × 2 bytes = 131,072 of KV
    # plus 2 × 512 = 1,024 of mask: 89,357 cells, 89,344 in whole 256-cell pages.
    assert est.weights_bytes == 4912898048
    assert est.max_context == 89344
    # Sessions of 8192 tokens, each a stream of its own (llama-server -np N): the mask stays one
    # session's, 8192 × 1,024 = 8,388,608, leaving 11,795,439,616; each session's KV is
    # 8192 × 131,072 = 1,073,741,824 bytes → 10 of them.
    assert est.concurrent_sessions == 10


def test_longest_context_is_capped_at_the_trained_window(catalog):
    model = catalog.model("meta-llama/Llama-3.1-8B-Instruct")
    est = estimate(model, catalog.quant("Q4_K_M"), _on(catalog, "H100 SXM"), catalog, Options(context=8192))
    assert est.max_context == model.max_context == 131072


def test_a_model_that_does_not_fit_has_no_room_for_sessions(catalog):
    model = catalog.model("meta-llama/Llama-3.1-70B-Instruct")
    budget = Budget((device_from_spec(catalog.gpu("RTX 4080")),), 8 * 2**30, 80e9, 16)
    est = estimate(model, catalog.quant("Q4_K_M"), budget, catalog, Options(context=8192))
    assert est.placement == "none"
    assert est.max_context is None and est.concurrent_sessions is None
