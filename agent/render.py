"""Human-readable output: plain tables with units (GB = 10^9 bytes)."""

from __future__ import annotations

from collections.abc import Sequence

from ..estimator.hardware import HardwareSnapshot


def gb(n: float | None, digits: int = 1) -> str:
    return "—" if n is None else f"{n / 1e9:.{digits}f} GB"


def rate(n: float | None, unit: str = "tokens/s") -> str:
    if n is None:
        return "—"
    return f"{n:,.0f} {unit}" if n >= 100 else f"{n:.1f} {unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_snapshot(snap: HardwareSnapshot) -> str:
    h = snap.host
    cpu = f"{h.cpu_model or 'unknown CPU'} ({h.cpu_cores} cores)"
    bw = f"bandwidth {gb(h.memory_bandwidth_bytes_per_s, 0)}/s ({h.memory_bandwidth_source})" if h.memory_bandwidth_bytes_per_s else "bandwidth unknown"
    limit = f", limited to {gb(h.memory_limit_bytes)} by {h.memory_limit_source or 'cgroup'}" if h.memory_limit_bytes else ""
    out = [
        f"Host  {h.hostname} · {h.os} · {cpu}",
        f"RAM   {gb(h.memory_total_bytes)} total, {gb(h.memory_available_bytes)} available{limit} · {bw}",
        "",
    ]
    if snap.gpus:
        rows = []
        for g in snap.gpus:
            status = "ok" if g.usable else ("lost: " + g.error if g.error else "not visible" if not g.visible else "MIG parent")
            bandwidth = f"{g.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s ({g.bandwidth_source})" if g.memory_bandwidth_bytes_per_s else "—"
            rows.append([g.index, g.name, f"{g.memory_free_bytes / 1e9:.1f} / {g.memory_total_bytes / 1e9:.1f} GB",
                         bandwidth, g.driver_version or "—", status])
        out.append(table(["GPU", "name", "free / total", "bandwidth", "driver", "status"], rows))
        for g in snap.gpus:
            for proc in g.processes:
                out.append(f"  GPU {g.index}: pid {proc.get('pid')} {proc.get('name') or '?'} holds {gb(proc.get('used_bytes'))}")
    else:
        out.append("No usable GPU found: estimates run on the CPU and RAM.")
    if snap.problems:
        out.append("")
        out.append("Problems:")
        out += [f"  {p.source}: {p.message}" for p in snap.problems]
    return "\n".join(out)


def _hardware_line(snap: HardwareSnapshot) -> str:
    gpus = [g for g in snap.gpus if g.usable]
    if not gpus:
        return f"CPU only: {snap.host.cpu_model or 'CPU'}, {gb(snap.host.memory_available_bytes)} RAM available"
    return " + ".join(f"{g.name} ({gb(g.memory_free_bytes)} free)" for g in gpus)


_PLACEMENT_WORDS = {
    "gpu": "entirely on GPU",
    "partial_offload": "partly offloaded to RAM",
    "cpu": "on the CPU",
    "none": "does not fit",
}


def render_estimate(e, snap: HardwareSnapshot) -> str:
    placement = _PLACEMENT_WORDS[e.placement]
    if e.placement == "partial_offload":
        placement += f" · {e.gpu_layers}/{e.total_layers} layers on GPU"
        if e.n_cpu_moe:
            placement += f", experts of {e.n_cpu_moe} layers in RAM"
    elif e.placement == "gpu":
        placement += f" · {e.total_layers}/{e.total_layers} layers" + (" · tensor parallel" if e.tensor_parallel else "")
    fit = ("fits" if e.fits else "does not fit") + f", headroom {gb(e.headroom_bytes)}" + (" (safe)" if e.safe else "")
    ttft = f" · first token after {e.time_to_first_token_s:.2f} s ({e.prompt_tokens}-token prompt)" if e.time_to_first_token_s else ""
    lines = [
        f"{e.model} · {e.quant} · context {e.context:,} · {e.method} method",
        f"on {_hardware_line(snap)}",
        "",
        f"memory     weights {gb(e.weights_bytes, 2)} + KV cache {gb(e.kv_cache_bytes, 2)} + overhead {gb(e.overhead_bytes, 2)} = {gb(e.total_bytes, 2)}",
        f"fit        {fit}",
        f"placement  {placement}",
        f"decode     {rate(e.decode_tokens_per_s)}",
        f"prefill    {rate(e.prefill_tokens_per_s)}{ttft}",
        f"quality    {e.quality:.1f} ({e.use_case})" + (f" · efficiency {e.efficiency:.3f}" if e.efficiency is not None else ""),
    ]
    if e.max_context is not None:
        where = "on the GPU" if e.placement == "gpu" else "with this split" if e.placement == "partial_offload" else "in RAM"
        plural = "s" if e.concurrent_sessions != 1 else ""
        sessions = f" · {e.concurrent_sessions} session{plural} of {e.context:,} tokens at once" if e.concurrent_sessions else ""
        lines.append(f"limits     longest context {where}: {e.max_context:,} tokens{sessions}")
    for d in e.devices:
        lines.append(f"  {d.name}: {d.layers} layers, {gb(d.bytes, 2)} of {gb(d.free_bytes, 2)} free")
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines)


def render_recommendations(result, snap: HardwareSnapshot, top: int = 10) -> str:
    lines = [
        f"{_hardware_line(snap)} · budget {gb(result.budget_bytes)} · context {result.context:,} · use case {result.use_case}",
        "",
    ]
    if not result.ranked:
        lines.append("Nothing in the catalog runs at a usable speed here.")
    else:
        rows = []
        for i, e in enumerate(result.ranked[:top], 1):
            where = _PLACEMENT_WORDS[e.placement] if e.placement != "partial_offload" else f"{e.gpu_layers}/{e.total_layers} layers on GPU"
            rows.append([i, e.model, e.quant, gb(e.total_bytes), where, rate(e.decode_tokens_per_s), f"{e.quality:.1f}"])
        lines.append(table(["#", "model", "quant", "memory", "placement", "decode", "quality"], rows))
    for name, points in result.frontiers.items():
        shown = _sample(points, 8)
        lines.append("")
        more = f"; {len(shown)} shown, --json for all" if len(shown) < len(points) else ""
        lines.append(f"{name} frontier ({len(points)} points{more}):")
        for e in shown:
            metric = {"quality": f"{e.quality:.1f}", "speed": rate(e.decode_tokens_per_s),
                      "efficiency": f"{e.efficiency:.3f}" if e.efficiency is not None else "—"}[name]
            lines.append(f"  {gb(e.total_bytes):>9}  {metric:>14}  {e.model} {e.quant}")
    return "\n".join(lines)


def _sample(points: list, k: int) -> list:
    """At most k points spread along a frontier, always keeping both ends."""
    if len(points) <= k:
        return points
    step = (len(points) - 1) / (k - 1)
    return [points[round(i * step)] for i in range(k)]
