"""Memory of one (model, quantization, context): weights, KV cache, runtime overhead.

The default method: weights tensor by tensor in llama.cpp's per-tensor types; KV cache as
llama.cpp allocates it (context padded to 256 cells, sliding-window layers capped at the
window plus a micro-batch, latent attention caching one compressed vector per token);
overhead = runtime reserve + a compute buffer that grows with the micro-batch.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

from ..catalog.errors import UsageError
from ..catalog.types import Architecture, GgmlType, Quantization
from .calibration import Calibration
from .tensors import fused_qkv

KV_TYPES = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}
KV_PAD = 256  # llama.cpp pads the KV cache to a multiple of 256 cells


# WeightsSplit and KvLinear are namedtuples, not frozen dataclasses: the cached catalog holds a
# WeightsSplit for each of ~2,400 (model, quantization) pairs, and a namedtuple unpickles (and
# is defined at import) at a fraction of the cost, which every command pays at start-up.


class WeightsSplit(
    namedtuple(
        "WeightsSplit",
        (
            "total_bytes",  # all tensors once: what the file holds
            "per_layer_bytes",  # one repeating block, averaged over the layers
            "expert_bytes",  # routed-expert tensors, all layers together
            "embedding_bytes",  # input embedding table: llama.cpp keeps it in host memory
            "head_bytes",  # output head + final norm, on the GPU once every layer is
            "head_duplicate_bytes",  # tied embeddings: llama.cpp loads the matrix again as the head
        ),
    )
):
    """A model's weight bytes, grouped by where llama.cpp puts them."""

    __slots__ = ()

    @property
    def layers_bytes(self) -> int:
        return self.total_bytes - self.embedding_bytes - (self.head_bytes - self.head_duplicate_bytes)


def weights(arch: Architecture, quant: Quantization, ggml_types: Mapping[str, GgmlType]) -> WeightsSplit:
    # Imported here: the cached catalog has every candidate's weights sized (catalog.weights_table),
    # so most commands never size one, and need not load llama.cpp's type rules at start-up.
    from .quantmix import weights_breakdown

    total = layers = expert = embedding = head = 0
    for role, size, is_layer, is_expert in weights_breakdown(arch, quant, ggml_types):
        total += size
        if is_layer:
            layers += size
            expert += size if is_expert else 0
        elif role == "token_embd":
            embedding = size
        else:
            head += size
    duplicate = embedding if arch.tied_embeddings else 0
    return WeightsSplit(total, layers / arch.layers, expert, embedding, head + duplicate, duplicate)


def kv_bytes_per_element(kv_quant: str, ggml_types: Mapping[str, GgmlType]) -> float:
    try:
        t = ggml_types[KV_TYPES[kv_quant.lower()]]
    except KeyError:
        raise UsageError(f"unknown --kv-quant '{kv_quant}' (choose f16, q8_0 or q4_0)") from None
    return t.type_size / t.block_size


def pad(n: int, to: int = KV_PAD) -> int:
    return -(-n // to) * to


def kv_cells(arch: Architecture, context: int, n_ubatch: int) -> tuple[int, int]:
    """(cells in a full-attention layer, cells in a sliding-window layer)."""
    full = pad(context)
    if not arch.local_attention_layers:
        return full, 0
    assert arch.sliding_window is not None  # check_architecture: set wherever sliding_window_layers is
    swa = min(full, pad(arch.sliding_window + n_ubatch))
    return full, swa


def kv_elements_per_cell(arch: Architecture) -> int:
    """K and V elements one token adds to one layer's cache."""
    if arch.uses_mla:
        # llama.cpp caches MLA's compressed latent and the shared RoPE key; V is a view of it.
        assert arch.kv_lora_rank is not None and arch.qk_rope_head_dim is not None  # check_architecture
        return arch.kv_lora_rank + arch.qk_rope_head_dim
    return 2 * arch.kv_heads * arch.head_dim


class KvLinear(namedtuple("KvLinear", "full_per_cell swa_per_cell swa_cap_cells")):
    """The KV cache as a function of the padded context P: full_per_cell × P + swa_per_cell × min(P, swa_cap_cells).

    Bytes summed over all layers. Piecewise linear in P, which is what lets the longest
    context and the number of sessions that fit be solved in closed form (limits.py).
    """

    __slots__ = ()

    def bytes(self, cells: int) -> int:
        return int(self.full_per_cell * cells + self.swa_per_cell * min(cells, self.swa_cap_cells))


def kv_linear(
    arch: Architecture, bytes_per_element: float, n_ubatch: int = 512, sequences: int = 1, unified: bool = False
) -> KvLinear:
    """KV coefficients for `sequences` sequences sharing P cells in all (P: the padded total context).

    Two layouts, as llama.cpp's context chooses between them (llama_kv_cache_iswa):
    - separate streams (kv_unified off: llama.cpp's context default, and llama-server's with an explicit
      ``-np N``): each sequence gets P / N cells, and each stream's sliding-window layers keep their own
      window, pad(min(P / N, n_swa + n_ubatch)): N × pad(n_swa + n_ubatch) cells in all at most;
    - one unified cache (``-kvu``, llama-server's default when -np is left on auto): the sequences share
      P cells and one window of pad(n_swa × N + n_ubatch) cells.
    With one sequence the two are the same.
    """
    per_cell = kv_elements_per_cell(arch) * bytes_per_element
    swa_layers = arch.local_attention_layers
    if not swa_layers:
        cap = 0
    elif unified:
        cap = pad((arch.sliding_window or 0) * sequences + n_ubatch)
    else:
        cap = sequences * pad((arch.sliding_window or 0) + n_ubatch)
    return KvLinear(per_cell * (arch.layers - swa_layers), per_cell * swa_layers, cap)


def kv_cache_bytes(arch: Architecture, context: int, bytes_per_element: float, n_ubatch: int = 512) -> int:
    full_cells, swa_cells = kv_cells(arch, context, n_ubatch)
    per_cell = kv_elements_per_cell(arch) * bytes_per_element
    full_layers = arch.layers - arch.local_attention_layers
    return int(per_cell * (full_layers * full_cells + arch.local_attention_layers * swa_cells))


def kv_bytes_read_per_token(arch: Architecture, context: int, bytes_per_element: float) -> float:
    """KV bytes one decode step reads at the given depth (sliding layers read at most the window)."""
    per_cell = kv_elements_per_cell(arch) * bytes_per_element
    full_layers = arch.layers - arch.local_attention_layers
    swa_depth = min(context, arch.sliding_window or 0)
    return per_cell * (full_layers * context + arch.local_attention_layers * swa_depth)


def compute_buffer_bytes(arch: Architecture, context: int, calibration: Calibration, with_output: bool = True) -> int:
    """llama.cpp's compute buffer on one device: the largest set of f32 activations alive at once
    while one micro-batch (n_ubatch tokens) runs, plus the f16 KQ mask.

    ggml's allocator reuses memory between layers, so the buffer is the peak of the stages, not
    their sum: the FFN (gate and up outputs side by side); latent attention's (MLA) activations,
    which grow with the heads (mla_attention_floats); and, on the device that holds the output
    head, the logits of the whole micro-batch (vocab × n_ubatch f32; for Llama 3 that is 250 MiB,
    the bulk of the ~260 MiB llama.cpp reports for 8B) with what the allocator leaves below them
    (output_stage_floats). With flash attention (llama.cpp's default where supported) the
    attention scores are never materialised; only the mask (n_ubatch × context, f16) grows with
    the context. The same buffer is needed however few layers a GPU holds (llama.cpp#27953: "as
    long as there is at least a single complete layer of the model on the GPU it will usually
    need the same compute buffer").
    """
    ub = calibration.n_ubatch
    h = arch.hidden_size
    widest = max(arch.intermediate_size, (arch.moe_intermediate_size or 0) * max(1, arch.experts_per_token))
    ffn_stage = 2 * widest + 3 * h
    attention_stage = mla_attention_floats(arch)
    output_stage = output_stage_floats(arch) if with_output else 0
    kq_mask = ub * pad(context) * 2
    return int(ub * 4 * max(ffn_stage, attention_stage, output_stage) + kq_mask)


def output_stage_floats(arch: Architecture) -> int:
    """f32 values per token of the micro-batch at the output head: the logits, above the input
    embeddings and the output norm (2 × hidden). With a fused attn_qkv (Phi-3, phi-4) the
    allocator leaves two more hidden-size activations below them: the last layer's attention
    result and residual are placed at the start of the fused Q|K|V output's freed block, above the
    query copy and the previous layer's output, and the output norm reuses that place in place
    (measured with llama.cpp: +2 × hidden whatever the KV width, vocabulary or FFN width; with
    separate attn_q/k/v the same model peaks at vocab + 2 × hidden)."""
    return arch.vocab_size + (4 if fused_qkv(arch) else 2) * arch.hidden_size


def mla_attention_floats(arch: Architecture) -> int:
    """f32 values per token at the peak of one absorbed-MLA attention (llama.cpp's DeepSeek V2/V3
    path, the one with the latent KV cache): per head the query (qk_nope + qk_rope), the absorbed
    query with its RoPE part (kv_lora_rank + qk_rope), the latent attention output (kv_lora_rank)
    and its decompression by attn_v_b (v_head_dim), plus four hidden-size activations. (At the peak,
    the absorbed query's concatenation, ggml's allocator holds the absorbed query before and after
    it, the roped part, the query's freed block below them and three hidden-size activations, with
    smaller freed blocks between.) For DeepSeek-V3's 128 heads: 1,408 a head, 208,896 a token, 408 MiB
    at n_ubatch 512 plus the mask, llama.cpp's buffer to the MiB, as at 160 and 192 heads and half
    the hidden size; 3-4 % above it with half the qk_nope or v_head_dim. Far below the logits for
    DeepSeek-V2-Lite's 16 heads or Kimi-K2's 64."""
    if not arch.uses_mla:
        return 0
    rope, rank = arch.qk_rope_head_dim or 0, arch.kv_lora_rank or 0
    per_head = (arch.qk_nope_head_dim or 0) + rope + rank + rope + rank + (arch.v_head_dim or 0)
    return arch.attention_heads * per_head + 4 * arch.hidden_size


def overhead_bytes(arch: Architecture, context: int, calibration: Calibration, devices: int = 1) -> int:
    """Runtime reserve plus a compute buffer on each GPU used (the logits only on the last)."""
    if devices <= 0:
        return 0
    per_gpu = calibration.runtime_reserve_bytes + compute_buffer_bytes(arch, context, calibration, with_output=False)
    last = calibration.runtime_reserve_bytes + compute_buffer_bytes(arch, context, calibration)
    return (devices - 1) * per_gpu + last
