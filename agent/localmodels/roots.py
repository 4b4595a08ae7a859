"""Where installed models live: the stores runtimes download into, and folders the user names.

Every home-relative store is found from the environment passed in (``$HOME``, ``$XDG_CACHE_HOME``,
the runtimes' own variables), never from the process's, so tests and the agent can point it
elsewhere. A store that does not exist is simply empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# layouts: how a root's files make models
HF_HUB = "hf-hub"  # models--ORG--NAME/snapshots/<rev>/…
OLLAMA = "ollama"  # manifests/<registry>/<namespace>/<model>/<tag> → blobs/sha256-<hex>
GGUF_TREE = "gguf-tree"  # *.gguf anywhere below (LM Studio's publisher/repo/, llama.cpp's cache, any folder)
ONE_FILE = "file"  # a single .gguf named on the command line

OLLAMA_SERVICE_STORE = "/usr/share/ollama/.ollama/models"  # the Linux installer's `ollama` user


@dataclass(frozen=True)
class Root:
    store: str  # huggingface | ollama | lmstudio | llama.cpp | folder
    path: str  # absolute, as the user or the environment names it (not resolved)
    layout: str
    named: bool = False  # named by the user (--path, model_dirs): its absence is a problem, not an empty store

    def to_dict(self) -> dict:
        return {"store": self.store, "path": self.path, "layout": self.layout, "exists": os.path.exists(self.path)}


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _cache_home(environ: Mapping[str, str]) -> str:
    # huggingface_hub and llama.cpp both honour $XDG_CACHE_HOME before ~/.cache
    return environ.get("XDG_CACHE_HOME") or os.path.join(_home(environ), ".cache")


def hf_hub_dir(environ: Mapping[str, str]) -> str:
    """$HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub (~/.cache/… by default)."""
    if environ.get("HF_HUB_CACHE"):
        return environ["HF_HUB_CACHE"]
    if environ.get("HF_HOME"):
        return os.path.join(environ["HF_HOME"], "hub")
    return os.path.join(_cache_home(environ), "huggingface", "hub")


def store_roots(environ: Mapping[str, str]) -> list[Root]:
    """The usual stores: the Hugging Face cache, Ollama's (the user's and the service's), LM Studio's,
    llama.cpp's download cache."""
    home = _home(environ)
    roots = [Root("huggingface", hf_hub_dir(environ), HF_HUB)]
    if environ.get("OLLAMA_MODELS"):
        roots.append(Root("ollama", environ["OLLAMA_MODELS"], OLLAMA))
    roots += [
        Root("ollama", os.path.join(home, ".ollama", "models"), OLLAMA),
        Root("ollama", OLLAMA_SERVICE_STORE, OLLAMA),
        Root("lmstudio", os.path.join(home, ".lmstudio", "models"), GGUF_TREE),
        Root("lmstudio", os.path.join(home, ".cache", "lm-studio", "models"), GGUF_TREE),
    ]
    roots.append(
        Root("llama.cpp", environ.get("LLAMA_CACHE") or os.path.join(_cache_home(environ), "llama.cpp"), GGUF_TREE)
    )
    return roots


def folder_root(path: str) -> Root:
    """A folder (or file) the user named: recognised as an Ollama store or a Hugging Face cache by its
    layout, else read as a tree of GGUF files (and safetensors folders with a config.json)."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(path):
        return Root("folder", path, ONE_FILE, named=True)
    if os.path.isdir(os.path.join(path, "manifests")) and os.path.isdir(os.path.join(path, "blobs")):
        return Root("ollama", path, OLLAMA, named=True)
    try:
        with os.scandir(path) as entries:
            if any(e.name.startswith("models--") for e in entries):
                return Root("huggingface", path, HF_HUB, named=True)
    except OSError:
        pass
    return Root("folder", path, GGUF_TREE, named=True)


def scan_roots(environ: Mapping[str, str], model_dirs: Iterable[str] = (), paths: Iterable[str] = ()) -> list[Root]:
    """--path folders alone when given; else the usual stores and the config's model_dirs. The same
    folder reached twice (a link, a store named again) is scanned once."""
    paths = list(paths)
    roots = [folder_root(p) for p in paths] if paths else store_roots(environ) + [folder_root(d) for d in model_dirs]
    unique, seen = [], set()
    for root in roots:
        real = os.path.realpath(root.path)
        if real in seen:
            continue
        seen.add(real)
        unique.append(root)
    return unique
