"""Vision models (#15): the projector llama.cpp loads beside the model (mmproj), the tokens an image
becomes, and what they add to an estimate. Expected sizes are published files'."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fitagent.catalog.errors import DataError
from fitagent.catalog.vision import parse_towers, tower_for
from fitagent.estimator.vision import image_cost, projector_bytes

# ggml-org's Gemma 3 mmproj-model-f16.gguf files: exact sizes (with sha256) as apps pin them
# (tests/data/MEASUREMENTS.md, "Vision projectors"). The three differ only in the projector matrix
# into the text width (2560, 3840, 5376), by exactly 1152 × Δwidth × 2 bytes.
GEMMA3_MMPROJ = {
    "google/gemma-3-4b-it": 851_251_104,
    "google/gemma-3-12b-it": 854_200_224,
    "google/gemma-3-27b-it": 857_739_168,
}
GGUF_HEADER_MAX = 64 * 1024  # metadata and tensor table: what a file holds beyond its tensors


@pytest.mark.parametrize("model_id, published", GEMMA3_MMPROJ.items())
def test_gemma3_projectors_are_the_published_files(catalog, model_id, published):
    tensors = projector_bytes(tower_for(model_id), catalog.model(model_id).architecture.hidden_size)
    assert 0 < published - tensors < GGUF_HEADER_MAX  # 25,056 bytes for all three: the same header


def test_qwen3_vl_projector_is_the_published_file(catalog):
    """Qwen/Qwen3-VL-8B-Instruct-GGUF mmproj-Qwen3VL-8B-Instruct-F16.gguf: 1,159,029,824 bytes as an app
    pins it with its download URL. Its tensors: the SigLIP-like tower, a learned position table (F32),
    the patch merger and three DeepStack mergers; 20,608 bytes left for the header."""
    tensors = projector_bytes(tower_for("Qwen/Qwen3-VL-8B-Instruct"), 4096)
    assert 0 < 1_159_029_824 - tensors < GGUF_HEADER_MAX


def test_qwen3_vl_4b_projector_is_the_published_file(catalog):
    """lmstudio-community/Qwen3-VL-4B-Instruct-GGUF mmproj-Qwen3-VL-4B-Instruct-F16.gguf: 836,180,160
    bytes as an app pins it (and an LM Studio guide lists 797 MiB). The 2B/4B tower: 24 layers of
    1,024 (transformers' config as bundled by ai-dynamo/aiconfigurator), into the 4B's 2,560-wide
    text model; 18,624 bytes left for the header."""
    tensors = projector_bytes(
        tower_for("Qwen/Qwen3-VL-4B-Instruct"), catalog.model("qwen3-vl-4b-instruct").architecture.hidden_size
    )
    assert 0 < 836_180_160 - tensors < GGUF_HEADER_MAX


def test_llama4_vision_tower(catalog):
    """Llama 4 Scout and Maverick: 34 SigLIP-like layers of 1,408 (biases, LayerNorms), a linear patch
    embedding, a class token and a 577-row position table, a pixel-shuffle adapter (5,632 → 4,096 →
    4,096) and the projector into 5,120 — 871,932,416 weights, as Hugging Face's per-module table of
    Scout counts them. Ollama loads it as `projector.weights="1.6 GiB"` (ollama#10739): 1.63 here.
    Tiles of 336 (up to a 3 × 3 grid and an overview in llama.cpp), each 144 tokens."""
    tower = tower_for("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    h, i = 1408, 5632
    f16 = 34 * (4 * h * h + 2 * h * i) + 588 * h + i * 4096 + 4096 * 4096 + 4096 * 5120
    f32 = 34 * (4 * h + i + h + 4 * h) + h + 4 * h + 577 * h
    assert f16 + f32 == 871_932_416
    assert projector_bytes(tower, 5120) == 2 * f16 + 4 * f32
    assert 1.55 <= projector_bytes(tower, 5120) / 1024**3 < 1.65
    assert tower_for("meta-llama/Llama-4-Maverick-17B-128E-Instruct") == replace(
        tower,
        model="meta-llama/Llama-4-Maverick-17B-128E-Instruct",
        source=tower_for("meta-llama/Llama-4-Maverick-17B-128E-Instruct").source,
    )
    assert [
        image_cost(tower, w, hh, 5120).tokens for w, hh in ((336, 336), (672, 336), (1024, 1024), (4000, 3000))
    ] == [
        144,  # one tile, no overview
        3 * 144,  # two tiles and the overview (HF's prompt adds 5 markers: 437)
        10 * 144,  # 3 × 3 and the overview
        10 * 144,  # at most 3 × 3 in llama.cpp
    ]


@pytest.mark.parametrize(
    "model_id, published, tolerance",
    [
        # bartowski's mmproj-…-f16.gguf, listed as 0.878 GB
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", 0.878e9, 0.001),
        # the f16 mmproj of Qwen2.5-VL-7B, which apps pin as ~1.35e9 bytes (no exact listing found)
        ("Qwen/Qwen2.5-VL-7B-Instruct", 1.35e9, 0.01),
    ],
)
def test_other_projectors_match_their_listings(catalog, model_id, published, tolerance):
    tensors = projector_bytes(tower_for(model_id), catalog.model(model_id).architecture.hidden_size)
    assert tensors == pytest.approx(published, rel=tolerance)


@pytest.mark.parametrize(
    "model_id, size, tokens",
    [
        ("google/gemma-3-4b-it", (1024, 1024), 256),  # every image resized to 896²: 256 tokens
        ("google/gemma-3-4b-it", (4000, 300), 256),
        ("Qwen/Qwen2.5-VL-7B-Instruct", (1024, 1024), 37 * 37),  # sides rounded to 1036 = 37 × 28
        ("Qwen/Qwen2.5-VL-7B-Instruct", (448, 448), 16 * 16),
        ("Qwen/Qwen3-VL-8B-Instruct", (1024, 1024), 32 * 32),  # patches of 16, 2×2 merged: sides of 32
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", (1024, 1024), 37 * 37 + 37),  # + a break per row
        # the longest edge scaled to 1540: 110 × 74 patches, 55 × 37 merged, 37 breaks
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", (3000, 2000), 55 * 37 + 37),
    ],
)
def test_an_images_tokens_follow_its_processor(catalog, model_id, size, tokens):
    cost = image_cost(tower_for(model_id), *size, catalog.model(model_id).architecture.hidden_size)
    assert cost.tokens == tokens


def test_images_add_their_projector_tokens_and_encoding(cli):
    base = ["estimate", "--model", "gemma3-27b", "--gpu", "RTX 4090", "--prompt-tokens", "200", "--json"]
    plain = json.loads(cli(*base).stdout)
    out = cli(*base, "--images", "2")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    vision = seen["vision"]
    assert plain["vision"] is None
    assert (vision["tokens_per_image"], vision["image_tokens"], vision["projector_bytes"]) == (256, 512, 857_714_112)
    assert seen["prompt_tokens"] == 200 + 512
    extra = vision["projector_bytes"] + vision["encoder_buffer_bytes"]
    assert seen["total_bytes"] - extra == plain["total_bytes"]  # the context is the same; the prompt fits in it
    assert seen["headroom_bytes"] == seen["budget_bytes"] - seen["total_bytes"]
    assert seen["time_to_first_token_s"] > plain["time_to_first_token_s"] + vision["encode_seconds"] * 0.99
    assert 0.01 < vision["encode_seconds"] < 1.0  # two 896² SigLIP passes on an RTX 4090


def test_images_on_a_text_model_are_one_line(cli):
    out = cli("estimate", "--model", "llama3.1-8b", "--gpu", "RTX 4090", "--images", "1")
    assert out.returncode == 2 and "--images: fitagent knows the vision tower of" in out.stderr
    bad = cli("estimate", "--model", "gemma3-4b", "--gpu", "RTX 4090", "--images", "1", "--image-size", "big")
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_bad_tower_entry_names_the_field():
    with pytest.raises(DataError, match=r"towers\[0\] \(x\): layers must be a positive whole number"):
        parse_towers(
            {
                "towers": [
                    {
                        "model": "x",
                        "encoder": "siglip",
                        "projector": "gemma3",
                        "layers": 0,
                        "hidden_size": 1,
                        "intermediate_size": 1,
                        "patch_size": 1,
                        "source": "s",
                    }
                ]
            }
        )
