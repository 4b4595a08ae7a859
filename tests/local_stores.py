"""Model stores as runtimes lay them out, in a temporary home: the Hugging Face cache, Ollama, LM Studio,
llama.cpp's cache, a folder — with small real GGUF files (the gguf package's writer), hollow
catalog-shaped ones (hollow_gguf) and safetensors headers over sparse, zero data (test helper)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import gguf
import numpy as np

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}


def write_safetensors(path: Path, tensors: list[tuple[str, str, list[int]]]) -> int:
    """A safetensors file: the 8-byte length, the JSON header, then sparse zeros for the data.
    Returns the file's size."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in tensors:
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, 8 + len(raw) + offset)
    return 8 + len(raw) + offset


def llama_8b_tensors(layers: range, first: bool, last: bool) -> list[tuple[str, str, list[int]]]:
    """Llama-3.1-8B's tensors in BF16 as transformers names them (those of `layers`, and the embedding
    in the first shard, norm and head in the last)."""
    out = [("model.embed_tokens.weight", "BF16", [128256, 4096])] if first else []
    for i in layers:
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", "BF16", [4096, 4096]),
            (p + "self_attn.k_proj.weight", "BF16", [1024, 4096]),
            (p + "self_attn.v_proj.weight", "BF16", [1024, 4096]),
            (p + "self_attn.o_proj.weight", "BF16", [4096, 4096]),
            (p + "mlp.gate_proj.weight", "BF16", [14336, 4096]),
            (p + "mlp.up_proj.weight", "BF16", [14336, 4096]),
            (p + "mlp.down_proj.weight", "BF16", [4096, 14336]),
            (p + "input_layernorm.weight", "BF16", [4096]),
            (p + "post_attention_layernorm.weight", "BF16", [4096]),
        ]
    if last:
        out += [("model.norm.weight", "BF16", [4096]), ("lm_head.weight", "BF16", [128256, 4096])]
    return out


def hf_repo(hub: Path, repo: str, files: dict[str, object], revision: str = "0123abcd") -> Path:
    """models--ORG--NAME with refs/main → snapshots/<rev>/<file> → ../../blobs/<hash>, as
    huggingface_hub lays it out. `files`: name → bytes, or a callable writing the blob at a path."""
    base = hub / ("models--" + repo.replace("/", "--"))
    snapshot = base / "snapshots" / revision
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(revision)
    for name, content in files.items():
        blob = base / "blobs" / hashlib.sha256(f"{repo}/{name}".encode()).hexdigest()
        if callable(content):
            content(blob)
        else:
            blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


def ollama_model(
    store: Path,
    name: str,
    model_blob_writer,
    projector: bytes | None = None,
    registry: str = "registry.ollama.ai",
    namespace: str = "library",
) -> Path:
    """manifests/<registry>/<namespace>/<model>/<tag> naming blobs/sha256-<hex> (digests made up: the
    scan does not check them)."""
    model, tag = name.split(":")
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"model {name}".encode()).hexdigest()
    model_blob_writer(blobs / f"sha256-{digest}")
    layers = [
        {
            "mediaType": "application/vnd.ollama.image.model",
            "digest": f"sha256:{digest}",
            "size": os.path.getsize(blobs / f"sha256-{digest}"),
        },
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 10},
    ]
    if projector is not None:
        pdigest = hashlib.sha256(f"projector {name}".encode()).hexdigest()
        (blobs / f"sha256-{pdigest}").write_bytes(projector)
        layers.append(
            {
                "mediaType": "application/vnd.ollama.image.projector",
                "digest": f"sha256:{pdigest}",
                "size": len(projector),
            }
        )
    manifest = store / "manifests" / registry / namespace / model / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": "sha256:" + "1" * 64,
                    "size": 485,
                },
                "layers": layers,
            }
        )
    )
    return manifest


def write_tiny(
    path: Path,
    name: str = "tiny-llama",
    split_max_tensors: int = 0,
    arch: str = "llama",
    file_type=gguf.LlamaFileType.MOSTLY_F16,
) -> list[Path]:
    """A 2-layer llama (hidden 64, 4 heads over 2 KV heads, vocab 100) in F16; with split_max_tensors,
    split into shards as llama.cpp's gguf-split names them. Returns the files written."""
    rng = np.random.default_rng(0)

    def f16(*shape):
        return rng.standard_normal(shape).astype(np.float16)

    w = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    w.add_name(name)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_context_length(2048)
    w.add_file_type(file_type)
    w.add_tensor("token_embd.weight", f16(100, 64))
    w.add_tensor("output_norm.weight", f16(64).astype(np.float32))
    w.add_tensor("output.weight", f16(100, 64))
    for i in range(2):
        for part, shape in (
            ("attn_norm", (64,)),
            ("attn_q", (64, 64)),
            ("attn_k", (32, 64)),
            ("attn_v", (32, 64)),
            ("attn_output", (64, 64)),
            ("ffn_norm", (64,)),
            ("ffn_gate", (128, 64)),
            ("ffn_up", (128, 64)),
            ("ffn_down", (64, 128)),
        ):
            tensor = f16(*shape)
            w.add_tensor(f"blk.{i}.{part}.weight", tensor if len(shape) > 1 else tensor.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if not split_max_tensors:
        return [path]
    return sorted(path.parent.glob(path.stem + "-*-of-*.gguf"))


def write_projector(path: Path) -> Path:
    """A small GGUF of llama.cpp's `clip` architecture, as mmproj files are."""
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name("tiny projector")
    w.add_tensor("mm.0.weight", np.zeros((8, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
