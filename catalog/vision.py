"""The vision towers of the catalog's vision models (data/vision.yaml): read, checked, looked up."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import DataError
from .files import read_data_file

ENCODERS = ("siglip", "qwen2.5-vl", "qwen3-vl", "pixtral", "llama4")


@dataclass(frozen=True)
class VisionTower:
    model: str
    encoder: str  # siglip (Gemma 3), qwen2.5-vl, qwen3-vl, pixtral (Mistral Small 3.1), llama4
    projector: str
    layers: int
    hidden_size: int
    intermediate_size: int
    patch_size: int
    image_size: int | None = None  # the fixed input (SigLIP) or the longest edge (Pixtral)
    tokens_per_image: int | None = None  # fixed per image (Gemma 3)
    merge: int = 1  # patches merged per side into one token
    temporal_patch: int = 1
    window: int | None = None  # window attention span in pixels (Qwen2.5-VL)
    full_attention_layers: int | None = None
    positions: int | None = None  # a learned position table of this many patches (Qwen3-VL)
    deepstack: int = 0  # extra patch mergers fed from inner layers (Qwen3-VL's DeepStack)
    adapter_size: int | None = None  # the width of the MLP between the merged patches and the projector (Llama 4)
    max_tiles: int | None = None  # tiles per side an image is cut into at most (llama.cpp's Llama 4: 3)
    source: str = ""


_INTS = ("layers", "hidden_size", "intermediate_size", "patch_size")


def parse_towers(doc) -> dict[str, VisionTower]:
    if not isinstance(doc, dict) or not isinstance(doc.get("towers"), list):
        raise DataError("data/vision.yaml: expected a `towers:` list; reinstall fitagent or fix the file")
    out = {}
    for i, entry in enumerate(doc["towers"]):
        where = f"data/vision.yaml: towers[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise DataError(f"{where}: each tower needs a `model` id; fix the file")
        if entry.get("encoder") not in ENCODERS:
            raise DataError(f"{where} ({entry['model']}): encoder must be one of {', '.join(ENCODERS)}; fix the file")
        for key in _INTS:
            if not isinstance(entry.get(key), int) or entry[key] <= 0:
                raise DataError(f"{where} ({entry['model']}): {key} must be a positive whole number; fix the file")
        if not entry.get("source"):
            raise DataError(f"{where} ({entry['model']}): every tower needs its `source`; fix the file")
        try:
            out[entry["model"]] = VisionTower(**entry)
        except TypeError as exc:
            raise DataError(f"{where} ({entry['model']}): {exc}; fix the file") from None
    return out


@lru_cache(maxsize=1)
def vision_towers() -> dict[str, VisionTower]:
    return parse_towers(read_data_file("vision.yaml"))


def tower_for(model_id: str) -> VisionTower | None:
    return vision_towers().get(model_id)
