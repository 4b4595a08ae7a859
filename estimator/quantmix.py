"""Which ggml type each tensor gets in a llama.cpp file type, and what that weighs.

llama.cpp's ``llama_tensor_get_type`` (src/llama-quant.cpp) does not quantize every tensor
alike: Q4_K_M keeps the output head at Q6_K and gives attn_v / ffn_down Q6_K in the first
and last eighth of the layers and every third layer between; 1-D tensors and MoE routers
stay F32. Sizing a file with one average bits-per-weight misses those; these rules follow
the source so the estimate lands within a few percent of real GGUF files.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from .catalog import Architecture, GgmlType, Quantization
from .tensors import TensorGroup, tensor_groups

_IQ_LOW = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS"}

# When a row is not a whole number of 256-weight super-blocks, llama.cpp falls back to a
# 32-weight block type of similar size (the `convert_incompatible_tensor` switch).
_FALLBACK = {
    "Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL", "IQ4_XS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL",
    "IQ2_S": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL",
    "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of layers that get more bits: first and last eighth, every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@lru_cache(maxsize=256)
def _more_bits_layers(n: int) -> int:
    return sum(use_more_bits(i, n) for i in range(n))


def _split(n: int, upgraded: int, high: str, low: str) -> tuple[tuple[str, int], ...]:
    upgraded = max(0, min(n, upgraded))
    return tuple((t, c) for t, c in ((high, upgraded), (low, n - upgraded)) if c)


def _per_layer_types(group: TensorGroup, arch: Architecture, ftype: str, base: str) -> tuple[tuple[str, int], ...]:
    """(type, how many layers) for one per-layer tensor group under a GGUF file type."""
    n = group.count
    n_gqa = arch.attention_heads // max(1, arch.kv_heads)
    role = group.role
    if role == "ffn_gate_inp":
        return (("F32", n),)
    if role in ("attn_v",):
        if arch.experts == 8:
            return (("Q8_0", n),)
        if ftype == "Q2_K":
            t = "Q4_K" if (n_gqa >= 4 or arch.experts >= 4) else "Q3_K"
        elif ftype == "Q3_K_M":
            return _split(n, 2, "Q5_K", "Q4_K")
        elif ftype in ("IQ4_XS",) and n_gqa >= 4:
            t = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M"):
            return _split(n, _more_bits_layers(n), "Q6_K", base)
        elif ftype == "Q4_K_S":
            return _split(n, 4, "Q5_K", base)
        elif ftype == "IQ3_M" or (ftype in ("IQ3_XS", "IQ3_S") and n_gqa >= 4):
            t = "Q4_K"
        elif ftype in _IQ_LOW:
            t = "Q4_K" if n_gqa >= 4 else "Q2_K"
        else:
            t = base
        if arch.layers == 80 and t in ("Q3_K", "Q4_K"):
            t = "Q5_K"  # llama.cpp's 70B rule: attn_v is 8x smaller than attn_q, so spend more bits
        return ((t, n),)
    if role == "attn_k" and arch.experts == 8:
        return (("Q8_0", n),)
    if role in ("ffn_down", "ffn_down_exps", "ffn_down_shexp"):
        if ftype == "Q2_K":
            return (("Q3_K", n),)
        if ftype == "Q3_K_M":
            return _split(n, n // 16, "Q5_K", "Q4_K")
        if ftype in ("Q4_K_M", "Q5_K_M"):
            return _split(n, _more_bits_layers(n), "Q6_K", base)
        if ftype == "Q4_K_S":
            return _split(n, n // 8, "Q5_K", base)
        if ftype == "IQ3_M":
            return _split(n, n // 8, "Q4_K", base)
        return ((base, n),)
    if role == "attn_output":
        if arch.experts == 8 and ftype in ("Q2_K", "IQ3_XXS", "IQ3_S", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_S"):
            return (("Q5_K", n),)
        if ftype == "Q2_K":
            return (("Q3_K", n),)
        if ftype in ("IQ3_M", "Q3_K_M"):
            return (("Q4_K", n),)
        return ((base, n),)
    return ((base, n),)


def _global_type(group: TensorGroup, arch: Architecture, ftype: str, base: str) -> str:
    is_output = group.role == "output" or (group.role == "token_embd" and arch.tied_embeddings)
    if is_output:
        if group.row_size % 256:
            return "Q8_0"
        if ftype in _IQ_LOW:
            return "Q5_K"
        return base if base == "Q8_0" else "Q6_K"
    if group.role == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
    return base


def group_types(group: TensorGroup, arch: Architecture, quant: Quantization) -> tuple[tuple[str, int], ...]:
    """The ggml types a tensor group is stored in, with how many tensors get each."""
    if not group.matrix:
        return (("F32", group.count),)
    base = quant.base_type
    if quant.format != "gguf":
        # Plain float / FP8 checkpoints: every matrix in the one type (routers included).
        return ((base, group.count),)
    if quant.name == "MXFP4":
        # gpt-oss style files: routed experts in MXFP4, everything else at Q8_0.
        return (("MXFP4" if group.expert else "Q8_0", group.count),)
    if group.per_layer:
        types = _per_layer_types(group, arch, quant.name, base)
    else:
        types = ((_global_type(group, arch, quant.name, base), group.count),)
    return tuple((_fallback(t, group.row_size), c) for t, c in types)


def _fallback(type_name: str, row_size: int) -> str:
    if row_size % 256 and type_name in _FALLBACK:
        return _FALLBACK[type_name]
    return type_name


def _bytes(elements: int, t: GgmlType) -> int:
    return elements // t.block_size * t.type_size + (elements % t.block_size and t.type_size)


@lru_cache(maxsize=8192)
def _weights_breakdown_cached(arch: Architecture, quant: Quantization, types_key: tuple) -> tuple[tuple[str, int, bool, bool], ...]:
    types = dict(types_key)
    out = []
    for g in tensor_groups(arch):
        size = sum(_bytes(g.elements, types[t]) * c for t, c in group_types(g, arch, quant))
        out.append((g.role, size, g.per_layer, g.expert))
    return tuple(out)


def weights_breakdown(arch: Architecture, quant: Quantization, ggml_types: Mapping[str, GgmlType]):
    """((role, bytes, per_layer, expert), ...) for every tensor group of the model."""
    return _weights_breakdown_cached(arch, quant, tuple(sorted(ggml_types.items())))
