"""Installed models against the catalog and this machine: which catalog model each file holds, how
it fits now, the line that launches it, and which recommendations are already on disk."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from ...catalog.errors import FitagentError
from ...catalog.lookup import model_key
from ...catalog.types import Catalog, Model
from ...estimator.budget import Budget, Device
from ...estimator.estimate import estimate
from ...estimator.launch import llama_cpp_args, ollama_settings, vllm_settings
from ...estimator.results import Estimate, Options
from .records import DTYPE_QUANTS
from .scan import LocalModel, Scan


@dataclass(frozen=True)
class Installed:
    """A scan's models, each with the catalog's facts when it is a catalog model."""

    scan: Scan
    models: tuple[tuple[LocalModel, Model, str | None], ...]  # (as found, as estimated, catalog id or None)
    index: Mapping[str, Mapping[str, tuple[str, ...]]]  # catalog id → quantization → paths holding it

    def fields(self, model_id: str, quant: str) -> dict:
        """What a recommendation of (model_id, quant) says about the disk: installed, installed_at, and
        installed_quants when other quantizations of that model are there."""
        quants = self.index.get(model_id, {})
        paths = list(quants.get(quant, ()))
        out: dict = {"installed": bool(paths), "installed_at": paths}
        if any(q != quant for q in quants):
            out["installed_quants"] = sorted(quants)
        return out

    def problems(self) -> list[dict]:
        return [{"path": path, "message": message} for path, message in self.scan.problems]


NOTHING = Installed(Scan((), (), (), 0.0, 0, 0, 0), (), {})


def catalog_quant(local: LocalModel) -> str | None:
    """The catalog quantization the file is, exactly (None when it is none of them)."""
    return local.quant if local.format == "gguf" else DTYPE_QUANTS.get(local.quant or "")


def match_catalog(scan: Scan, catalog: Catalog) -> Installed:
    """Each model found with the catalog's id, benchmarks and parameter counts when one of its names
    (GGUF general.name or basename, repo id, Ollama name, file name) is a catalog model's, loosely,
    and its architecture has the same shape (modelfiles.with_catalog_facts)."""
    from ..modelfiles import _shape, with_catalog_facts

    by_key: dict[str, list[Model]] = {}
    for known in catalog.models:
        for key in dict.fromkeys((model_key(known.id), model_key(known.alias))):
            by_key.setdefault(key, []).append(known)
    matched = []
    index: dict[str, dict[str, list[str]]] = {}
    for local in scan.models:
        model, catalog_id = local.model, None
        shape = _shape(model.architecture)
        for name in local.match_names:
            if any(_shape(k.architecture) == shape for k in by_key.get(model_key(name), ())):
                candidate = dataclasses.replace(local.model, id=name)
                named = with_catalog_facts(candidate, catalog)
                if named is not candidate:
                    model, catalog_id = named, named.id
                    break
        matched.append((local, model, catalog_id))
        quant = catalog_quant(local)
        if catalog_id is not None and quant is not None:
            index.setdefault(catalog_id, {}).setdefault(quant, []).append(local.path)
    frozen = {mid: {q: tuple(paths) for q, paths in quants.items()} for mid, quants in index.items()}
    return Installed(scan, tuple(matched), frozen)


def launch_line(local: LocalModel, est: Estimate, devices: tuple[Device, ...]) -> dict | None:
    """How to run the file as placed: llama-server, `ollama run`, or `vllm serve`; None when it does not load."""
    if not est.loads or est.placement == "none":
        return None
    if local.runtime == "ollama":
        settings = ollama_settings(est)
        return {"runtime": "ollama", "command": f"ollama run {local.name}", **settings}
    if local.runtime == "llama.cpp":
        args = ["-m", local.path, *llama_cpp_args(est, devices)]
        if local.mmproj:
            args += ["--mmproj", local.mmproj]
        return {"runtime": "llama.cpp", "command": "llama-server " + shlex.join(args), "args": args}
    settings = vllm_settings(est, devices)
    target = local.name if local.store == "huggingface" else local.path
    if settings["args"] is None:
        return {"runtime": "vllm", "command": None, "args": None, "note": settings["note"]}
    args = [target, *settings["args"]]
    return {"runtime": "vllm", "command": "vllm serve " + shlex.join(args), "args": args, "note": settings["note"]}


def local_rows(
    installed: Installed, catalog: Catalog, budget: Budget, devices: tuple[Device, ...], options: Options
) -> list[dict]:
    """One row per installed model: what it is, and how it fits and runs here now."""
    rows = []
    options = dataclasses.replace(options, detail=False)  # no prefill or limits: a row shows neither
    for local, model, catalog_id in installed.models:
        row = {
            "store": local.store,
            "name": local.name,
            "path": local.path,
            "files": list(local.files),
            "format": local.format,
            "size_bytes": local.size_bytes,
            "quant": local.quant,
            "architecture": local.architecture,
            "catalog_id": catalog_id,
            "model": model.id,
            "params_total": model.params_total,
            "mmproj": {"path": local.mmproj, "size_bytes": local.mmproj_bytes} if local.mmproj else None,
        }
        if local.dtypes is not None:
            row["dtypes"] = dict(local.dtypes)
        row.update(_fit(local, model, catalog, budget, devices, options))
        rows.append(row)
    return rows


def _fit(
    local: LocalModel, model: Model, catalog: Catalog, budget: Budget, devices: tuple[Device, ...], options: Options
) -> dict:
    notes = []
    try:
        quant = catalog.quant(local.score_quant)
    except FitagentError:
        quant = catalog.quant("Q4_K_M")
    if catalog_quant(local) != quant.name:
        notes.append(
            f"{local.quant or 'an unnamed type'} is scored as {quant.name}, the nearest catalog "
            "quantization; memory is the files' exact size"
        )
    context = min(options.context, model.max_context)
    if context < options.context:
        notes.append(f"context {context:,}: the model reads at most that")
    try:
        est = estimate(model, quant, budget, catalog, dataclasses.replace(options, context=context))
    except FitagentError as exc:
        return {
            "context": context,
            "fits": None,
            "loads": None,
            "placement": None,
            "gpu_layers": None,
            "decode_tokens_per_s": None,
            "quality_source": None,
            "launch": None,
            "notes": [str(exc)],
        }
    if local.mmproj:
        notes.append(f"the vision projector ({local.mmproj_bytes / 1e9:.2f} GB) is not counted in the memory")
    body = est.to_dict()
    return {
        "context": context,
        "fits": est.fits,
        "loads": est.loads,
        "safe": est.safe,
        "placement": est.placement,
        "gpu_layers": est.gpu_layers,
        "total_layers": est.total_layers,
        "total_bytes": est.total_bytes,
        "headroom_bytes": est.headroom_bytes,
        "decode_tokens_per_s": body["decode_tokens_per_s"],
        "quality": body["quality"],
        "quality_source": est.quality_source,
        "scored_as": quant.name,
        "launch": launch_line(local, est, devices),
        "notes": list(est.notes) + list(model.notes) + notes,
    }
