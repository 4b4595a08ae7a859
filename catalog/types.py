"""The catalog's values: models, their architectures, quantizations, ggml types and GPUs, frozen.

What is known, not what is judged: the estimator reads these; the probe reads the GPU table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .lookup import find_gpu, find_model, find_quant, resolve_quant


class QuantLossModel(NamedTuple):
    reference_params: float  # the model kld_ref was measured on
    size_exponent: float  # divergence ∝ params^-size_exponent
    kld_to_loss: float  # kept score = exp(-kld_to_loss × divergence)


@dataclass(frozen=True)
class GgmlType:
    name: str
    block_size: int  # weights per block
    type_size: int  # bytes per block

    @property
    def bits_per_weight(self) -> float:
        return self.type_size * 8 / self.block_size


@dataclass(frozen=True)
class Quantization:
    name: str
    bits_per_weight: float  # the seed table's average, used by --method seed
    ppl_increase: float | None  # None where no measurement is published
    quality_factor: float
    tier: str
    format: str  # gguf | float | fp8 | int
    base_type: str  # ggml type most weight matrices get
    source: str
    aliases: tuple[str, ...] = ()
    notes: str | None = None
    # The llama.cpp file type whose per-tensor rules apply (defaults to the name): uploaders'
    # variants such as bartowski's Q4_K_L are Q4_K_M with the embeddings and output at Q8_0.
    ftype: str | None = None
    output_type: str | None = None  # --output-tensor-type override
    embedding_type: str | None = None  # --token-embedding-type override
    recommend: bool = True  # offered by `fitagent recommend` (uploader variants and legacy types are not)
    # mean KL divergence the type adds to the reference model (quantizations.yaml, quality_model):
    # what the default method's quality reads; None only for entries made outside the shipped data
    kld_ref: float | None = None

    @property
    def rules(self) -> str:
        return self.ftype or self.name


@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool = False
    hf_architecture: str | None = None
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None
    dense_layers: int = 0
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    attention_bias: bool = False

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def local_attention_layers(self) -> int:
        """Layers llama.cpp runs with a sliding window. It ignores Phi-3's window
        ("Phi SWA is currently disabled", llama.cpp PR #13676), so those cache every token."""
        if self.hf_architecture == "Phi3ForCausalLM":
            return 0
        return self.sliding_window_layers

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0


@dataclass(frozen=True)
class FileWeights:
    """Exact tensor bytes from a model file's header, grouped by where llama.cpp puts them."""

    layers_bytes: int  # every repeating block (blk.N.*), routed experts included
    expert_bytes: int  # the routed-expert tensors (*_exps) among them
    embedding_bytes: int  # token_embd: stays in host memory
    head_bytes: int  # output head, final norm and any other global tensor
    tied: bool  # no output.weight: the embedding matrix doubles as the head
    file_type: str | None = None  # the quantization the header names (general.file_type)
    path: str = ""

    @property
    def total_bytes(self) -> int:
        return self.layers_bytes + self.embedding_bytes + self.head_bytes


@dataclass(frozen=True)
class Model:
    id: str
    alias: str
    family: str
    modality: str
    params_total: int
    params_active: int
    max_context: int
    architecture: Architecture
    benchmarks: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    # benchmark -> whose score stands in for this model's own (a base model's, a sibling's)
    stand_ins: Mapping[str, str] = field(default_factory=dict)
    release: str | None = None
    file_weights: FileWeights | None = None  # set for --gguf: the header's exact sizes replace the estimate
    notes: tuple[str, ...] = ()  # what was assumed to read it (a model from a user's file)

    @property
    def is_moe(self) -> bool:
        return self.architecture.is_moe


@dataclass(frozen=True)
class GpuSpec:
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: int
    fp16_flops: float | None
    unified_memory: bool
    pci_ids: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    architecture: str | None = None
    memory_type: str | None = None
    bus_width_bits: int | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    models: tuple[Model, ...]
    quantizations: tuple[Quantization, ...]
    ggml_types: Mapping[str, GgmlType]
    gpus: tuple[GpuSpec, ...]
    quant_loss: QuantLossModel
    # benchmark -> (intercept, slope) of score on log10(effective parameters), over the catalog's
    # own scores, one residual standard deviation low: what a missing benchmark is estimated from
    benchmark_priors: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # (model id, quant name) -> (architecture, weights split), filled by
    # estimate.with_precomputed_weights; sizing every tensor of every candidate is the
    # costliest part of a catalog sweep and depends on nothing but this catalog.
    weights_table: Mapping[tuple[str, str], tuple] = field(default_factory=dict, compare=False)

    def model(self, name: str) -> Model:
        return find_model(self.models, name)

    def quant(self, name: str) -> Quantization:
        return find_quant(self.quantizations, name)

    def resolve_quant(self, name: str) -> tuple[Quantization, str | None]:
        return resolve_quant(self.quantizations, name)

    def gpu(self, name: str) -> GpuSpec:
        return find_gpu(self.gpus, name)

    def gpu_by_pci_id(self, pci_id: str | None) -> GpuSpec | None:
        if not pci_id:
            return None
        pci_id = pci_id.lower()
        for spec in self.gpus:
            if pci_id in spec.pci_ids:
                return spec
        return None
