"""Host RAM bandwidth measured once (`fitagent probe --measure-bandwidth`) and remembered.

Kept as JSON in the user's cache directory, keyed by the machine (its machine-id, CPU and RAM
size), so later probes — and the estimates made from them — use it instead of an assumed figure.
"""

from __future__ import annotations

import datetime as dt
import json
import os

FILE = "host-bandwidth.json"


def machine_key(ctx, host: dict) -> str:
    identity = ctx.read_text("/etc/machine-id") or host.get("hostname") or "unknown"
    gib = round((host.get("memory_total_bytes") or 0) / 2**30)
    return f"{identity}|{host.get('cpu_model') or 'cpu'}|{gib}GiB"


def _path(ctx) -> str | None:
    from ..paths import cache_dir

    if not any(ctx.environ.get(v) for v in ("FITAGENT_CACHE_DIR", "CACHE_DIRECTORY", "XDG_CACHE_HOME", "HOME")):
        return None
    return os.path.join(cache_dir(ctx.environ), FILE)


def _load(path: str) -> dict:
    from ...catalog.errors import UsageError
    from ..files import read_text

    try:
        data = json.loads(read_text(path, "bandwidth cache"))
    except (OSError, UsageError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("machines"), dict) else {}


def recall(ctx, host: dict) -> dict | None:
    """{bytes_per_s, measured_at, how} stored for this machine, or None."""
    path = _path(ctx)
    entry = _load(path).get("machines", {}).get(machine_key(ctx, host)) if path else None
    if not isinstance(entry, dict):
        return None
    value = entry.get("bytes_per_s")
    if not isinstance(value, int) or isinstance(value, bool) or not 1e6 <= value <= 100e12:
        return None
    return entry


def remember(ctx, host: dict, bytes_per_s: int, how: str) -> str | None:
    """Store a measurement; the path written, or None when there is nowhere to write."""
    from ..paths import write_private

    path = _path(ctx)
    if path is None:
        return None
    data = _load(path) or {"schema": 1, "machines": {}}
    data["machines"][machine_key(ctx, host)] = {
        "bytes_per_s": int(bytes_per_s),
        "how": how,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    try:
        write_private(path, json.dumps(data, indent=1) + "\n")
    except OSError:
        return None
    return path
