"""Node facts for Kubernetes schedulers: a Node Feature Discovery (NFD) local feature file.

With ``nfd_features_file`` set (e.g. ``/etc/kubernetes/node-feature-discovery/features.d/fitagent``)
the agent writes, after each successful scan, what fits this node now as NFD labels; nfd-worker's
``local`` source reads the directory (every ``sleep-interval``, 60 s by default) and nfd-master puts
the labels on the Node, where a Deployment's ``nodeAffinity`` can match them
(``deploy/kubernetes/example-deployment.yaml``)::

    # +expiry-time=2026-12-04T18:52:30Z
    feature.node.kubernetes.io/fitagent-gpus=2
    feature.node.kubernetes.io/fitagent-gpu-free-gb=50
    feature.node.kubernetes.io/fitagent-bandwidth-class=high
    feature.node.kubernetes.io/fitagent-largest-model-params-b=70
    feature.node.kubernetes.io/fitagent-fits.llama-3.1-8b-instruct.q4_k_m=true

Numbers are whole and rounded down (a scheduler matching ``Gt`` never gets more than there is),
so they suit ``nodeAffinity``'s ``Gt``/``Lt``. The file carries an expiry: the agent's stale
threshold (3 rescan intervals + 60 s) after the scan, so a node whose agent stopped scanning loses
its labels at NFD's next pass rather than advertising old free memory. It is replaced whole
(written to a dot file, which NFD ignores, then renamed), as NFD's documentation asks.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timezone
from pathlib import Path

from ...estimator.recommend import usable_now

PREFIX = "feature.node.kubernetes.io/fitagent-"
MAX_FILE_BYTES = 64 * 1024  # NFD ignores a larger feature file
# The fastest usable GPU's memory bandwidth, in bands a scheduler can ask for by name.
BANDWIDTH_CLASSES = ((1500e9, "hbm"), (700e9, "high"), (300e9, "mid"), (0.0, "low"))
_NAME = re.compile(r"[^a-z0-9._-]+")
_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def bandwidth_class(bytes_per_s: float | None, has_gpu: bool) -> str:
    if not has_gpu:
        return "cpu"
    for floor, name in BANDWIDTH_CLASSES:
        if (bytes_per_s or 0.0) >= floor:
            return name
    return "low"


def label_name(suffix: str) -> str:
    """``<prefix><suffix>``, the name part within Kubernetes' 63 characters (a long one keeps a hash)."""
    name = _NAME.sub("-", suffix.lower()).strip("-._")
    room = 63 - len(PREFIX.split("/", 1)[1])
    if len(name) > room:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[: room - 9].rstrip("-._") + "-" + digest
    return PREFIX + name


def label_value(text: str) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    value = _VALUE.sub("-", text)[:63].strip("-._")
    return value


def _gb(n: float | int | None) -> str:
    return str(max(0, math.floor((n or 0) / 1e9)))


def model_slug(model: str, quant: str) -> str:
    return f"{model.rsplit('/', 1)[-1]}.{quant}"


def features(state, config, catalog) -> list[tuple[str, str]]:
    """(label name, value) pairs for one successful scan."""
    from ..metrics import reference_estimate

    computed = state.computed
    budget = computed.budget
    devices = budget.devices
    fastest = max((d.bandwidth_bytes_per_s or 0.0 for d in devices), default=None)
    out = [
        (label_name("gpus"), str(len(devices))),
        (label_name("gpu-free-gb"), _gb(budget.gpu_free_bytes)),
        (label_name("gpu-free-max-gb"), _gb(max((d.free_bytes for d in devices), default=0))),
        (label_name("gpu-total-gb"), _gb(sum(d.total_bytes for d in devices))),
        (label_name("ram-available-gb"), _gb(budget.host_available_bytes)),
        (label_name("bandwidth-gbps"), _gb(fastest if devices else budget.host_bandwidth_bytes_per_s)),
        (label_name("bandwidth-class"), bandwidth_class(fastest, bool(devices))),
    ]
    # The largest catalog model that fits whole now (at the default context), at its best quantization.
    if computed.best_fitting:
        params = {m: catalog.model(m).params_total for m in computed.best_fitting}
        model = max(params, key=lambda m: (params[m], m))
        out.append((label_name("largest-model-params-b"), str(math.floor(params[model] / 1e9))))
        out.append((label_name("largest-model"), label_value(model_slug(model, computed.best_fitting[model][0]))))
    else:
        out.append((label_name("largest-model-params-b"), "0"))
    # Reference models: the configured one and the watch list, each fitting now or not, and how
    # long a context it takes with the placement it gets.
    references = []
    reference = reference_estimate(state, config, catalog)
    if reference is not None:
        references.append(reference)
    references += list(computed.watched)
    seen = set()
    for e in references:
        slug = model_slug(e.model, e.quant) + ("" if e is reference else f".{e.context}")
        if slug in seen:
            continue
        seen.add(slug)
        out.append((label_name(f"fits.{slug}"), "true" if usable_now(e) else "false"))
        out.append((label_name(f"max-context.{slug}"), str(e.max_context or 0)))
    return out


def render(state, config, catalog) -> str:
    expires = datetime.fromtimestamp(state.scanned_at + 3 * config.rescan_interval_s + 60, timezone.utc)
    lines = [
        "# fitagent: what fits this node now (written after each scan; NFD's local source reads it)",
        f"# +expiry-time={expires.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        *(f"{name}={value}" for name, value in features(state, config, catalog) if value),
    ]
    text = "\n".join(lines) + "\n"
    return text.encode()[:MAX_FILE_BYTES].decode("utf-8", "ignore")


def write_node_features(path: str | Path, state, config, catalog) -> str:
    """Replace `path` whole, world-readable for nfd-worker (a dot file NFD skips, renamed over it)."""
    from ..paths import write_atomic

    text = render(state, config, catalog)
    write_atomic(path, text, 0o644)
    return text
