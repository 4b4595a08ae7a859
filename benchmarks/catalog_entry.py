"""A catalog entry (data/models.yaml) from a model's public config.json.

    python -m benchmarks.catalog_entry ORG/NAME path/to/config.json [--benchmarks file.yaml]
        [--alias A] [--family F] [--release YYYY-MM] [--config-source URL] [--params-source TEXT]
        [--params-total N] [--params-active N] [--max-context N] [--modality text|vision]
        [--set field=value ...]

Prints one YAML list item in the catalog's format. The architecture is read through the same
``fitagent.estimator.hfconfig.model_from_hf_config`` that ``--config`` uses (vision models: the
language model under ``text_config``), params_total is ``tensors.parameter_count`` of that
architecture unless --params-total gives the published exact count (the script then prints how far
the two are apart), and params_active is the per-token count as model cards give it.

The benchmarks file, when given, is a YAML mapping of benchmark name (mmlu, humaneval, gsm8k, bfcl)
to {score, source, note?, stand_in?}; without it the entry has no benchmarks and the person
adding it fills them in, each with its source. ``--set`` overrides an architecture field the
config reader cannot know (``--set dense_layers=24`` for Llama 4 Maverick's interleaved MoE
layers); every override is printed as a comment on the entry. The entry is validated with the
catalog's own parser before it is printed, so what comes out loads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields, replace
from pathlib import Path

import yaml

from fitagent.catalog.errors import FitagentError
from fitagent.catalog.parse import check_architecture, parse_models
from fitagent.catalog.types import Architecture
from fitagent.estimator.hfconfig import model_from_hf_config, published_active_count
from fitagent.estimator.tensors import parameter_count

# Architecture fields in the order the catalog writes them; the optional ones only when they apply.
_CORE = (
    "hf_architecture",
    "layers",
    "hidden_size",
    "attention_heads",
    "kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "tied_embeddings",
)
_SLIDING = ("sliding_window", "sliding_window_layers")
_MOE = (
    "experts",
    "experts_per_token",
    "shared_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "dense_layers",
)
_MLA = ("kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
_BENCHMARKS = ("mmlu", "humaneval", "gsm8k", "bfcl")


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    names = {f.name for f in fields(Architecture)}
    if not sep or key not in names:
        raise SystemExit(f"--set {text!r}: expected field=value with field one of {', '.join(sorted(names))}")
    value = yaml.safe_load(raw)
    if value is not None and not isinstance(value, (int, bool, str)):
        raise SystemExit(f"--set {text!r}: value must be a number, true/false, a name or null")
    return key, value


# The config.json key behind an architecture field, for overrides that must be in place before the
# config can be read at all (Hunyuan's per-layer lists of experts per token, for one).
_CONFIG_KEYS = {
    "layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "attention_heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "tied_embeddings": "tie_word_embeddings",
    "experts": "num_experts",
    "experts_per_token": "num_experts_per_tok",
    "shared_experts": "n_shared_experts",
    "moe_intermediate_size": "moe_intermediate_size",
    "dense_layers": "first_k_dense_replace",
    "shared_expert_intermediate_size": "shared_expert_intermediate_size",
}


def _patched(config: dict, overrides: dict) -> dict:
    """config.json with the overridden fields written in (into text_config where there is one)."""
    patched = dict(config)
    target = patched
    if isinstance(config.get("text_config"), dict):
        target = patched["text_config"] = dict(config["text_config"])
    for key, value in overrides.items():
        if key in _CONFIG_KEYS:
            target[_CONFIG_KEYS[key]] = value
    return patched


def _architecture_lines(arch: Architecture) -> list[str]:
    keys = list(_CORE)
    if arch.sliding_window_layers:
        keys += _SLIDING
    if arch.experts:
        keys += [k for k in _MOE if getattr(arch, k) is not None]
    if arch.uses_mla:
        keys += [k for k in _MLA if getattr(arch, k) is not None]
    if arch.attention_bias:
        keys.append("attention_bias")
    lines = []
    for key in keys:
        value = getattr(arch, key)
        if value is None:
            continue
        lines.append(f"      {key}: {_scalar(value)}")
    return lines


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", text) and yaml.safe_load(text) == text:
        return text  # a plain name (an architecture class) needs no quotes
    return json.dumps(text, ensure_ascii=False)


def _benchmark_lines(bench: dict) -> list[str]:
    if not bench:
        return ["    benchmarks: {}"]
    lines = ["    benchmarks:"]
    for name, value in bench.items():
        if name not in _BENCHMARKS:
            raise SystemExit(f"--benchmarks: '{name}' is not one of {', '.join(_BENCHMARKS)}")
        if not isinstance(value, dict) or "score" not in value or "source" not in value:
            raise SystemExit(f"--benchmarks: '{name}' needs a score and a source")
        parts = [f"score: {_scalar(float(value['score']))}", f"source: {_scalar(value['source'])}"]
        for extra in ("note", "stand_in"):
            if value.get(extra):
                parts.append(f"{extra}: {_scalar(value[extra])}")
        lines.append(f"      {name}: {{{', '.join(parts)}}}")
    return lines


def build_entry(
    repo_id: str,
    config: dict,
    *,
    origin: str,
    alias: str | None = None,
    family: str | None = None,
    release: str | None = None,
    config_source: str | None = None,
    params_source: str | None = None,
    params_total: int | None = None,
    params_active: int | None = None,
    max_context: int | None = None,
    modality: str | None = None,
    overrides: dict | None = None,
    benchmarks: dict | None = None,
) -> str:
    model = model_from_hf_config(_patched(config, overrides or {}), origin=origin, name=repo_id)
    arch = model.architecture
    comments = [f"# note: {n}" for n in model.notes]
    if overrides:
        arch = check_architecture(
            replace(arch, **overrides), lambda f, why: (_ for _ in ()).throw(SystemExit(f"--set {f}: {why}"))
        )
        comments.append(
            "# architecture set by hand (not read from config.json by hfconfig): "
            + ", ".join(f"{k}={v}" for k, v in overrides.items())
        )
    computed = parameter_count(arch)
    total = params_total or computed
    if params_total:
        gap = (computed - params_total) / params_total
        comments.append(
            f"# parameter_count(architecture) = {computed:,}, {gap:+.2%} from the published {params_total:,}"
        )
    if params_active is None:
        params_active = published_active_count(arch) if arch.experts else total
    name = repo_id.split("/")[-1]
    lines = [
        f"  - id: {repo_id}",
        f"    alias: {alias or name.lower()}",
        f"    family: {family or model.family}",
        f"    modality: {modality or model.modality}",
        f"    params_total: {total}",
        f"    params_active: {params_active}",
        f"    max_context: {max_context or model.max_context}",
    ]
    if release:
        lines.append(f'    release: "{release}"')
    lines.append("    architecture:")
    lines += _architecture_lines(arch)
    lines.append(
        f"    config_source: {_scalar(config_source or f'https://huggingface.co/{repo_id}/blob/main/config.json')}"
    )
    lines.append(
        f"    params_source: {_scalar(params_source or f'https://huggingface.co/{repo_id} (exact count computed from config.json)')}"
    )
    lines += _benchmark_lines(benchmarks or {})
    lines += [f"    {c}" for c in comments]
    text = "\n".join(lines) + "\n"
    parse_models(yaml.safe_load("models:\n" + text), origin="catalog_entry")  # what is printed must load
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.catalog_entry", description=__doc__.split("\n\n")[0])
    p.add_argument("repo_id", help="Hugging Face repo id, ORG/NAME")
    p.add_argument("config", type=Path, help="a copy of that repo's config.json")
    p.add_argument("--benchmarks", type=Path, help="YAML mapping: benchmark -> {score, source, note?, stand_in?}")
    p.add_argument("--alias")
    p.add_argument("--family")
    p.add_argument("--release", help="YYYY-MM")
    p.add_argument("--config-source", help="where config.json was read (default: the repo's blob/main/config.json URL)")
    p.add_argument("--params-source")
    p.add_argument("--params-total", type=int, help="the published exact parameter count (default: computed)")
    p.add_argument("--params-active", type=int, help="the published active count (default: computed)")
    p.add_argument("--max-context", type=int, help="default: config.json's max_position_embeddings")
    p.add_argument("--modality", choices=("text", "vision"), help="default: vision when the config has a vision_config")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override an architecture field the config reader cannot know (repeatable)",
    )
    args = p.parse_args(argv)
    if "/" not in args.repo_id:
        p.error(f"repo id must be ORG/NAME, got {args.repo_id!r}")
    try:
        config = json.loads(args.config.read_text(encoding="utf-8"))
        bench = yaml.safe_load(args.benchmarks.read_text(encoding="utf-8")) if args.benchmarks else {}
        text = build_entry(
            args.repo_id,
            config,
            origin=str(args.config),
            alias=args.alias,
            family=args.family,
            release=args.release,
            config_source=args.config_source,
            params_source=args.params_source,
            params_total=args.params_total,
            params_active=args.params_active,
            max_context=args.max_context,
            modality=args.modality,
            overrides=dict(map(_parse_override, args.overrides)),
            benchmarks=bench or {},
        )
    except (OSError, ValueError, yaml.YAMLError, FitagentError) as exc:
        print(f"catalog_entry: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
