"""Which ggml type each tensor gets in a llama.cpp file type, and what that weighs.

llama.cpp's ``llama_tensor_get_type_impl`` (src/llama-quant.cpp) does not quantize every
tensor alike: Q4_K_M keeps the output head at Q6_K and gives attn_v / ffn_down Q6_K in the
first and last eighth of the layers and every third layer between; 8-expert models keep
attn_k / attn_v at Q8_0; 1-D tensors and MoE routers stay F32. Sizing a file with one average
bits-per-weight misses those; the rules below follow that function branch by branch, so the
estimate lands within a fraction of a percent of real GGUF files (docs/accuracy.md).

Each per-layer rule is a tuple of (layer predicate, type) tried in order — the first that
holds for layer i of n decides — so a tensor group's type counts come from a cached count
over its layer range rather than a per-candidate loop.

Models whose routed experts are published in a low-bit type of their own (gpt-oss: MXFP4) keep
them in it in every file, whatever type the file is labelled with (tensors.native_expert_type);
the other tensors follow the file type's rules as for any model.

Files are assumed to be quantized with an importance matrix, as the main uploaders'
(bartowski, unsloth, mradermacher i1) are: it decides three small branches (Q4_0/Q5_0
ffn_down in the first eighth, IQ3_XXS attn_v, IQ4 ffn_down).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from ..catalog.types import Architecture, GgmlType, Quantization
from .tensors import TensorGroup, native_expert_type, shared_expert_width, tensor_groups

HAS_IMATRIX = True

# llama.cpp's first "IQ2 and below" branch: these file types have their own attn_v / ffn_down
# / attn_output rules and skip the general ones (the 70B attn_v bump included).
_IQ2_FAMILY = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M"}
_IQ2_S_OR_M = {"IQ2_S", "IQ2_M"}

# `tensor_type_fallback`: a row that is not a whole number of blocks of the chosen type
# falls back to a 32-weight block type (a 256-block type whose row fails).
_FALLBACK = {
    "IQ1_S": "IQ4_NL",
    "IQ1_M": "IQ4_NL",
    "IQ2_XXS": "IQ4_NL",
    "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL",
    "IQ3_S": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0",
    "Q3_K": "Q4_0",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}
_BLOCK_256 = set(_FALLBACK)

# Roles as llama.cpp's name matching groups them. Until its late-2025 refactor into
# `tensor_category`, attn_qkv (Phi-3) had a rule of its own; the refactor folded it into the attn_v
# rules. The files on the Hub were made with the older code — the eight published phi-4 sizes in
# tests/data/measurements.csv fit it within 0.2 %, where the attn_v rule puts IQ4_XS 3.1 % and Q2_K
# 6.5 % over them — so that is what is modelled here. (The refactor also made attn_kv_b attn_v-like;
# current DeepSeek files have attn_k_b and attn_v_b instead, which no rule names: the base type.)
_ATTN_V_LIKE = {"attn_v"}
_QKV_TYPES = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "IQ3_M": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}
_FFN_DOWN = {"ffn_down", "ffn_down_exps", "ffn_down_shexp"}
_FFN_GATE_UP = {"ffn_gate", "ffn_gate_exps", "ffn_gate_shexp", "ffn_up", "ffn_up_exps", "ffn_up_shexp"}


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of layers that get more bits: first and last eighth, every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_PREDICATES = {
    "all": lambda i, n: True,
    "more": use_more_bits,
    "first8": lambda i, n: i < n // 8,
    "first16": lambda i, n: i < n // 16,
    "first2": lambda i, n: i < 2,
    "first4": lambda i, n: i < 4,
    "first8_or_more": lambda i, n: i < n // 8 or use_more_bits(i, n),
    "middle": lambda i, n: n // 8 <= i < 7 * n // 8,
}

Rule = tuple[tuple[str, str], ...]  # ((predicate, type), ...), the last one is ("all", base)


def _ffn_down_ordinal_test(predicate: str):
    """ "down_ord:D:m:o": the IQ1/IQ2 ffn_down bump, which llama.cpp gives to the first n/8 ffn_down-like
    tensors counted one by one in file order (its i_ffn_down counter; n_ffn_down = n_layer), not to
    the first n/8 layers: D dense layers hold one (ffn_down) each, every MoE layer m (ffn_down_exps,
    then ffn_down_shexp), and o is the tensor's place within its layer."""
    _, dense_text, per_layer_text, offset_text = predicate.split(":")
    dense, per_layer, offset = int(dense_text), int(per_layer_text), int(offset_text)

    def test(i: int, n: int) -> bool:
        ordinal = i if i < dense else dense + (i - dense) * per_layer + offset
        return ordinal < n // 8

    return test


@lru_cache(maxsize=1024)
def _layer_mask(predicate: str, n: int) -> int:
    """The layers (of n) a predicate holds for, as bits of an int."""
    test = _ffn_down_ordinal_test(predicate) if predicate.startswith("down_ord:") else _PREDICATES[predicate]
    return sum(1 << i for i in range(n) if test(i, n))


@lru_cache(maxsize=4096)
def _count(rule: Rule, n: int, start: int, count: int) -> tuple[tuple[str, int], ...]:
    """How many of layers start..start+count-1 (of n) get each type under a rule."""
    remaining = ((1 << count) - 1) << start
    tally: dict[str, int] = {}
    for predicate, type_name in rule:
        hit = remaining & _layer_mask(predicate, n)
        if hit:
            tally[type_name] = tally.get(type_name, 0) + hit.bit_count()
            remaining &= ~hit
    return tuple(tally.items())


def _attn_v_rule(f: str, base: str, arch: Architecture, n_gqa: int) -> Rule:
    if f in _IQ2_FAMILY:
        if n_gqa >= 4 or arch.experts >= 4:
            return (("all", "Q4_K"),)
        return (("all", "IQ3_S" if f in _IQ2_S_OR_M else "Q2_K"),)
    rule: list[tuple[str, str]] = []
    if f == "Q2_K":
        rule = [("all", "Q4_K" if n_gqa >= 4 else "Q3_K")]
    elif f == "IQ3_XXS":
        rule = [("all", "Q4_K" if n_gqa >= 4 else ("IQ3_XXS" if HAS_IMATRIX else "IQ3_S"))]
    elif f in ("IQ3_XS", "IQ3_S") and n_gqa >= 4:
        rule = [("all", "Q4_K")]
    elif f == "IQ3_M":
        rule = [("all", "Q4_K")]
    elif f == "Q3_K_M":
        rule = [("first2", "Q5_K"), ("all", "Q4_K")]
    elif f == "Q3_K_L":
        rule = [("all", "Q5_K")]
    elif f in ("IQ4_NL", "IQ4_XS") and n_gqa >= 4:
        rule = [("all", "Q5_K")]
    elif f in ("Q4_K_M", "Q5_K_M"):
        rule = [("more", "Q6_K")]
    elif f == "Q4_K_S":
        rule = [("first4", "Q5_K")]
    rule.append(("all", base))
    if arch.experts == 8:
        return (("all", "Q8_0"),)  # "for the 8-expert model, bumping this to Q8_0 trades just ~128MB"
    if arch.layers == 80:
        # llama.cpp's 70B rule (8 heads share attn_v, so it is 8x smaller than attn_q): Q3_K/Q4_K -> Q5_K.
        rule = [(p, "Q5_K" if t in ("Q3_K", "Q4_K") else t) for p, t in rule]
    return tuple(rule)


def _ffn_down_rule(f: str, base: str, arch: Architecture, role: str = "ffn_down") -> Rule:
    if f in _IQ2_FAMILY:
        return ((_iq2_ffn_down_predicate(role, arch), "IQ3_S" if f in _IQ2_S_OR_M else "Q2_K"), ("all", base))
    rules = {
        "Q2_K": (("all", "Q3_K"),),
        "Q2_K_S": (("first8", "Q4_K"),),
        "Q3_K_M": (("first16", "Q5_K"), ("all", "Q4_K")),
        "IQ3_M": (("first8_or_more" if arch.experts == 8 else "first8", "Q4_K"),),
        "Q3_K_L": (("all", "Q5_K"),),
        "Q4_K_M": (("more", "Q6_K"),),
        "Q5_K_M": (("more", "Q6_K"),),
        "Q4_K_S": (("first8", "Q5_K"),),
    }
    rule = rules.get(f, ())
    if f == "IQ3_XXS" and not HAS_IMATRIX:
        rule = (("first8", "Q4_K"), ("all", "Q3_K"))
    elif f in ("IQ4_NL", "IQ4_XS") and not HAS_IMATRIX:
        rule = (("first8", "Q5_K"),)
    elif f in ("Q4_0", "Q5_0") and HAS_IMATRIX:
        # "Guard against craziness in the first few ffn_down layers" (imatrix files only).
        rule = (("first8", "Q4_1" if f == "Q4_0" else "Q5_1"),)
    return rule + (("all", base),)


def _ffn_down_layout(role: str, arch: Architecture) -> int | None:
    """What the IQ1/IQ2 ffn_down bump reads of a MoE architecture for a routed or shared ffn_down
    where each MoE layer holds two (ffn_down_exps and ffn_down_shexp): its dense layer count. None
    where there is one ffn_down-like tensor a layer (then the i-th tensor is layer i's)."""
    if role not in ("ffn_down_exps", "ffn_down_shexp") or not shared_expert_width(arch):
        return None
    return arch.dense_layers


def _iq2_ffn_down_predicate(role: str, arch: Architecture) -> str:
    dense = _ffn_down_layout(role, arch)
    if dense is None:
        return "first8"
    return f"down_ord:{dense}:2:{1 if role == 'ffn_down_shexp' else 0}"


def _attn_output_type(f: str, base: str, arch: Architecture) -> str:
    if arch.experts == 8:
        eight = {
            "Q2_K",
            "IQ3_XS",
            "IQ3_XXS",
            "Q3_K_S",
            "Q3_K_M",
            "IQ4_NL",
            "Q4_K_S",
            "Q4_K_M",
            "IQ3_S",
            "IQ3_M",
            "IQ4_XS",
        }
        return "Q5_K" if f in eight or f in _IQ2_FAMILY else base
    if f in _IQ2_FAMILY:
        if f in ("IQ1_S", "IQ1_M"):
            return "IQ2_XXS"
        return "IQ3_S" if f in _IQ2_S_OR_M else base
    return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(f, base)


def layer_rule(group: TensorGroup, arch: Architecture, quant: Quantization) -> Rule:
    """The per-layer rule for one per-layer tensor group under a GGUF file type (experts kept in a
    native type never get here: group_types answers them first)."""
    f, base = quant.rules, quant.base_type
    role = group.role
    n_gqa = arch.attention_heads // max(1, arch.kv_heads)
    if role == "ffn_gate_inp":
        return (("all", "F32"),)  # routers are never quantized
    if f == "MXFP4":
        return (("all", "MXFP4" if group.expert else "Q8_0"),)
    if role in _ATTN_V_LIKE:
        return _attn_v_rule(f, base, arch, n_gqa)
    if role == "attn_qkv":
        return (("all", base if f in _IQ2_FAMILY else _QKV_TYPES.get(f, base)),)
    if role == "attn_k":
        if f in _IQ2_FAMILY:
            return (("all", "Q4_K" if arch.experts == 8 else base),)
        if arch.experts == 8:
            return (("all", "Q8_0"),)
    if role in ("attn_k", "attn_q") and f in ("IQ3_XS", "IQ3_XXS"):
        return (("all", "IQ3_XXS" if f == "IQ3_XS" else "IQ2_S"),)
    if role in _FFN_DOWN:
        return _ffn_down_rule(f, base, arch, role)
    if role == "attn_output":
        return (("all", _attn_output_type(f, base, arch)),)
    if role in _FFN_GATE_UP and f == "IQ3_XS":
        return (("middle", "IQ3_XXS"), ("all", base))
    return (("all", base),)


_RULES: dict[tuple, Rule] = {}


def _rule(role: str, expert: bool, quant: Quantization, arch: Architecture) -> Rule:
    """layer_rule, memoised on what it reads (quantizations stay alive in _QUANTS, so ids are theirs)."""
    key = (
        role,
        expert,
        id(quant),
        arch.layers == 80,
        arch.experts if arch.experts in (0, 8) else min(arch.experts, 4),
        arch.attention_heads // max(1, arch.kv_heads) >= 4,
        _ffn_down_layout(role, arch),
    )
    hit = _RULES.get(key)
    if hit is None:
        _QUANTS[id(quant)] = quant
        probe = TensorGroup(role, 0, 0, 0, expert=expert)
        hit = _RULES[key] = layer_rule(probe, arch, quant)
    return hit


def _global_type(group: TensorGroup, arch: Architecture, quant: Quantization) -> str:
    f, base = quant.rules, quant.base_type
    is_output = group.role == "output" or (group.role == "token_embd" and arch.tied_embeddings)
    if is_output:
        if quant.output_type:
            return quant.output_type
        if f == "MXFP4" or group.row_size % 256:
            return "Q8_0"
        if f in _IQ2_FAMILY or f == "IQ3_XXS":
            return "Q5_K"
        return base if base == "Q8_0" else "Q6_K"
    if group.role == "token_embd":
        if quant.embedding_type:
            return quant.embedding_type
        if f == "MXFP4":
            return "Q8_0"
        if f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if f in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
    return base


def group_types(group: TensorGroup, arch: Architecture, quant: Quantization) -> tuple[tuple[str, int], ...]:
    """The ggml types a tensor group is stored in, with how many tensors get each."""
    if not group.matrix:
        return (("F32", group.count),)
    # ExLlama re-quantizes every matrix into its own format: no expert keeps its native type there
    native = native_expert_type(arch) if group.expert and quant.format != "exl" else None
    if native:
        # Every format: llama.cpp's F16/BF16/F32 conversions keep the blocks as they are, and so
        # does the checkpoint itself (safetensors with MXFP4 experts beside BF16 attention).
        return ((native, group.count),)
    if quant.format == "float":
        return ((quant.base_type, group.count),)  # every matrix in the one type, routers included
    if quant.format != "gguf":
        return ((_checkpoint_type(group, quant), group.count),)
    if group.per_layer:
        types = _count(_rule(group.role, group.expert, quant, arch), arch.layers, group.start, group.count)
    else:
        types = ((_global_type(group, arch, quant), group.count),)
    return tuple((_fallback(t, group.row_size), c) for t, c in types)


def _checkpoint_type(group: TensorGroup, quant: Quantization) -> str:
    """A quantized safetensors checkpoint's type for one matrix group. FP8 (llm-compressor), GPTQ and
    AWQ quantize the transformer blocks' linear layers and leave the embedding table, the output
    head and MoE routers in 16-bit. MLX (mlx_lm's quantize) quantizes every Linear and Embedding,
    head included; routers stay 16-bit there too."""
    if group.role == "ffn_gate_inp":
        return "BF16"
    if quant.format == "exl" and group.role == "output":
        return quant.output_type or quant.base_type  # ExLlama's head at its own bits (-hb, 6 by default)
    if quant.format == "mlx" or group.per_layer:
        return quant.base_type
    return "BF16"


def exl_type(name: str) -> GgmlType | None:
    """ExLlamaV2/V3's weights at any bits per weight, as a type: "EXL_4650" holds 4.65 bits a
    weight, 4,650 bytes per 8,000 weights (its matrices mix 2–8-bit groups to that average)."""
    if not name.startswith("EXL_"):
        return None
    milli = int(name[4:])
    return GgmlType(name, 8000, milli)


def _fallback(type_name: str, row_size: int) -> str:
    if type_name in _BLOCK_256 and row_size % 256:
        type_name = _FALLBACK[type_name]
    if row_size % 32 and type_name not in ("F32", "F16", "BF16"):
        return "F16"  # "must use F16 due to unusual shape"
    return type_name


def tensor_bytes(elements: int, t: GgmlType) -> int:
    return elements // t.block_size * t.type_size + (elements % t.block_size and t.type_size)


_TALLIES: dict[tuple, tuple[tuple[str, int], ...]] = {}
_QUANTS: dict[int, Quantization] = {}  # keeps every quantization seen alive, so its id stays its own


_PLANS: dict[int, tuple] = {}


def _plan(arch: Architecture) -> tuple:
    """Per tensor group, what the rules read of the architecture (so a (group, quantization)
    tally can be memoised and shared by models of the same shapes)."""
    hit = _PLANS.get(id(arch))
    if hit is not None and hit[0] is arch:
        return hit[1]
    n_gqa4 = arch.attention_heads // max(1, arch.kv_heads) >= 4
    experts = arch.experts if arch.experts in (0, 8) else (4 if arch.experts >= 4 else 1)
    native = native_expert_type(arch)  # gpt-oss's experts stay MXFP4 where another MoE's of the same shapes do not
    plan = tuple(
        (
            (
                g.role,
                g.expert,
                g.matrix,
                g.per_layer,
                arch.layers,
                g.start,
                g.count,
                experts,
                n_gqa4,
                arch.tied_embeddings and g.role == "token_embd",
                g.row_size % 256 == 0,
                g.row_size % 32 == 0,
                native,
                _ffn_down_layout(g.role, arch),
            ),
            g,
        )
        for g in tensor_groups(arch)
    )
    _PLANS[id(arch)] = (arch, plan)
    return plan


def _breakdown(
    arch: Architecture, quant: Quantization, types: Mapping[str, GgmlType]
) -> tuple[tuple[str, int, bool, bool], ...]:
    _QUANTS[id(quant)] = quant
    q = id(quant)
    out = []
    for arch_key, g in _plan(arch):
        tally = _TALLIES.get((arch_key, q))
        if tally is None:
            tally = _TALLIES[(arch_key, q)] = group_types(g, arch, quant)
        size = 0
        for t, c in tally:
            gt = types.get(t) or exl_type(t)
            assert gt is not None, t
            size += (g.elements // gt.block_size * gt.type_size + (g.elements % gt.block_size and gt.type_size)) * c
        out.append((g.role, size, g.per_layer, g.expert))
    return tuple(out)


# Keyed by the objects' identities (the catalog's models and quantizations live as long as the
# process; the cache holds them, so an id cannot be reused): hashing a frozen dataclass of twenty
# fields for every lookup costs more than `recommend` can spare across ~1,500 candidates.
_BREAKDOWNS: dict[tuple[int, int, int], tuple] = {}

# Each cache's ceiling: far above one catalog (152 models × 30 quantizations, ~40 architectures of
# distinct shapes), so a long-running agent that rebuilds its catalog or meets new local models
# keeps a bounded amount. The id-keyed caches are emptied together: an id is only safe while
# _QUANTS and the entries themselves hold the objects.
_CEILINGS = ((_BREAKDOWNS, 20_000), (_TALLIES, 200_000), (_PLANS, 4_096), (_QUANTS, 1_024), (_RULES, 20_000))


def _bound_caches() -> None:
    if any(len(cache) > ceiling for cache, ceiling in _CEILINGS):
        for cache, _ in _CEILINGS:
            cache.clear()


def weights_breakdown(arch: Architecture, quant: Quantization, ggml_types: Mapping[str, GgmlType]):
    """((role, bytes, per_layer, expert), ...) for every tensor group of the model."""
    key = (id(arch), id(quant), id(ggml_types))
    hit = _BREAKDOWNS.get(key)
    if hit is not None and hit[0] is arch and hit[1] is quant and hit[2] is ggml_types:
        return hit[3]
    _bound_caches()
    result = _breakdown(arch, quant, ggml_types)
    _BREAKDOWNS[key] = (arch, quant, ggml_types, result)
    return result
