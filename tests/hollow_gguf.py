"""Hollow GGUF files: the header and tensor table of a real model, and no weights.

A hollow file is what llama.cpp needs to load a model and report what it allocates: every
tensor its loader asks for, with the name, shape and ggml type it expects for the
architecture, and the hyper-parameters its loader reads. The tensor data is a sparse,
zero-filled region (the file is extended with ``truncate``, so a multi-GB model takes no
disk): zero bytes are a valid block in every ggml type, so llama.cpp can even run the model
(it computes on zeros at full cost, which is what a speed test wants).

The tensor types are fitagent's own prediction (estimator/quantmix.py, per layer), so
llama.cpp's model buffer can be compared with fitagent's weight figure for the same
(model, quantization). Tensors llama.cpp loads that fitagent's tensor groups do not model
(post-norms, Q/K norms, biases, attention sinks, ...) are written too, as the converter
writes them (F32), and listed in ``HollowModel.unmodelled``.

    from hollow_gguf import write_hollow_gguf   # tests/ is on sys.path under pytest
    hollow = write_hollow_gguf(tmp_path / "m.gguf", catalog.model("gemma-2-2b-it"),
                               catalog.quant("Q4_K_M"), catalog)

Tensor names and shapes follow llama.cpp's loaders (src/models/<arch>.cpp, names in
src/llama-arch.cpp) and the metadata keys its hparams loader requires; the vocabulary is
``tokenizer.ggml.model = "none"`` plus ``<arch>.vocab_size`` (llama.cpp then adds as many
dummy tokens, src/llama-vocab.cpp).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from fitagent.catalog.types import Architecture, Catalog, Model, Quantization
from fitagent.estimator import quantmix
from fitagent.estimator.tensors import TensorGroup, tensor_groups

# Hugging Face class → llama.cpp's GGUF architecture name.
GGUF_ARCH = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "MixtralForCausalLM": "llama",  # llama.cpp's llama loader, with ffn_gate_inp and *_exps
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "Qwen3MoeForCausalLM": "qwen3moe",
    "GptOssForCausalLM": "gpt-oss",
    "DeepseekV2ForCausalLM": "deepseek2",
    "DeepseekV3ForCausalLM": "deepseek2",
    "Phi3ForCausalLM": "phi3",
}

# Which layers llama.cpp runs with a sliding window when the file does not list them
# (llama_model_base::load_swa_pattern: layer il is SWA when il % period < period - 1).
_SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2}

ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT  # 32: every tensor's data starts on it


def swa_layers(gguf_arch: str, layers: int) -> int:
    period = _SWA_PERIOD.get(gguf_arch)
    if period is None:
        return 0
    return sum(1 for il in range(layers) if il % period < period - 1)


def is_swa_layer(gguf_arch: str, il: int) -> bool:
    period = _SWA_PERIOD.get(gguf_arch)
    return period is not None and il % period < period - 1


@dataclass(frozen=True)
class HollowTensor:
    name: str
    ne: tuple[int, ...]  # ggml order: ne[0] (the row, along which blocks run) first
    type_name: str  # ggml type, as the catalog names it (Q4_K, F32, MXFP4, ...)
    role: str | None  # the fitagent tensor group it stands for; None: one fitagent does not model

    @property
    def ggml_type(self) -> gguf.GGMLQuantizationType:
        return gguf.GGMLQuantizationType[self.type_name]

    @property
    def elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        block, size = gguf.GGML_QUANT_SIZES[self.ggml_type]
        if self.ne[0] % block:
            raise ValueError(f"{self.name}: row of {self.ne[0]} is not a whole number of {self.type_name} blocks")
        return self.elements // block * size


@dataclass(frozen=True)
class HollowModel:
    path: Path
    gguf_arch: str
    architecture: Architecture  # the one written (layers possibly shrunk)
    quant: Quantization
    tensors: tuple[HollowTensor, ...]
    data_offset: int  # where tensor data starts in the file

    @property
    def tensor_bytes(self) -> int:
        """All tensors' bytes, as a GGUF header sums them (what fitagent --gguf reads)."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def data_bytes(self) -> int:
        """The data section: every tensor padded to the alignment (what llama.cpp maps)."""
        return sum(_pad(t.nbytes) for t in self.tensors)

    @property
    def unmodelled(self) -> tuple[HollowTensor, ...]:
        return tuple(t for t in self.tensors if t.role is None)

    @property
    def unmodelled_bytes(self) -> int:
        return sum(t.nbytes for t in self.unmodelled)

    def type_counts(self) -> Counter:
        return Counter(t.type_name for t in self.tensors)


def _pad(n: int, to: int = ALIGNMENT) -> int:
    return -(-n // to) * to


# ---------------------------------------------------------------- shapes


def shrink(arch: Architecture, layers: int, gguf_arch: str | None = None) -> Architecture:
    """The same model with fewer repeating layers (sliding-window and dense-lead counts follow)."""
    gguf_arch = gguf_arch or gguf_arch_of(arch)
    if layers >= arch.layers:
        return arch
    window_layers = swa_layers(gguf_arch, layers) if arch.sliding_window_layers else 0
    if gguf_arch == "phi3":
        window_layers = layers if arch.sliding_window_layers else 0  # written, ignored by llama.cpp and fitagent
    dense = min(arch.dense_layers, max(0, layers - 1)) if arch.experts else 0
    return dataclasses.replace(arch, layers=layers, sliding_window_layers=window_layers, dense_layers=dense)


def gguf_arch_of(arch: Architecture) -> str:
    try:
        return GGUF_ARCH[arch.hf_architecture]
    except KeyError:
        raise ValueError(
            f"no hollow-GGUF layout for {arch.hf_architecture!r} (known: {', '.join(sorted(GGUF_ARCH))})"
        ) from None


class _Typer:
    """fitagent's ggml type for one tensor: quantmix.group_types of a one-tensor group (the
    per-layer rule at that layer, or the global-tensor rule; the row-size fallback; F32 for 1-D
    groups; experts that keep a native type), exactly as its weight estimate types the group."""

    def __init__(self, arch: Architecture, quant: Quantization):
        self.arch, self.quant = arch, quant
        self.groups = {g.role: g for g in tensor_groups(arch)}

    def role(self, *candidates: str) -> str | None:
        """The first of these fitagent tensor-group roles the architecture has (None: unmodelled)."""
        return next((r for r in candidates if r in self.groups), None)

    def __call__(self, role: str, il: int | None, row: int) -> str:
        g = self.groups[role]
        one = TensorGroup(
            role, 0, 1, row, per_layer=g.per_layer, expert=g.expert, matrix=g.matrix, start=il if g.per_layer else 0
        )
        ((type_name, _),) = quantmix.group_types(one, self.arch, self.quant)
        return type_name


def tensor_plan(arch: Architecture, quant: Quantization, gguf_arch: str | None = None) -> list[HollowTensor]:
    """Every tensor llama.cpp's loader for this architecture reads, in file order. A tensor is
    tagged with the fitagent tensor group that stands for it (and typed by it) when fitagent
    has one; the others are written F32, as the converter writes norms and biases."""
    gguf_arch = gguf_arch or gguf_arch_of(arch)
    typed = _Typer(arch, quant)
    role_of = typed.role
    h, L, V = arch.hidden_size, arch.layers, arch.vocab_size
    out: list[HollowTensor] = []

    def add(name: str, ne: tuple[int, ...], role: str | None, il: int | None = None) -> None:
        type_name = typed(role, il, ne[0]) if role else "F32"
        out.append(HollowTensor(name.format(il=il), tuple(ne), type_name, role))

    add("token_embd.weight", (h, V), "token_embd")
    if gguf_arch == "llama" and V >= 128000:
        add("rope_freqs.weight", (arch.head_dim // 2,), role_of("rope_freqs"))  # Llama 3.x's rope scaling factors

    heads, kv, hd = arch.attention_heads, arch.kv_heads, arch.head_dim
    q_dim, kv_dim = heads * hd, kv * hd
    for il in range(L):
        b = "blk.{il}."
        add(b + "attn_norm.weight", (h,), "attn_norm", il)
        if gguf_arch == "deepseek2":
            _deepseek2_attention(add, arch, il)
        elif gguf_arch == "phi3":
            add(b + "attn_qkv.weight", (h, q_dim + 2 * kv_dim), "attn_qkv", il)
            add(b + "attn_output.weight", (q_dim, h), "attn_output", il)
        else:
            add(b + "attn_q.weight", (h, q_dim), "attn_q", il)
            add(b + "attn_k.weight", (h, kv_dim), "attn_k", il)
            add(b + "attn_v.weight", (h, kv_dim), "attn_v", il)
            if arch.attention_bias or gguf_arch == "gpt-oss":
                bias = role_of("attn_bias")  # one fitagent group for the three
                add(b + "attn_q.bias", (q_dim,), bias, il)
                add(b + "attn_k.bias", (kv_dim,), bias, il)
                add(b + "attn_v.bias", (kv_dim,), bias, il)
            add(b + "attn_output.weight", (q_dim, h), "attn_output", il)
            if gguf_arch == "gpt-oss":
                add(b + "attn_output.bias", (h,), role_of("attn_output_bias"), il)
                add(b + "attn_sinks.weight", (heads,), role_of("attn_sinks"), il)
            if gguf_arch in ("gemma3", "qwen3", "qwen3moe"):
                add(b + "attn_q_norm.weight", (hd,), role_of("attn_q_norm"), il)
                add(b + "attn_k_norm.weight", (hd,), role_of("attn_k_norm"), il)
        if gguf_arch in ("gemma2", "gemma3"):
            add(b + "post_attention_norm.weight", (h,), role_of("attn_post_norm", "post_attention_norm"), il)
        # gpt-oss calls its pre-FFN norm post_attention_norm; fitagent's ffn_norm.
        add(b + ("post_attention_norm.weight" if gguf_arch == "gpt-oss" else "ffn_norm.weight"), (h,), "ffn_norm", il)

        dense = il < arch.dense_layers or not arch.experts
        if dense:
            inter = arch.intermediate_size
            if gguf_arch == "phi3":
                # gate and up fused in one ffn_up of twice the width (fitagent: two groups, same type)
                add(b + "ffn_up.weight", (h, 2 * inter), "ffn_up", il)
            else:
                add(b + "ffn_gate.weight", (h, inter), "ffn_gate", il)
                add(b + "ffn_up.weight", (h, inter), "ffn_up", il)
            add(b + "ffn_down.weight", (inter, h), "ffn_down", il)
        else:
            E, ff = arch.experts, arch.moe_intermediate_size or arch.intermediate_size
            add(b + "ffn_gate_inp.weight", (h, E), "ffn_gate_inp", il)
            if gguf_arch == "gpt-oss":
                add(b + "ffn_gate_inp.bias", (E,), role_of("ffn_gate_inp_bias"), il)
            add(b + "ffn_gate_exps.weight", (h, ff, E), "ffn_gate_exps", il)
            add(b + "ffn_up_exps.weight", (h, ff, E), "ffn_up_exps", il)
            add(b + "ffn_down_exps.weight", (ff, h, E), "ffn_down_exps", il)
            if gguf_arch == "gpt-oss":
                exps_bias = role_of("ffn_exps_bias")  # one fitagent group for the three
                add(b + "ffn_gate_exps.bias", (ff, E), exps_bias, il)
                add(b + "ffn_up_exps.bias", (ff, E), exps_bias, il)
                add(b + "ffn_down_exps.bias", (h, E), exps_bias, il)
            shared = arch.shared_expert_intermediate_size or ff * arch.shared_experts
            if shared:
                add(b + "ffn_gate_shexp.weight", (h, shared), "ffn_gate_shexp", il)
                add(b + "ffn_up_shexp.weight", (h, shared), "ffn_up_shexp", il)
                add(b + "ffn_down_shexp.weight", (shared, h), "ffn_down_shexp", il)
        if gguf_arch in ("gemma2", "gemma3"):
            add(b + "post_ffw_norm.weight", (h,), role_of("ffn_post_norm", "post_ffw_norm"), il)

    if not arch.tied_embeddings:
        add("output.weight", (h, V), "output")
    # Last, and never repacked: llama.cpp's mapped CPU buffer then spans the whole data section.
    add("output_norm.weight", (h,), "output_norm")
    return out


def _deepseek2_attention(add, arch: Architecture, il: int) -> None:
    """MLA as the current converter writes it: attn_kv_b split into attn_k_b (transposed, per
    head) and attn_v_b, which llama.cpp's absorbed-MLA path needs (fitagent's groups of the same names)."""
    b = "blk.{il}."
    h, heads = arch.hidden_size, arch.attention_heads
    rope, nope, v_dim, rank = arch.qk_rope_head_dim, arch.qk_nope_head_dim, arch.v_head_dim, arch.kv_lora_rank
    if arch.q_lora_rank:
        add(b + "attn_q_a_norm.weight", (arch.q_lora_rank,), "attn_q_a_norm", il)
        add(b + "attn_q_a.weight", (h, arch.q_lora_rank), "attn_q_a", il)
        add(b + "attn_q_b.weight", (arch.q_lora_rank, heads * (nope + rope)), "attn_q_b", il)
    else:
        add(b + "attn_q.weight", (h, heads * (nope + rope)), "attn_q", il)
    add(b + "attn_kv_a_norm.weight", (rank,), "attn_kv_a_norm", il)
    add(b + "attn_kv_a_mqa.weight", (h, rank + rope), "attn_kv_a_mqa", il)
    add(b + "attn_k_b.weight", (nope, rank, heads), "attn_k_b", il)
    add(b + "attn_v_b.weight", (rank, v_dim, heads), "attn_v_b", il)
    add(b + "attn_output.weight", (heads * v_dim, h), "attn_output", il)


# ---------------------------------------------------------------- metadata


def _file_type(quant: Quantization) -> gguf.LlamaFileType | None:
    name = quant.rules if quant.format == "gguf" else quant.name
    for prefix in ("MOSTLY_", "ALL_"):
        member = getattr(gguf.LlamaFileType, prefix + name, None)
        if member is not None:
            return member
    if name == "MXFP4":
        return gguf.LlamaFileType.MOSTLY_MXFP4_MOE
    return None


def _metadata(
    w: gguf.GGUFWriter, arch: Architecture, gguf_arch: str, quant: Quantization, name: str, context_length: int
) -> None:
    w.add_name(name)
    ft = _file_type(quant)
    if ft is not None:
        w.add_file_type(ft)
    w.add_context_length(context_length)
    w.add_embedding_length(arch.hidden_size)
    w.add_block_count(arch.layers)
    w.add_head_count(arch.attention_heads)
    w.add_layer_norm_rms_eps(1e-6 if gguf_arch.startswith("gemma") or gguf_arch == "deepseek2" else 1e-5)
    w.add_vocab_size(arch.vocab_size)
    w.add_tokenizer_model("none")
    w.add_feed_forward_length(arch.intermediate_size)
    if arch.experts:
        w.add_expert_count(arch.experts)
        w.add_expert_used_count(arch.experts_per_token)
        w.add_expert_feed_forward_length(arch.moe_intermediate_size or arch.intermediate_size)

    if gguf_arch == "deepseek2":
        rank, rope = arch.kv_lora_rank, arch.qk_rope_head_dim
        w.add_head_count_kv(1)  # MLA is written as MQA with one wide head
        w.add_kv_lora_rank(rank)
        if arch.q_lora_rank:
            w.add_q_lora_rank(arch.q_lora_rank)
        elif arch.layers not in (26, 27):
            # llama.cpp reads q_lora_rank unless the layer count says "Lite"; 0 means none
            w.add_q_lora_rank(0)
        w.add_key_length(rank + rope)
        w.add_value_length(rank)
        w.add_key_length_mla(arch.qk_nope_head_dim + rope)
        w.add_value_length_mla(arch.v_head_dim)
        w.add_rope_dimension_count(rope)
        w.add_leading_dense_block_count(arch.dense_layers)
        w.add_expert_shared_count(arch.shared_experts)
        w.add_expert_weights_scale(1.0)
        w.add_rope_freq_base(10000.0)
        return

    w.add_head_count_kv(arch.kv_heads)
    if arch.head_dim != arch.hidden_size // arch.attention_heads:
        w.add_key_length(arch.head_dim)
        w.add_value_length(arch.head_dim)
    if gguf_arch == "phi3":
        w.add_rope_dimension_count(arch.head_dim)
    if arch.sliding_window and (arch.sliding_window_layers or gguf_arch == "phi3"):
        w.add_sliding_window(arch.sliding_window)
    if gguf_arch == "gemma2":
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    if gguf_arch == "gemma3":
        w.add_rope_freq_base(1_000_000.0)
        w.add_rope_freq_base_swa(10_000.0)
    elif gguf_arch == "gpt-oss":
        w.add_rope_freq_base(150_000.0)
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(32.0)
        w.add_rope_scaling_orig_ctx_len(4096)
    elif gguf_arch in ("llama", "qwen2", "qwen3", "qwen3moe"):
        w.add_rope_freq_base(500_000.0 if arch.vocab_size >= 128000 and gguf_arch == "llama" else 1_000_000.0)


# ---------------------------------------------------------------- writing


def write_hollow_gguf(
    path: str | os.PathLike,
    model: Model | Architecture,
    quant: Quantization,
    catalog: Catalog | None = None,
    *,
    layers: int | None = None,
    name: str | None = None,
    context_length: int | None = None,
    converted: bool = False,
) -> HollowModel:
    """Write a hollow GGUF of a catalog Model (or a bare Architecture) at a quantization.

    layers: keep only this many repeating layers (the rest of the shapes stay the model's).
    The file's tensor types are fitagent's own per-tensor prediction for the written shapes.
    converted: a float quantization (F16, BF16) as convert_hf_to_gguf.py writes it, the
    input of llama.cpp's quantizer: MoE routers stay F32 there.
    catalog: if given, its ggml type table is checked against the gguf package's.
    """
    path = Path(path)
    arch = model.architecture if isinstance(model, Model) else model
    gguf_arch = gguf_arch_of(arch)
    if layers is not None:
        arch = shrink(arch, layers, gguf_arch)
    if name is None:
        name = model.id if isinstance(model, Model) else f"hollow-{gguf_arch}"
        if layers is not None and isinstance(model, Model) and layers < model.architecture.layers:
            name += f" ({arch.layers} layers)"
    if context_length is None:
        context_length = model.max_context if isinstance(model, Model) else 4096
    tensors = tensor_plan(arch, quant, gguf_arch)
    if converted:
        if quant.format != "float":
            raise ValueError(f"converted=True is for a float file (F16, BF16), not {quant.name}")
        tensors = [dataclasses.replace(t, type_name="F32") if t.role == "ffn_gate_inp" else t for t in tensors]
    if catalog is not None:
        _check_type_table(tensors, catalog)

    w = gguf.GGUFWriter(str(path), gguf_arch)
    _metadata(w, arch, gguf_arch, quant, name, context_length)
    for t in tensors:
        # numpy order (outermost first); a non-uint8 dtype with raw_dtype keeps the shape as given
        w.add_tensor_info(t.name, tuple(reversed(t.ne)), np.dtype(np.float32), t.nbytes, raw_dtype=t.ggml_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())
    data_offset = fout.tell()
    w.close()
    hollow = HollowModel(path, gguf_arch, arch, quant, tuple(tensors), data_offset)
    # the data section: sparse zeros (ftruncate extends a file with a hole)
    os.truncate(path, data_offset + hollow.data_bytes)
    return hollow


def _check_type_table(tensors, catalog: Catalog) -> None:
    for type_name in {t.type_name for t in tensors}:
        mine = catalog.ggml_types[type_name]
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
        if (mine.block_size, mine.type_size) != (block, size):
            raise AssertionError(f"catalog's {type_name} is {mine.block_size}/{mine.type_size}, ggml's {block}/{size}")


# ---------------------------------------------------------------- fitagent's side


def fitagent_type_tally(arch: Architecture, quant: Quantization) -> dict[str, Counter]:
    """Per fitagent tensor group: how many tensors of each type quantmix predicts."""
    return {g.role: Counter(dict(quantmix.group_types(g, arch, quant))) for g in tensor_groups(arch)}


def hollow_type_tally(hollow: HollowModel) -> dict[str, Counter]:
    """The same tally over the hollow file's tensors (only the tensors fitagent models)."""
    tally: dict[str, Counter] = {}
    for t in hollow.tensors:
        if t.role is not None:
            tally.setdefault(t.role, Counter())[t.type_name] += 1
    return tally
