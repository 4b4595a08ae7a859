"""A vision model's images (issue 15): the projector file llama.cpp loads beside the model (mmproj),
the tokens an image becomes, and the time its vision tower takes to encode one.

The projector's tensors follow each encoder family's layout; a llama.cpp mmproj stores matrices in
F16 and vectors (norms, biases) in F32, and for SigLIP the patch and position embeddings in F32 —
which reproduces ggml-org's Gemma 3 mmproj files to 25 KB, their header (tests/test_vision.py).
An image's tokens are then part of the prompt; its encoding is 2 FLOPs per tower weight per patch
plus attention, at the device's prefill rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..catalog.vision import VisionTower
from .budget import Budget, Device
from .calibration import Calibration
from .speed import device_class, matmul_flops

F16, F32 = 2, 4


@dataclass(frozen=True)
class ImageCost:
    patches: int  # what the tower sees
    tokens: int  # what the language model reads
    flops: float  # the tower's and the projector's
    slice_patches: int | None = None  # patches encoded at once, where the image is encoded tile by tile


def _layer(t: VisionTower) -> tuple[int, int]:
    """(matrix weights, vector elements) of one encoder layer."""
    h, i = t.hidden_size, t.intermediate_size
    if t.encoder in ("siglip", "qwen3-vl", "llama4"):  # q, k, v, o with biases; fc1, fc2 with biases; two LayerNorms
        return 4 * h * h + 2 * h * i, 4 * h + i + h + 4 * h
    if t.encoder == "qwen2.5-vl":  # fused qkv and proj with biases; SwiGLU with biases; two RMSNorms
        return 3 * h * h + h * h + 3 * h * i, 3 * h + h + 2 * i + h + 2 * h
    return 4 * h * h + 3 * h * i, 2 * h  # pixtral: no biases, SwiGLU, two RMSNorms


def _outer(t: VisionTower, text_hidden: int) -> tuple[int, int, int]:
    """(F16 matrices, F32 vectors, F32 matrices) outside the layers: embeddings and projector."""
    h, p = t.hidden_size, t.patch_size
    if t.encoder == "siglip":
        patches = (t.image_size or 0) // p
        # patch embedding (conv with bias) and position embedding are F32; final LayerNorm;
        # Gemma 3's projector: an RMSNorm and one matrix into the text model's width
        return h * text_hidden, h + 2 * h + h, 3 * p * p * h + patches * patches * h
    if t.encoder == "qwen3-vl":
        merged = h * t.merge * t.merge
        mergers = 1 + t.deepstack
        # a 3-D patch conv (two frames, F16, F32 bias), a learned position table (F32), and the patch
        # merger plus the DeepStack ones: each a LayerNorm (of the patch width; of the merged width for
        # DeepStack's) and a two-layer MLP with biases into the text width
        f16 = 3 * t.temporal_patch * p * p * h + mergers * (merged * merged + merged * text_hidden)
        f32 = h + 2 * h + t.deepstack * 2 * merged + mergers * (merged + text_hidden)
        return f16, f32, (t.positions or 0) * h
    if t.encoder == "llama4":
        merged, adapter = h * t.merge * t.merge, t.adapter_size or h
        side = (t.image_size or 0) // p
        # a linear patch embedding (F16), a class token, pre and post LayerNorms; the position table
        # (patches + the class token, F32); the pixel-shuffle adapter's two layers and the projector,
        # without biases (transformers' modeling_llama4.py; llama.cpp's build_llama4)
        f16 = 3 * p * p * h + merged * adapter + adapter * adapter + adapter * text_hidden
        return f16, h + 4 * h, (side * side + 1) * h
    if t.encoder == "qwen2.5-vl":
        merged = h * t.merge * t.merge
        # a 3-D patch conv (two frames), the merger's RMSNorm and its two-layer MLP with biases
        return 3 * t.temporal_patch * p * p * h + merged * merged + merged * text_hidden, h + merged + text_hidden, 0
    merged = h * t.merge * t.merge
    # pixtral: patch conv, ln_pre; projector: RMSNorm, 2×2 patch merger, two layers into the text width
    return 3 * p * p * h + merged * h + h * text_hidden + text_hidden * text_hidden, h + h, 0


def tower_parameters(t: VisionTower, text_hidden: int) -> int:
    """The tower's and projector's weights, every one counted once (a checkpoint holds them in 16 bits)."""
    matrices, vectors = _layer(t)
    outer_f16, outer_f32, outer_f32_matrices = _outer(t, text_hidden)
    return t.layers * (matrices + vectors) + outer_f16 + outer_f32 + outer_f32_matrices


def projector_bytes(t: VisionTower, text_hidden: int) -> int:
    """The mmproj file's tensor bytes (its GGUF header, tens of KB, is left out)."""
    matrices, vectors = _layer(t)
    outer_f16, outer_f32, outer_f32_matrices = _outer(t, text_hidden)
    return t.layers * (matrices * F16 + vectors * F32) + outer_f16 * F16 + outer_f32 * F32 + outer_f32_matrices * F32


def _round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def image_cost(t: VisionTower, width: int, height: int, text_hidden: int) -> ImageCost:
    """Patches, tokens and FLOPs of one image of width × height pixels, as the model's processor
    prepares it: Gemma 3 resizes every image to 896² (256 tokens); Qwen2.5-VL rounds each side to a
    multiple of 28 (between 56² and 12.8 M pixels) and merges 2×2 patches into a token, Qwen3-VL the
    same with patches of 16 (multiples of 32); Pixtral
    scales the longest edge to at most 1540 and adds a break token after each row of merged patches."""
    h, p = t.hidden_size, t.patch_size
    tiles = 1
    if t.encoder == "siglip":
        side = (t.image_size or 0) // p
        patches, tokens = side * side, t.tokens_per_image or side * side
    elif t.encoder == "llama4":
        # llama.cpp cuts an image into tiles of image_size (a grid of at most max_tiles a side) and adds
        # an overview tile when there is more than one; each tile's patches, and its class token,
        # go through the tower, and its 2 × 2-shuffled patches become the tokens
        tile, most = t.image_size or 336, t.max_tiles or 3
        cols = min(most, max(1, round(width / tile)))
        rows = min(most, max(1, round(height / tile)))
        tiles = cols * rows + (1 if cols * rows > 1 else 0)
        side = tile // p
        patches = side * side + 1
        tokens = tiles * side * side // (t.merge * t.merge)
    elif t.encoder in ("qwen2.5-vl", "qwen3-vl"):
        unit = p * t.merge
        w, hh = _round_to(width, unit), _round_to(height, unit)
        pixels = w * hh
        if pixels > 12_845_056 or pixels < 3136:
            scale = math.sqrt((12_845_056 if pixels > 12_845_056 else 3136) / pixels)
            w, hh = _round_to(width * scale, unit), _round_to(height * scale, unit)
        patches = (w // p) * (hh // p)
        tokens = patches // (t.merge * t.merge)
    else:
        scale = min(1.0, (t.image_size or max(width, height)) / max(width, height))
        cols, rows = math.ceil(width * scale / p), math.ceil(height * scale / p)
        patches = cols * rows
        merged_cols, merged_rows = math.ceil(cols / t.merge), math.ceil(rows / t.merge)
        tokens = merged_cols * merged_rows + merged_rows  # a break after each row, the end after the last
    matrices, _ = _layer(t)
    attended = patches
    attention = 4 * h * patches * attended * t.layers
    if t.window and t.full_attention_layers is not None:
        window = (t.window // p) ** 2
        windowed = t.layers - t.full_attention_layers
        attention = 4 * h * patches * (t.full_attention_layers * patches + windowed * min(patches, window))
    outer_f16, _, _ = _outer(t, text_hidden)
    flops = tiles * (2 * matrices * t.layers * patches + attention) + 2 * outer_f16 * tokens
    return ImageCost(tiles * patches, tokens, float(flops), patches if tiles > 1 else None)


def encode_seconds(cost: ImageCost, budget: Budget, calibration: Calibration) -> float | None:
    """One image's encoding on the first GPU at its prefill rate, else on the CPU cores."""
    if budget.devices:
        device: Device = budget.devices[0]
        rate = matmul_flops(device)
        if not rate:
            return None
        return cost.flops / (rate * calibration.prefill_efficiency(device_class(device)))
    per_core = calibration.cpu_flops_per_core_arm if budget.cpu_arch == "arm" else calibration.cpu_flops_per_core
    return cost.flops / (max(1, budget.cpu_cores) * per_core)


def encoder_buffer_bytes(cost: ImageCost, t: VisionTower) -> int:
    """The encoder's compute buffer while it runs: a few F32 activations of every patch it encodes at
    once (a tile's, where llama.cpp encodes tile by tile), and one head's attention scores over them."""
    at_once = cost.slice_patches or cost.patches
    return int(at_once * (6 * t.hidden_size + 2 * t.intermediate_size) * F32 + at_once**2 * F32)
