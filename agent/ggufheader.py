"""A bounded reader for GGUF headers: the metadata and the tensor table, never the weights.

fitagent reads the header of any GGUF file a user points it at (and, soon, of every GGUF on a
disk), so the reader must stay small and quick whatever the file says. Nothing here trusts a
count or a length from the file: each one is checked against the bytes the file still has, and
against the limits below, *before* anything is allocated or read. The file is read with plain,
chunked reads (no memory map); big arrays (vocabularies, merges, scores) are stepped over, not
built, and only their element count is kept.

The format (ggml's docs/gguf.md): magic ``GGUF``; version (uint32; 2 and 3 read here, 1 refused);
tensor count and key/value count (uint64); the key/value pairs (key: uint64 length + UTF-8 bytes;
value type uint32; the value: a scalar, a string, or an array = element type uint32 + count uint64
+ elements); then one entry per tensor (name string, n_dims uint32, n_dims uint64 dims, ggml type
uint32, data offset uint64 relative to the data section); then padding to ``general.alignment``
(default 32) and the tensor data. Version 3 files may be big-endian: the version then reads as a
number whose low 16 bits are zero, and every number is byte-swapped.

Every problem is a :class:`UsageError` with one line that names the file and what is wrong.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..catalog.errors import UsageError

# ---------------------------------------------------------------------------------------------
# Limits. Real files sit far below each one: a 262k-token vocabulary with its merges is a header
# of ~10 MB and under a million strings, models have tens of metadata keys and at most a few
# thousand tensors. The counts bound the time and memory a hostile file can take (each entry
# costs a few microseconds of Python): measured on a small 2-core machine, a file at any one limit
# is read in under a second, and the worst file at all of them together (a 50 MiB header) in
# ~2.5 s and ~110 MB. A real 8B model's header (150k-token vocabulary) takes ~40 ms and ~3 MB.
MAX_HEADER_BYTES = 64 * 2**20  # metadata + tensor table must end within the first 64 MiB
MAX_STRING_BYTES = 16 * 2**20  # one string value (a chat template is ~10 KB)
MAX_NAME_BYTES = 65536  # a key or a tensor name (llama.cpp's tensor names are < 64 bytes)
MAX_KV_COUNT = 65_536  # metadata key/value pairs (real files: 20-100)
MAX_TENSOR_COUNT = 262_144  # tensors (real files: up to ~3,000)
MAX_ARRAY_STRINGS = 4_194_304  # strings in arrays, all arrays together (a big vocabulary + merges: ~0.8M)
MAX_INNER_ARRAYS = 65_536  # arrays inside arrays, all together (real files have none)
MAX_DIMS = 8  # ggml has 4
MAX_ARRAY_DEPTH = 2  # an array may hold arrays, those may not
SMALL_ARRAY = 64  # numeric arrays up to this many elements come back whole, whatever their key
MAX_LAYER_ARRAY = 100_000  # a per-layer array fitagent reads has at most block_count entries
MAX_LIST_NUMBERS = 1_000_000  # numbers returned in lists (small and per-layer arrays), all together
PRINTABLE_CHARS = 200  # strings fitagent prints (name, basename, architecture) are cut here
DEFAULT_ALIGNMENT = 32
SUPPORTED_VERSIONS = (2, 3)

# The {architecture}.KEY metadata estimator/ggufmodel.py reads. Some are per-layer arrays in some
# files (head counts, FFN widths, the sliding-window pattern): those come back as lists, whatever
# their length (up to MAX_LAYER_ARRAY), where any other big array comes back as its count.
LAYER_KEYS = frozenset(
    {
        "block_count",
        "embedding_length",
        "feed_forward_length",
        "context_length",
        "vocab_size",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.key_length",
        "attention.value_length",
        "attention.key_length_mla",
        "attention.value_length_mla",
        "attention.kv_lora_rank",
        "attention.q_lora_rank",
        "attention.sliding_window",
        "attention.sliding_window_pattern",
        "rope.dimension_count",
        "expert_count",
        "expert_used_count",
        "expert_shared_count",
        "expert_feed_forward_length",
        "expert_shared_feed_forward_length",
        "leading_dense_block_count",
    }
)

# Strings shown to the user: control characters (ANSI escapes, newlines, bidi overrides) removed.
PRINTED_KEYS = ("general.architecture", "general.name", "general.basename")

# GGUF value types (docs/gguf.md, gguf_metadata_value_type): id -> (struct code, size in bytes).
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(13)
_SCALARS = {
    _UINT8: ("B", 1),
    _INT8: ("b", 1),
    _UINT16: ("H", 2),
    _INT16: ("h", 2),
    _UINT32: ("I", 4),
    _INT32: ("i", 4),
    _FLOAT32: ("f", 4),
    _BOOL: ("?", 1),
    _UINT64: ("Q", 8),
    _INT64: ("q", 8),
    _FLOAT64: ("d", 8),
}
_TYPE_NAMES = {
    _STRING: "string",
    _ARRAY: "array",
    **{
        t: n
        for t, n in zip(
            (_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _UINT64, _INT64, _FLOAT64),
            ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "uint64", "int64", "float64"),
        )
    },
}
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, value type, the smallest value
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8  # empty name, n_dims, one dim, type, offset
_CHUNK = 1 << 20

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")


def printable(text: str, limit: int = PRINTABLE_CHARS) -> str:
    """``text`` safe to print on a terminal, on one line: ANSI escape sequences and every other
    control or format character (Unicode category C*: newlines, tabs, bidi overrides, zero-width
    marks) removed, surrounding spaces stripped, cut to ``limit`` characters."""
    text = _ANSI.sub("", text)
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    byte_order: str  # "<" or ">"
    alignment: int
    header_end: int  # where the tensor table ends
    data_offset: int  # where the tensor data starts (header_end rounded up to the alignment)
    file_size: int
    fields: dict[str, object]  # as fitagent uses them: scalars, small arrays as lists, big arrays as counts
    tensors: list[tuple[str, int, int, tuple[int, ...]]]  # (name, n_bytes, n_elements, shape: ne[0] first)


class _Source:
    """The file, read forward in chunks; every read checked against the file's size and the header
    limit first. Holds at most one chunk (or the one string being read) in memory.

    ``what`` arguments are short literals ("the length"); ``entry`` says which metadata entry or
    tensor is being read, as a tuple formatted only when a message needs it (a header may hold a
    million entries: no string is built for each)."""

    def __init__(self, raw, size: int, bad):
        self.raw, self.size, self.bad = raw, size, bad
        self.buf = b""
        self.base = 0  # file offset of buf[0]; the raw file's position is always base + len(buf)
        self.pos = 0  # read position in buf
        self.order = "<"
        self.entry: tuple = ()
        self.strings = 0  # strings in arrays so far
        self.inner_arrays = 0  # arrays in arrays so far
        self.numbers = 0  # numbers returned in lists so far

    def listed(self, count: int) -> None:
        """Count ``count`` more numbers returned in a list, within MAX_LIST_NUMBERS."""
        self.numbers += count
        if self.numbers > MAX_LIST_NUMBERS:
            self.bad(
                f"{_describe(self.entry)} brings the numbers in arrays to {self.numbers:,}, more than the "
                f"{MAX_LIST_NUMBERS:,} fitagent reads"
            )

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def left(self) -> int:
        return self.size - self.offset

    def describe(self, what: str) -> str:
        return f"{what} of {_describe(self.entry)}" if self.entry else what

    def check(self, n: int, what: str) -> None:
        """n more bytes must exist, and lie within the header limit."""
        if n > self.size - self.offset:
            self.bad(
                f"truncated or corrupt header: {self.describe(what)} at byte {self.offset:,} needs {n:,} "
                f"bytes but only {self.left():,} remain"
            )
        if self.offset + n > MAX_HEADER_BYTES:
            self.bad(
                f"the header runs past the first {MAX_HEADER_BYTES:,} bytes, all fitagent reads: "
                f"{self.describe(what)} at byte {self.offset:,} would end at byte {self.offset + n:,}"
            )

    def need(self, n: int, what: str) -> None:
        """buf[pos:pos+n] available (checked first)."""
        if self.pos + n <= len(self.buf):
            return
        self.check(n, what)
        end = self.base + len(self.buf)  # where the raw file stands
        want = max(n - (len(self.buf) - self.pos), min(_CHUNK, self.size - end, MAX_HEADER_BYTES - end))
        chunk = self._read(want)
        self.buf, self.base, self.pos = self.buf[self.pos :] + chunk, self.offset, 0
        if len(self.buf) < n:  # the file shrank while being read
            self.bad(
                f"truncated or corrupt header: {self.describe(what)} at byte {self.offset:,} runs past "
                "the end of the file"
            )

    def _read(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            part = self.raw.read(n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def skip(self, n: int, what: str) -> None:
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        self.check(n, what)
        self.seek(self.offset + n)

    def seek(self, offset: int) -> None:
        self.raw.seek(offset)
        self.buf, self.base, self.pos = b"", offset, 0

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def number(self, code: str, size: int, what: str):
        self.need(size, what)
        (value,) = struct.unpack_from(self.order + code, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return self.number("I", 4, what)

    def u64(self, what: str) -> int:
        return self.number("Q", 8, what)

    def string(self, what: str, limit: int) -> str:
        length = self.u64(f"the length of {what}")
        if length > limit:
            if length > self.left():
                self.bad(
                    f"truncated or corrupt header: {self.describe(what)} declares {length:,} bytes but only "
                    f"{self.left():,} remain"
                )
            self.bad(f"{self.describe(what)} is {length:,} bytes long, more than the {limit:,} fitagent accepts")
        return self.take(length, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        """Step over ``count`` strings without building them (a vocabulary): their lengths are
        walked in the buffer, a chunk at a time."""
        unpack = struct.Struct(self.order + "Q").unpack_from
        i = 0
        while i < count:
            buf, pos, end = self.buf, self.pos, len(self.buf) - 8
            done = count
            for j in range(i, count):  # the fast path: strings wholly inside the buffer
                if pos > end:
                    done = j
                    break
                nxt = pos + 8 + unpack(buf, pos)[0]
                if nxt > end + 8:
                    done = j
                    break
                pos = nxt
            self.pos, i = pos, done
            if i < count:  # string i straddles the buffer's end: the checked path
                what = f"string {i:,}"
                length = self.u64(f"the length of {what}")
                if length > MAX_STRING_BYTES:
                    self.bad(
                        f"{self.describe(what)} is {length:,} bytes long, more than the {MAX_STRING_BYTES:,} "
                        "fitagent accepts"
                    )
                self.skip(length, what)
                i += 1


def _quote(name: str) -> str:
    return "'" + printable(name, 120) + "'"


def _describe(entry: tuple) -> str:
    kind, *rest = entry
    if kind in ("metadata entry", "tensor entry"):
        return f"{kind} {rest[0]:,} of {rest[1]:,}"
    if kind == "inner":  # (inner, outer key, index)
        return f"array {rest[1]:,} in array {_quote(rest[0])}"
    return f"{kind} {_quote(rest[0])}"


def read_gguf_header(path: str | os.PathLike, origin: str | None = None) -> GGUFHeader:
    """The header of the GGUF file at ``path``; ``origin`` names it in error messages (the path
    itself by default)."""
    path = Path(path)
    where = origin if origin is not None else str(path)

    def fail(why: str) -> NoReturn:
        raise UsageError(printable(f"{where}: {why}", 2000)) from None

    def bad(why: str) -> NoReturn:
        fail(f"not a readable GGUF file ({why})")

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        )
    except FileNotFoundError:
        fail("no such file")
    except IsADirectoryError:
        fail("is a directory — give the .gguf file itself")
    except PermissionError:
        fail(f"permission denied reading {path.name}")
    except OSError as exc:
        fail(f"cannot read {path.name} ({exc.strerror or exc})")
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            fail("is a directory — give the .gguf file itself")
        if not stat.S_ISREG(info.st_mode):
            fail("not a regular file (a pipe, socket or device?) — give the .gguf file itself")
        raw = os.fdopen(fd, "rb", buffering=0)
        fd = -1  # the file object owns it now
        with raw:
            try:
                return _parse(_Source(raw, info.st_size, bad), info.st_size, fail, bad)
            except OSError as exc:
                fail(f"cannot read {path.name} ({exc.strerror or exc})")
            except MemoryError:
                fail("out of memory reading the header")
    finally:
        if fd >= 0:
            os.close(fd)


def _parse(src: _Source, size: int, fail, bad) -> GGUFHeader:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    if size == 0:
        bad("empty file")
    if size < 4:
        bad(f"GGUF magic invalid: the file is only {size} bytes long")
    magic = src.take(4, "the magic")
    if magic != b"GGUF":
        bad(f"GGUF magic invalid: the file starts with {magic!r}, not b'GGUF'")
    raw_version = src.take(4, "the version")
    version = struct.unpack("<I", raw_version)[0]
    if version and version & 0xFFFF == 0:  # written on a big-endian machine
        src.order = ">"
        version = struct.unpack(">I", raw_version)[0]
    if version == 1:
        bad("GGUF version 1, the 2023 pre-release format: convert the model again with a current llama.cpp")
    if version not in SUPPORTED_VERSIONS:
        bad(f"GGUF version {version}: fitagent reads versions 2 and 3")
    tensor_count = src.u64("the tensor count")
    kv_count = src.u64("the metadata count")
    for count, noun, smallest, cap in (
        (kv_count, "metadata key/value pairs", _MIN_KV_BYTES, MAX_KV_COUNT),
        (tensor_count, "tensors", _MIN_TENSOR_BYTES, MAX_TENSOR_COUNT),
    ):
        if count * smallest > src.left():
            bad(
                f"truncated or corrupt header: it declares {count:,} {noun} (at least {smallest} bytes each) "
                f"but only {src.left():,} bytes remain"
            )
        if count > cap:
            bad(f"it declares {count:,} {noun}, more than the {cap:,} fitagent accepts")
    if kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_BYTES > src.left():
        bad(
            f"truncated or corrupt header: {kv_count:,} metadata key/value pairs and {tensor_count:,} tensors "
            f"cannot fit in the {src.left():,} bytes that remain"
        )

    fields: dict[str, object] = {"GGUF.version": version, "GGUF.tensor_count": tensor_count, "GGUF.kv_count": kv_count}
    deferred: list[tuple[str, int, int, int]] = []  # (key, file offset, element type, count)
    order = src.order
    for index in range(kv_count):
        src.entry = ("metadata entry", index + 1, kv_count)
        key = src.string("the key", MAX_NAME_BYTES)
        src.entry = ("metadata", key)
        if key in fields:
            bad(f"duplicate metadata key {_quote(key)}")
        vtype = src.u32("the value type")
        if vtype in _SCALARS:
            code, width = _SCALARS[vtype]
            fields[key] = src.number(code, width, "the value")
        elif vtype == _STRING:
            fields[key] = src.string("the value", MAX_STRING_BYTES)
        elif vtype == _ARRAY:
            src.entry = ("array", key)
            etype = src.u32("the element type")
            count = src.u64("the length")
            if etype in _SCALARS and count <= SMALL_ARRAY:  # (an empty array too: [], as GGUFReader gave it)
                code, width = _SCALARS[etype]
                src.listed(count)
                fields[key] = list(struct.unpack(f"{order}{count}{code}", src.take(count * width, "the elements")))
            else:
                start = src.offset
                _skip_array(src, etype, count, depth=1)
                fields[key] = count if count else []  # a vocabulary, merges, scores: the count is all fitagent uses
                if etype in _SCALARS and key.partition(".")[2] in LAYER_KEYS:
                    deferred.append((key, start, etype, count))
        else:
            bad(f"metadata {_quote(key)} has value type {vtype}, which is not a GGUF type")
        if key == "general.alignment":
            alignment = fields[key]
            if vtype != _UINT32 or not isinstance(alignment, int) or not alignment or alignment & (alignment - 1):
                bad(
                    f"general.alignment must be a power of two as a uint32, got {_TYPE_NAMES.get(vtype, vtype)} "
                    f"{alignment!r}"
                )
    alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    assert isinstance(alignment, int)  # a uint32 power of two, checked above

    tensors_raw = _tensor_table(src, tensor_count, bad)
    src.entry = ()
    header_end = src.offset
    data_offset = -(-header_end // alignment) * alignment

    tensors: list[tuple[str, int, int, tuple[int, ...]]] = []
    furthest, furthest_name, total = 0, "", 0
    sizes: dict[int, tuple[int, int, str]] = {}
    for name, dims, ggml_type, offset in tensors_raw:
        if ggml_type not in sizes:
            try:
                qtype = GGMLQuantizationType(ggml_type)
                sizes[ggml_type] = (*GGML_QUANT_SIZES[qtype], qtype.name)
            except (ValueError, KeyError):
                bad(
                    f"tensor {_quote(name)} has ggml type {ggml_type}, not one fitagent knows (a file from a newer "
                    "llama.cpp? a newer gguf package may read it)"
                )
        block_size, type_size, type_name = sizes[ggml_type]
        if not all(dims):
            bad(f"tensor {_quote(name)} has a zero dimension {list(dims)}")
        if dims[0] % block_size:
            bad(
                f"tensor {_quote(name)}: its rows of {dims[0]:,} values are not whole {type_name} blocks of "
                f"{block_size}"
            )
        n_elements = 1
        for d in dims:
            n_elements *= d
        n_bytes = n_elements * type_size // block_size
        if offset % alignment:
            bad(f"tensor {_quote(name)} has data offset {offset:,}, not a multiple of the alignment ({alignment})")
        end = data_offset + offset + n_bytes
        if end > size and end > furthest:
            furthest, furthest_name = end, name
        total += n_bytes
        tensors.append((name, n_bytes, n_elements, dims))
    if furthest:
        fail(
            f"truncated: tensor {_quote(furthest_name)} ends at byte {furthest:,} but the file has only "
            f"{size:,} bytes (an interrupted download, or a header-only copy?)"
        )
    if total > size - data_offset and tensors:
        bad(
            f"the tensors' data adds up to {total:,} bytes, more than the {size - data_offset:,} bytes after "
            "the header (overlapping tensors?)"
        )

    _read_layer_arrays(src, fields, deferred)
    for key in PRINTED_KEYS:
        text = fields.get(key)
        if isinstance(text, str):
            fields[key] = printable(text)
    return GGUFHeader(
        version=version,
        byte_order=order,
        alignment=alignment,
        header_end=header_end,
        data_offset=data_offset,
        file_size=size,
        fields=fields,
        tensors=tensors,
    )


def _tensor_table(src: _Source, count: int, bad) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, dims, ggml type, offset) per tensor entry. An entry wholly inside the read buffer is
    unpacked at once (the fast path); one that straddles the buffer's end, or is wrong, takes the
    checked reads that name what is wrong."""
    order = src.order
    u64, u32, type_offset = (struct.Struct(order + code).unpack_from for code in ("Q", "I", "IQ"))
    dims_of = [struct.Struct(f"{order}{n}Q").unpack_from for n in range(MAX_DIMS + 1)]
    table: list[tuple[str, tuple[int, ...], int, int]] = []
    names: set[str] = set()
    for index in range(count):
        buf, pos = src.buf, src.pos
        end = len(buf)
        if pos + 12 <= end:
            name_end = pos + 8 + u64(buf, pos)[0]
            if name_end + 4 <= end:
                n_dims = u32(buf, name_end)[0]
                tail = name_end + 4 + 8 * n_dims
                if 1 <= n_dims <= MAX_DIMS and tail + 12 <= end:
                    name = buf[pos + 8 : name_end].decode("utf-8", errors="replace")
                    if name not in names and name_end - pos - 8 <= MAX_NAME_BYTES:
                        names.add(name)
                        table.append((name, dims_of[n_dims](buf, name_end + 4), *type_offset(buf, tail)))
                        src.pos = tail + 12
                        continue
        src.entry = ("tensor entry", index + 1, count)
        name = src.string("the name", MAX_NAME_BYTES)
        src.entry = ("tensor", name)
        if name in names:
            bad(f"duplicate tensor {_quote(name)}")
        names.add(name)
        n_dims = src.u32("the dimension count")
        if not 1 <= n_dims <= MAX_DIMS:
            bad(f"tensor {_quote(name)} has {n_dims:,} dimensions (fitagent accepts 1 to {MAX_DIMS})")
        dims = dims_of[n_dims](src.take(8 * n_dims, "the dimensions"), 0)
        ggml_type = src.u32("the type")
        offset = src.u64("the data offset")
        table.append((name, dims, ggml_type, offset))
    src.entry = ()
    return table


def _skip_array(src: _Source, etype: int, count: int, depth: int) -> None:
    """Step over ``count`` elements of type ``etype`` (``src.entry`` names the array), each length
    checked against the bytes left before anything is read."""

    def short(noun: str, least: int):
        what = _describe(src.entry)
        src.bad(
            f"truncated or corrupt header: {what} declares {count:,} {noun} ({least:,} bytes"
            f"{' at least' if noun in ('strings', 'arrays') else ''}) but only {src.left():,} bytes remain"
        )

    if etype in _SCALARS:
        width = _SCALARS[etype][1]
        if count * width > src.left():
            short(f"{_TYPE_NAMES[etype]} elements", count * width)
        src.skip(count * width, "the elements")
    elif etype == _STRING:
        if count * 8 > src.left():
            short("strings", count * 8)
        src.strings += count
        if src.strings > MAX_ARRAY_STRINGS:
            src.bad(
                f"{_describe(src.entry)} brings the strings in arrays to {src.strings:,}, more than the "
                f"{MAX_ARRAY_STRINGS:,} fitagent accepts"
            )
        src.skip_strings(count)
    elif etype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            src.bad(f"{_describe(src.entry)} nests arrays deeper than {MAX_ARRAY_DEPTH} levels")
        if count * 12 > src.left():
            short("arrays", count * 12)
        src.inner_arrays += count
        if src.inner_arrays > MAX_INNER_ARRAYS:
            src.bad(
                f"{_describe(src.entry)} brings the arrays inside arrays to {src.inner_arrays:,}, more than "
                f"the {MAX_INNER_ARRAYS:,} fitagent accepts"
            )
        outer = src.entry
        key = outer[1] if outer[0] == "array" else "?"
        for i in range(count):
            src.entry = ("inner", key, i)
            inner_type = src.u32("the element type")
            inner_count = src.u64("the length")
            _skip_array(src, inner_type, inner_count, depth + 1)
        src.entry = outer
    else:
        src.bad(f"{_describe(src.entry)} has element type {etype}, which is not a GGUF type")


def _read_layer_arrays(src: _Source, fields: dict, deferred) -> None:
    """The per-layer arrays of the file's own architecture that fitagent reads, read whole now that
    the architecture is known (their bytes were checked to lie in the file when they were skipped)."""
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        return
    for key, offset, etype, count in deferred:
        if not key.startswith(arch + "."):
            continue
        if count > MAX_LAYER_ARRAY:
            src.bad(
                f"array {_quote(key)} has {count:,} entries, more than the {MAX_LAYER_ARRAY:,} a per-layer "
                "array may have"
            )
        code, width = _SCALARS[etype]
        src.entry = ("array", key)
        src.listed(count)
        src.seek(offset)
        fields[key] = list(struct.unpack(f"{src.order}{count}{code}", src.take(count * width, "the elements")))
    src.entry = ()
