"""Memory of one (model, quantization, context): weights, KV cache, runtime overhead.

The default method: weights tensor by tensor in llama.cpp's per-tensor types; KV cache as
llama.cpp allocates it (context padded to 256 cells, sliding-window layers capped at the
window plus a micro-batch, latent attention caching one compressed vector per token);
overhead = runtime reserve + a compute buffer that grows with the micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .calibration import Calibration
from .catalog import Architecture, GgmlType, Quantization
from .errors import UsageError
from .quantmix import weights_breakdown

KV_TYPES = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}
KV_PAD = 256  # llama.cpp pads the KV cache to a multiple of 256 cells


@dataclass(frozen=True)
class WeightsSplit:
    total_bytes: int  # all tensors once: what the file holds
    per_layer_bytes: float  # one repeating block, averaged over the layers
    expert_bytes: int  # routed-expert tensors, all layers together
    embedding_bytes: int  # input embedding table: llama.cpp keeps it in host memory
    head_bytes: int  # output head + final norm, on the GPU once every layer is
    head_duplicate_bytes: int  # tied embeddings: llama.cpp loads the matrix again as the head

    @property
    def layers_bytes(self) -> int:
        return self.total_bytes - self.embedding_bytes - (self.head_bytes - self.head_duplicate_bytes)


def weights(arch: Architecture, quant: Quantization, ggml_types: Mapping[str, GgmlType]) -> WeightsSplit:
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
    if not arch.sliding_window_layers:
        return full, 0
    swa = min(full, pad(arch.sliding_window + n_ubatch))
    return full, swa


def kv_elements_per_cell(arch: Architecture) -> int:
    """K and V elements one token adds to one layer's cache."""
    if arch.uses_mla:
        # llama.cpp caches MLA's compressed latent and the shared RoPE key; V is a view of it.
        return arch.kv_lora_rank + arch.qk_rope_head_dim
    return 2 * arch.kv_heads * arch.head_dim


def kv_cache_bytes(arch: Architecture, context: int, bytes_per_element: float, n_ubatch: int = 512) -> int:
    full_cells, swa_cells = kv_cells(arch, context, n_ubatch)
    per_cell = kv_elements_per_cell(arch) * bytes_per_element
    full_layers = arch.layers - arch.sliding_window_layers
    return int(per_cell * (full_layers * full_cells + arch.sliding_window_layers * swa_cells))


def kv_bytes_read_per_token(arch: Architecture, context: int, bytes_per_element: float) -> float:
    """KV bytes one decode step reads at the given depth (sliding layers read at most the window)."""
    per_cell = kv_elements_per_cell(arch) * bytes_per_element
    full_layers = arch.layers - arch.sliding_window_layers
    swa_depth = min(context, arch.sliding_window or 0)
    return per_cell * (full_layers * context + arch.sliding_window_layers * swa_depth)


def compute_buffer_bytes(arch: Architecture, context: int, calibration: Calibration) -> int:
    """llama.cpp's compute buffer: activations of one micro-batch plus its logits (f32).

    With flash attention (llama.cpp's default where supported) the attention scores are
    never materialised, so the buffer grows with the micro-batch; only the KQ mask
    (n_ubatch × n_ctx, f16) grows with the context.
    """
    ub = calibration.n_ubatch
    widest = max(arch.intermediate_size, (arch.moe_intermediate_size or 0) * max(1, arch.experts_per_token))
    activations = ub * 4 * (arch.vocab_size + widest + 3 * arch.hidden_size)
    kq_mask = ub * pad(context) * 2
    return int(activations + kq_mask)


def overhead_bytes(arch: Architecture, context: int, calibration: Calibration, devices: int = 1) -> int:
    """Runtime reserve per GPU plus the compute buffer (one per GPU in a layer split)."""
    return devices * (calibration.runtime_reserve_bytes + compute_buffer_bytes(arch, context, calibration))
