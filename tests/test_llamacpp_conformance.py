"""The real llama.cpp as the referee of fitagent's memory figures.

Each case writes a *hollow* GGUF (tests/hollow_gguf.py: real header and tensor table, tensor
types from fitagent's own quantization mix, sparse zero data), loads it in llama.cpp through
llama-cpp-python (CPU only, n_gpu_layers=0), creates contexts (several sizes, one beyond the
sliding window where there is one; f16 and q8_0 KV; one and two sequences) and reads back,
from llama.cpp's own log, the model buffer, the KV cache and the compute buffer. fitagent
estimates the same (model, quantization, context) through its Python API, both from the
catalog's architecture (``estimate`` of the Model) and from the file (``--gguf``'s
model_from_gguf_file). Two more referees: the headers of whole-size hollow files against
fitagent's catalog weights (no llama.cpp needed: the loads prove llama.cpp maps exactly the
header's bytes), and llama.cpp's quantizer (a dry run on a hollow F16 file of the whole model)
against the per-tensor types fitagent predicts. And one speed check: decode on this CPU
against fitagent's estimate for this host.

Expectations: weights and KV cache exact (the log's two decimals of MiB are the only slack),
the compute buffer within COMPUTE_TOLERANCE, the quantizer's types identical. A known
discrepancy is not loosened: it is an ``xfail(strict=True)`` of that single case
(KNOWN_DISCREPANCIES, FULL_SIZE_DISCREPANCIES, KNOWN_QUANTIZER_DISCREPANCIES) naming what is
wrong, so a fix of the estimator turns it into an XPASS failure and the entry is deleted.

Run:
    tests/llamacpp/build_wheel.sh .venv     # once: builds (≈12 min on 2 cores) and installs a CPU-only
                                            # llama-cpp-python 0.3.36 wheel, cached in .cache/wheels/
    .venv/bin/python -m pytest tests/test_llamacpp_conformance.py -s   # -s prints the CONFORMANCE tables

Without llama_cpp the llama.cpp tests skip (the hollow-file tests still run). The CONFORMANCE
tables are also written to <pytest basetemp>/llamacpp-conformance.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass

import pytest
from hollow_gguf import fitagent_type_tally, hollow_type_tally, write_hollow_gguf

try:
    import llama_cpp  # noqa: F401
except Exception as exc:  # ImportError, or a shared library that does not load
    LLAMA_CPP_MISSING = (
        f"llama_cpp is not importable ({type(exc).__name__}: {exc}); build and install it with "
        f"`tests/llamacpp/build_wheel.sh .venv` to run the llama.cpp conformance tests"
    )
else:
    LLAMA_CPP_MISSING = None

needs_llama = pytest.mark.skipif(LLAMA_CPP_MISSING is not None, reason=LLAMA_CPP_MISSING or "")

MiB = 1 << 20
EXACT = 0.01 * MiB  # "exact": llama.cpp logs MiB with two decimals; within 0.01 MiB per logged line compared


@dataclass(frozen=True)
class Case:
    arch: str  # label: the GGUF architecture
    model: str  # catalog id
    layers: int | None  # shrink to this many repeating layers (None: the whole model)
    quants: tuple[str, ...]  # the first gets the full grid of contexts
    contexts: tuple[int, ...]  # the last is the largest (and beyond the sliding window, where there is one)


CASES = (
    Case("llama", "meta-llama/Llama-3.2-1B-Instruct", None, ("Q4_K_M", "Q8_0", "Q3_K_M"), (4096, 16384)),
    Case("gemma2", "google/gemma-2-2b-it", None, ("Q4_K_M", "Q8_0", "IQ4_XS"), (4096, 8192)),  # window 4096
    Case("gemma3", "google/gemma-3-1b-it", None, ("Q4_K_M", "Q8_0", "Q2_K"), (4096, 16384)),  # window 512
    Case("qwen3moe", "Qwen/Qwen3-30B-A3B", 4, ("Q4_K_M", "Q8_0", "IQ3_XXS"), (4096, 16384)),
    Case("gpt-oss", "openai/gpt-oss-20b", 2, ("MXFP4",), (4096, 16384)),  # window 128
    Case("deepseek2", "deepseek-ai/DeepSeek-V2-Lite-Chat", 3, ("Q4_K_M", "Q8_0", "Q3_K_M"), (4096, 16384)),
    Case("phi3", "microsoft/Phi-3-mini-4k-instruct", 8, ("Q4_K_M", "Q8_0", "IQ2_M"), (1024, 4096)),
)
CASE_BY_ARCH = {c.arch: c for c in CASES}

# (n_seq_max, kv_unified): one sequence; two with a stream each (llama.cpp's context default);
# two sharing one unified cache (llama-server's default with -np auto).
SEQUENCES = ((1, False), (2, False), (2, True))
KV_TYPES = ("f16", "q8_0")


@dataclass(frozen=True)
class Config:
    arch: str
    quant: str
    n_ctx: int
    kv: str = "f16"
    n_seq: int = 1
    unified: bool = False

    @property
    def id(self) -> str:
        seq = "" if self.n_seq == 1 else f"-seq{self.n_seq}{'u' if self.unified else ''}"
        return f"{self.arch}-{self.quant}-ctx{self.n_ctx}-{self.kv}{seq}"


def configs() -> list[Config]:
    out = []
    for case in CASES:
        first, *rest = case.quants
        for ctx in case.contexts:
            for kv in KV_TYPES:
                for n_seq, unified in SEQUENCES:
                    out.append(Config(case.arch, first, ctx, kv, n_seq, unified))
        for quant in rest:
            out.append(Config(case.arch, quant, case.contexts[-1]))
    return out


CONFIGS = configs()
FILES = [(case.arch, quant) for case in CASES for quant in case.quants]

# The compute buffer is fitagent's model of ggml's graph allocator (the peak of the FFN, latent
# attention and output stages plus the KQ mask), not a sum of tensors: it must land within 10 % of
# llama.cpp's "CPU compute buffer size". Measured with llama-cpp-python 0.3.36 (the cases that pass:
# -6.8 % … +6.2 %); the ones beyond it are listed below.
COMPUTE_TOLERANCE = 0.10


def _known_discrepancies() -> dict[tuple[str, str], str]:
    """Each an xfail(strict=True) of one case, (check, case id) -> what fitagent gets wrong.
    Measured against llama-cpp-python 0.3.36 (llama.cpp of 2026-10); fix the estimator, then
    delete the entry (strict: a fixed case fails as XPASS until it is deleted)."""
    out: dict[tuple[str, str], str] = {}
    for config in CONFIGS:
        if config.arch == "deepseek2" and config.n_ctx == 4096 and (config.n_seq == 1 or config.unified):
            out[("compute", config.id)] = (
                "DeepSeek-V2-Lite's CPU compute buffer is 240.26 MiB from 4096 cells a stream up (212.00 below), "
                "11.8 % above fitagent's 212 MiB at 4096: ggml's allocator places the logits above (k + 4) x hidden "
                "floats a token (+ the router's 2 x n_expert) instead of 2 x hidden. In the last MoE layer the FFN "
                "input stays alive for the shared expert, which runs after the routed ones, so when no freed block "
                "below fits a hidden-size activation the first partial sum of the k weighted expert outputs goes "
                "above them, and the residual adds and the output norm reuse it in place (traced with a "
                "GGML_ALLOCATOR_DEBUG build). Independent of heads, kv_lora_rank and the FFN widths, linear in k "
                "and hidden; whether a hole fits depends on the layout (at 2048 cells one does; DeepSeek-V3 and "
                "Kimi-K2 shapes, whose larger attention activations leave one, peak at vocab + ~4 x hidden or in "
                "the attention), so it is not a rule fitagent can state; its mask term hides it at 16384 (-6.8 %)"
            )
    return out


KNOWN_DISCREPANCIES = _known_discrepancies()


def known(check: str, case_id: str):
    reason = KNOWN_DISCREPANCIES.get((check, case_id))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


# ---------------------------------------------------------------- measurement (once per file)


@dataclass
class FileResult:
    hollow: object  # hollow_gguf.HollowModel
    catalog_model: object  # the catalog Model with the written (possibly shrunk) architecture
    gguf_model: object  # the same file read back by fitagent --gguf
    loaded: object | None = None  # referee.LoadedModel (closed after measuring)
    contexts: dict = dataclasses.field(default_factory=dict)  # Config -> referee.ContextFigures


class Bench:
    """Writes each hollow file once, loads it in llama.cpp once, creates every context it needs."""

    def __init__(self, folder, catalog):
        self.folder, self.catalog = folder, catalog
        self.files: dict[tuple[str, str], FileResult] = {}
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.quant_rows: list[tuple] = []
        self.sources: dict = {}
        self._referee = None

    def file(self, arch: str, quant: str) -> FileResult:
        key = (arch, quant)
        if key not in self.files:
            from fitagent.agent.modelfiles import model_from_gguf_file

            case = CASE_BY_ARCH[arch]
            model = self.catalog.model(case.model)
            q = self.catalog.quant(quant)
            hollow = write_hollow_gguf(self.folder / f"{arch}-{quant}.gguf", model, q, self.catalog, layers=case.layers)
            catalog_model = dataclasses.replace(model, architecture=hollow.architecture)
            self.files[key] = FileResult(hollow, catalog_model, model_from_gguf_file(hollow.path, self.catalog))
        return self.files[key]

    def referee(self):
        if self._referee is None:
            from llamacpp.referee import Referee

            self._referee = Referee().__enter__()
        return self._referee

    def converted_source(self, label: str):
        """A hollow F16 file of a whole catalog model, as the converter writes it (sparse: a
        70B model costs no disk; the quantizer's dry run reads none of it)."""
        if label not in self.sources:
            model = self.catalog.model(QUANT_MODELS[label])
            self.sources[label] = write_hollow_gguf(
                self.folder / f"{label}-F16.gguf", model, self.catalog.quant("F16"), self.catalog, converted=True
            )
        return self.sources[label]

    def measured(self, arch: str, quant: str) -> FileResult:
        result = self.file(arch, quant)
        if result.loaded is None:
            result.loaded = self.referee().load(result.hollow.path)
            try:
                for config in CONFIGS:
                    if (config.arch, config.quant) == (arch, quant):
                        result.contexts[config] = result.loaded.context(
                            config.n_ctx, type_k=config.kv, n_seq_max=config.n_seq, kv_unified=config.unified
                        )
            finally:
                result.loaded.close()
        return result

    def close(self):
        if self._referee is not None:
            self._referee.__exit__(None, None, None)
            self._referee = None


@pytest.fixture(scope="session")
def cpu_budget(catalog):
    from conftest import SNAPSHOTS

    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.estimator.budget import budget_from_snapshot

    return budget_from_snapshot(load_snapshot_file(SNAPSHOTS / "cpu-only.json"), catalog)


@pytest.fixture(scope="session")
def bench(tmp_path_factory, catalog):
    folder = tmp_path_factory.mktemp("hollow")
    b = Bench(folder, catalog)
    yield b
    b.close()
    for hollow in folder.glob("*.gguf"):  # sparse, but some are 100+ GB apparent: leave none behind
        hollow.unlink()
    if b.rows or b.notes or b.quant_rows:
        report = (
            conformance_report(b.rows) + quantizer_report(b.quant_rows) + "".join(f"\n{note}\n" for note in b.notes)
        )
        path = tmp_path_factory.getbasetemp() / "llamacpp-conformance.md"
        path.write_text(report)
        sys.stdout.write("\n" + report + f"\n(written to {path})\n")


def fitagent_figures(result: FileResult, config: Config, catalog, budget, *, from_file: bool = False) -> dict:
    """fitagent's weights, KV cache and compute buffer for one configuration (CPU only)."""
    from fitagent.estimator import memory
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    model = result.gguf_model if from_file else result.catalog_model
    est = estimate(
        model,
        catalog.quant(config.quant),
        budget,
        catalog,
        Options(context=config.n_ctx, kv_quant=config.kv, prompt_tokens=min(512, config.n_ctx)),
    )
    assert est.placement == "cpu", est.placement
    kv = est.kv_cache_bytes
    if config.n_seq > 1:
        # fitagent's multi-sequence KV: n sequences sharing n_ctx cells, in separate streams (what
        # concurrent_sessions sizes, llama-server -np N) or one unified cache (-kvu)
        per_element = memory.kv_bytes_per_element(config.kv, catalog.ggml_types)
        kv = memory.kv_linear(
            model.architecture, per_element, 512, sequences=config.n_seq, unified=config.unified
        ).bytes(memory.pad(config.n_ctx))
    return {"weights": est.weights_bytes, "kv": kv, "compute": est.overhead_bytes}


def record(
    bench: Bench,
    config: Config | None,
    arch: str,
    quant: str,
    check: str,
    llama: int,
    fitagent: int,
    tolerance: float,
    note: str = "",
) -> None:
    bench.rows.append(
        {
            "arch": arch,
            "quant": quant,
            "ctx": config.n_ctx if config else None,
            "kv": config.kv if config else None,
            "seq": (config.n_seq, config.unified) if config else None,
            "check": check,
            "llama": llama,
            "fitagent": fitagent,
            "tolerance": tolerance,
            "note": note,
        }
    )


def conformance_report(rows: list[dict]) -> str:
    lines = [
        "# CONFORMANCE: llama.cpp (CPU, llama-cpp-python) vs fitagent",
        "",
        "| arch | quant | ctx | kv | seqs | figure | llama.cpp MiB | fitagent MiB | diff MiB | diff % | ok | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    for r in rows:
        diff = r["fitagent"] - r["llama"]
        pct = 100 * diff / r["llama"] if r["llama"] else math.inf
        ok = abs(diff) <= r["tolerance"]
        seq = "" if r["seq"] is None else f"{r['seq'][0]}{' unified' if r['seq'][1] else ''}"
        lines.append(
            f"| {r['arch']} | {r['quant']} | {r['ctx'] or ''} | {r['kv'] or ''} | {seq} | {r['check']} | "
            f"{r['llama'] / MiB:.2f} | {r['fitagent'] / MiB:.2f} | {diff / MiB:+.2f} | {pct:+.2f} | "
            f"{'yes' if ok else 'NO'} | {r['note']} |"
        )
        key = (r["arch"], r["check"])
        if key not in worst or abs(pct) > abs(worst[key][0]):
            where = f"{r['quant']} ctx {r['ctx']} {r['kv']} seq {seq}" if r["ctx"] else r["quant"]
            worst[key] = (pct, where)
    lines += [
        "",
        "## Largest deviation per architecture and figure",
        "",
        "| arch | figure | largest deviation % | where |",
        "|---|---|---|---|",
    ]
    for (arch, check), (pct, where) in sorted(worst.items()):
        lines.append(f"| {arch} | {check} | {pct:+.2f} | {where} |")
    return "\n".join(lines) + "\n"


def quantizer_report(rows: list[tuple]) -> str:
    if not rows:
        return ""
    lines = [
        "",
        "## llama.cpp's quantizer (dry run, imatrix) vs fitagent's per-tensor types, whole models",
        "",
        "| model | quant | llama.cpp quant size MiB | fitagent types, same tensors MiB | tensors that differ |",
        "|---|---|---|---|---|",
    ]
    for label, quant, llama, mine, note in rows:
        lines.append(f"| {label} | {quant} | {llama / MiB:.2f} | {mine / MiB:.2f} | {note or 'none'} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the hollow files themselves (no llama.cpp)


@pytest.mark.parametrize("arch, quant", FILES, ids=[f"{a}-{q}" for a, q in FILES])
def test_hollow_file_is_sparse_and_typed_as_fitagent_predicts(bench, arch, quant):
    result = bench.file(arch, quant)
    hollow = result.hollow
    stat = os.stat(hollow.path)
    assert stat.st_size == hollow.data_offset + hollow.data_bytes
    assert hollow.data_offset % 32 == 0
    assert stat.st_blocks * 512 < 4 * MiB  # sparse: the data section takes no disk
    # fitagent's per-group type tally is the file's, but for the documented layout differences
    expected, written = fitagent_type_tally(hollow.architecture, hollow.quant), hollow_type_tally(hollow)
    if arch == "phi3":  # gate and up are one fused ffn_up tensor in Phi-3 files
        assert written.pop("ffn_up") == expected.pop("ffn_up") and "ffn_gate" in expected
        expected.pop("ffn_gate")
    for role in ("attn_bias", "ffn_exps_bias"):  # one fitagent group, three tensors (q/k/v; gate/up/down)
        if role in written:
            assert written.pop(role) == Counter({t: 3 * n for t, n in expected.pop(role).items()})
    assert written == expected


@pytest.mark.parametrize("arch, quant", FILES, ids=[f"{a}-{q}" for a, q in FILES])
def test_gguf_path_reads_the_hollow_file_back(bench, arch, quant):
    """fitagent --gguf on the hollow file: the header's bytes, the same architecture."""
    result = bench.file(arch, quant)
    hollow, read = result.hollow, result.gguf_model
    assert read.file_weights.total_bytes == hollow.tensor_bytes
    a, b = hollow.architecture, read.architecture
    same = (
        "layers",
        "hidden_size",
        "attention_heads",
        "vocab_size",
        "tied_embeddings",
        "experts",
        "experts_per_token",
        "dense_layers",
        "local_attention_layers",
        "kv_lora_rank",
    )
    assert {f: getattr(b, f) for f in same} == {f: getattr(a, f) for f in same}


# The model buffer llama.cpp maps is exactly the header's tensor bytes (test_weights_from_the_header_
# match_llama_cpp below, on every file it loads), so the header of a whole-size hollow file (sparse:
# no disk, no llama.cpp needed) referees fitagent's catalog weights at the real layer counts too.
FULL_SIZE = [(case.arch, case.quants[0]) for case in CASES]
FULL_SIZE_DISCREPANCIES: dict[str, str] = {}


@pytest.mark.parametrize(
    "arch, quant",
    [
        pytest.param(
            a,
            q,
            id=f"{a}-{q}",
            marks=[pytest.mark.xfail(strict=True, reason=FULL_SIZE_DISCREPANCIES[a])]
            if a in FULL_SIZE_DISCREPANCIES
            else [],
        )
        for a, q in FULL_SIZE
    ],
)
def test_catalog_weights_match_the_whole_model_file(tmp_path, catalog, arch, quant):
    from fitagent.estimator.memory import weights

    model = catalog.model(CASE_BY_ARCH[arch].model)
    hollow = write_hollow_gguf(tmp_path / "whole.gguf", model, catalog.quant(quant), catalog)
    mine = weights(model.architecture, catalog.quant(quant), catalog.ggml_types).total_bytes
    assert abs(mine - hollow.tensor_bytes) <= EXACT, (
        f"{model.id} {quant}: file {hollow.tensor_bytes / MiB:.2f} MiB, fitagent {mine / MiB:.2f} MiB; "
        f"tensors fitagent does not model: {', '.join(sorted({t.name.split('.', 2)[-1] for t in hollow.unmodelled}))}"
    )


# ---------------------------------------------------------------- llama.cpp as the referee


@needs_llama
@pytest.mark.parametrize(
    "arch, quant", [pytest.param(a, q, marks=known("weights", f"{a}-{q}"), id=f"{a}-{q}") for a, q in FILES]
)
def test_weights_match_llama_cpp(bench, catalog, cpu_budget, arch, quant):
    """The model buffer llama.cpp maps equals fitagent's weight estimate from the catalog architecture."""
    result = bench.measured(arch, quant)
    config = next(c for c in result.contexts)
    llama = result.loaded.weights_bytes
    mine = fitagent_figures(result, config, catalog, cpu_budget)["weights"]
    note = f"unmodelled tensors {result.hollow.unmodelled_bytes} B; repacked copy {result.loaded.repack_bytes / MiB:.2f} MiB"
    record(bench, None, arch, quant, "weights", llama, mine, EXACT, note)
    assert abs(mine - llama) <= EXACT, f"llama.cpp {llama / MiB:.2f} MiB, fitagent {mine / MiB:.2f} MiB"


@needs_llama
@pytest.mark.parametrize(
    "arch, quant", [pytest.param(a, q, marks=known("weights-gguf", f"{a}-{q}"), id=f"{a}-{q}") for a, q in FILES]
)
def test_weights_from_the_header_match_llama_cpp(bench, catalog, cpu_budget, arch, quant):
    """fitagent --gguf (the header's exact sizes) against the same buffer."""
    result = bench.measured(arch, quant)
    config = next(c for c in result.contexts)
    llama = result.loaded.weights_bytes
    mine = fitagent_figures(result, config, catalog, cpu_budget, from_file=True)["weights"]
    record(bench, None, arch, quant, "weights (--gguf)", llama, mine, EXACT)
    assert abs(mine - llama) <= EXACT, f"llama.cpp {llama / MiB:.2f} MiB, fitagent {mine / MiB:.2f} MiB"


@needs_llama
@pytest.mark.parametrize("config", [pytest.param(c, marks=known("kv", c.id), id=c.id) for c in CONFIGS])
def test_kv_cache_matches_llama_cpp(bench, catalog, cpu_budget, config):
    """The KV buffers llama.cpp allocates equal fitagent's KV cache, from the catalog architecture
    and from the file (--gguf) alike."""
    result = bench.measured(config.arch, config.quant)
    figures = result.contexts[config]
    llama = figures.kv_bytes
    mine = fitagent_figures(result, config, catalog, cpu_budget)["kv"]
    from_file = fitagent_figures(result, config, catalog, cpu_budget, from_file=True)["kv"]
    tolerance = EXACT * figures.kv_lines
    cells = ", ".join(f"{k} {v} cells" for k, v in figures.swa_cells.items())
    note = cells
    if len(figures.kv_caches) == 2:  # the non-SWA and the SWA cache, each against fitagent's part
        from fitagent.estimator import memory

        per_element = memory.kv_bytes_per_element(config.kv, catalog.ggml_types)
        kv = memory.kv_linear(
            result.catalog_model.architecture, per_element, 512, sequences=config.n_seq, unified=config.unified
        )
        cells_p = memory.pad(config.n_ctx)
        parts = (kv.full_per_cell * cells_p, kv.swa_per_cell * min(cells_p, kv.swa_cap_cells))
        note += "; " + ", ".join(
            f"{name} cache K+V {(c.k_bytes + c.v_bytes) / MiB:.2f} MiB (fitagent {part / MiB:.2f})"
            for name, c, part in zip(("non-SWA", "SWA"), figures.kv_caches, parts)
        )
    if from_file != mine:
        note += f"; --gguf {from_file / MiB:.2f} MiB"
    record(bench, config, config.arch, config.quant, "kv", llama, mine, tolerance, note)
    assert abs(mine - llama) <= tolerance, (
        f"llama.cpp {llama / MiB:.2f} MiB ({cells or 'one cache'}), fitagent {mine / MiB:.2f} MiB"
    )
    assert from_file == mine, f"--gguf {from_file / MiB:.2f} MiB, catalog {mine / MiB:.2f} MiB"


@needs_llama
@pytest.mark.parametrize("config", [pytest.param(c, marks=known("compute", c.id), id=c.id) for c in CONFIGS])
def test_compute_buffer_within_tolerance(bench, catalog, cpu_budget, config):
    """llama.cpp's CPU compute buffer against fitagent's CPU-only overhead (its compute buffer
    with the output head), within COMPUTE_TOLERANCE."""
    result = bench.measured(config.arch, config.quant)
    figures = result.contexts[config]
    llama = figures.compute_bytes
    mine = fitagent_figures(result, config, catalog, cpu_budget)["compute"]
    from_file = fitagent_figures(result, config, catalog, cpu_budget, from_file=True)["compute"]
    note = f"flash_attn {figures.flash_attn}; output (logits) buffer {figures.output_bytes / MiB:.2f} MiB"
    if from_file != mine:
        note += f"; --gguf {from_file / MiB:.2f} MiB"
    record(bench, config, config.arch, config.quant, "compute", llama, mine, COMPUTE_TOLERANCE * llama, note)
    assert abs(mine - llama) <= COMPUTE_TOLERANCE * llama, (
        f"llama.cpp {llama / MiB:.2f} MiB, fitagent {mine / MiB:.2f} MiB (tolerance {COMPUTE_TOLERANCE:.0%})"
    )
    assert abs(from_file - llama) <= COMPUTE_TOLERANCE * llama, f"--gguf: fitagent {from_file / MiB:.2f} MiB"


# ---------------------------------------------------------------- llama.cpp's quantizer as the referee of the mix

# The hollow files above carry fitagent's own per-tensor types; whether those are the types
# llama.cpp's quantizer picks is checked here: a hollow F16 file of the whole catalog model (as
# convert_hf_to_gguf.py writes it) goes through llama_model_quantize with dry_run (nothing is
# read or written) and a dummy importance matrix (fitagent assumes imatrix quants, as the main
# uploaders make), and every tensor's type is compared with fitagent's prediction.
QUANT_MODELS = {
    "llama": "meta-llama/Llama-3.2-1B-Instruct",
    "llama-70b": "meta-llama/Llama-3.1-70B-Instruct",  # the 80-layer attn_v rule
    "mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1",  # the 8-expert rules
    "qwen2": "Qwen/Qwen2.5-7B-Instruct",
    "gemma2": "google/gemma-2-2b-it",
    "gemma3": "google/gemma-3-1b-it",
    "qwen3moe": "Qwen/Qwen3-30B-A3B",
    "gpt-oss": "openai/gpt-oss-20b",
    "deepseek2": "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "phi3": "microsoft/Phi-3-mini-4k-instruct",
    "phi4": "microsoft/phi-4",
}


def _quant_names() -> list[str]:
    from fitagent.agent.catalog_cache import load_catalog

    return [q.name for q in load_catalog().quantizations if q.format == "gguf"]


QUANT_CASES = [
    (label, q)
    for label in QUANT_MODELS
    for q in _quant_names()
    if (q == "MXFP4") == (label == "gpt-oss") or (label == "gpt-oss" and q == "Q8_0")
]


def _known_quantizer_discrepancies() -> dict[str, str]:
    out = {}
    qkv = (
        "fitagent types Phi-3's fused attn_qkv by llama.cpp's pre-refactor rule (its own branch: Q4_K_M -> "
        "Q5_K, Q3_K_M/L -> Q4_K, else the base type), which the files on the Hub were made with (the 8 published "
        "phi-4 sizes in tests/data/measurements.csv fit it within 0.2 %; the attn_v rule would put IQ4_XS "
        "+3.1 %, Q2_K +6.5 %, Q5_K_M -1.0 % off them); the current quantizer (tensor_category) treats "
        "attn_qkv like attn_v: {}"
    )
    phi_qkv = {
        "Q5_K_M": "Q5_K (no Q6_K)",
        "Q5_K_L": "Q5_K (no Q6_K)",
        "Q4_K_M": "Q6_K on use_more_bits layers, Q4_K elsewhere",
        "Q4_K_L": "Q6_K on use_more_bits layers, Q4_K elsewhere",
        "Q4_K_S": "Q5_K on the first 4",
        "Q3_K_M": "Q5_K on the first 2",
        "Q3_K_L": "Q5_K",
        "Q3_K_XL": "Q5_K",
        "Q2_K": "Q3_K (Q4_K with GQA >= 4)",
        "Q2_K_L": "Q3_K (Q4_K with GQA >= 4)",
        "IQ2_M": "IQ3_S (Q4_K with GQA >= 4)",
        "IQ2_S": "IQ3_S (Q4_K with GQA >= 4)",
        "IQ2_XS": "Q2_K (Q4_K with GQA >= 4)",
        "IQ2_XXS": "Q2_K (Q4_K with GQA >= 4)",
        "IQ1_M": "Q2_K (Q4_K with GQA >= 4)",
        "IQ1_S": "Q2_K (Q4_K with GQA >= 4)",
        "IQ4_XS": "Q5_K with GQA >= 4",
        "IQ4_NL": "Q5_K with GQA >= 4",
        "IQ3_S": "Q4_K with GQA >= 4",
        "IQ3_XS": "Q4_K with GQA >= 4",
        "IQ3_XXS": "Q4_K with GQA >= 4",
    }
    for label in ("phi3", "phi4"):  # Phi-3-mini has no GQA (32 KV heads); phi-4 has 4 query heads per KV head
        for quant, rule in phi_qkv.items():
            if label == "phi4" or not rule.endswith("with GQA >= 4"):
                out[f"{label}-{quant}"] = qkv.format(rule)
    out["gpt-oss-Q8_0"] = (
        "fitagent keeps gpt-oss's routed experts MXFP4 in every file type (tensors.native_expert_type: the "
        "published Q8_0 files do); llama.cpp's quantizer, given the converter's MXFP4 experts and ftype Q8_0, "
        "targets Q8_0 for them (and, without --allow-requantize, refuses to requantize MXFP4 at all): the "
        "uploaders' files come from overrides, not from llama.cpp's type rules"
    )
    return out


KNOWN_QUANTIZER_DISCREPANCIES = _known_quantizer_discrepancies()


@needs_llama
@pytest.mark.parametrize(
    "label, quant",
    [
        pytest.param(
            label,
            q,
            id=f"{label}-{q}",
            marks=[pytest.mark.xfail(strict=True, reason=reason)]
            if (reason := KNOWN_QUANTIZER_DISCREPANCIES.get(f"{label}-{q}"))
            else [],
        )
        for label, q in QUANT_CASES
    ],
)
def test_quantizer_picks_fitagents_types(bench, catalog, label, quant):
    import gguf
    from hollow_gguf import tensor_plan

    source = bench.converted_source(label)
    q = catalog.quant(quant)
    ftype = gguf.LlamaFileType.MOSTLY_MXFP4_MOE if q.rules == "MXFP4" else gguf.LlamaFileType["MOSTLY_" + q.rules]
    overrides = {}
    if q.output_type:
        overrides["output_tensor_type"] = gguf.GGMLQuantizationType[q.output_type].value
    if q.embedding_type:
        overrides["token_embedding_type"] = gguf.GGMLQuantizationType[q.embedding_type].value
    got = bench.referee().quantize_dry_run(source.path, ftype.value, **overrides)
    expected = {t.name: t.type_name for t in tensor_plan(source.architecture, q)}
    differ: dict[tuple[str, str, str], int] = {}
    for name, type_name in expected.items():
        if got.get(name) != type_name:
            role = name.split(".", 2)[-1] if name.startswith("blk.") else name
            key = (role, type_name, got.get(name))
            differ[key] = differ.get(key, 0) + 1
    mine = sum(t.nbytes for t in tensor_plan(source.architecture, q))
    note = "; ".join(f"{n} x {role}: fitagent {a}, llama.cpp {b}" for (role, a, b), n in sorted(differ.items()))
    bench.quant_rows.append((label, quant, got.get("__size__", 0), mine, note))
    assert not differ, note


# ---------------------------------------------------------------- decode speed on this host

SPEED_BAND = 4.0  # machines are noisy (and CI runners shared): only a sanity band is asserted


@needs_llama
def test_cpu_decode_speed_is_in_fitagents_ballpark(bench, catalog):
    """Decode a hollow Llama-3.2-1B Q4_K_M (763 MiB) on this host's CPU and compare tokens/s
    with fitagent's CPU estimate for the same file on this host (its probe, RAM bandwidth
    measured). Both figures are printed; only a loose band is asserted."""
    from llamacpp.referee import Referee, decode_speed

    from fitagent.agent.hardware import take_snapshot
    from fitagent.agent.modelfiles import model_from_gguf_file
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    result = bench.file("llama", "Q4_K_M")
    import psutil

    cores = os.cpu_count() or 1
    busy_before = psutil.cpu_percent(interval=1.0)  # the whole host, this process idle
    with Referee() as ref:
        loaded = ref.load(result.hollow.path)
        try:
            measured = decode_speed(loaded, prompt_tokens=16, gen_tokens=32, n_ctx=512)
        finally:
            loaded.close()
    snapshot = take_snapshot(measure_bandwidth=True)
    budget = budget_from_snapshot(snapshot, catalog)
    budget = dataclasses.replace(budget, devices=())  # the CPU, as llama.cpp ran it (n_gpu_layers=0)
    est = estimate(
        model_from_gguf_file(result.hollow.path, catalog),
        catalog.quant("Q4_K_M"),
        budget,
        catalog,
        Options(context=512, prompt_tokens=16),
    )
    ratio = measured["decode_tokens_per_s"] / est.decode_tokens_per_s
    line = (
        f"CPU decode, hollow Llama-3.2-1B Q4_K_M, {measured['threads']} threads, host {busy_before:.0f} % busy "
        f"before: llama.cpp "
        f"{measured['decode_tokens_per_s']:.1f} tok/s measured, fitagent {est.decode_tokens_per_s:.1f} tok/s "
        f"estimated (RAM {budget.host_bandwidth_bytes_per_s / 1e9:.1f} GB/s, {budget.cpu_cores} cores, "
        f"{snapshot.host.memory_bandwidth_source}); "
        f"measured/estimated = {ratio:.2f}; prompt {measured['prompt_tokens_per_s']:.1f} tok/s"
    )
    sys.stdout.write("\n" + line + "\n")
    bench.notes.append(line)
    if busy_before > 50:
        # llama.cpp's threads wait on each other at every op: on a host whose cores are taken by
        # something else, decode with n_threads = cores collapses, whatever the RAM can do
        pytest.skip(f"host busy ({busy_before:.0f} % of {cores} cores): speed band not asserted; {line}")
    assert 1 / SPEED_BAND <= ratio <= SPEED_BAND, line
