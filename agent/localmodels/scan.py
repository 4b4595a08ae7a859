"""One scan of the stores: each root's layout turned into models, read header-first through the cache.

A model is a unit of files: one GGUF, the shards of a split GGUF, an Ollama manifest and its blobs,
or a Hugging Face checkpoint (config.json and its safetensors). Its record is re-read only when one
of those files changed size or mtime; everything else costs a stat.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...catalog.errors import UsageError
from ...catalog.types import Catalog, Model
from ..files import read_text
from .cache import ScanCache, model_from_json
from .records import gguf_record, is_projector_name, safetensors_record
from .roots import GGUF_TREE, HF_HUB, OLLAMA, ONE_FILE, Root
from .walk import FileStat, Walker

_SHARD = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_ST_SHARD = re.compile(r"-(?P<index>\d{5})-of-(?P<count>\d{5})\.safetensors$")
_DIGEST = re.compile(r"^sha256[:-](?P<hex>[0-9a-f]{64})$")
_OLLAMA_MODEL = "application/vnd.ollama.image.model"
_OLLAMA_PROJECTOR = "application/vnd.ollama.image.projector"
OLLAMA_REGISTRY = "registry.ollama.ai"
MAX_MANIFEST_BYTES = 1 << 20
# trailing parts of a file or tag name that say how it was quantized or tagged, not which model it is
_NAME_TAIL = re.compile(
    r"(?i)[-._](?:ud|i1|imat(?:rix)?|latest|gguf|i?q[1-8](?:_[a-z0-9]+)*|bf16|f16|f32|fp16|fp32|fp8|"
    r"mxfp4(?:_moe)?)$"
)


@dataclass(frozen=True)
class LocalModel:
    store: str  # huggingface | ollama | lmstudio | llama.cpp | folder
    name: str  # as the store shows it: Ollama's qwen3:30b-a3b, a Hugging Face repo id, publisher/repo, a file name
    path: str  # what a runtime is given: the (first) GGUF, the Ollama blob, the checkpoint folder
    files: tuple[str, ...]  # the weight files (shards in order)
    format: str  # gguf | safetensors
    size_bytes: int  # the weight files on disk, exactly
    quant: str | None  # the header's file type (Q4_K_M), or the checkpoint's dtype / method (BF16, AWQ-4bit)
    score_quant: str  # the catalog quantization its quality is scored as
    architecture: str | None  # GGUF general.architecture, or config.json's architectures[0]
    model: Model  # as its own files describe it (no catalog facts)
    match_names: tuple[str, ...]  # names to look it up in the catalog by
    runtime: str  # llama.cpp | ollama | vllm
    mmproj: str | None = None  # a vision model's projector
    mmproj_bytes: int = 0
    dtypes: Mapping[str, int] | None = None  # safetensors: bytes per dtype


@dataclass(frozen=True)
class Scan:
    roots: tuple[Root, ...]
    models: tuple[LocalModel, ...]
    problems: tuple[tuple[str, str], ...]  # (path, what is wrong)
    seconds: float
    files_stat: int
    headers_read: int  # units whose files were read this time (not served by the cache)
    from_cache: int


def plain_name(name: str) -> str:
    """A file or tag name without the quantization and tags at its end (Qwen2.5-7B-Instruct-Q4_K_M →
    Qwen2.5-7B-Instruct, qwen3:30b-a3b-q4_K_M → qwen3-30b-a3b)."""
    name = name.replace(":", "-")
    previous = None
    while previous != name:
        previous, name = name, _NAME_TAIL.sub("", name)
    return name


def gguf_stem(path: str) -> str:
    name = os.path.basename(path)
    match = _SHARD.match(name)
    return match["stem"] if match else name[:-5] if name.lower().endswith(".gguf") else name


def run_scan(roots: list[Root], catalog: Catalog, cache: ScanCache) -> Scan:
    started = time.monotonic()
    scanner = _Scanner(roots, catalog, cache)
    for root in roots:
        if os.path.exists(root.path):
            {HF_HUB: scanner.hf_hub, OLLAMA: scanner.ollama, GGUF_TREE: scanner.gguf_tree, ONE_FILE: scanner.one_file}[
                root.layout
            ](root)
        elif root.named:
            scanner.problem(root.path, "no such file or folder")
    cache.save()
    models = sorted(scanner.models, key=lambda m: (m.store, m.name.lower(), m.path))
    return Scan(
        tuple(roots),
        tuple(models),
        tuple(dict.fromkeys(scanner.problems)),
        time.monotonic() - started,
        scanner.walker.stats,
        scanner.read,
        cache.hits,
    )


def _problem(message: str, files: list[FileStat]) -> dict:
    """A read error as a cached record: which of the unit's files it is about, and what is wrong."""
    for f in files:
        if message.startswith(f.path + ": "):
            return {"problem": message[len(f.path) + 2 :], "path": f.path}
    return {"problem": message, "path": files[0].path}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _wanted(name: str) -> bool:
    lower = name.lower()
    return lower.endswith((".gguf", ".safetensors")) or name == "config.json"


class _Scanner:
    def __init__(self, roots: list[Root], catalog: Catalog, cache: ScanCache):
        self.problems: list[tuple[str, str]] = []
        self.walker = Walker(
            [os.path.dirname(r.path) if r.layout == ONE_FILE else r.path for r in roots if os.path.exists(r.path)],
            self.problems,
        )
        self.catalog, self.cache = catalog, cache
        self.models: list[LocalModel] = []
        self.read = 0
        self.memo: dict[tuple, dict] = {}  # records read in this scan, by their files (shared Ollama blobs)

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    # ------------------------------------------------------------ records, through the cache

    def record(self, key: str, files: list[FileStat], read: Callable[[], dict]) -> dict | None:
        signature = [f.signature for f in files]
        found = self.cache.get(key, signature)
        if found is None:
            memo_key = tuple(map(tuple, signature))
            found = self.memo.get(memo_key)
            if found is None:
                self.read += 1
                try:
                    found = read()
                except UsageError as exc:
                    found = _problem(str(exc), files)
                self.memo[memo_key] = found
            self.cache.put(key, signature, found)
        if "problem" in found:
            self.problem(found.get("path") or files[0].path, found["problem"])
            return None
        if found.get("error"):
            self.problem(files[0].path, found["error"])
            return None
        return found

    def add(
        self,
        store: str,
        name: str,
        files: list[FileStat],
        record: dict,
        runtime: str,
        path: str | None = None,
        extra_names: tuple[str, ...] = (),
        projector: FileStat | None = None,
    ) -> None:
        try:
            names = tuple(
                dict.fromkeys(
                    n
                    for n in (*record.get("names", ()), name, plain_name(name), *extra_names)
                    if isinstance(n, str) and n
                )
            )
            dtypes = record.get("dtypes")
            found = LocalModel(
                store=store,
                name=name,
                path=path or files[0].path,
                files=tuple(f.path for f in files),
                format={"gguf": "gguf", "safetensors": "safetensors"}[record["kind"]],
                size_bytes=sum(f.size for f in files),
                quant=_text(record.get("quant")),
                score_quant=_text(record.get("score_quant")) or "Q4_K_M",
                architecture=_text(record.get("architecture")),
                model=model_from_json(record["model"]),
                match_names=names,
                runtime=runtime,
                mmproj=projector.path if projector else None,
                mmproj_bytes=projector.size if projector else 0,
                dtypes={str(k): int(v) for k, v in dtypes.items()} if isinstance(dtypes, dict) else None,
            )
        except (ValueError, TypeError, KeyError, AttributeError):  # a cache someone edited, or a bug: never a crash
            self.problem(files[0].path, f"the scan cache's entry for it is unreadable: remove {self.cache.path}")
            return
        self.models.append(found)

    # ------------------------------------------------------------ GGUF files in one folder

    def gguf_folder(
        self, store: str, files: list[FileStat], naming: Callable[[str], tuple[str, tuple[str, ...]]]
    ) -> None:
        """The .gguf files of one folder: shards of a split model joined (all present, or a problem),
        projectors (mmproj) attached to the models beside them."""
        units: list[list[FileStat]] = []
        splits: dict[tuple[str, int], dict[int, FileStat]] = {}
        for f in files:
            match = _SHARD.match(os.path.basename(f.path))
            if match and int(match["count"]) > 0:
                splits.setdefault((match["stem"], int(match["count"])), {})[int(match["index"])] = f
            else:
                units.append([f])
        for (stem, count), shards in sorted(splits.items()):
            missing = [i for i in range(1, count + 1) if i not in shards]
            if missing:
                first = shards[min(shards)]
                self.problem(
                    first.path,
                    f"split model: {stem}-{missing[0]:05d}-of-{count:05d}.gguf is missing "
                    f"({len(missing)} of {count} shards): not listed",
                )
                continue
            units.append([shards[i] for i in range(1, count + 1)])
        models, projectors = [], []
        for unit in sorted(units, key=lambda u: u[0].path):
            if is_projector_name(unit[0].path):
                projectors.append(unit[0])
                continue
            record = self.record(
                "gguf:" + unit[0].path,
                unit,
                lambda unit=unit: gguf_record([f.path for f in unit], self.catalog),  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
            )
            if record is None:
                continue
            if record.get("projector"):
                projectors.append(unit[0])
            else:
                models.append((unit, record))
        if projectors and not models:
            for p in projectors:
                self.problem(p.path, "a vision projector (mmproj) with no model beside it: not listed")
        for unit, record in models:
            name, extra = naming(unit[0].path)
            self.add(
                store,
                name,
                unit,
                record,
                "llama.cpp",
                extra_names=extra,
                projector=projectors[0] if projectors else None,
            )

    # ------------------------------------------------------------ a Hugging Face checkpoint folder

    def safetensors_folder(self, store: str, name: str, folder: str, files: list[FileStat]) -> None:
        weights = [f for f in files if f.path.endswith(".safetensors")]
        if not weights:
            return
        config = next((f for f in files if os.path.basename(f.path) == "config.json"), None)
        if config is None:
            self.problem(folder, "safetensors weights without a config.json: cannot tell the architecture")
            return
        shards: dict[int, dict[int, FileStat]] = {}
        for f in weights:
            match = _ST_SHARD.search(os.path.basename(f.path))
            if match:
                shards.setdefault(int(match["count"]), {})[int(match["index"])] = f
        if shards:  # model-0000i-of-0000n files; a consolidated.safetensors beside them is the same weights
            count, present = max(shards.items(), key=lambda kv: len(kv[1]))
            missing = [i for i in range(1, count + 1) if i not in present]
            if missing:
                self.problem(
                    folder,
                    f"split checkpoint: shard {missing[0]} of {count} is missing "
                    f"({len(missing)} of {count}): not listed",
                )
                return
            weights = [present[i] for i in range(1, count + 1)]
        elif any(os.path.basename(f.path) == "model.safetensors" for f in weights):
            weights = [f for f in weights if os.path.basename(f.path) == "model.safetensors"]
        unit = [config, *weights]
        record = self.record(
            "st:" + folder, unit, lambda: safetensors_record(config.path, [f.path for f in weights], name, self.catalog)
        )
        if record is not None:
            self.add(store, name, weights, record, "vllm", path=folder)

    # ------------------------------------------------------------ the layouts

    def hf_hub(self, root: Root) -> None:
        """models--ORG--NAME/snapshots/<rev>/: the revision refs/main names, else the newest."""
        if not self.walker.enter(root.path):
            return
        _, repos = self.walker.listing(root.path, lambda name: False)
        for repo_dir in repos:
            folder = os.path.basename(repo_dir)
            if not folder.startswith("models--"):
                continue
            repo = folder[len("models--") :].replace("--", "/", 1)
            snapshot = self._hf_snapshot(repo_dir)
            if snapshot is None:
                continue
            if not self.walker.inside(self.walker.resolve(snapshot)):
                self.problem(
                    snapshot, f"a link to {self.walker.resolve(snapshot)}, outside the folders scanned: not followed"
                )
                continue
            for path, files in self.walker.tree(snapshot, _wanted):
                ggufs = [f for f in files if f.path.lower().endswith(".gguf")]
                if ggufs:
                    self.gguf_folder(
                        root.store,
                        ggufs,
                        lambda p, repo=repo: (repo, (repo, plain_name(gguf_stem(p)))),  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
                    )
                if path == snapshot:
                    self.safetensors_folder(root.store, repo, path, files)

    def _hf_snapshot(self, repo_dir: str) -> str | None:
        snapshots = os.path.join(repo_dir, "snapshots")
        ref = os.path.join(repo_dir, "refs", "main")
        try:
            if not self.walker.inside(self.walker.resolve(ref)):
                raise OSError("a link out of the store")  # read nothing outside the roots: take the newest
            revision = read_text(ref, "refs/main", limit=256).strip()  # a FIFO must not hang the scan
        except (OSError, UsageError):
            revision = ""
        if (
            revision
            and "/" not in revision
            and revision not in (".", "..")
            and os.path.isdir(os.path.join(snapshots, revision))
        ):
            return os.path.join(snapshots, revision)
        try:
            with os.scandir(snapshots) as entries:
                found = [(e.stat().st_mtime_ns, e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return None
        return max(found)[1] if found else None

    def gguf_tree(self, root: Root) -> None:
        def naming(path: str) -> tuple[str, tuple[str, ...]]:
            stem = gguf_stem(path)
            extra = (plain_name(stem), plain_name(stem).rsplit("_", 1)[-1], os.path.basename(os.path.dirname(path)))
            parts = path[len(root.path.rstrip(os.sep)) + 1 :].split(os.sep)  # under the root, as the walk reached it
            if root.store == "lmstudio" and len(parts) >= 3:
                return f"{parts[0]}/{parts[1]}", (parts[1], *extra)
            return stem, extra

        for folder, files in self.walker.tree(root.path, _wanted):
            ggufs = [f for f in files if f.path.lower().endswith(".gguf")]
            if ggufs:
                self.gguf_folder(root.store, ggufs, naming)
            if any(f.path.endswith(".safetensors") for f in files):
                name = os.path.relpath(folder, root.path)
                self.safetensors_folder(root.store, os.path.basename(root.path) if name == "." else name, folder, files)

    def one_file(self, root: Root) -> None:
        """A .gguf named on the command line: it, its sibling shards and a projector beside it."""
        if not root.path.lower().endswith(".gguf"):
            self.problem(root.path, "not a .gguf file: name the folder of a checkpoint, or a GGUF file")
            return
        folder = os.path.dirname(root.path)
        files, _ = self.walker.listing(folder, lambda name: name.lower().endswith(".gguf"))
        match = _SHARD.match(os.path.basename(root.path))
        keep = [
            f
            for f in files
            if f.path == root.path
            or is_projector_name(f.path)
            or (
                match
                and (m := _SHARD.match(os.path.basename(f.path)))
                and (m["stem"], m["count"]) == (match["stem"], match["count"])
            )
        ]
        self.gguf_folder(root.store, keep, lambda p: (gguf_stem(p), (plain_name(gguf_stem(p)),)))

    def ollama(self, root: Root) -> None:
        """manifests/<registry>/<namespace>/<model>/<tag> (JSON) → blobs/sha256-<hex>."""
        manifests = os.path.join(root.path, "manifests")
        if not self.walker.enter(root.path) or not os.path.isdir(manifests):
            return
        if not self.walker.inside(self.walker.resolve(manifests)):
            self.problem(manifests, "a link outside the folders scanned: not followed")
            return
        for _folder, files in self.walker.tree(manifests, lambda name: True, max_depth=3):
            for manifest in files:
                parts = os.path.relpath(manifest.path, manifests).split(os.sep)
                if len(parts) == 4:
                    self._ollama_model(root, ollama_name(*parts), manifest)

    def _ollama_model(self, root: Root, name: str, manifest: FileStat) -> None:
        key = "ollama:" + manifest.path
        entry = self.cache.entry(key)
        record = entry.get("record") if entry else None
        blobs_dir = os.path.join(root.path, "blobs") + os.sep
        cached = record.get("blob_files") if isinstance(record, dict) else None
        blob_paths: list[str | None] | None
        if (
            entry
            and entry["files"][:1] == [manifest.signature]
            and isinstance(cached, list)
            and len(cached) == 2
            and isinstance(cached[0], str)
            and all(p is None or (isinstance(p, str) and p.startswith(blobs_dir)) for p in cached)
        ):
            blob_paths = cached  # the manifest did not change: neither did the blobs it names
        else:
            blob_paths = self._manifest_blobs(root, manifest)
            if blob_paths is None:
                return
        blobs: list[FileStat | None] = []
        for path in blob_paths:
            if path is None:
                blobs.append(None)
                continue
            if not os.path.lexists(path):
                self.problem(
                    manifest.path,
                    f"names blob {os.path.basename(path)}, which is not in "
                    f"{os.path.dirname(path)} (an interrupted pull?): not listed",
                )
                return
            found = self.walker.file(path)
            if found is None:
                return
            blobs.append(found)
        model_blob, projector = blobs
        assert model_blob is not None  # the model's blob path is never None
        unit = [manifest, model_blob] + ([projector] if projector else [])

        def read() -> dict:
            return {**gguf_record([model_blob.path], self.catalog), "blob_files": blob_paths}

        record = self.record(key, unit, read)
        if record is not None:
            self.add(
                root.store, name, [model_blob], record, "ollama", extra_names=(name.split(":")[0],), projector=projector
            )

    def _manifest_blobs(self, root: Root, manifest: FileStat) -> list[str | None] | None:
        try:
            data = json.loads(read_text(manifest.path, "Ollama manifest", limit=MAX_MANIFEST_BYTES))
        except FileNotFoundError:
            return None
        except (UsageError, ValueError, RecursionError) as exc:
            self.problem(manifest.path, f"not a readable Ollama manifest ({str(exc)[-120:]})")
            return None
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, list):
            self.problem(manifest.path, "not an Ollama manifest: it has no layers")
            return None
        found: dict[str, str] = {}
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") in (_OLLAMA_MODEL, _OLLAMA_PROJECTOR):
                digest = _DIGEST.match(str(layer.get("digest", "")))
                if digest is None:
                    self.problem(
                        manifest.path, f"a layer's digest {str(layer.get('digest'))[:80]!r} is not sha256:<hex>"
                    )
                    return None
                found.setdefault(layer["mediaType"], os.path.join(root.path, "blobs", f"sha256-{digest['hex']}"))
        if _OLLAMA_MODEL not in found:
            return None  # an adapter, an embedding-less template: nothing to run
        return [found[_OLLAMA_MODEL], found.get(_OLLAMA_PROJECTOR)]


def ollama_name(registry: str, namespace: str, model: str, tag: str) -> str:
    """As `ollama list` shows it: qwen3:30b-a3b (the library of registry.ollama.ai left out),
    user/model:tag, hf.co/org/repo:tag."""
    if registry == OLLAMA_REGISTRY:
        base = model if namespace == "library" else f"{namespace}/{model}"
    else:
        base = f"{registry}/{namespace}/{model}"
    return f"{base}:{tag}"
