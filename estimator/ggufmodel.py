"""A GGUF file's header as a catalog Model: its metadata for the architecture (KV cache, FLOPs),
its tensor table for the exact weight bytes.

Pure: the caller (agent/modelfiles.py) reads the header and hands in the key/value metadata and
(name, bytes, elements) per tensor. Keys follow llama.cpp's GGUF convention, prefixed with the
architecture (``llama.block_count``, ``qwen3moe.expert_count``, …).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..catalog.errors import UsageError
from ..catalog.parse import check_architecture
from ..catalog.types import Architecture, FileWeights, Model

# llama.cpp's GGUF architecture names → the Hugging Face class the catalog's rules key on.
_HF_NAMES = {
    "phi3": "Phi3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "deepseek2": "DeepseekV3ForCausalLM",
    "gpt-oss": "GptOssForCausalLM",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3moe": "Qwen3MoeForCausalLM",
    "qwen2moe": "Qwen2MoeForCausalLM",
}

# Which layers use the sliding window, where llama.cpp's model code decides it by position
# (src/llama-model.cpp): Gemma 2 every other layer, Gemma 3 five of six, gpt-oss every other,
# Cohere2 three of four. Other architectures run the window on every layer only if they say so.
_SLIDING = {
    "gemma2": lambda n: (n + 1) // 2,
    "gemma3": lambda n: n - n // 6,
    "gpt-oss": lambda n: (n + 1) // 2,
    "cohere2": lambda n: n - n // 4,
}


# What each key read as a number may be. Real models sit far inside: ≤ ~200 layers, hidden size
# ≤ 32k, ≤ 128 heads, ≤ 512 experts, ≤ 10M tokens of context, vocabularies ≤ ~260k. A value outside
# is a one-line error naming the key and the file, not an overflow or a division by zero later.
_MAX_SIZE = 1 << 24  # widths, ranks, head dims, vocabulary
_RANGES = {
    "block_count": (1, 100_000),
    "embedding_length": (1, 1 << 20),
    "attention.head_count": (1, 1 << 16),
    "attention.head_count_kv": (0, 1 << 16),
    "expert_count": (0, 1 << 16),
    "expert_used_count": (0, 1 << 16),
    "expert_shared_count": (0, 1 << 16),
    "leading_dense_block_count": (0, 100_000),
    "context_length": (0, (1 << 31) - 1),
    "attention.sliding_window": (0, (1 << 31) - 1),
}


def _first(value: Any) -> Any:
    """Per-layer arrays (head counts, FFN widths) → their largest entry."""
    if isinstance(value, (list, tuple)):
        numbers = [v for v in value if isinstance(v, (int, float))]
        return max(numbers) if numbers else None
    return value


class _Meta:
    def __init__(self, fields: Mapping[str, Any], origin: str):
        self.fields, self.origin = fields, origin
        arch = fields.get("general.architecture")
        if not isinstance(arch, str) or not arch:
            raise UsageError(
                f"{origin}: no general.architecture in the GGUF header — not a model file llama.cpp can load"
            )
        self.arch = arch

    def get(self, key: str, default: Any = None) -> Any:
        value = _first(self.fields.get(f"{self.arch}.{key}"))
        return default if value is None else value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if value is None:
            raise UsageError(f"{self.origin}: the GGUF header lacks {self.arch}.{key}, which fitagent needs")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UsageError(f"{self.origin}: {self.arch}.{key} must be a non-negative number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{self.origin}: {self.arch}.{key} must be a finite number, got {value!r}")
        low, high = _RANGES.get(key, (0, _MAX_SIZE))
        if not low <= value <= high:
            raise UsageError(f"{self.origin}: {self.arch}.{key} must be between {low:,} and {high:,}, got {value:,}")
        return int(value)


def model_from_gguf(
    fields: Mapping[str, Any],
    tensors: Sequence[tuple[str, int, int, tuple[int, ...]]],
    origin: str = "model.gguf",
    file_type: str | None = None,
) -> Model:
    """fields: the header's key/value pairs; tensors: (name, bytes, elements, shape) per tensor."""
    meta = _Meta(fields, origin)
    if not tensors:
        raise UsageError(f"{origin}: the GGUF file holds no tensors (a vocabulary-only file?)")
    by_name = {name: (size, elements, shape) for name, size, elements, shape in tensors}
    layers = meta.int("block_count")
    hidden = meta.int("embedding_length")
    heads = meta.int("attention.head_count")
    if layers <= 0 or hidden <= 0 or heads <= 0:
        raise UsageError(f"{origin}: block_count, embedding_length and attention.head_count must be positive")
    embd = by_name.get("token_embd.weight")
    vocab = meta.int("vocab_size", 0) or (embd[2][1] if embd and len(embd[2]) > 1 else None)
    if not vocab:
        raise UsageError(f"{origin}: cannot tell the vocabulary size (no {meta.arch}.vocab_size, no token_embd.weight)")
    if vocab > _MAX_SIZE:
        raise UsageError(
            f"{origin}: a vocabulary of {vocab:,} tokens (token_embd.weight) is more than the "
            f"{_MAX_SIZE:,} fitagent accepts"
        )
    experts = meta.int("expert_count", 0)
    mla = meta.get("attention.kv_lora_rank") is not None
    rope = meta.int("rope.dimension_count", 0)
    key_length = meta.int("attention.key_length_mla", 0) or meta.int("attention.key_length", 0)
    value_length = meta.int("attention.value_length_mla", 0) or meta.int("attention.value_length", 0)
    if not (key_length if not mla and key_length else hidden // heads):
        raise UsageError(
            f"{origin}: {meta.arch}.embedding_length ({hidden:,}) is smaller than "
            f"{meta.arch}.attention.head_count ({heads:,}): the heads would have no dimensions"
        )
    if mla and rope > key_length:
        raise UsageError(
            f"{origin}: {meta.arch}.rope.dimension_count ({rope:,}) exceeds the key length "
            f"({key_length:,}) of latent attention"
        )
    window = meta.int("attention.sliding_window", 0) or None
    sliding_layers = _SLIDING[meta.arch](layers) if window and meta.arch in _SLIDING else 0
    if window and not sliding_layers and meta.get("attention.sliding_window_pattern") is None:
        window = None  # a window the architecture's llama.cpp code does not use
    arch = Architecture(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=meta.int("attention.head_count_kv", heads) or heads,
        head_dim=(key_length if not mla and key_length else hidden // heads),
        intermediate_size=meta.int("feed_forward_length", 0) or meta.int("expert_feed_forward_length", 1),
        vocab_size=int(vocab),
        tied_embeddings="output.weight" not in by_name,
        hf_architecture=_HF_NAMES.get(meta.arch),
        sliding_window=window if sliding_layers else None,
        sliding_window_layers=sliding_layers,
        experts=experts,
        experts_per_token=meta.int("expert_used_count", 0) if experts else 0,
        shared_experts=meta.int("expert_shared_count", 0) if experts else 0,
        moe_intermediate_size=(meta.int("expert_feed_forward_length", 0) or None) if experts else None,
        shared_expert_intermediate_size=(meta.int("expert_shared_feed_forward_length", 0) or None) if experts else None,
        dense_layers=meta.int("leading_dense_block_count", 0) if experts else 0,
        kv_lora_rank=meta.int("attention.kv_lora_rank") if mla else None,
        q_lora_rank=(meta.int("attention.q_lora_rank", 0) or None) if mla else None,
        qk_rope_head_dim=rope if mla else None,
        qk_nope_head_dim=(key_length - rope) if mla else None,
        v_head_dim=value_length if mla else None,
    )

    def fail(fieldname: str, why: str):
        raise UsageError(f"{origin}: {fieldname} {why}")

    check_architecture(arch, fail)
    weights, params, routed = _file_weights(tensors, file_type, origin)
    active = params - routed + (routed * arch.experts_per_token // arch.experts if experts else 0)
    name = fields.get("general.name") if isinstance(fields.get("general.name"), str) else None
    model_id = name or origin.rsplit("/", 1)[-1]
    notes = (
        ()
        if meta.arch in _HF_NAMES
        else (
            f"GGUF architecture '{meta.arch}' is not one fitagent knows: sized from the file's tensors (exact), "
            "its KV cache and speed estimated as a standard decoder's",
        )
    )
    return Model(
        id=model_id,
        alias=model_id.split("/")[-1].lower(),
        family=meta.arch,
        modality="text",
        params_total=params,
        params_active=active,
        max_context=meta.int("context_length", 4096) or 4096,
        architecture=arch,
        benchmarks={},
        sources={"gguf": origin},
        file_weights=weights,
        notes=notes,
    )


def _file_weights(tensors, file_type: str | None, origin: str) -> tuple[FileWeights, int, int]:
    layers = experts = embedding = head = params = routed = 0
    for name, size, elements, _ in tensors:
        params += elements
        if name.startswith("blk."):
            layers += size
            if "_exps." in name:
                experts += size
                routed += elements
        elif name == "token_embd.weight":
            embedding += size
        else:
            head += size  # output.weight, output_norm.weight, rope factors, …
    names = {t[0] for t in tensors}
    return (
        FileWeights(
            layers, experts, embedding, head, tied="output.weight" not in names, file_type=file_type, path=origin
        ),
        params,
        routed,
    )
