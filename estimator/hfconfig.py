"""A Hugging Face ``config.json`` (already parsed) as a catalog Model.

Reads the decoder families llama.cpp runs: Llama, Mistral, Mixtral, Qwen2/2.5, Qwen2-MoE,
Qwen3, Qwen3-MoE, Gemma 2/3, Phi-3/3.5/4 (and Phi-3.5-MoE), DeepSeek-V2/V3 and gpt-oss.
Multimodal configs keep the language model under ``text_config``; that part is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..catalog.errors import UsageError
from ..catalog.parse import check_architecture
from ..catalog.types import Architecture, Model
from .tensors import active_parameter_count, parameter_count

SUPPORTED = {
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "MixtralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen2MoeForCausalLM",
    "Qwen3ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Gemma3ForConditionalGeneration",
    "Phi3ForCausalLM",
    "PhiMoEForCausalLM",
    "DeepseekV2ForCausalLM",
    "DeepseekV3ForCausalLM",
    "GptOssForCausalLM",
    "Qwen2_5_VLForConditionalGeneration",
    "Mistral3ForConditionalGeneration",
    "MllamaForConditionalGeneration",
    "Llama4ForConditionalGeneration",
}
_TIED_BY_DEFAULT = ("gemma",)  # Gemma configs rely on the library default tie_word_embeddings=True

# Fields some published configs leave out because transformers fills them in: the defaults
# of transformers' Gemma3TextConfig (models/gemma3/configuration_gemma3.py).
_LIBRARY_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262_208, "max_position_embeddings": 131_072},
}


class _Config:
    def __init__(self, data: Mapping[str, object], origin: str):
        self.data, self.origin = data, origin

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int(self, *keys: str, default: int | None = None) -> int:
        for key in keys:
            value = self.data.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise UsageError(f"{self.origin}: field '{key}' must be a non-negative number, got {value!r}")
                return int(value)
        if default is not None:
            return default
        raise UsageError(
            f"{self.origin}: field '{keys[0]}' is missing — not a decoder fitagent can read "
            f"(supported: Llama, Mistral, Mixtral, Qwen2/2.5/3, Qwen3-MoE, Gemma 2/3, Phi-3/4, DeepSeek-V2/V3, gpt-oss)"
        )


def _sliding_layers(cfg: _Config, model_type: str, layers: int) -> tuple[int | None, int]:
    window: Any = cfg.data.get("sliding_window")  # unchecked JSON value, used as is
    layer_types = cfg.data.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        count = sum(1 for t in layer_types if t == "sliding_attention")
        return (int(window), count) if count and window else (None, 0)
    if not window or window >= cfg.int("max_position_embeddings", default=window + 1):
        return None, 0  # no window, or one as wide as the context: every layer is global
    if model_type.startswith("qwen") and not cfg.data.get("use_sliding_window", False):
        return None, 0  # Qwen configs carry a window they do not use
    if model_type == "gemma2":
        return int(window), (layers + 1) // 2  # even layers are local
    if model_type.startswith("gemma3"):
        pattern = cfg.int("sliding_window_pattern", default=6)
        return int(window), layers - layers // pattern  # every pattern-th layer is global
    return int(window), layers  # Mistral-7B-v0.1: every layer


def model_from_hf_config(config: Mapping[str, object], origin: str = "config.json", name: str | None = None) -> Model:
    if not isinstance(config, Mapping):
        raise UsageError(f"{origin}: not a config.json object")
    archs = config.get("architectures") or []
    hf_arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    text = dict(config)
    text_config = config.get("text_config")
    if isinstance(text_config, Mapping):
        text.update(text_config)  # multimodal: the language model's own fields win
    model_type = str(text.get("model_type") or config.get("model_type") or "").lower()
    for key, value in _LIBRARY_DEFAULTS.get(model_type, {}).items():
        text.setdefault(key, value)
    cfg = _Config(text, origin)

    layers = cfg.int("num_hidden_layers", "n_layer", "num_layers")
    hidden = cfg.int("hidden_size", "d_model", "n_embd")
    heads = cfg.int("num_attention_heads", "n_head")
    experts = cfg.int("num_local_experts", "num_experts", "n_routed_experts", default=0)
    moe_inter = cfg.int("moe_intermediate_size", default=0) or None
    if experts and moe_inter is None:
        moe_inter = cfg.int("intermediate_size")  # Mixtral, gpt-oss, PhiMoE: one expert's width
    window, sliding_layers = _sliding_layers(cfg, model_type, layers)
    tied = text.get("tie_word_embeddings", config.get("tie_word_embeddings"))
    if tied is None:
        tied = model_type.startswith(_TIED_BY_DEFAULT)
    mla = cfg.has("kv_lora_rank")
    arch = Architecture(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=cfg.int("num_key_value_heads", default=heads),
        head_dim=cfg.int("head_dim", default=hidden // heads),
        intermediate_size=cfg.int("intermediate_size", "ffn_dim"),
        vocab_size=cfg.int("vocab_size", "padded_vocab_size"),
        tied_embeddings=bool(tied),
        hf_architecture=hf_arch,
        sliding_window=window,
        sliding_window_layers=sliding_layers,
        experts=experts,
        experts_per_token=cfg.int("num_experts_per_tok", "experts_per_token", default=0) if experts else 0,
        shared_experts=cfg.int("n_shared_experts", default=0),
        moe_intermediate_size=moe_inter if experts else None,
        shared_expert_intermediate_size=cfg.int("shared_expert_intermediate_size", default=0) or None,
        dense_layers=cfg.int("first_k_dense_replace", default=0) if experts else 0,
        kv_lora_rank=cfg.int("kv_lora_rank") if mla else None,
        q_lora_rank=cfg.int("q_lora_rank", default=0) or None if mla else None,
        qk_rope_head_dim=cfg.int("qk_rope_head_dim") if mla else None,
        qk_nope_head_dim=cfg.int("qk_nope_head_dim") if mla else None,
        v_head_dim=cfg.int("v_head_dim") if mla else None,
        attention_bias=bool(text.get("attention_bias", False) or model_type.startswith("qwen2")),
    )

    def fail(fieldname: str, why: str):
        raise UsageError(f"{origin}: field '{fieldname}' {why}")

    check_architecture(arch, fail)
    notes: tuple[str, ...] = ()
    if hf_arch not in SUPPORTED:
        what = f"architecture {hf_arch}" if hf_arch else "a config that names no architecture"
        notes = (
            f"{what} is not one fitagent knows: estimated as a standard decoder (attention with "
            f"{arch.kv_heads} KV heads, a gated feed-forward{', routed experts' if experts else ''}) from its "
            "config's sizes; layers it does not describe are not counted",
        )
    model_name = name or origin
    params_total = parameter_count(arch)
    return Model(
        id=model_name,
        alias=model_name.split("/")[-1].lower(),
        family=model_type or "unknown",
        modality="vision" if "vision_config" in config else "text",
        params_total=params_total,
        params_active=published_active_count(arch) if experts else params_total,
        max_context=cfg.int("max_position_embeddings", "n_positions", "max_sequence_length", default=4096),
        architecture=arch,
        benchmarks={},
        sources={"config_source": origin},
        notes=notes,
    )


def published_active_count(arch: Architecture) -> int:
    """Active parameters as model cards count them: what a token passes through, with the
    embedding table (Mixtral 12.9 B, Qwen3-30B-A3B 3.3 B), so a config and the catalog agree."""
    embedding = 0 if arch.tied_embeddings else arch.vocab_size * arch.hidden_size
    return active_parameter_count(arch) + embedding
