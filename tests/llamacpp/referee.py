"""Load a GGUF file in the real llama.cpp (llama-cpp-python's low-level API, CPU only) and
read back what it allocates, from llama.cpp's own log lines.

    with Referee() as ref:
        loaded = ref.load("model.gguf")                   # model buffers
        run = loaded.context(n_ctx=8192, type_k="q8_0")   # KV cache, compute and output buffers
        loaded.close()

Only llama.cpp's figures are read here; what fitagent predicts is the tests' business.
The log is llama.cpp's (``llama_log_set``): "CPU_Mapped model buffer size = 762.81 MiB",
"llama_kv_cache:        CPU KV buffer size =   128.00 MiB", "llama_kv_cache: size = 128.00 MiB
(  4096 cells,  16 layers,  1/1 seqs), K (f16):   64.00 MiB, V (f16):   64.00 MiB",
"CPU compute buffer size = 254.50 MiB". Figures are MiB with two decimals, so a comparison
allows 0.005 MiB of rounding per line.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from dataclasses import dataclass, field

import llama_cpp

MiB = 1 << 20

# ggml_type numbers (ggml.h) for the KV cache types fitagent knows
KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}

_MODEL_BUF = re.compile(r"(\S+) model buffer size = +([\d.]+) MiB")
_KV_BUF = re.compile(r"(\S+) KV buffer size = +([\d.]+) MiB")
_KV_SIZE = re.compile(
    r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs\), "
    r"K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB"
)
_COMPUTE = re.compile(r"(\S+) compute buffer size = +([\d.]+) MiB")
_OUTPUT = re.compile(r"(\S+) +output buffer size = +([\d.]+) MiB")
_SWA_CELLS = re.compile(r"creating +(non-SWA|SWA) KV cache, size = (\d+) cells")
_QUANT_TENSOR = re.compile(
    r"\[ *\d+/ *\d+\] +(\S+) +- \[[^\]]*\], type = +(\w+), size = +[\d.]+ MiB"
    r"(?: -> +[\d.]+ MiB \((\w+)\))?"
)
_QUANT_SIZE = re.compile(r"quant size += +([\d.]+) MiB")
_FLASH = re.compile(r"Flash Attention (?:was auto, set to )?(enabled|disabled)")


def _mib(text: str) -> int:
    """A logged 'x.yz MiB' as bytes (rounded: the log has two decimals)."""
    return round(float(text) * MiB)


@dataclass
class KvCache:
    cells: int
    layers: int
    seqs: str  # "n_seq_max/n_stream"
    k_type: str
    k_bytes: int
    v_type: str
    v_bytes: int


@dataclass
class ContextFigures:
    n_ctx: int
    type_k: str
    type_v: str
    n_seq_max: int
    kv_unified: bool
    kv_buffers: dict[str, int]  # buffer name -> bytes (several lines on one device are summed)
    kv_caches: list[KvCache]  # one per cache (an iSWA model has a non-SWA and a SWA cache)
    swa_cells: dict[str, int]  # "non-SWA"/"SWA" -> cells, when the model has sliding windows
    compute_buffers: dict[str, int]
    output_buffers: dict[str, int]
    flash_attn: str | None
    lines: list[str] = field(default_factory=list, repr=False)

    @property
    def kv_bytes(self) -> int:
        return sum(self.kv_buffers.values())

    @property
    def kv_lines(self) -> int:
        return max(1, sum(1 for line in self.lines if _KV_BUF.search(line)))

    @property
    def compute_bytes(self) -> int:
        return sum(self.compute_buffers.values())

    @property
    def output_bytes(self) -> int:
        return sum(self.output_buffers.values())


class _Log:
    """llama.cpp's log, collected (a ctypes callback kept alive as long as it is installed)."""

    def __init__(self):
        self.lines: list[str] = []
        self._partial = ""

        @llama_cpp.llama_log_callback
        def callback(level, text, user_data):  # noqa: ARG001
            self._partial += text.decode("utf-8", errors="replace")
            *done, self._partial = self._partial.split("\n")
            self.lines.extend(done)

        self.callback = callback

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        if self._partial:
            lines.append(self._partial)
            self._partial = ""
        return lines


class Referee:
    """llama.cpp's log captured for the duration; the binding's own logger restored after."""

    def __init__(self):
        self.log = _Log()

    def __enter__(self) -> Referee:
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(self.log.callback, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc) -> None:
        try:
            from llama_cpp import _logger

            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        except ImportError:
            pass

    def quantize_dry_run(
        self,
        source: str | os.PathLike,
        ftype: int,
        *,
        imatrix: bool = True,
        output_tensor_type: int | None = None,
        token_embedding_type: int | None = None,
    ) -> dict:
        """llama.cpp's quantizer (llama_model_quantize, dry_run: nothing is read or written) on
        a float GGUF: {tensor name: ggml type it would get}, and "__size__": the quant size.
        imatrix: pass a (dummy) importance matrix, as the main uploaders quantize with one:
        it decides a few of llama.cpp's type rules, and lets the IQ1/IQ2 types proceed."""
        self.log.take()
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.dry_run = True
        params.nthread = 1
        if output_tensor_type is not None:
            params.output_tensor_type = output_tensor_type
        if token_embedding_type is not None:
            params.token_embedding_type = token_embedding_type
        keep = None
        if imatrix:
            one = (ctypes.c_float * 1)(1.0)
            entries = (llama_cpp.llama_model_imatrix_data * 2)()
            entries[0].name, entries[0].data, entries[0].size = b"imatrix.dummy", one, 1
            entries[1].name = None
            params.imatrix = entries
            keep = (one, entries)  # alive until the call returns
        out = os.fspath(source) + ".dry-run.gguf"
        rc = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(out), ctypes.byref(params))
        del keep
        lines = self.log.take()
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize failed ({rc}):\n" + "\n".join(lines[-15:]))
        types: dict = {}
        for line in lines:
            if m := _QUANT_TENSOR.search(line):
                types[m.group(1)] = (m.group(3) or m.group(2)).upper()
            elif m := _QUANT_SIZE.search(line):
                types["__size__"] = _mib(m.group(1))
        return types

    def load(self, path: str | os.PathLike, *, repack: bool = True, mmap: bool = True) -> LoadedModel:
        """repack: llama.cpp's CPU weight repacking (its default; llama-cli --no-repack turns it off)."""
        self.log.take()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_extra_bufts = repack
        if hasattr(params, "load_mode"):
            params.load_mode = 1 if mmap else 0  # LLAMA_LOAD_MODE_MMAP / _NONE
        else:  # older bindings
            params.use_mmap = mmap
        start = time.perf_counter()
        model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
        seconds = time.perf_counter() - start
        lines = self.log.take()
        if not model:
            tail = "\n".join(lines[-15:])
            raise RuntimeError(f"llama.cpp could not load {path}:\n{tail}")
        buffers: dict[str, int] = {}
        for line in lines:
            m = _MODEL_BUF.search(line)
            if m:
                buffers[m.group(1)] = buffers.get(m.group(1), 0) + _mib(m.group(2))
        return LoadedModel(self, model, buffers, lines, seconds, llama_cpp.llama_model_size(model))


@dataclass
class LoadedModel:
    referee: Referee
    handle: object
    model_buffers: dict[str, int]  # "CPU_Mapped", "CPU_REPACK", "CPU", ...
    lines: list[str]
    load_seconds: float
    tensor_bytes: int  # llama_model_size(): the sum of the model's tensor sizes

    @property
    def weights_bytes(self) -> int:
        """The model's own tensors: every buffer but the repacked copies."""
        return sum(v for k, v in self.model_buffers.items() if not k.endswith("_REPACK"))

    @property
    def repack_bytes(self) -> int:
        return sum(v for k, v in self.model_buffers.items() if k.endswith("_REPACK"))

    def context(
        self,
        n_ctx: int,
        *,
        type_k: str = "f16",
        type_v: str | None = None,
        n_seq_max: int = 1,
        kv_unified: bool = False,
        n_ubatch: int = 512,
        n_batch: int = 2048,
        n_threads: int | None = None,
        swa_full: bool = False,
        keep: bool = False,
    ):
        """Create a context and read its buffers (swa_full=False and n_batch 2048 as llama-cli and
        llama-server use; the binding's struct default is swa_full=True). keep: return the live
        context handle too (the caller frees it with llama_cpp.llama_free)."""
        type_v = type_v or type_k
        log = self.referee.log
        log.take()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_ubatch
        params.n_seq_max = n_seq_max
        params.type_k = KV_TYPES[type_k]
        params.type_v = KV_TYPES[type_v]
        params.swa_full = swa_full
        params.kv_unified = kv_unified
        threads = n_threads or os.cpu_count() or 1
        params.n_threads = threads
        params.n_threads_batch = threads
        ctx = llama_cpp.llama_init_from_model(self.handle, params)
        lines = log.take()
        if not ctx:
            tail = "\n".join(lines[-15:])
            raise RuntimeError(f"llama.cpp could not create a context (n_ctx={n_ctx}, {type_k}/{type_v}):\n{tail}")
        figures = _context_figures(lines, n_ctx, type_k, type_v, n_seq_max, kv_unified)
        if keep:
            return figures, ctx
        llama_cpp.llama_free(ctx)
        log.take()
        return figures

    def close(self) -> None:
        if self.handle:
            llama_cpp.llama_model_free(self.handle)
            self.handle = None
            self.referee.log.take()


def _context_figures(lines, n_ctx, type_k, type_v, n_seq_max, kv_unified) -> ContextFigures:
    kv_buffers: dict[str, int] = {}
    caches: list[KvCache] = []
    swa: dict[str, int] = {}
    compute: dict[str, int] = {}
    output: dict[str, int] = {}
    flash = None
    for line in lines:
        if m := _KV_BUF.search(line):
            kv_buffers[m.group(1)] = kv_buffers.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _KV_SIZE.search(line):
            caches.append(
                KvCache(
                    int(m.group(2)),
                    int(m.group(3)),
                    f"{m.group(4)}/{m.group(5)}",
                    m.group(6),
                    _mib(m.group(7)),
                    m.group(8),
                    _mib(m.group(9)),
                )
            )
        elif m := _COMPUTE.search(line):
            compute[m.group(1)] = compute.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _OUTPUT.search(line):
            output[m.group(1)] = output.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _SWA_CELLS.search(line):
            swa[m.group(1)] = int(m.group(2))
        if m := _FLASH.search(line):
            flash = m.group(1)
    return ContextFigures(
        n_ctx, type_k, type_v, n_seq_max, kv_unified, kv_buffers, caches, swa, compute, output, flash, lines
    )


def decode_speed(
    loaded: LoadedModel,
    *,
    prompt_tokens: int = 16,
    gen_tokens: int = 32,
    n_ctx: int = 512,
    n_threads: int | None = None,
) -> dict:
    """Tokens/s of single-token decode steps after a short prompt (token ids 0..: the hollow
    vocabulary has no text), timed around llama_decode only."""
    figures, ctx = loaded.context(n_ctx, n_threads=n_threads, keep=True)
    try:
        prompt = (llama_cpp.llama_token * prompt_tokens)(*range(1, prompt_tokens + 1))
        start = time.perf_counter()
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(prompt, prompt_tokens)) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
        prompt_s = time.perf_counter() - start
        token = (llama_cpp.llama_token * 1)(1)
        # one warm-up step (first-touch of the mapped weights is not decode speed)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(token, 1)) != 0:
            raise RuntimeError("llama_decode failed")
        start = time.perf_counter()
        for _ in range(gen_tokens):
            if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(token, 1)) != 0:
                raise RuntimeError("llama_decode failed")
        gen_s = time.perf_counter() - start
    finally:
        llama_cpp.llama_free(ctx)
        loaded.referee.log.take()
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_per_s": prompt_tokens / prompt_s,
        "gen_tokens": gen_tokens,
        "decode_tokens_per_s": gen_tokens / gen_s,
        "threads": n_threads or os.cpu_count() or 1,
        "compute_bytes": figures.compute_bytes,
    }
