"""How long `fitagent models --local` takes to find the models on a disk, cold and warm.

    python -m benchmarks.models [--gguf 1000] [--snapshots 200] [--vocab 4096] [--keep DIR]

Writes, in a temporary folder, a tree of GGUF files (headers of six architectures with their full
tensor tables, 24 to 64 layers; the weights a sparse hole, so the tree takes a few MB of disk) laid
out as LM Studio keeps them (publisher/repo/file, some split in shards), and a Hugging Face cache of
BF16 checkpoints (config.json and two safetensors shards per snapshot, linked from snapshots/ to
blobs/ as huggingface_hub does). Then scans it three times: cold (no scan cache: every header
read), warm (the cache from the cold scan: a stat per file), and warm with what `models --local`
adds (the catalog match and an estimate per model on an RTX 4090), and the whole command once cold
and once warm. The bar: a warm scan under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "snapshots" / "rtx4090.json"
# (GGUF architecture, HF class, layers, hidden, heads, KV heads, FFN width, experts, experts used, expert FFN)
ARCHS = [
    ("llama", "LlamaForCausalLM", 32, 4096, 32, 8, 14336, 0, 0, 0),
    ("qwen2", "Qwen2ForCausalLM", 28, 3584, 28, 4, 18944, 0, 0, 0),
    ("qwen3", "Qwen3ForCausalLM", 36, 4096, 32, 8, 12288, 0, 0, 0),
    ("gemma2", "Gemma2ForCausalLM", 26, 2304, 8, 4, 9216, 0, 0, 0),
    ("phi3", "Phi3ForCausalLM", 32, 3072, 32, 32, 8192, 0, 0, 0),
    ("qwen3moe", "Qwen3MoeForCausalLM", 48, 2048, 32, 4, 6144, 128, 8, 768),
]
FILE_TYPES = [("Q4_K_M", "Q4_K"), ("Q5_K_M", "Q5_K"), ("Q8_0", "Q8_0"), ("Q6_K", "Q6_K")]


def _tensors(arch, matrix_type: str, vocab: int):
    """(name, ne with ne[0] first, ggml type) of one model, as llama.cpp names them."""
    _, _, layers, hidden, heads, kv, ffn, experts, _, expert_ffn = arch
    head_dim = hidden // heads
    out = [
        ("token_embd.weight", (hidden, vocab), matrix_type),
        ("output_norm.weight", (hidden,), "F32"),
        ("output.weight", (hidden, vocab), matrix_type),
    ]
    for i in range(layers):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (hidden,), "F32"),
            (p + "attn_q.weight", (hidden, heads * head_dim), matrix_type),
            (p + "attn_k.weight", (hidden, kv * head_dim), matrix_type),
            (p + "attn_v.weight", (hidden, kv * head_dim), matrix_type),
            (p + "attn_output.weight", (heads * head_dim, hidden), matrix_type),
            (p + "ffn_norm.weight", (hidden,), "F32"),
        ]
        if experts:
            out += [
                (p + "ffn_gate_inp.weight", (hidden, experts), "F32"),
                (p + "ffn_gate_exps.weight", (hidden, expert_ffn, experts), matrix_type),
                (p + "ffn_up_exps.weight", (hidden, expert_ffn, experts), matrix_type),
                (p + "ffn_down_exps.weight", (expert_ffn, hidden, experts), matrix_type),
            ]
        else:
            out += [
                (p + "ffn_gate.weight", (hidden, ffn), matrix_type),
                (p + "ffn_up.weight", (hidden, ffn), matrix_type),
                (p + "ffn_down.weight", (ffn, hidden), matrix_type),
            ]
    return out


def write_gguf_header(path: Path, arch, file_type: tuple[str, str], name: str, vocab: int, shards: int = 1) -> None:
    """A GGUF of `arch` with its header and tensor table only (data: a sparse hole), in `shards` files."""
    import gguf
    import numpy as np

    gguf_arch, _, layers, hidden, heads, kv, ffn, experts, used, expert_ffn = arch
    tensors = _tensors(arch, file_type[1], 32000)
    per_shard = -(-len(tensors) // shards)
    for s in range(shards):
        target = path if shards == 1 else path.with_name(f"{path.stem}-{s + 1:05d}-of-{shards:05d}.gguf")
        w = gguf.GGUFWriter(str(target), gguf_arch)
        if s == 0:
            w.add_name(name)
            w.add_block_count(layers)
            w.add_embedding_length(hidden)
            w.add_feed_forward_length(ffn)
            w.add_head_count(heads)
            w.add_head_count_kv(kv)
            w.add_context_length(32768)
            w.add_file_type(getattr(gguf.LlamaFileType, "MOSTLY_" + file_type[0]))
            w.add_vocab_size(32000)
            if experts:
                w.add_expert_count(experts)
                w.add_expert_used_count(used)
                w.add_expert_feed_forward_length(expert_ffn)
            if vocab:
                w.add_token_list([f"tok{i}" for i in range(vocab)])
        data = 0
        for tname, ne, tname_type in tensors[s * per_shard : (s + 1) * per_shard]:
            qtype = gguf.GGMLQuantizationType[tname_type]
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            elements = 1
            for d in ne:
                elements *= d
            nbytes = elements // block * size
            w.add_tensor_info(tname, tuple(reversed(ne)), np.dtype(np.float32), nbytes, raw_dtype=qtype)
            data += -(-nbytes // 32) * 32
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        fout = w.fout[0]
        w.write_padding(fout, fout.tell())
        start = fout.tell()
        w.close()
        os.truncate(target, start + data)


def write_safetensors(path: Path, tensors) -> None:
    header, offset = {}, 0
    for name, shape in tensors:
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, 8 + len(raw) + offset)


def write_snapshot(hub: Path, repo: str, arch) -> None:
    _, hf_class, layers, hidden, heads, kv, ffn, experts, used, expert_ffn = arch
    base = hub / ("models--" + repo.replace("/", "--"))
    snapshot = base / "snapshots" / "a1b2c3d4"
    (base / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("a1b2c3d4")
    config = {
        "architectures": [hf_class],
        "model_type": hf_class.removesuffix("ForCausalLM").lower(),
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": ffn,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    }
    if experts:
        config.update(num_experts=experts, num_experts_per_tok=used, moe_intermediate_size=expert_ffn)
    names = []
    for i in range(layers):
        p = f"model.layers.{i}."
        names += [
            (p + "self_attn.q_proj.weight", (hidden, hidden)),
            (p + "self_attn.k_proj.weight", (kv * hidden // heads, hidden)),
            (p + "self_attn.v_proj.weight", (kv * hidden // heads, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "mlp.gate_proj.weight", (ffn, hidden)),
            (p + "mlp.up_proj.weight", (ffn, hidden)),
            (p + "mlp.down_proj.weight", (hidden, ffn)),
            (p + "input_layernorm.weight", (hidden,)),
            (p + "post_attention_layernorm.weight", (hidden,)),
        ]
    half = len(names) // 2
    files = {
        "config.json": lambda p: p.write_text(json.dumps(config)),
        "model-00001-of-00002.safetensors": lambda p: write_safetensors(
            p, [("model.embed_tokens.weight", (32000, hidden))] + names[:half]
        ),
        "model-00002-of-00002.safetensors": lambda p: write_safetensors(
            p, names[half:] + [("model.norm.weight", (hidden,)), ("lm_head.weight", (32000, hidden))]
        ),
        "tokenizer.json": lambda p: p.write_text("{}"),
    }
    for name, write in files.items():
        blob = base / "blobs" / hashlib.sha256(f"{repo}/{name}".encode()).hexdigest()
        write(blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)


def build(root: Path, n_gguf: int, n_snapshots: int, vocab: int) -> tuple[Path, Path]:
    tree, hub = root / "lmstudio", root / "hub"
    written = 0
    i = 0
    while written < n_gguf:
        arch = ARCHS[i % len(ARCHS)]
        layers = 24 + (i * 7) % 41
        arch = (*arch[:2], layers, *arch[3:])
        file_type = FILE_TYPES[i % len(FILE_TYPES)]
        folder = tree / f"publisher{i % 25}" / f"{arch[0]}-{layers}L-{i}-GGUF"
        folder.mkdir(parents=True, exist_ok=True)
        shards = 2 if i % 10 == 9 and n_gguf - written >= 2 else 1
        write_gguf_header(
            folder / f"{arch[0]}-{layers}L-{i}-{file_type[0]}.gguf",
            arch,
            file_type,
            f"Bench {arch[0]} {layers}L {i}",
            vocab,
            shards,
        )
        written += shards
        i += 1
    for j in range(n_snapshots):
        arch = ARCHS[j % 5]  # dense ones
        layers = 16 + (j * 5) % 33
        write_snapshot(hub, f"bench-org{j % 10}/{arch[0]}-{layers}L-{j}", (*arch[:2], layers, *arch[3:]))
    return tree, hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=int, default=1000, help="GGUF files to write (default 1000)")
    parser.add_argument("--snapshots", type=int, default=200, help="Hugging Face snapshots to write (default 200)")
    parser.add_argument(
        "--vocab",
        type=int,
        default=4096,
        help="strings in each GGUF's token list (default 4096; real files hold 32k-256k)",
    )
    parser.add_argument("--keep", type=Path, help="write the tree here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    from fitagent.agent.catalog_cache import load_catalog
    from fitagent.agent.localmodels import local_rows, scan
    from fitagent.agent.localmodels.report import match_catalog
    from fitagent.estimator.budget import Budget, device_from_spec
    from fitagent.estimator.results import Options

    catalog = load_catalog()
    root = args.keep or Path(tempfile.mkdtemp(prefix="fitagent-models-bench-"))
    try:
        started = time.perf_counter()
        tree, hub = build(root, args.gguf, args.snapshots, args.vocab)
        print(
            f"wrote {args.gguf} GGUF files and {args.snapshots} snapshots in {time.perf_counter() - started:.1f} s "
            f"under {root}"
        )
        env = {"HOME": str(root)}
        cache = str(root / "scan-cache.json")
        paths = [str(tree), str(hub)]
        timings = {}
        for label in ("cold", "warm", "warm again"):
            if label == "cold" and os.path.exists(cache):
                os.unlink(cache)
            started = time.perf_counter()
            result = scan(catalog, env, paths=paths, cache_path=cache)
            timings[label] = (time.perf_counter() - started, result)
        budget = Budget((device_from_spec(catalog.gpu("RTX 4090")),), 64 * 10**9, 80e9, 16)
        started = time.perf_counter()
        result = scan(catalog, env, paths=paths, cache_path=cache)
        installed = match_catalog(result, catalog)
        rows = local_rows(installed, catalog, budget, budget.devices, Options(context=8192))
        full = time.perf_counter() - started
        print(f"{'scan':28} {'seconds':>8} {'models':>7} {'read':>6} {'cached':>7} {'stat':>6} {'problems':>9}")
        for label, (seconds, r) in timings.items():
            print(
                f"{label:28} {seconds:8.3f} {len(r.models):7} {r.headers_read:7} {r.from_cache:7} {r.files_stat:6} "
                f"{len(r.problems):9}"
            )
        print(
            f"{'warm + match + estimates':28} {full:8.3f} {len(rows):7}   (what `fitagent models --local` adds, "
            "RTX 4090)"
        )
        print(
            f"scan cache: {os.path.getsize(cache) / 1e6:.1f} MB; bar: warm under 1 s — "
            f"{'met' if timings['warm'][0] < 1 else 'MISSED'}"
        )
        command = [
            sys.executable,
            "-m",
            "fitagent.agent.cli",
            "models",
            "--local",
            "--json",
            "--hardware",
            str(SNAPSHOT),
            *(arg for path in paths for arg in ("--path", path)),
        ]
        cli_env = {**os.environ, "FITAGENT_CACHE_DIR": str(root / "cli-cache")}
        for label in ("cold", "warm"):
            started = time.perf_counter()
            subprocess.run(command, env=cli_env, check=True, capture_output=True)
            print(
                f"`fitagent models --local --json --path …` {label}: {time.perf_counter() - started:.2f} s (whole command)"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
