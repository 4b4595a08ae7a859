"""The weight tensors of a transformer, from its architecture.

One ``TensorGroup`` per kind of tensor (named as llama.cpp's GGUF files name them, so the
quantization mix rules in ``quantmix`` can key on them): its element count per layer and
the number of layers that carry it. Global tensors (embeddings, output head) have
``layers == 1`` and ``per_layer is False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..catalog.types import Architecture


@dataclass(frozen=True)
class TensorGroup:
    role: str  # llama.cpp tensor name stem: attn_q, ffn_down_exps, output, ...
    elements: int  # per layer (per tensor)
    count: int  # how many such tensors: layers carrying it, or 1 for global tensors
    row_size: int  # ne[0], the length quantization blocks run along
    per_layer: bool = True
    expert: bool = False  # routed-expert weights: only experts_per_token/experts are read per token
    matrix: bool = True  # 1-D tensors (norms, biases) stay F32 in every GGUF type
    start: int = 0  # index of the first layer carrying it (MoE tensors start after the dense layers)

    @property
    def total_elements(self) -> int:
        return self.elements * self.count


# Families whose routed experts are published in a low-bit type of their own, which every GGUF of
# them keeps whatever file type it is labelled with: convert_hf_to_gguf repacks gpt-oss's MXFP4
# expert blocks as they are (GptOssModel skips the dequantization other models get), so its F16,
# BF16 and Q8_0 files hold them in MXFP4, and the uploaders' Q2_K…Q6_K keep them there too (the
# published gpt-oss-20b Q4_K_M and Q8_0 hold 72 MXFP4 expert tensors, 11.6 and 12.1 GB, against
# 12.1 GB for the MXFP4 file; tests/data/measurements.csv).
NATIVE_EXPERT_TYPES = {"GptOssForCausalLM": "MXFP4"}


def native_expert_type(arch: Architecture) -> str | None:
    """The ggml type a model's routed experts keep in every file, or None where they follow the file type."""
    return NATIVE_EXPERT_TYPES.get(arch.hf_architecture or "") if arch.experts else None


# 1-D weights some families add to every layer (llama.cpp's loaders, src/models/<arch>.cpp; the
# converter writes them F32): Gemma 2 and 3 norm each block's output again (post_attention_norm,
# post_ffw_norm, hidden-size each), and Gemma 3, Qwen3 and Qwen3-VL (dense and MoE) norm the queries
# and keys per head (attn_q_norm, attn_k_norm, head_dim each).
_POST_NORMS = frozenset({"Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"})
_QK_NORMS = frozenset(
    {
        "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "Qwen3VLForConditionalGeneration",
        "Qwen3VLMoeForConditionalGeneration",
    }
)

# gpt-oss carries biases on the attention projections (q, k, v and output), the router and every
# expert's gate/up/down, plus one attention-sink logit per head: all 1-D (or per-expert rows of
# them), all F32 in every GGUF (1.09 MiB a layer; with them the tensors add up to the published
# 20,914,757,184 and 116,829,156,672 parameters exactly).
_GPT_OSS = "GptOssForCausalLM"


@lru_cache(maxsize=512)
def tensor_groups(arch: Architecture) -> tuple[TensorGroup, ...]:
    h, L = arch.hidden_size, arch.layers
    groups: list[TensorGroup] = [
        TensorGroup("token_embd", arch.vocab_size * h, 1, h, per_layer=False),
        TensorGroup("output_norm", h, 1, h, per_layer=False, matrix=False),
    ]
    if not arch.tied_embeddings:
        groups.append(TensorGroup("output", arch.vocab_size * h, 1, h, per_layer=False))

    groups += _attention_groups(arch)
    groups.append(TensorGroup("attn_norm", h, L, h, matrix=False))
    groups.append(TensorGroup("ffn_norm", h, L, h, matrix=False))
    if arch.hf_architecture in _POST_NORMS:
        # Gemma 2/3 normalise each block's output again before the residual add
        groups += [
            TensorGroup("post_attention_norm", h, L, h, matrix=False),
            TensorGroup("post_ffw_norm", h, L, h, matrix=False),
        ]
    if arch.hf_architecture in _QK_NORMS:
        # one RMS-norm weight per head dimension, shared by every head, for the queries and the keys
        groups += [
            TensorGroup("attn_q_norm", arch.head_dim, L, arch.head_dim, matrix=False),
            TensorGroup("attn_k_norm", arch.head_dim, L, arch.head_dim, matrix=False),
        ]

    dense_layers = arch.dense_layers if arch.is_moe else L
    if dense_layers:
        # llama.cpp's Phi-3 files fuse gate and up into one ffn_up of twice the width; same bytes.
        inter = arch.intermediate_size
        groups += [
            TensorGroup("ffn_gate", h * inter, dense_layers, h),
            TensorGroup("ffn_up", h * inter, dense_layers, h),
            TensorGroup("ffn_down", inter * h, dense_layers, inter),
        ]
    if arch.is_moe:
        moe_layers = arch.moe_layers
        expert_inter = arch.moe_intermediate_size or arch.intermediate_size
        per_expert = h * expert_inter
        first = arch.dense_layers
        groups += [
            TensorGroup("ffn_gate_inp", h * arch.experts, moe_layers, h, start=first),
            TensorGroup("ffn_gate_exps", per_expert * arch.experts, moe_layers, h, expert=True, start=first),
            TensorGroup("ffn_up_exps", per_expert * arch.experts, moe_layers, h, expert=True, start=first),
            TensorGroup("ffn_down_exps", per_expert * arch.experts, moe_layers, expert_inter, expert=True, start=first),
        ]
        if arch.hf_architecture == _GPT_OSS:
            groups += [
                TensorGroup("ffn_gate_inp_bias", arch.experts, moe_layers, arch.experts, matrix=False, start=first),
                # each expert's gate, up and down bias: read only for the experts a token is routed to
                TensorGroup(
                    "ffn_exps_bias",
                    arch.experts * (2 * expert_inter + h),
                    moe_layers,
                    expert_inter,
                    expert=True,
                    matrix=False,
                    start=first,
                ),
            ]
        shared_inter = shared_expert_width(arch)
        if shared_inter:
            groups += [
                TensorGroup("ffn_gate_shexp", h * shared_inter, moe_layers, h, start=first),
                TensorGroup("ffn_up_shexp", h * shared_inter, moe_layers, h, start=first),
                TensorGroup("ffn_down_shexp", shared_inter * h, moe_layers, shared_inter, start=first),
            ]
    return tuple(groups)


def shared_expert_width(arch: Architecture) -> int:
    """Intermediate width of a MoE layer's shared expert(s), 0 where there is none."""
    if not arch.experts:
        return 0
    expert_inter = arch.moe_intermediate_size or arch.intermediate_size
    return arch.shared_expert_intermediate_size or (expert_inter * arch.shared_experts if arch.shared_experts else 0)


# Architectures whose llama.cpp GGUF keeps Q, K and V in one attn_qkv tensor (convert_hf_to_gguf
# writes Phi-3's qkv_proj as is). It matters for size: the quantizer has its own rule for attn_qkv
# (quantmix: the older one, which the published files follow), and for the compute buffer (memory).
_FUSED_QKV = ("Phi3ForCausalLM",)


def fused_qkv(arch: Architecture) -> bool:
    return arch.hf_architecture in _FUSED_QKV


def _attention_groups(arch: Architecture) -> list[TensorGroup]:
    h, L = arch.hidden_size, arch.layers
    if arch.uses_mla:
        # check_architecture requires all four with kv_lora_rank
        assert arch.kv_lora_rank is not None and arch.qk_rope_head_dim is not None
        assert arch.qk_nope_head_dim is not None and arch.v_head_dim is not None
        qk_head = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        heads = arch.attention_heads
        groups = []
        if arch.q_lora_rank:
            groups += [
                TensorGroup("attn_q_a", h * arch.q_lora_rank, L, h),
                TensorGroup("attn_q_a_norm", arch.q_lora_rank, L, arch.q_lora_rank, matrix=False),
                TensorGroup("attn_q_b", arch.q_lora_rank * heads * qk_head, L, arch.q_lora_rank),
            ]
        else:
            groups.append(TensorGroup("attn_q", h * heads * qk_head, L, h))
        rank, nope = arch.kv_lora_rank, arch.qk_nope_head_dim
        groups += [
            TensorGroup("attn_kv_a_mqa", h * (rank + arch.qk_rope_head_dim), L, h),
            TensorGroup("attn_kv_a_norm", rank, L, rank, matrix=False),
            # The latent's up-projection, as convert_hf_to_gguf writes it since llama.cpp's absorbed-MLA
            # rework (April 2025): kv_b split into attn_k_b, {nope, rank, heads} (rows of qk_nope_head_dim,
            # 128, which no 256-block type divides: Q4_K falls back to Q5_0, Q6_K to Q8_0), and attn_v_b,
            # {rank, v_head_dim, heads}. llama.cpp needs the split for MLA, the latent KV cache fitagent
            # sizes (kv_elements_per_cell); an older file's single attn_kv_b loads as plain multi-head
            # attention, with a per-head cache.
            TensorGroup("attn_k_b", nope * rank * heads, L, nope),
            TensorGroup("attn_v_b", rank * arch.v_head_dim * heads, L, rank),
            TensorGroup("attn_output", heads * arch.v_head_dim * h, L, heads * arch.v_head_dim),
        ]
        return groups
    q_dim = arch.attention_heads * arch.head_dim
    kv_dim = arch.kv_heads * arch.head_dim
    if fused_qkv(arch):
        groups = [TensorGroup("attn_qkv", h * (q_dim + 2 * kv_dim), L, h)]
    else:
        groups = [
            TensorGroup("attn_q", h * q_dim, L, h),
            TensorGroup("attn_k", h * kv_dim, L, h),
            TensorGroup("attn_v", h * kv_dim, L, h),
        ]
    groups.append(TensorGroup("attn_output", q_dim * h, L, q_dim))
    gpt_oss = arch.hf_architecture == _GPT_OSS
    if arch.attention_bias or gpt_oss:
        groups.append(TensorGroup("attn_bias", q_dim + 2 * kv_dim, L, q_dim, matrix=False))
    if gpt_oss:
        groups += [
            TensorGroup("attn_output_bias", h, L, h, matrix=False),
            TensorGroup("attn_sinks", arch.attention_heads, L, arch.attention_heads, matrix=False),
        ]
    return groups


def parameter_count(arch: Architecture) -> int:
    return sum(g.total_elements for g in tensor_groups(arch))


def active_parameter_count(arch: Architecture) -> int:
    """Parameters touched per token: routed experts count only experts_per_token of experts."""
    total = 0
    for g in tensor_groups(arch):
        if g.role == "token_embd" and not arch.tied_embeddings:
            continue  # a lookup reads one row; tied, the same matrix is read whole as the output head
        if g.expert:
            total += g.total_elements * arch.experts_per_token // arch.experts
        else:
            total += g.total_elements
    return total


def routed_active_parameter_count(arch: Architecture) -> int:
    """Routed-expert parameters one token passes through (experts_per_token of experts)."""
    if not arch.experts:
        return 0
    routed = sum(g.total_elements for g in tensor_groups(arch) if g.expert)
    return routed * arch.experts_per_token // arch.experts
