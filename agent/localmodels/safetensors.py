"""The header of a .safetensors file: an 8-byte little-endian length, then that much JSON naming each
tensor's dtype, shape and byte range. Only the header is read, with its length bounded first.

Sizes come out exact (the byte ranges), grouped as llama.cpp and vLLM place them: repeating layers
(routed experts apart), the token embedding, and the rest (head, norms, a vision tower).
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
from dataclasses import dataclass, field

from ...catalog.errors import UsageError

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library refuses larger headers too
# bytes per element; sub-byte types (F4, F6_*) are taken from their byte ranges
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}

_LAYER = re.compile(r"\.(?:layers|h|blocks|block)\.\d+\.")
_NOT_LANGUAGE = re.compile(r"vision|visual|image|audio|mm_projector|multi_modal|vit\.|siglip|patch_embed")
_EMBEDDING = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight")


@dataclass
class Summary:
    """One file's tensors, summed (or several files', added up)."""

    data_bytes: int = 0
    dtype_bytes: dict[str, int] = field(default_factory=dict)
    layers_bytes: int = 0
    expert_bytes: int = 0
    embedding_bytes: int = 0
    head_bytes: int = 0  # everything else: output head, norms, vision tower, projector
    lm_head: bool = False

    def add(self, other: Summary) -> None:
        self.data_bytes += other.data_bytes
        for dtype, n in other.dtype_bytes.items():
            self.dtype_bytes[dtype] = self.dtype_bytes.get(dtype, 0) + n
        self.layers_bytes += other.layers_bytes
        self.expert_bytes += other.expert_bytes
        self.embedding_bytes += other.embedding_bytes
        self.head_bytes += other.head_bytes
        self.lm_head = self.lm_head or other.lm_head


def _group(summary: Summary, name: str, n_bytes: int) -> None:
    if _NOT_LANGUAGE.search(name):
        summary.head_bytes += n_bytes
    elif _LAYER.search(name):
        summary.layers_bytes += n_bytes
        if ".experts." in name and "shared" not in name:
            summary.expert_bytes += n_bytes
    elif name.endswith(_EMBEDDING):
        summary.embedding_bytes += n_bytes
    else:
        summary.head_bytes += n_bytes
        if name.endswith("lm_head.weight") or name == "output.weight":
            summary.lm_head = True


def read_summary(path: str) -> Summary:
    """The tensors of one .safetensors file; UsageError naming the file and what is wrong."""

    def bad(why: str):
        raise UsageError(f"{path}: not a readable safetensors file ({why})")

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            bad("not a regular file")
        size = info.st_size
        if size < 8:
            bad(f"truncated: {size} bytes, not even the header's length")
        (length,) = struct.unpack("<Q", os.pread(fd, 8, 0))
        if length > MAX_HEADER_BYTES:
            bad(f"its header claims {length:,} bytes, more than the {MAX_HEADER_BYTES:,} a header may be")
        if 8 + length > size:
            bad(f"truncated: the header needs {length:,} bytes but the file has {size - 8:,} after the length")
        raw = b""
        while len(raw) < length:
            chunk = os.pread(fd, min(length - len(raw), 1 << 20), 8 + len(raw))
            if not chunk:
                bad("truncated while reading the header")
            raw += chunk
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        bad("its header is not JSON")
    if not isinstance(header, dict):
        bad("its header is not a JSON object")
    return _summarise(header, size - 8 - length, bad)


def _summarise(header: dict, data_size: int, bad) -> Summary:
    summary = Summary()
    furthest, furthest_name = 0, ""
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            bad(f"tensor {name[:80]!r} is not described by an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not isinstance(offsets, list)
            or len(offsets) != 2
        ):
            bad(f"tensor {name[:80]!r} lacks dtype, shape or data_offsets")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (*shape, *offsets)):
            bad(f"tensor {name[:80]!r} has a negative or non-integer shape or offset")
        start, end = offsets
        if end < start:
            bad(f"tensor {name[:80]!r} ends before it starts")
        n_bytes = end - start
        width = DTYPE_BYTES.get(dtype)
        if width is not None:
            elements = 1
            for d in shape:
                elements *= d
            if elements * width != n_bytes:
                bad(f"tensor {name[:80]!r}: {shape} of {dtype} is {elements * width:,} bytes, its range {n_bytes:,}")
        if end > furthest:
            furthest, furthest_name = end, name
        summary.data_bytes += n_bytes
        summary.dtype_bytes[dtype] = summary.dtype_bytes.get(dtype, 0) + n_bytes
        _group(summary, name, n_bytes)
    if furthest > data_size:
        bad(
            f"truncated: tensor {furthest_name[:80]!r} ends at byte {furthest:,} of the data but the file holds "
            f"{data_size:,} (an interrupted download?)"
        )
    return summary
