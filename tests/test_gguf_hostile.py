"""--gguf FILE on hostile and broken files: every one is a one-line usage error (exit 2), read in
bounded time and memory (agent/ggufheader.py). The files are written byte by byte with struct;
valid baselines with the gguf package's writer (tests/test_gguf.py)."""

from __future__ import annotations

import json
import math
import os
import random
import re
import struct
import sys
import tracemalloc
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

from test_gguf import write_llama, write_moe  # noqa: E402  (tests/ is on sys.path under pytest)

from fitagent.agent import ggufheader  # noqa: E402
from fitagent.agent.ggufheader import printable, read_gguf_header  # noqa: E402
from fitagent.agent.modelfiles import model_from_gguf_file  # noqa: E402
from fitagent.catalog.errors import UsageError  # noqa: E402

# GGUF value types (ggml docs/gguf.md)
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_CODES = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8


# ------------------------------------------------------------------------------ writing bytes


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, value) -> bytes:
    if vtype == STR:
        payload = s(value)
    elif vtype == ARR:
        etype, items = value
        payload = struct.pack("<IQ", etype, len(items))
        payload += (
            b"".join(s(x) for x in items) if etype == STR else struct.pack(f"<{len(items)}{_CODES[etype]}", *items)
        )
    else:
        payload = struct.pack("<" + _CODES[vtype], value)
    return s(key) + struct.pack("<I", vtype) + payload


def tensor_info(name: str, dims, ggml_type: int, offset: int) -> bytes:
    return (
        s(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def head(tensor_count: int, kv_count: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)


LLAMA_KVS = [
    ("general.architecture", STR, "llama"),
    ("general.name", STR, "raw-llama"),
    ("general.file_type", U32, 1),  # MOSTLY_F16
    ("llama.block_count", U32, 1),
    ("llama.embedding_length", U32, 64),
    ("llama.feed_forward_length", U32, 128),
    ("llama.attention.head_count", U32, 4),
    ("llama.attention.head_count_kv", U32, 2),
    ("llama.context_length", U32, 2048),
]
LLAMA_TENSORS = [  # (name, dims with ne[0] first, type)
    ("token_embd.weight", (64, 100), GGML_F16),
    ("output_norm.weight", (64,), GGML_F32),
    ("blk.0.attn_q.weight", (64, 64), GGML_F16),
    ("blk.0.ffn_up.weight", (64, 128), GGML_Q8_0),
]


def nbytes(dims, ggml_type) -> int:
    if ggml_type not in set(gguf.GGMLQuantizationType):
        return 32  # an unknown type: any size will do, the reader refuses it
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    return math.prod(dims) * size // block


def raw_gguf(
    kvs=None, tensors=None, *, extra_kv=(), data: bool = True, replace: dict | None = None, version: int = 3
) -> bytes:
    """A small llama GGUF, byte by byte: ``kvs`` (key, type, value) with ``replace`` overriding some
    ({key: (type, value)}, or None to drop the key), ``extra_kv`` raw key/value entries appended,
    the tensor table ((name, dims, ggml type), data offsets aligned to 32), and zeroed data."""
    kvs = [(k, t, v) for k, t, v in (LLAMA_KVS if kvs is None else kvs) if k not in (replace or {})]
    kvs += [(k, *tv) for k, tv in (replace or {}).items() if tv is not None]
    tensors = LLAMA_TENSORS if tensors is None else tensors
    meta = b"".join(kv(*entry) for entry in kvs) + b"".join(extra_kv)
    table, offset = b"", 0
    for name, dims, ggml_type in tensors:
        table += tensor_info(name, dims, ggml_type, offset)
        offset += -(-nbytes(dims, ggml_type) // 32) * 32
    body = head(len(tensors), len(kvs) + len(extra_kv), version) + meta + table
    body += b"\0" * (-len(body) % 32)
    return body + (b"\0" * offset if data else b"")


# ------------------------------------------------------------------------------ checks


def one_line_exit_2(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
    assert "\x1b" not in out.stderr
    return out.stderr


def cli_error(cli, path, *extra) -> str:
    return one_line_exit_2(cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090", "--json", *extra))


def usage_error(path) -> str:
    """In-process: the reader and model builder raise a one-line UsageError, nothing else."""
    from fitagent.agent.catalog_cache import load_catalog

    try:
        model_from_gguf_file(path, load_catalog())
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message and "\x1b" not in message
        return message
    raise AssertionError(f"{path} was read without an error")


def write(tmp_path, data: bytes, name: str = "hostile.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------ the baselines


def test_raw_baseline_is_a_valid_model(tmp_path, cli, catalog):
    path = write(tmp_path, raw_gguf(), "raw.gguf")
    model = model_from_gguf_file(path, catalog)
    assert model.id == "raw-llama" and model.architecture.vocab_size == 100
    out = cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090", "--json")
    assert out.returncode == 0, out.stderr


def _old_reader(path):
    """What agent/modelfiles.py's _read_header returned when it used gguf.GGUFReader."""
    reader = gguf.GGUFReader(path)
    fields = {}
    for name, field in reader.fields.items():
        if not field.types:
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY and field.types[-1] == gguf.GGUFValueType.STRING:
            fields[name] = len(field.data)
        else:
            fields[name] = field.contents()
    tensors = [(t.name, int(t.n_bytes), int(t.n_elements), tuple(int(d) for d in t.shape)) for t in reader.tensors]
    return fields, tensors


def write_every_type(path):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("every-type")
    w.add_uint8("x.u8", 200)
    w.add_int8("x.i8", -5)
    w.add_uint16("x.u16", 60000)
    w.add_int16("x.i16", -3)
    w.add_uint32("x.u32", 7)
    w.add_int32("x.i32", -7)
    w.add_float32("x.f32", 1.1)
    w.add_bool("x.bool", True)
    w.add_uint64("x.u64", 2**63)
    w.add_int64("x.i64", -(2**40))
    w.add_float64("x.f64", 2.2)
    w.add_string("x.str", "héllo\nworld")
    w.add_array("x.ints", [1, 2, 3])
    w.add_array("x.floats", [0.5, 1.5])
    w.add_array("x.strings", ["a", "bb", "ccc"])
    w.add_block_count(3)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_array("llama.attention.head_count_kv", [2] * 100)  # per-layer, longer than the small-array cap
    w.add_array("llama.attention.sliding_window_pattern", [True, False, True])
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_token_scores([0.0] * 100)  # 100 floats: a count, not a list
    import numpy as np

    w.add_tensor("token_embd.weight", np.zeros((100, 64), np.float32))
    w.add_tensor(
        "x.q",
        gguf.quants.quantize(np.zeros((2, 64), np.float32), gguf.GGMLQuantizationType.Q8_0),
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    w.add_tensor("x.3d", np.zeros((2, 3, 4), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("writer", [write_llama, write_moe, write_every_type])
def test_same_header_as_the_gguf_package_reads(tmp_path, writer):
    path = writer(tmp_path / "valid.gguf")
    old_fields, old_tensors = _old_reader(path)
    header = read_gguf_header(path)
    assert header.tensors == old_tensors  # names, bytes, elements, shapes (ne[0] first) and their order
    assert header.version == 3 and header.alignment == 32
    differ = {k for k in old_fields.keys() | header.fields.keys() if old_fields.get(k) != header.fields.get(k)}
    # Only numeric arrays longer than the small cap, outside the per-layer keys, become their count.
    assert differ <= {"tokenizer.ggml.scores"}
    if differ:
        assert header.fields["tokenizer.ggml.scores"] == len(old_fields["tokenizer.ggml.scores"]) == 100
    if writer is write_every_type:
        assert header.fields["tokenizer.ggml.tokens"] == 100 and header.fields["x.strings"] == 3
        assert header.fields["llama.attention.head_count_kv"] == [2] * 100
        assert header.fields["x.str"] == "héllo\nworld"  # only printed strings are cleaned


@pytest.mark.parametrize("writer", [write_llama, write_moe])
def test_same_estimate_as_with_the_gguf_package(tmp_path, writer, catalog, monkeypatch):
    from fitagent.agent import modelfiles
    from fitagent.estimator.budget import Budget, device_from_spec
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    path = writer(tmp_path / "valid.gguf")
    budget = Budget((device_from_spec(catalog.gpu("RTX 4090")),), 64 * 2**30, 80e9, 8)
    quant = catalog.quant("Q8_0")
    new = model_from_gguf_file(path, catalog)
    monkeypatch.setattr(modelfiles, "_read_header", lambda p, origin: _old_reader(p))
    old = model_from_gguf_file(path, catalog)
    assert new == old
    assert estimate(new, quant, budget, catalog, Options(context=1024)) == estimate(
        old, quant, budget, catalog, Options(context=1024)
    )


def test_big_endian_file(tmp_path):
    little = write_llama(tmp_path / "le.gguf")
    w = gguf.GGUFWriter(str(tmp_path / "be.gguf"), "llama", endianess=gguf.GGUFEndian.BIG)
    import numpy as np

    w.add_block_count(2)
    w.add_array("llama.attention.head_count_kv", [2, 2])
    w.add_tensor("token_embd.weight", np.zeros((100, 64), np.float32).byteswap().view(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    header = read_gguf_header(tmp_path / "be.gguf")
    assert header.byte_order == ">" and header.version == 3
    assert header.fields["llama.block_count"] == 2 and header.fields["llama.attention.head_count_kv"] == [2, 2]
    assert header.tensors == [("token_embd.weight", 25600, 6400, (64, 100))]
    assert read_gguf_header(little).byte_order == "<"


def test_every_key_ggufmodel_reads_is_a_per_layer_key():
    """The per-layer arrays the reader keeps whole are the keys estimator/ggufmodel.py reads."""
    import fitagent.estimator.ggufmodel as ggufmodel

    source = Path(ggufmodel.__file__).read_text()
    read = set(re.findall(r"meta\.(?:int|get)\(\"([a-z_.]+)\"", source))
    assert read and read <= ggufheader.LAYER_KEYS, read - ggufheader.LAYER_KEYS


# ------------------------------------------------------------------------------ the file


def scores_bomb() -> bytes:
    """69 bytes: one key, tokenizer.ggml.scores, an array of 10^9 float32 — and then nothing."""
    data = head(0, 1) + s("tokenizer.ggml.scores") + struct.pack("<IIQ", ARR, F32, 10**9)
    assert len(data) == 69
    return data


def test_huge_array_is_refused_from_its_count(tmp_path, cli):
    path = write(tmp_path, scores_bomb())
    before = _children_maxrss()
    err = cli_error(cli, path)
    assert "array 'tokenizer.ggml.scores' declares 1,000,000,000 float32 elements" in err
    assert "(4,000,000,000 bytes) but only 0 bytes remain" in err
    # The old reader grew without bound; this one's child process stays small (ru_maxrss is the
    # largest child so far, so this bounds the CLI run whatever ran before it).
    if before is not None:
        assert _children_maxrss() <= max(before, 400 * 2**20)


def test_huge_array_in_process_allocates_little(tmp_path):
    path = write(tmp_path, scores_bomb())
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="declares 1,000,000,000 float32 elements"):
            read_gguf_header(path, "--gguf bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def _children_maxrss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale


def test_big_arrays_that_fit_are_skipped_not_built(tmp_path):
    """A real-sized vocabulary (strings) and scores (floats), with the bytes present: read for
    their counts, in little memory."""
    n = 200_000
    vocab = kv("tokenizer.ggml.tokens", ARR, (STR, [f"tok{i}" for i in range(n)]))
    scores = kv("tokenizer.ggml.scores", ARR, (F32, [0.5] * n))
    path = write(tmp_path, raw_gguf(extra_kv=[vocab, scores]))
    tracemalloc.start()
    try:
        header = read_gguf_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.fields["tokenizer.ggml.tokens"] == n and header.fields["tokenizer.ggml.scores"] == n
    assert peak < 10 * 2**20  # the file is ~3 MB; the reader holds a chunk, not the arrays


# ------------------------------------------------------------------------------ the hostile corpus


def _header_only(data: bytes) -> bytes:
    """``data`` without its tensor data (the header and its padding only)."""
    return data[: len(data) - sum(-(-nbytes(d, t) // 32) * 32 for _, d, t in LLAMA_TENSORS)]


def _one_tensor_at(offset: int) -> bytes:
    data = head(1, 1) + kv("general.architecture", STR, "llama") + tensor_info("t", (8,), GGML_F32, offset)
    return data + b"\0" * (-len(data) % 32 + 64)


HOSTILE = {
    # name: (bytes, a fragment of the one-line error)
    "empty": (b"", "empty file"),
    "three bytes": (b"GGU", "GGUF magic invalid"),
    "not gguf": (b"PK\x03\x04 a zip file, say", "GGUF magic invalid"),
    "magic only": (b"GGUF", "truncated or corrupt header: the version"),
    "version 1": (b"GGUF" + struct.pack("<IIIQ", 1, 0, 0, 0), "GGUF version 1"),
    "version 99": (raw_gguf(version=99), "GGUF version 99: fitagent reads versions 2 and 3"),
    "string length 2^63": (
        head(0, 1) + s("general.name") + struct.pack("<IQ", STR, 2**63),
        "declares 9,223,372,036,854,775,808 bytes but only 0 remain",
    ),
    "key length 2^64-1": (
        head(0, 1) + struct.pack("<Q", 2**64 - 1) + b"key" + b"\0" * 16,
        "the key of metadata entry 1 of 1",
    ),
    "kv_count 2^64-1": (
        head(0, 2**64 - 1) + kv("general.architecture", STR, "llama"),
        "declares 18,446,744,073,709,551,615 metadata key/value pairs",
    ),
    "tensor_count 2^63": (head(2**63, 0) + b"\0" * 64, "declares 9,223,372,036,854,775,808 tensors"),
    "tensor_count over the limit, bytes present": (
        head(ggufheader.MAX_TENSOR_COUNT + 1, 0) + b"\0" * (32 * (ggufheader.MAX_TENSOR_COUNT + 1)),
        "more than the 262,144 fitagent accepts",
    ),
    "unknown value type": (
        head(0, 1) + s("general.x") + struct.pack("<II", 13, 0),
        "value type 13, which is not a GGUF type",
    ),
    "unknown array element type": (
        head(0, 1) + s("general.x") + struct.pack("<IIQ", ARR, 99, 1) + b"\0" * 8,
        "element type 99, which is not a GGUF type",
    ),
    "array of 2^62 strings": (
        head(0, 1) + s("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARR, STR, 2**62),
        "array 'tokenizer.ggml.tokens' declares 4,611,686,018,427,387,904 strings",
    ),
    "string in a vocabulary 2^64-1 long": (
        head(0, 1)
        + s("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", ARR, STR, 3)
        + s("a")
        + struct.pack("<Q", 2**64 - 1)
        + b"\0" * 16,
        "string 1 of array 'tokenizer.ggml.tokens'",
    ),
    "arrays nested three deep": (
        head(0, 1) + s("general.x") + struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", ARR, 1) + b"\0" * 12,
        "nests arrays deeper than 2 levels",
    ),
    "duplicate key": (raw_gguf(extra_kv=[kv("general.name", STR, "again")]), "duplicate metadata key 'general.name'"),
    "alignment 0": (raw_gguf(replace={"general.alignment": (U32, 0)}), "general.alignment must be a power of two"),
    "alignment 48": (raw_gguf(replace={"general.alignment": (U32, 48)}), "general.alignment must be a power of two"),
    "alignment as a string": (raw_gguf(replace={"general.alignment": (STR, "32")}), "general.alignment must be"),
    "n_dims 1000": (
        raw_gguf(tensors=[("token_embd.weight", (64,) * 1000, GGML_F32)], data=False),
        "tensor 'token_embd.weight' has 1,000 dimensions",
    ),
    "n_dims 0": (head(1, 0) + s("t") + struct.pack("<IIQ", 0, 0, 0) + b"\0" * 32, "tensor 't' has 0 dimensions"),
    "dim 2^64-1": (
        raw_gguf(tensors=[("token_embd.weight", (64, 2**64 - 1), GGML_F16)], data=False),
        "truncated: tensor 'token_embd.weight' ends at byte",
    ),
    "dim 0": (raw_gguf(tensors=[("token_embd.weight", (64, 0), GGML_F16)]), "has a zero dimension"),
    "unknown ggml type 99": (raw_gguf(tensors=[("token_embd.weight", (64, 100), 99)], data=False), "ggml type 99"),
    "removed ggml type 4 (Q4_2)": (raw_gguf(tensors=[("token_embd.weight", (64, 100), 4)], data=False), "ggml type 4"),
    "row not whole blocks": (
        raw_gguf(tensors=[("token_embd.weight", (33, 100), GGML_Q8_0)]),
        "rows of 33 values are not whole Q8_0 blocks of 32",
    ),
    "duplicate tensor": (
        raw_gguf(tensors=[LLAMA_TENSORS[0], LLAMA_TENSORS[0]]),
        "duplicate tensor 'token_embd.weight'",
    ),
    "data offset 2^40": (_one_tensor_at(2**40), "truncated: tensor 't' ends at byte 1,099,511,627,"),
    "data offset not aligned": (
        _one_tensor_at(8),
        "tensor 't' has data offset 8, not a multiple of the alignment (32)",
    ),
    "header only": (_header_only(raw_gguf()), "truncated: tensor 'blk.0.ffn_up.weight' ends at byte"),
    "data cut short": (raw_gguf()[:-1], "truncated: tensor 'blk.0.ffn_up.weight' ends at byte"),
    "block_count 2^64-1": (
        raw_gguf(replace={"llama.block_count": (U64, 2**64 - 1)}),
        "llama.block_count must be between 1 and 100,000, got 18,446,744,073,709,551,615",
    ),
    "block_count 0": (
        raw_gguf(replace={"llama.block_count": (U32, 0)}),
        "llama.block_count must be between 1 and 100,000",
    ),
    "block_count NaN": (
        raw_gguf(replace={"llama.block_count": (F32, float("nan"))}),
        "llama.block_count must be a finite number, got nan",
    ),
    "context_length inf": (
        raw_gguf(replace={"llama.context_length": (F64, float("inf"))}),
        "llama.context_length must be a finite number, got inf",
    ),
    "embedding_length 1e30": (
        raw_gguf(replace={"llama.embedding_length": (F32, 1e30)}),
        "llama.embedding_length must be between 1 and 1,048,576",
    ),
    "head_count negative": (
        raw_gguf(replace={"llama.attention.head_count": (I32, -4)}),
        "llama.attention.head_count must be a non-negative number, got -4",
    ),
    "head_count 2^32-1": (
        raw_gguf(replace={"llama.attention.head_count": (U32, 2**32 - 1)}),
        "llama.attention.head_count must be between 1 and 65,536",
    ),
    "more heads than dimensions": (
        raw_gguf(replace={"llama.embedding_length": (U32, 2)}),
        "llama.embedding_length (2) is smaller than llama.attention.head_count (4)",
    ),
    "expert_count 2^63": (
        raw_gguf(replace={"llama.expert_count": (U64, 2**63)}),
        "llama.expert_count must be between 0 and 65,536",
    ),
    "feed_forward_length 2^40 in a per-layer array": (
        raw_gguf(replace={"llama.feed_forward_length": (ARR, (U64, [128, 2**40]))}),
        "llama.feed_forward_length must be between 0 and 16,777,216",
    ),
    "vocab_size as a string": (
        raw_gguf(replace={"llama.vocab_size": (STR, "32000")}),
        "llama.vocab_size must be a non-negative number",
    ),
    "vocab_size 2^64-1": (
        raw_gguf(replace={"llama.vocab_size": (U64, 2**64 - 1)}),
        "llama.vocab_size must be between 0 and 16,777,216",
    ),
    "per-layer array longer than any model": (
        raw_gguf(replace={"llama.attention.head_count_kv": (ARR, (U8, [2] * (ggufheader.MAX_LAYER_ARRAY + 1)))}),
        "array 'llama.attention.head_count_kv' has 100,001 entries",
    ),
    "no architecture": (raw_gguf(replace={"general.architecture": None}), "no general.architecture"),
    "architecture of control characters only": (
        raw_gguf(replace={"general.architecture": (STR, "\x1b[2J\x07")}),
        "no general.architecture",
    ),
    "no tensors": (raw_gguf(tensors=[]), "holds no tensors"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_one_line_usage_error(tmp_path, capsys, name):
    """Every file of the corpus through the CLI's entry point, in process (the subprocess test
    below runs a sample): exit 2, one line on stderr."""
    from fitagent.agent.cli import main

    data, fragment = HOSTILE[name]
    path = write(tmp_path, data)
    message = usage_error(path)
    assert fragment in message, message
    assert str(path) in message
    capsys.readouterr()
    assert main(["estimate", "--gguf", str(path), "--gpu", "RTX 4090", "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"fitagent estimate: {message}\n"


@pytest.mark.parametrize(
    "name",
    [
        "kv_count 2^64-1",
        "tensor_count 2^63",
        "n_dims 1000",
        "dim 2^64-1",
        "unknown ggml type 99",
        "header only",
        "block_count 2^64-1",
        "block_count 0",
        "block_count NaN",
        "string length 2^63",
        "empty",
        "not gguf",
    ],
)
def test_hostile_file_cli_exits_2_with_one_line(tmp_path, cli, name):
    data, fragment = HOSTILE[name]
    err = cli_error(cli, write(tmp_path, data))
    assert err.startswith("fitagent estimate: ") and fragment in err, err


def test_truncated_at_every_point_of_a_valid_file(tmp_path, catalog):
    """Every cut through the header, and a spread of cuts through the data, is a one-line error."""
    whole = write_llama(tmp_path / "tiny.gguf").read_bytes()
    header = read_gguf_header(tmp_path / "tiny.gguf")
    header_end, data_offset = header.header_end, header.data_offset
    cuts = list(range(data_offset + 1)) + list(range(data_offset + 1, len(whole), 997)) + [len(whole) - 1]
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole)
    for cut in sorted(cuts, reverse=True):
        os.truncate(path, cut)  # (cheaper than rewriting the file each time)
        with pytest.raises(UsageError) as raised:
            model_from_gguf_file(path, catalog)
        message = str(raised.value)
        assert "\n" not in message and message.startswith(f"--gguf {path}: "), (cut, message)
        if cut == 0:
            assert "empty file" in message
        elif cut < 4:
            assert "GGUF magic invalid" in message, (cut, message)
        elif cut < header_end:
            assert "truncated or corrupt header" in message, (cut, message)
        else:  # the header whole, the data cut
            assert "truncated: tensor" in message, (cut, message)
    path.write_bytes(whole)
    assert model_from_gguf_file(path, catalog).id == "tiny-llama"


def test_random_corruption_is_never_worse_than_a_usage_error(tmp_path, catalog):
    """Bytes of a valid header overwritten at random (a fixed seed): a model or a one-line error."""
    whole = write_llama(tmp_path / "tiny.gguf").read_bytes()
    data_offset = read_gguf_header(tmp_path / "tiny.gguf").data_offset
    rng = random.Random(16)
    path = tmp_path / "mutated.gguf"
    path.write_bytes(whole)
    outcomes = set()
    with open(path, "r+b") as f:  # rewritten in place: every mutation has the same length
        for _ in range(400):
            data = bytearray(whole[:data_offset])
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(data_offset)
                data[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
            f.seek(0)
            f.write(data)
            f.flush()
            outcomes.add(_read_or_error(path, catalog))
    assert outcomes == {"read", "error"}


def _read_or_error(path, catalog) -> str:
    try:
        model_from_gguf_file(path, catalog)
        return "read"
    except UsageError as exc:
        assert "\n" not in str(exc)
        return "error"


def test_name_with_terminal_escapes_is_printed_clean(tmp_path, cli):
    path = write(
        tmp_path,
        raw_gguf(
            replace={
                "general.name": (STR, "\x1b[31mRED\x1b[0m\n"),
                "general.basename": (STR, "base\x1b]0;title\x07name\r\n"),
            }
        ),
    )
    header = read_gguf_header(path)
    assert header.fields["general.name"] == "RED" and header.fields["general.basename"] == "basename"
    out = cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\r" not in out.stdout
    assert out.stdout.splitlines()[0].startswith("RED · ")
    data = json.loads(cli("estimate", "--gguf", str(path), "--gpu", "RTX 4090", "--json").stdout)
    assert data["model"] == "RED"


def test_printable():
    assert printable("\x1b[1;31mbold red\x1b[0m") == "bold red"
    assert printable("a\tb\nc\u202ed\u200be") == "abcde"  # controls, bidi override, zero-width space
    assert printable("x" * 500) == "x" * 199 + "…"
    assert printable("Llama-3.1 8B Instruct · ünïcode") == "Llama-3.1 8B Instruct · ünïcode"


def test_directory_fifo_and_missing(tmp_path, cli):
    assert "is a directory" in cli_error(cli, tmp_path)
    assert "no such file" in cli_error(cli, tmp_path / "absent.gguf")
    with pytest.raises(UsageError, match="is a directory"):
        read_gguf_header(tmp_path, "--gguf dir")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.gguf"
        os.mkfifo(fifo)
        assert "not a regular file" in cli_error(cli, fifo)  # refused, not waited on


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path, cli):
    path = write(tmp_path, raw_gguf())
    path.chmod(0)
    assert "permission denied" in cli_error(cli, path)


def test_split_shards_read_together(tmp_path, catalog):
    first = [t for t in LLAMA_TENSORS if not t[0].startswith("blk.")]
    (tmp_path / "m-00001-of-00002.gguf").write_bytes(raw_gguf(tensors=first))
    (tmp_path / "m-00002-of-00002.gguf").write_bytes(
        raw_gguf(kvs=[], tensors=[t for t in LLAMA_TENSORS if t not in first])
    )
    whole = model_from_gguf_file(write(tmp_path, raw_gguf(), "whole.gguf"), catalog)
    split = model_from_gguf_file(tmp_path / "m-00001-of-00002.gguf", catalog)
    assert (
        split.file_weights.total_bytes
        == whole.file_weights.total_bytes
        == sum(nbytes(d, t) for _, d, t in LLAMA_TENSORS)
    )


def test_split_shard_truncated_names_the_shard(tmp_path, catalog):
    whole = raw_gguf()
    (tmp_path / "m-00001-of-00002.gguf").write_bytes(whole)
    (tmp_path / "m-00002-of-00002.gguf").write_bytes(_header_only(whole))
    message = usage_error(tmp_path / "m-00001-of-00002.gguf")
    assert "m-00002-of-00002.gguf" in message and "truncated: tensor" in message


def test_limits_are_enforced_where_the_bytes_exist(tmp_path, monkeypatch):
    """Limits lowered for the test: each one refuses a file that has the bytes it declares."""
    nested = s("x.nested") + struct.pack("<IIQ", ARR, ARR, 3) + struct.pack("<IQ", U8, 0) * 3
    path = write(
        tmp_path,
        raw_gguf(
            extra_kv=[
                kv("tokenizer.ggml.tokens", ARR, (STR, ["a"] * 50)),
                kv("general.chat_template", STR, "{{ x }}" * 20),
                kv("x.small", ARR, (U32, [1] * 10)),
                nested,
            ]
        ),
    )
    header = read_gguf_header(path)
    assert header.fields["x.nested"] == 3 and header.fields["x.small"] == [1] * 10
    for limit, value, fragment in [
        ("MAX_KV_COUNT", 5, "metadata key/value pairs, more than the 5"),
        ("MAX_TENSOR_COUNT", 3, "4 tensors, more than the 3"),
        ("MAX_ARRAY_STRINGS", 49, "strings in arrays to 50, more than the 49"),
        ("MAX_INNER_ARRAYS", 2, "arrays inside arrays to 3, more than the 2"),
        ("MAX_LIST_NUMBERS", 5, "array 'x.small' brings the numbers in arrays to 10"),
        ("MAX_STRING_BYTES", 100, "is 140 bytes long, more than the 100"),
        ("MAX_HEADER_BYTES", 600, "the header runs past the first 600 bytes"),
    ]:
        with monkeypatch.context() as m:
            m.setattr(ggufheader, limit, value)
            with pytest.raises(UsageError, match=re.escape(fragment)):
                read_gguf_header(path)
