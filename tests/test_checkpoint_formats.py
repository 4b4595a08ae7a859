"""Weights of quantized safetensors checkpoints (#15): which tensors each format quantizes and how
its groups are stored (data/quantizations.yaml), on Llama-3.1-8B-Instruct.

The BF16 size is the published one. The layouts are worked out by hand from the model's shapes
below; test_published_repository_sizes then holds each format to a published repository's size
(the bitsandbytes file's exact bytes; Hugging Face's rounded listings for the others)."""

from __future__ import annotations

import pytest

from fitagent.estimator import memory

# meta-llama/Llama-3.1-8B-Instruct, model.safetensors.index.json metadata.total_size: the tensor
# bytes of its four BF16 shards (8,030,261,248 parameters × 2 bytes).
LLAMA_31_8B_BF16_BYTES = 16_060_522_496


@pytest.fixture(scope="module")
def llama(catalog):
    model = catalog.model("llama3.1-8b")
    a = model.architecture
    kv = a.kv_heads * a.head_dim
    per_layer = (
        a.hidden_size * (a.hidden_size + 2 * kv)
        + a.hidden_size * a.hidden_size
        + 3 * a.hidden_size * a.intermediate_size
    )
    linear = a.layers * per_layer  # q, k, v, o, gate, up, down: what GPTQ, AWQ and FP8 quantize
    table = a.vocab_size * a.hidden_size  # the embedding table, and the (untied) output head
    norms = a.layers * 2 * a.hidden_size + a.hidden_size
    return model, linear, table, norms


def weights(catalog, model, quant):
    return memory.weights(model.architecture, catalog.quant(quant), catalog.ggml_types).total_bytes


def test_bf16_is_the_published_checkpoint(catalog, llama):
    model, *_ = llama
    # norms are counted in F32 as llama.cpp keeps them (the checkpoint has them in BF16): +0.5 MB
    assert weights(catalog, model, "BF16") == pytest.approx(LLAMA_31_8B_BF16_BYTES, rel=1e-4)


@pytest.mark.parametrize("quant", ["AWQ-INT4", "GPTQ-INT4"])
def test_int4_quantizes_the_linear_layers_in_groups_of_128(catalog, llama, quant):
    model, linear, table, norms = llama
    # 4-bit weights, an FP16 scale and a 4-bit zero per 128; embeddings and head stay 16-bit
    expected = linear * 66.5 / 128 + 2 * table * 2 + norms * 4
    assert weights(catalog, model, quant) == pytest.approx(expected, rel=1e-6)
    assert 5.70e9 < expected < 5.75e9  # hugging-quants lists its AWQ-INT4 and GPTQ-INT4 at about 5.7 GB


def test_fp8_leaves_the_embeddings_and_head_in_bf16(catalog, llama):
    model, linear, table, norms = llama
    assert weights(catalog, model, "FP8") == pytest.approx(linear + 2 * table * 2 + norms * 4, rel=1e-6)


@pytest.mark.parametrize("quant, bytes_per_64", [("MLX-4BIT", 36), ("MLX-8BIT", 68)])
def test_mlx_quantizes_every_matrix_head_and_embeddings_included(catalog, llama, quant, bytes_per_64):
    model, linear, table, norms = llama
    expected = (linear + 2 * table) * bytes_per_64 / 64 + norms * 4
    assert weights(catalog, model, quant) == pytest.approx(expected, rel=1e-6)


def test_checkpoint_formats_are_named_as_people_name_them_and_never_swept(catalog):
    from fitagent.estimator.recommend import candidate_quants

    assert catalog.quant("awq").name == "AWQ-INT4" and catalog.quant("gptq").name == "GPTQ-INT4"
    assert catalog.quant("mlx-4bit").name == "MLX-4BIT"
    swept = {q.name for q in candidate_quants(catalog)}
    assert not swept & {"AWQ-INT4", "GPTQ-INT4", "MLX-4BIT", "MLX-8BIT", "FP8"}


def test_gpus_that_cannot_run_a_format_are_left_out_with_the_reason(catalog):
    from fitagent.estimator.plan import plan

    model = catalog.model("llama3.1-8b")
    mlx = plan(model, catalog.quant("MLX-4BIT"), catalog, 8192)
    assert mlx.options and all(catalog.gpu(o.gpu).vendor == "apple" for o in mlx.options)
    assert "cannot run MLX-4BIT" in mlx.notes[0] and "Apple silicon only" in mlx.notes[0]
    awq = plan(model, catalog.quant("AWQ-INT4"), catalog, 8192)
    for option in awq.options:
        spec = catalog.gpu(option.gpu)
        assert spec.vendor in ("nvidia", "amd") and spec.architecture not in ("Pascal", "Volta"), option
    gguf = plan(model, catalog.quant("Q4_K_M"), catalog, 8192)
    assert not any("cannot run" in n for n in gguf.notes)
    assert any(catalog.gpu(o.gpu).vendor == "apple" for o in gguf.options)


def test_an_estimate_says_when_its_gpu_cannot_run_the_format(catalog):
    from fitagent.estimator.budget import Budget, device_from_spec
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    def notes(quant, gpu):
        budget = Budget((device_from_spec(catalog.gpu(gpu)),), 64 * 10**9, 80e9, 16)
        return estimate(catalog.model("llama3.1-8b"), catalog.quant(quant), budget, catalog, Options()).notes

    assert any("Apple silicon only" in n for n in notes("MLX-4BIT", "RTX 4090"))
    assert any("weight-only (Marlin)" in n for n in notes("FP8", "RTX 3090"))  # runs, slower
    assert not any("FP8" in n for n in notes("FP8", "H100 SXM"))
    assert not any("cannot" in n or "only" in n for n in notes("Q4_K_M", "RTX 4090"))


# (model, quant, published bytes, tolerance): tests/data/measurements.csv carries each row's source.
PUBLISHED = [
    # unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit model.safetensors, its Git LFS pointer's size
    ("meta-llama/Llama-3.1-8B-Instruct", "BNB-NF4", 5_702_746_383, 0.0002),
    # Hugging Face listings (decimal GB to 2-3 digits; the sum of the shards): within their rounding
    ("meta-llama/Llama-3.1-8B-Instruct", "AWQ-INT4", 5.73e9, 0.002),  # hugging-quants, 4.68 + 1.05 GB
    ("meta-llama/Llama-3.1-8B-Instruct", "GPTQ-INT4", 5.734e9, 0.002),  # hugging-quants, 4.97 GB + 764 MB
    ("Qwen/Qwen2.5-7B-Instruct", "AWQ-INT4", 5.57e9, 0.002),  # Qwen's own, 4 + 1.57 GB
    ("Qwen/Qwen2.5-7B-Instruct", "GPTQ-INT4", 5.58e9, 0.003),  # Qwen's own, 4 + 1.58 GB (g_idx left out)
    ("meta-llama/Llama-3.1-8B-Instruct", "FP8", 9.08e9, 0.002),  # neuralmagic, 5 + 4.08 GB
    ("meta-llama/Llama-3.1-8B-Instruct", "MLX-4BIT", 4.52e9, 0.002),  # mlx-community, one 4.52 GB file
    ("meta-llama/Llama-3.1-8B-Instruct", "MLX-8BIT", 8.53e9, 0.002),  # mlx-community, 5.36 + 3.17 GB
    # exact tensor bytes (model.safetensors.index.json metadata.total_size)
    ("meta-llama/Llama-3.3-70B-Instruct", "NVFP4", 42_709_045_632, 0.0002),  # nvidia/…-FP4 (ModelOpt)
    # gpt-oss as OpenAI publish it: MXFP4 experts, all else BF16 (what vLLM and SGLang load)
    ("openai/gpt-oss-20b", "BF16", 13_761_264_768, 0.002),
    ("openai/gpt-oss-120b", "BF16", 65_248_815_744, 0.002),
]


@pytest.mark.parametrize("model_id, quant, published, tolerance", PUBLISHED)
def test_published_repository_sizes(catalog, model_id, quant, published, tolerance):
    assert weights(catalog, catalog.model(model_id), quant) == pytest.approx(published, rel=tolerance)


def test_block_fp8_is_fp8_within_its_scales(catalog):
    """Block-wise FP8 (quant_method fp8, weight_block_size [128, 128]: Qwen's own *-FP8 and DeepSeek-V3)
    adds one scale per 128 × 128 block to per-tensor FP8's bytes. Qwen/Qwen3-8B-FP8's tensors (a public
    report of the downloaded files lists all 651 with shape and dtype: 8,191,159,296 parameters) come
    to 9,436,551,168 bytes: FP8 projections with BF16 weight_scale_inv of [out/128, in/128], BF16
    embeddings, head and norms. fitagent's FP8 reads it 0.003 % light."""
    q, kv, hidden, inter, vocab, layers = 4096, 1024, 4096, 12288, 151_936, 36
    projections = [
        (q, hidden),
        (kv, hidden),
        (kv, hidden),
        (hidden, q),
        (inter, hidden),
        (inter, hidden),
        (hidden, inter),
    ]
    fp8 = sum(o * i for o, i in projections)
    scales = sum(-(-o // 128) * -(-i // 128) for o, i in projections)
    norms = 2 * hidden + 2 * 128  # input and post-attention norms, q_norm and k_norm
    published = layers * (fp8 + 2 * scales + 2 * norms) + 2 * (2 * vocab * hidden) + 2 * hidden
    assert published == 9_436_551_168
    assert weights(catalog, catalog.model("Qwen/Qwen3-8B"), "FP8") == pytest.approx(published, rel=1e-4)


def test_nf4_layout(catalog, llama):
    """bitsandbytes NF4 with double quantization: 32 bytes of codes and an 8-bit absmax per 64 weights,
    an FP32 absmax per 256 such blocks; the embedding table and head stay BF16, the norms F32."""
    model, linear, table, norms = llama
    blocks = -(-linear // 16384)  # per tensor in the file; whole here, every matrix is a multiple of 16,384
    assert linear % 16384 == 0
    assert weights(catalog, model, "BNB-NF4") == blocks * 8452 + 2 * table * 2 + norms * 4


# turboderp's ExLlamaV2 branches (Hugging Face listings, decimal GB, rounded; the 70B the sum of its
# six shards): Llama-3-8B-Instruct-exl2 2.5 / 4.0 / 6.0 bpw, priced on Llama-3.1-8B (the same shapes),
# and Llama-3.1-70B-Instruct-exl2 5.0 bpw. Heads at 6 bits (convert.py's -hb default), embeddings FP16.
EXL2_PUBLISHED = [
    ("meta-llama/Llama-3.1-8B-Instruct", "EXL2-2.5", 3.65e9),
    ("meta-llama/Llama-3.1-8B-Instruct", "EXL2-4.0", 4.96e9),
    ("meta-llama/Llama-3.1-8B-Instruct", "EXL2-6.0", 6.70e9),
    ("meta-llama/Llama-3.1-70B-Instruct", "EXL2-5.0", 45.71e9),
]


@pytest.mark.parametrize("model_id, quant, published", EXL2_PUBLISHED)
def test_exllama_at_any_bits_per_weight(catalog, model_id, quant, published):
    q, note = catalog.resolve_quant(quant)
    assert q.format == "exl" and "bits per weight" in note
    # within 1 %: the branches' matrices land a little above their target average
    size = memory.weights(catalog.model(model_id).architecture, q, catalog.ggml_types).total_bytes
    assert size == pytest.approx(published, rel=0.01)


# ExLlamaV3's own size plots (turboderp-org/exllamav3 doc/exl3.md, doc/llama31_8b_instruct_vram.png and
# llama31_70b_instruct_vram.png, added in 543c4b2): "VRAM // GB (decoder + head)" of turboderp's EXL3
# branches of Llama-3.1-8B / 70B-Instruct at 2-8 bits per weight, head at 6 bits (H6), the embedding
# left out. Read off the plots by eye (±0.05 for 8B, ±0.3 for 70B); the axis is GiB (the 4.0 bpw
# 70B's 68.45 B body weights × 4 bits + the head at 6 come to 32.6 GiB, 35.0 GB). No EXL3 branch's
# file listing was found to check the bytes against.
EXL3_PLOTTED = [
    ("llama3.1-8b", 2.0, 2.0, 0.05),
    ("llama3.1-8b", 3.0, 2.8, 0.05),
    ("llama3.1-8b", 4.0, 3.6, 0.05),
    ("llama3.1-8b", 5.0, 4.4, 0.05),
    ("llama3.1-8b", 6.0, 5.25, 0.05),
    ("llama3.1-8b", 8.0, 6.87, 0.05),
    ("llama3.1-70b", 2.0, 16.7, 0.3),
    ("llama3.1-70b", 3.0, 24.6, 0.3),
    ("llama3.1-70b", 4.0, 32.6, 0.3),
    ("llama3.1-70b", 5.0, 40.6, 0.3),
    ("llama3.1-70b", 6.0, 48.6, 0.3),
]


@pytest.mark.parametrize("model_id, bits, plotted_gib, read_within", EXL3_PLOTTED)
def test_exl3_decoder_and_head_as_exllamav3_plots_them(catalog, model_id, bits, plotted_gib, read_within):
    split = memory.weights(
        catalog.model(model_id).architecture, catalog.resolve_quant(f"EXL3-{bits}")[0], catalog.ggml_types
    )
    assert (split.total_bytes - split.embedding_bytes) / 1024**3 == pytest.approx(plotted_gib, abs=read_within)


def test_exllama_requantizes_gpt_oss_experts(catalog):
    """gpt-oss keeps its MXFP4 experts in every GGUF and in its safetensors; an EXL2/EXL3 branch holds
    every matrix in ExLlama's own format at the branch's bits, so one more bit per weight costs a bit
    for every weight but the embedding table and the head (which keeps its 6 bits)."""
    model = catalog.model("gpt-oss-120b")
    a = model.architecture

    def size(q):
        return memory.weights(a, catalog.resolve_quant(q)[0], catalog.ggml_types).total_bytes

    body = model.params_total - 2 * a.vocab_size * a.hidden_size
    assert size("EXL3-4.0") - size("EXL3-3.0") == pytest.approx(body / 8, rel=0.01)
    assert size("EXL3-3.0") < 0.75 * size("MXFP4")


def test_exllama_names_and_limits(catalog):
    from fitagent.catalog.errors import UsageError

    assert catalog.resolve_quant("exl3_4.0bpw")[0].name == "EXL3-4.0"
    head8 = catalog.resolve_quant("EXL2-6.0-h8")[0]
    assert (head8.name, head8.output_type) == ("EXL2-6.0-H8", "EXL_8000")
    with pytest.raises(UsageError, match="from 2.0 to 8.0"):
        catalog.resolve_quant("EXL2-9")


def test_kernel_support_by_generation(catalog):
    """vLLM's supported-hardware table: GPTQ from Volta, AWQ from Turing, bitsandbytes on NVIDIA only;
    an FP8 mixture of experts from compute capability 8.9 (its fused-MoE kernels)."""
    from fitagent.estimator.budget import device_from_spec
    from fitagent.estimator.support import unsupported

    v100 = device_from_spec(catalog.gpu("Tesla V100-SXM2-32GB"))
    a100 = device_from_spec(catalog.gpu("A100-SXM4-80GB"))
    mi300 = device_from_spec(catalog.gpu("MI300X"))
    assert unsupported(catalog.quant("GPTQ-INT4"), v100) is None
    assert "7.5 or newer" in unsupported(catalog.quant("AWQ-INT4"), v100)
    assert "NVIDIA GPUs" in unsupported(catalog.quant("BNB-NF4"), mi300)
    assert unsupported(catalog.quant("FP8"), a100) is None
    assert "8.9" in unsupported(catalog.quant("FP8"), a100, moe=True)


def test_nvfp4_layout_and_where_it_runs(catalog, llama):
    """NVIDIA ModelOpt NVFP4: 4-bit codes and an FP8 scale per 16 weights (9 bytes per 16) in the
    blocks' linear layers; embeddings and head BF16, norms F32. FP4 tensor cores on Blackwell; vLLM's
    Marlin runs it weight-only from Ampere; NVIDIA only."""
    from fitagent.estimator.budget import device_from_spec
    from fitagent.estimator.support import caveat, unsupported

    model, linear, table, norms = llama
    quant = catalog.quant("NVFP4")
    assert weights(catalog, model, "NVFP4") == linear // 16 * 9 + 2 * table * 2 + norms * 4
    assert unsupported(quant, device_from_spec(catalog.gpu("RTX 5090"))) is None
    assert caveat(quant, device_from_spec(catalog.gpu("RTX 5090"))) is None
    assert "weight-only" in caveat(quant, device_from_spec(catalog.gpu("H100 80GB HBM3")))
    assert "NVIDIA's format" in unsupported(quant, device_from_spec(catalog.gpu("MI300X")))
    assert "8.0 or newer" in unsupported(quant, device_from_spec(catalog.gpu("RTX 2080 Ti")))


# turboderp/exllamav2 README at 01d01a1, "Performance": EXL2 single-stream tokens/s on an RTX 3090 Ti
# and an RTX 4090 (Llama2-7B at 3.0 / 4.0 / 5.0 bpw, TinyLlama at 3.0 / 4.0 bpw).
EXL2_SPEEDS = [
    ("meta-llama/Llama-2-7b-hf", "EXL2-3.0", 211, 245),
    ("meta-llama/Llama-2-7b-hf", "EXL2-4.0", 179, 207),
    ("meta-llama/Llama-2-7b-hf", "EXL2-5.0", 159, 170),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "EXL2-3.0", 623, 730),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "EXL2-4.0", 560, 643),
]


@pytest.mark.parametrize("model_id, quant, on_3090ti, on_4090", EXL2_SPEEDS)
def test_exllama_speed_is_its_bytes_at_the_gpus_pace(catalog, model_id, quant, on_3090ti, on_4090):
    """An EXL2 estimate prices its bytes with llama.cpp's CUDA decode constants (no ExLlama row is
    fitted): the README's own table lands within 15 % (median 6 %)."""
    from benchmarks.accuracy import bench_model
    from fitagent.estimator.budget import Budget, device_from_spec
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    model, q = bench_model(model_id, catalog), catalog.resolve_quant(quant)[0]
    for gpu, measured in (("RTX 3090 Ti", on_3090ti), ("RTX 4090", on_4090)):
        budget = Budget((device_from_spec(catalog.gpu(gpu)),), 512 * 2**30, 100e9, 16)
        e = estimate(model, q, budget, catalog, Options(context=2048, prompt_tokens=128, decode_depth=128))
        assert e.decode_tokens_per_s == pytest.approx(measured, rel=0.16)
