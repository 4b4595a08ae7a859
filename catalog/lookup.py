"""Finding a model, a quantization or a GPU by the names people give them; suggestions when none match."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from .types import GpuSpec, Model, Quantization


def _suggest(name: str, candidates) -> str:
    import difflib  # only a mistyped name needs it: kept off every command's start-up

    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=3, cutoff=0.5)
    originals = {c.lower(): c for c in candidates}
    return ", ".join(originals[c] for c in close)


_MODEL_FILLER = re.compile(r"(?<![a-z0-9])(instruct|chat|it|hf|gguf)(?![a-z0-9])")


def model_key(name: str) -> str:
    """A model name as people vary it: no organisation, no case, no separators, without
    '-Instruct' / '-Chat' / '-it' / '-GGUF' ("Llama-3.1-8B" and "meta-llama/Llama-3.1-8B-Instruct" agree)."""
    tail = name.strip().lower().rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "", _MODEL_FILLER.sub(" ", tail))


def find_model(models, name: str) -> Model:
    key = name.strip().lower()
    for m in models:
        if key in (m.id.lower(), m.alias.lower()):
            return m
    tail_matches = [m for m in models if m.id.lower().split("/")[-1] == key]
    if len(tail_matches) == 1:
        return tail_matches[0]
    loose = model_key(name)
    same = [m for m in models if loose and loose in (model_key(m.id), model_key(m.alias))]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        raise UsageError(
            f"model '{name}' matches {len(same)} catalog models: {', '.join(m.id for m in same[:8])} — give one"
        )
    ranked = _closest(loose, {m.id: (model_key(m.id), model_key(m.alias)) for m in models})
    tip = f" — did you mean {', '.join(ranked)}?" if ranked else ""
    raise NotFoundError(
        f"unknown model '{name}'{tip} (`fitagent catalog models` lists them; --config takes a config.json)"
    )


def _closest(key: str, keys: Mapping[str, tuple[str, ...]], n: int = 3) -> list[str]:
    """The names whose loose keys are nearest to `key`, nearest first."""
    from difflib import SequenceMatcher  # only a mistyped name needs it: kept off every command's start-up

    def score(candidates: tuple[str, ...]) -> float:
        best = 0.0
        for k in candidates:
            matcher = SequenceMatcher(None, key, k)
            # a query that is the start of a name ("qwen257b" of "qwen257binstruct") ranks first
            best = max(best, matcher.ratio() + (0.5 if k.startswith(key) or key.startswith(k) else 0.0))
        return best

    scored = sorted(((score(c), name) for name, c in keys.items()), key=lambda sn: (-sn[0], sn[1]))
    return [name for s, name in scored[:n] if s >= 0.6]


def quant_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


# Unsloth's "Dynamic" uploads (UD-Q4_K_XL, …) mix types per tensor; none is a llama.cpp file type.
# Each is sized as the llama.cpp type nearest in size, and says so.
_DYNAMIC_NEAREST = {
    "q2kxl": "Q2_K",
    "q3kxl": "Q3_K_M",
    "q4kxl": "Q4_K_M",
    "q5kxl": "Q5_K_M",
    "q6kxl": "Q6_K",
    "q8kxl": "Q8_0",
}


_NAME_TABLES: dict[int, tuple[tuple, dict]] = {}


def _name_table(quants) -> dict:
    """Every name and alias of ``quants`` by its forgiving key, built once per quantization
    table (the tuple is kept with it, so its id cannot be reused by another)."""
    hit = _NAME_TABLES.get(id(quants))
    if hit is not None and hit[0] is quants:
        return hit[1]
    by_key: dict[str, Quantization] = {}
    for q in quants:
        for label in (q.name, *q.aliases):
            by_key.setdefault(quant_key(label), q)
    if isinstance(quants, tuple):
        _NAME_TABLES[id(quants)] = (quants, by_key)
    return by_key


def resolve_quant(quants, name: str) -> tuple[Quantization, str | None]:
    """A quantization by the names people give it, and a note when it was read as another:
    case and separators forgiven (q4km, Q4-K-M); '-imat' / 'i1-' (how the file was made) and
    Unsloth's 'UD-' prefix dropped; UD-…_K_XL mixes sized as the nearest llama.cpp type; a
    bare 'q4' refused with its choices."""
    raw = name.strip()
    key = quant_key(raw)
    by_key = _name_table(quants)
    if key in by_key:
        return by_key[key], None
    stripped = key
    dropped: list[str] = []
    for prefix, what in (("ud", "Unsloth Dynamic"), ("i1", "imatrix")):
        if stripped.startswith(prefix) and len(stripped) > len(prefix) + 1:
            stripped, dropped = stripped[len(prefix) :], dropped + [what]
    for suffix in ("imatrix", "imat"):
        if stripped.endswith(suffix):
            stripped, dropped = stripped[: -len(suffix)], dropped + ["imatrix"]
    dynamic = "Unsloth Dynamic" in dropped or (stripped in _DYNAMIC_NEAREST and stripped not in by_key)
    if dynamic and stripped in _DYNAMIC_NEAREST:
        q = by_key[quant_key(_DYNAMIC_NEAREST[stripped])]
        return q, (
            f"{raw} is an Unsloth Dynamic mix, not a llama.cpp type: sized and scored as {q.name}, the nearest "
            "in size (give the file with --gguf for its exact sizes)"
        )
    if stripped in by_key:
        q = by_key[stripped]
        return (
            q,
            f"{raw} read as {q.name} ({' and '.join(dict.fromkeys(dropped))} is how the file was made, not its type)",
        )
    exl = exl_quant(raw, quants)
    if exl is not None:
        return exl
    family = [q for q in quants if q.ftype is None and quant_key(q.name).startswith(stripped) and stripped]
    if len(family) == 1:
        return family[0], None
    if len(family) > 1:
        family.sort(key=lambda q: (not q.recommend, q.name))
        raise UsageError(f"quantization '{raw}' is ambiguous: {', '.join(q.name for q in family)} — give one")
    hint = _suggest(raw, [q.name for q in quants])
    tip = f" — did you mean {hint}?" if hint else ""
    raise NotFoundError(f"unknown quantization '{raw}'{tip} (known: {', '.join(q.name for q in quants)})")


def find_quant(quants, name: str) -> Quantization:
    return resolve_quant(quants, name)[0]


_VENDOR_WORDS = ("nvidia", "geforce", "amd", "radeon", "intel", "apple", "tesla", "graphics")


def normalize_gpu_name(name: str) -> str:
    text = name.lower()
    for word in _VENDOR_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return re.sub(r"[^a-z0-9]+", "", text)


def _gpu_tokens(name: str) -> frozenset[str]:
    text = name.lower()
    for word in _VENDOR_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return frozenset(t for t in re.split(r"[^a-z0-9]+", text) if t)


_GPU_TABLES: dict[int, tuple[tuple, dict[str, list[GpuSpec]]]] = {}


def _gpu_name_table(gpus) -> dict[str, list[GpuSpec]]:
    """Every GPU by the normalized form of its name and of each alias, built once per GPU table
    (the tuple is kept with it, so its id cannot be reused): the fleet looks up every host's GPUs."""
    hit = _GPU_TABLES.get(id(gpus))
    if hit is not None and hit[0] is gpus:
        return hit[1]
    table: dict[str, list[GpuSpec]] = {}
    for g in gpus:
        for key in dict.fromkeys(normalize_gpu_name(n) for n in (g.name, *g.aliases)):
            table.setdefault(key, []).append(g)
    if isinstance(gpus, tuple):
        _GPU_TABLES[id(gpus)] = (gpus, table)
    return table


def find_gpu(gpus, name: str) -> GpuSpec:
    """A catalog GPU by its name or an alias, forgiving vendor words, case and separators.

    A name that is only part of a GPU's ("4090", "RTX 6000", "A100 80GB") is accepted when it
    picks out one GPU; when it fits several (the A100's four variants, both M3 Max bins) it is
    refused with the variants listed, never resolved to one of them silently."""
    key = normalize_gpu_name(name)
    if not key:
        raise UsageError(f"--gpu '{name}' names no GPU (e.g. --gpu 'RTX 4090')")
    exact = _gpu_name_table(gpus).get(key, [])
    if len(exact) == 1:
        return exact[0]
    tokens = _gpu_tokens(name)
    partial = (
        exact
        or [
            g
            for g in gpus
            if any(key in normalize_gpu_name(n) or tokens <= _gpu_tokens(n) for n in (g.name, *g.aliases))
        ]
        or [g for g in gpus if normalize_gpu_name(g.name) and normalize_gpu_name(g.name) in key]
    )
    if len(partial) == 1:
        return partial[0]
    if partial:
        variants = "; ".join(
            f"{g.name} ({g.memory_bytes / 1e9:.0f} GB, {g.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s)"
            for g in partial[:8]
        )
        more = f"; and {len(partial) - 8} more" if len(partial) > 8 else ""
        raise UsageError(f"--gpu '{name}' matches {len(partial)} GPUs: {variants}{more} — give the full name of one")
    hint = _suggest(name, [g.name for g in gpus] + [a for g in gpus for a in g.aliases])
    tip = f" — did you mean {hint}?" if hint else ""
    raise NotFoundError(f"unknown GPU '{name}'{tip} (`fitagent catalog gpus` lists them)")


_EXL = re.compile(r"(?i)^exl([23])[-_ ]?(\d+(?:\.\d+)?)(?:[-_ ]?bpw)?(?:[-_ ]?h(?:b)?(\d))?$")


def exl_quant(raw: str, quants):
    """ExLlamaV2 / V3 at any bits per weight ("EXL2-4.65", "exl3_4.0bpw", "EXL2-6.0-h8"): its matrices
    at that average, its head at 6 bits unless told (-hb), embeddings in 16 bits; scored as the
    llama.cpp type nearest in bits per weight. (None: the name is not one.)"""
    from dataclasses import replace

    match = _EXL.match(raw.strip())
    if not match:
        return None
    version, bits, head = match[1], float(match[2]), int(match[3] or 6)
    if not 2.0 <= bits <= 8.0 or not 2 <= head <= 8:
        raise UsageError(f"'{raw}': ExLlama bits per weight run from 2.0 to 8.0, its head's from 2 to 8")
    ggufs = [q for q in quants if q.format == "gguf" and q.recommend and q.kld_ref is not None]
    nearest = min(ggufs, key=lambda q: abs(q.bits_per_weight - bits))
    name = f"EXL{version}-{match[2]}" + (f"-H{head}" if match[3] else "")
    quant = replace(
        nearest,
        name=name,
        bits_per_weight=bits,
        format="exl",
        base_type=f"EXL_{round(bits * 1000)}",
        output_type=f"EXL_{head * 1000}",
        embedding_type=None,
        ftype=None,
        aliases=(),
        recommend=False,
        source=f"ExLlama{'V2' if version == '2' else 'V3'} at {bits:g} bits per weight, head at {head} "
        "(turboderp-org/exllamav2 convert.py -b / -hb)",
        notes=f"scored as {nearest.name} ({nearest.bits_per_weight:g} bits per weight), the nearest llama.cpp type",
    )
    return (
        quant,
        f"{raw}: ExLlama's {bits:g} bits per weight; its quality scored as {nearest.name}'s, the nearest in size",
    )
