"""--gguf FILE: a real (tiny) GGUF file written with the gguf package, read back header-only."""

import json

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from fitagent.agent.modelfiles import model_from_gguf_file  # noqa: E402
from fitagent.catalog.errors import UsageError  # noqa: E402
from fitagent.estimator.budget import Budget, device_from_spec  # noqa: E402
from fitagent.estimator.candidates import model_weights  # noqa: E402
from fitagent.estimator.estimate import estimate  # noqa: E402
from fitagent.estimator.results import Options  # noqa: E402

Q8_0 = gguf.GGMLQuantizationType.Q8_0


def write_llama(path, layers=2):
    """A 2-layer llama: hidden 64, FFN 128, 4 heads over 2 KV heads (head dim 16), vocab 100."""
    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(layers)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_context_length(2048)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("token_embd.weight", f32(100, 64).astype(np.float16))
    w.add_tensor("output_norm.weight", f32(64))
    w.add_tensor("output.weight", gguf.quants.quantize(f32(100, 64), Q8_0), raw_dtype=Q8_0)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(64))
        w.add_tensor(f"blk.{i}.attn_q.weight", gguf.quants.quantize(f32(64, 64), Q8_0), raw_dtype=Q8_0)
        w.add_tensor(f"blk.{i}.attn_k.weight", f32(32, 64).astype(np.float16))
        w.add_tensor(f"blk.{i}.attn_v.weight", f32(32, 64).astype(np.float16))
        w.add_tensor(f"blk.{i}.attn_output.weight", f32(64, 64).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", f32(64))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(128, 64).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f32(128, 64).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f32(64, 128).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_moe(path):
    """A 2-layer qwen3moe: 8 experts of width 32, 2 per token; experts stored as 3-D *_exps tensors."""
    rng = np.random.default_rng(1)

    def f16(*shape):
        return rng.standard_normal(shape).astype(np.float16)

    w = gguf.GGUFWriter(str(path), "qwen3moe")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_context_length(4096)
    w.add_expert_count(8)
    w.add_expert_used_count(2)
    w.add_expert_feed_forward_length(32)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("token_embd.weight", f16(100, 64))  # tied: no output.weight
    w.add_tensor("output_norm.weight", f16(64).astype(np.float32))
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_q.weight", f16(64, 64))
        w.add_tensor(f"blk.{i}.attn_k.weight", f16(64, 64))
        w.add_tensor(f"blk.{i}.attn_v.weight", f16(64, 64))
        w.add_tensor(f"blk.{i}.attn_output.weight", f16(64, 64))
        w.add_tensor(f"blk.{i}.ffn_gate_inp.weight", f16(8, 64).astype(np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate_exps.weight", f16(8, 32, 64))
        w.add_tensor(f"blk.{i}.ffn_up_exps.weight", f16(8, 32, 64))
        w.add_tensor(f"blk.{i}.ffn_down_exps.weight", f16(8, 64, 32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_exact_tensor_sizes_from_the_header(tmp_path, catalog):
    model = model_from_gguf_file(write_llama(tmp_path / "tiny.gguf"), catalog)
    # token_embd F16 100×64 = 12,800; output_norm F32 64 = 256; output Q8_0 6,400 values = 200 blocks
    # × 34 bytes = 6,800. Per layer: norms 2 × 256; attn_q Q8_0 4,096 values = 128 × 34 = 4,352;
    # k, v F16 2 × 4,096; o F16 8,192; gate, up, down F16 3 × 16,384 → 70,400 per layer.
    fw = model.file_weights
    assert fw.embedding_bytes == 12800
    assert fw.head_bytes == 256 + 6800
    assert fw.layers_bytes == 2 * (512 + 4352 + 4096 + 4096 + 8192 + 3 * 16384) == 140800
    assert fw.total_bytes == 160656 and not fw.tied and fw.file_type == "Q8_0"
    arch = model.architecture
    assert (arch.layers, arch.hidden_size, arch.attention_heads, arch.kv_heads, arch.head_dim, arch.vocab_size) == (
        2,
        64,
        4,
        2,
        16,
        100,
    )
    assert model.max_context == 2048 and model.id == "tiny-llama"
    # The estimate uses the file's bytes, not the per-type rules.
    split = model_weights(model, catalog.quant("Q8_0"), catalog)
    assert split.total_bytes == 160656 and split.per_layer_bytes == 70400


def test_kv_cache_from_the_header_metadata(tmp_path, catalog):
    model = model_from_gguf_file(write_llama(tmp_path / "tiny.gguf"), catalog)
    b = Budget((device_from_spec(catalog.gpu("RTX 4090")),), 64 * 2**30, 80e9, 8)
    est = estimate(model, catalog.quant("Q8_0"), b, catalog, Options(context=1024))
    # 2 layers × (2 × 2 KV heads × 16 dims) × 1024 cells × 2 bytes
    assert est.kv_cache_bytes == 2 * 64 * 1024 * 2 == 262144
    assert est.weights_bytes == 160656


def test_moe_file_counts_experts_and_tied_head(tmp_path, catalog):
    model = model_from_gguf_file(write_moe(tmp_path / "moe.gguf"), catalog)
    fw = model.file_weights
    # Per layer, experts: 3 tensors × 8 × 32 × 64 F16 values × 2 bytes = 98,304.
    assert fw.expert_bytes == 2 * 98304
    assert fw.tied and fw.file_type == "F16"
    arch = model.architecture
    assert (arch.experts, arch.experts_per_token, arch.moe_intermediate_size) == (8, 2, 32)
    # Active parameters: all but 6 of every 8 experts' 3 × 8 × 32 × 64 = 49,152 weights a layer.
    assert model.params_total - model.params_active == 2 * 49152 * 6 // 8


def test_cli_reads_the_file_and_takes_its_quantization(tmp_path, cli):
    path = write_llama(tmp_path / "tiny.gguf")
    out = cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["weights_bytes"] == 160656 and data["quant"] == "Q8_0" and data["context"] == 2048
    other = json.loads(cli("estimate", "--gguf", str(path), "--quant", "Q4_K_M", "--gpu", "RTX 4090", "--json").stdout)
    assert other["weights_bytes"] == 160656  # the file's bytes whatever --quant says
    assert any("exact sizes" in n for n in other["notes"])


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty file"),
        (b"not a gguf file at all", "GGUF magic invalid"),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path, cli, content, fragment):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    out = cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and fragment in out.stderr and "Traceback" not in out.stderr


def test_truncated_and_missing_files(tmp_path, catalog):
    whole = write_llama(tmp_path / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:200])
    with pytest.raises(UsageError, match="truncated or corrupt header"):
        model_from_gguf_file(cut, catalog)
    with pytest.raises(UsageError, match="no such file"):
        model_from_gguf_file(tmp_path / "absent.gguf", catalog)
    with pytest.raises(UsageError, match="directory"):
        model_from_gguf_file(tmp_path, catalog)


def test_split_files_bring_their_siblings(tmp_path, catalog):
    write_llama(tmp_path / "m-00001-of-00002.gguf")
    with pytest.raises(UsageError, match="m-00002-of-00002.gguf is not beside it"):
        model_from_gguf_file(tmp_path / "m-00001-of-00002.gguf", catalog)
