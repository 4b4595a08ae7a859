"""Which NVIDIA devices a CUDA program started here would get: CUDA_VISIBLE_DEVICES and friends.

Rules (CUDA Programming Guide, "CUDA Environment Variables"; NVIDIA Container Toolkit docs):
unset → all; empty → none; entries are ordinals, ``GPU-<uuid>`` (prefixes allowed),
``MIG-<uuid>`` or ``MIG-GPU-<uuid>/<gi>/<ci>``; the list order is the CUDA ordinal order; the
first invalid entry ends the list. Ordinals count in ``CUDA_DEVICE_ORDER`` — FASTEST_FIRST by
default, PCI bus order with ``PCI_BUS_ID`` — so index 0 need not be NVML's GPU 0.
Hidden devices stay in the snapshot with ``visible: false``; the budget leaves them out.
"""

from __future__ import annotations

import re

_HEURISTIC_NOTE = (
    "CUDA ordinal assumes FASTEST_FIRST orders by compute capability, newest first;"
    " set CUDA_DEVICE_ORDER=PCI_BUS_ID to make it exact"
)
_LEGACY_MIG = re.compile(r"^MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)$")


def _role(gpu: dict) -> str | None:
    return (gpu.get("mig") or {}).get("role")


def _capability(gpu: dict) -> tuple[int, int]:
    try:
        major, minor = (gpu.get("compute_capability") or "0.0").split(".")
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def cuda_order(physical: list[dict], environ) -> tuple[list[dict], bool]:
    """Healthy physical GPUs in CUDA's enumeration order, and whether that order is a heuristic."""
    healthy = [g for g in physical if not g.get("error")]
    by_bus = sorted(healthy, key=lambda g: (g.get("pci_bus_id") or "", g["index"]))
    if environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") == "PCI_BUS_ID":
        return by_bus, False
    # FASTEST_FIRST: NVIDIA documents only "a simple heuristic"; newest compute capability first,
    # then bus order, is what it is observed to do (onnxruntime PR #28066). Exact for one model.
    fastest = sorted(by_bus, key=lambda g: tuple(-c for c in _capability(g)))
    mixed = len({_capability(g) for g in healthy}) > 1
    return fastest, mixed


def _match_uuid(token: str, candidates: list[dict]) -> dict | None:
    wanted = token.lower()
    found = [g for g in candidates if (g.get("uuid") or "").lower().startswith(wanted)]
    return found[0] if len(found) == 1 else None


def resolve_cuda_visible(value: str, order: list[dict], instances: list[dict]):
    """(selected devices in ordinal order, the entry that ended the list or None, duplicate?)."""
    selected: list[dict] = []
    if not value.strip():
        return selected, None, False  # set but empty: CUDA sees no device
    for raw in value.split(","):
        token = raw.strip()
        device = None
        if token.isdigit():
            device = order[int(token)] if int(token) < len(order) else None
        elif token.upper().startswith("GPU-"):
            device = _match_uuid(token, order)
        elif token.upper().startswith("MIG-"):
            legacy = _LEGACY_MIG.match(token)
            if legacy:
                parent = _match_uuid(legacy.group(1), order)
                device = next(
                    (
                        m
                        for m in instances
                        if parent
                        and m["mig"].get("parent_uuid") == parent.get("uuid")
                        and m["mig"].get("gpu_instance_id") == int(legacy.group(2))
                        and m["mig"].get("compute_instance_id") == int(legacy.group(3))
                    ),
                    None,
                )
            else:
                device = _match_uuid(token, instances)
        if device is None:
            return selected, token, False
        if any(device is s for s in selected):
            return selected, None, True
        selected.append(device)
    return selected, None, False


def _hide(gpu: dict, why: str) -> None:
    gpu["visible"] = False
    gpu.setdefault("notes", []).append(why)


def apply(gpus: list[dict], environ) -> list[dict]:
    """Set `visible` and `cuda_ordinal` on NVIDIA GPU facts; return problem entries."""
    problems: list[dict] = []
    physical = [g for g in gpus if _role(g) != "instance"]
    instances = [g for g in gpus if _role(g) == "instance"]
    order, heuristic = cuda_order(physical, environ)
    mig_on = any(_role(g) == "parent" for g in physical)
    cvd = environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        if not mig_on:  # with MIG on, CUDA enumerates MIG devices; their ordinals are not knowable here
            for ordinal, gpu in enumerate(order):
                gpu["cuda_ordinal"] = ordinal
                if heuristic:
                    gpu.setdefault("notes", []).append(_HEURISTIC_NOTE)
    else:
        selected, bad_entry, duplicate = resolve_cuda_visible(cvd, order, instances)
        if duplicate:
            selected = []
            problems.append(
                {
                    "source": "visibility",
                    "message": f"CUDA_VISIBLE_DEVICES={cvd!r} names a GPU twice, so CUDA sees no GPU — list each GPU once",
                }
            )
        elif bad_entry is not None:
            problems.append(
                {
                    "source": "visibility",
                    "message": f"CUDA_VISIBLE_DEVICES entry {bad_entry!r} matches no GPU, so CUDA ignores it and every entry"
                    f" after it — fix or remove it (GPUs here: {', '.join(g.get('uuid') or str(g['index']) for g in order)})",
                }
            )
        chosen = {id(g) for g in selected}
        for gpu in selected:
            if _role(gpu) == "parent":  # a MIG-mode GPU named whole: the workload lands in its instances
                chosen |= {id(m) for m in instances if m["mig"].get("parent_uuid") == gpu.get("uuid")}
        for ordinal, gpu in enumerate(selected):
            gpu["cuda_ordinal"] = ordinal
            if heuristic and _role(gpu) != "instance":
                gpu.setdefault("notes", []).append(_HEURISTIC_NOTE)
        for gpu in gpus:
            if id(gpu) not in chosen:
                _hide(gpu, f"hidden by CUDA_VISIBLE_DEVICES={cvd!r}")
    problems += _apply_container_list(gpus, physical, environ)
    if physical and not any(g.get("visible", True) and not g.get("error") and _role(g) != "parent" for g in gpus):
        if any(not g.get("visible", True) for g in gpus):
            names = ", ".join(
                f"{k}={environ[k]!r}" for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES") if k in environ
            )
            problems.append(
                {
                    "source": "visibility",
                    "message": f"{names} hides all {len(physical)} NVIDIA GPU(s) — unset it, or list the GPUs to use,"
                    " to let models run on them",
                }
            )
    return problems


def _apply_container_list(gpus: list[dict], physical: list[dict], environ) -> list[dict]:
    """NVIDIA_VISIBLE_DEVICES: the container runtime usually applied it already; apply what it left."""
    value = environ.get("NVIDIA_VISIBLE_DEVICES")
    if value is None or value.strip() == "all":
        return []
    value = value.strip()
    if value in ("", "none", "void"):
        for gpu in gpus:
            _hide(gpu, f"hidden by NVIDIA_VISIBLE_DEVICES={value!r} (no GPU for this container)")
        return []
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    uuids = [t.lower() for t in tokens if t.upper().startswith(("GPU-", "MIG-"))]
    indices = {int(t) for t in tokens if t.isdigit()}
    # Inside a container NVML sees only the devices it was given, renumbered from 0; indices
    # then describe the host and mean nothing here. Only a list shorter than what NVML sees
    # tells that the runtime did not filter (privileged container, or a variable set on a host).
    filter_indices = len(physical) > len(tokens)
    for gpu in gpus:
        parent_uuid = (gpu.get("mig") or {}).get("parent_uuid")
        keys = [(gpu.get("uuid") or "").lower(), (parent_uuid or "").lower()]
        wanted = any(k and k.startswith(u) for u in uuids for k in keys)
        index = gpu["index"]
        if filter_indices and index in indices:
            wanted = True
        if not wanted and (uuids or filter_indices):
            _hide(gpu, f"hidden by NVIDIA_VISIBLE_DEVICES={value!r}")
    return []
