"""Human-readable output: plain tables with units (GB = 10^9 bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

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
    bw = (
        f"bandwidth {gb(h.memory_bandwidth_bytes_per_s, 0)}/s ({h.memory_bandwidth_source})"
        if h.memory_bandwidth_bytes_per_s
        else "bandwidth unknown (`fitagent probe --measure-bandwidth` measures it once)"
    )
    limit = (
        f", limited to {gb(h.memory_limit_bytes)} by {h.memory_limit_source or 'cgroup'}"
        if h.memory_limit_bytes
        else ""
    )
    out = [
        f"Host  {h.hostname} · {h.os} · {cpu}",
        f"RAM   {gb(h.memory_total_bytes)} total, {gb(h.memory_available_bytes)} available{limit} · {bw}",
        "",
    ]
    if snap.gpus:
        rows = []
        for g in snap.gpus:
            status = (
                "ok"
                if g.usable
                else ("lost: " + g.error if g.error else "not visible" if not g.visible else "MIG parent")
            )
            bandwidth = (
                f"{g.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s ({g.bandwidth_source})"
                if g.memory_bandwidth_bytes_per_s
                else "—"
            )
            rows.append(
                [
                    g.index,
                    g.name,
                    f"{g.memory_free_bytes / 1e9:.1f} / {g.memory_total_bytes / 1e9:.1f} GB",
                    bandwidth,
                    g.driver_version or "—",
                    status,
                ]
            )
        out.append(table(["GPU", "name", "free / total", "bandwidth", "driver", "status"], rows))
        for g in snap.gpus:
            for proc in g.processes:
                used_bytes = cast("float | None", proc.get("used_bytes"))  # the probe's bytes, or None
                out.append(f"  GPU {g.index}: pid {proc.get('pid')} {proc.get('name') or '?'} holds {gb(used_bytes)}")
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
        placement += f" · {e.total_layers}/{e.total_layers} layers" + (
            " · tensor parallel" if e.tensor_parallel else ""
        )
    fit = _fit_words(e)
    if not e.loads:
        placement = "does not load" + (f" · {e.gpu_layers}/{e.total_layers} layers forced on GPU" if e.devices else "")
    ttft = (
        f" · first token after {e.time_to_first_token_s:.2f} s ({e.prompt_tokens}-token prompt)"
        if e.time_to_first_token_s
        else ""
    )
    lines = [
        f"{e.model} · {e.quant} · context {e.context:,} · {e.method} method",
        f"on {_hardware_line(snap)}",
        "",
        f"memory     weights {gb(e.weights_bytes, 2)} + KV cache {gb(e.kv_cache_bytes, 2)} + overhead {gb(e.overhead_bytes, 2)} = {gb(e.total_bytes, 2)}",
        f"fit        {fit}",
        f"placement  {placement}",
        f"decode     {rate(e.decode_tokens_per_s)}{_likely(e.decode_tokens_per_s_range)}{_at_context(e)}",
        f"prefill    {rate(e.prefill_tokens_per_s)}{_likely(e.prefill_tokens_per_s_range)}{ttft}",
        *(
            [f"answer     {e.output_tokens:,} tokens in {e.completion_time_s:.2f} s after the prompt is sent"]
            if e.completion_time_s is not None and e.output_tokens
            else []
        ),
        f"quality    {_quality(e)} ({e.use_case}; keeps {e.quant_retention:.1%} at {e.quant}; {e.quality_source})"
        + (f" · efficiency {e.efficiency:.3f}" if e.efficiency is not None else ""),
    ]
    if e.max_context is not None:
        where = (
            "on the GPU"
            if e.placement == "gpu"
            else "with this split"
            if e.placement == "partial_offload"
            else "in RAM"
        )
        plural = "s" if e.concurrent_sessions != 1 else ""
        sessions = (
            f" · {e.concurrent_sessions} session{plural} of {e.context:,} tokens at once"
            if e.concurrent_sessions
            else ""
        )
        lines.append(f"limits     longest context {where}: {e.max_context:,} tokens{sessions}")
    for d in e.devices:
        short = "  ← more than is free" if d.bytes > d.free_bytes else ""
        lines.append(f"  {d.name}: {d.layers} layers, {gb(d.bytes, 2)} of {gb(d.free_bytes, 2)} free{short}")
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines)


def _likely(span) -> str:
    """ ", likely 125–150": the range a speed lands in against measurements (out of sample)."""
    if not span:
        return ""
    low, high = span
    return f", likely {low:,.0f}–{high:,.0f}" if high >= 100 else f", likely {low:.1f}–{high:.1f}"


def _at_context(e) -> str:
    """The decode speed once the whole context is filled, when it differs from the quoted one."""
    full = e.decode_tokens_per_s_at_context
    if not full or not e.decode_tokens_per_s or full >= e.decode_tokens_per_s * 0.995:
        return ""
    return f" · {rate(full)} with the {e.context:,}-token context full"


def _fit_words(e) -> str:
    """The fit line: the whole model against the budget (fits ⇔ headroom ≥ 0), and safe."""
    if e.fits:
        margin = " (safe: more than 1 GB left)" if e.safe else " (tight: under 1 GB left)" if e.loads else ""
        return f"fits: {gb(e.total_bytes, 2)} of a {gb(e.budget_bytes, 2)} budget, headroom {gb(e.headroom_bytes, 2)}{margin}"
    return f"does not fit whole: {gb(e.total_bytes, 2)} against a {gb(e.budget_bytes, 2)} budget (short {gb(-e.headroom_bytes, 2)})"


def _quality(e) -> str:
    """A quality with its mark: ~ estimated from size, * a stand-in's score (see the legend)."""
    from ..estimator.quality import marker

    return f"{marker(e.quality_source)}{e.quality:.1f}"


_LEGEND = "quality: ~ estimated from the model's size (no benchmark score), * a related model's score stands in"
_FRONTIER_TITLES = {
    "quality": "quality frontier (best quality at each memory)",
    "speed": "speed frontier (fastest at each memory)",
    "efficiency": "efficiency frontier",
    "quality_speed": "quality vs speed (what each step of speed costs in quality)",
}


def render_recommendations(result, snap: HardwareSnapshot, top: int = 10) -> str:
    lines = [
        f"{_hardware_line(snap)} · budget {gb(result.budget_bytes)} · context {result.context:,} · use case {result.use_case}",
        "",
    ]
    marked = False
    if not result.ranked:
        lines.append("Nothing in the catalog runs at a usable speed here.")
    else:
        rows = []
        for i, e in enumerate(result.ranked[:top], 1):
            where = (
                _PLACEMENT_WORDS[e.placement]
                if e.placement != "partial_offload"
                else f"{e.gpu_layers}/{e.total_layers} layers on GPU"
            )
            rows.append([i, e.model, e.quant, gb(e.total_bytes), where, rate(e.decode_tokens_per_s), _quality(e)])
            marked = marked or _quality(e)[0] in "~*"
        lines.append(table(["#", "model", "quant", "memory", "placement", "decode", "quality"], rows))
    left_out = result.left_out_line()
    if left_out:
        lines.append(left_out)
    lines += [f"note: {n}" for n in result.notes]
    for name, points in result.frontiers.items():
        shown = _sample(points, 8)
        lines.append("")
        more = f"; {len(shown)} shown, --json for all" if len(shown) < len(points) else ""
        lines.append(f"{_FRONTIER_TITLES.get(name, name + ' frontier')} ({len(points)} points{more}):")
        for e in shown:
            if name == "quality_speed":
                lines.append(
                    f"  {rate(e.decode_tokens_per_s):>14}  {_quality(e):>6}  {gb(e.total_bytes):>9}  {e.model} {e.quant}"
                )
                continue
            metric = {
                "quality": _quality(e),
                "speed": rate(e.decode_tokens_per_s),
                "efficiency": f"{e.efficiency:.3f}" if e.efficiency is not None else "—",
            }[name]
            lines.append(f"  {gb(e.total_bytes):>9}  {metric:>14}  {e.model} {e.quant}")
            marked = marked or (name == "quality" and metric[0] in "~*")
    if marked:
        lines += ["", _LEGEND]
    return "\n".join(lines)


def render_explain(x: dict) -> str:
    """`recommend --explain MODEL`: its quantizations, the pick, and what ranks ahead."""
    lines = [
        f"{x['model']}: "
        + (f"ranked {x['rank']}" if x["rank"] else "not ranked")
        + (f", {x['chosen']} chosen" if x["chosen"] else "")
        + (f" · quality from {x['quality_source']}" if x.get("quality_source") else ""),
        "",
    ]
    if x["quants"]:
        rows = [
            [
                q["quant"],
                gb(q["total_bytes"]),
                q["placement"],
                rate(q["decode_tokens_per_s"]),
                f"{q['quality']:.1f}",
                f"{q['quant_retention']:.1%}",
                q["fate"],
            ]
            for q in x["quants"]
        ]
        lines.append(table(["quant", "memory", "placement", "decode", "quality", "kept", "fate"], rows))
        lines.append("")
    lines += [f"why: {w}" for w in x["why"]]
    if x["beaten_by"]:
        lines.append("ahead of it:")
        lines += [
            f"  {b['model']} {b['quant']}: quality {b['quality']:.1f} (+{b['quality_ahead']:.1f}), "
            f"{rate(b['decode_tokens_per_s'])}"
            for b in x["beaten_by"]
        ]
    return "\n".join(lines)


def _sample(points: list, k: int) -> list:
    """At most k points spread along a frontier, always keeping both ends."""
    if len(points) <= k:
        return points
    step = (len(points) - 1) / (k - 1)
    return [points[round(i * step)] for i in range(k)]


def render_plan(p, shown: int) -> str:
    """`fitagent plan`'s answer for a person: the needs, then the GPUs that hold the model."""
    sessions = f" × {p.concurrency} sessions" if p.concurrency > 1 else ""
    target = f" · target {p.target_tokens_per_s:g} tokens/s a session" if p.target_tokens_per_s else ""
    lines = [
        f"{p.model} · {p.quant} · context {p.context:,}{sessions} · {p.runtime}{target}",
        "",
        f"GPU memory  {gb(p.gpu_bytes, 2)} whole on one GPU, {gb(p.gpu_bytes_comfortable, 2)} with 1 GB to spare",
        f"RAM         {gb(p.host_bytes, 2)} "
        + {"vllm": "to read the checkpoint at start", "sglang": "to read the checkpoint at start"}.get(
            p.runtime, "for the embedding table" if p.runtime.startswith("exllama") else "on the CPU alone"
        ),
    ]
    if p.target_tokens_per_s:
        need = (
            f"{p.bandwidth_bytes_per_s / 1e9:,.0f} GB/s of peak memory bandwidth on "
            + ("an Apple chip" if p.runtime == "mlx" else "a discrete GPU")
            if p.bandwidth_bytes_per_s
            else "no GPU bandwidth reaches it (the per-layer times alone are slower)"
        )
        lines.append(f"bandwidth   {need}")
    lines.append("")
    if not p.options:
        lines.append("no catalog GPU, up to 8 of one, holds it whole")
    else:
        header = f"{'GPUs':<34} {'memory':>9}  {'decode':>14}" + ("  aggregate" if p.concurrency > 1 else "")
        lines.append(header)
        for o in p.options[:shown]:
            name = (f"{o.count} × " if o.count > 1 else "") + o.gpu
            mark = "" if o.reaches_target is None else ("  ✓" if o.reaches_target else "  below target")
            row = f"{name:<34} {gb(o.memory_bytes):>9}  {rate(o.decode_tokens_per_s):>14}"
            if p.concurrency > 1:
                row += f"  {rate(o.aggregate_tokens_per_s)}"
            lines.append(row + mark)
        if len(p.options) > shown:
            lines.append(f"… {len(p.options) - shown} more (--json lists them all)")
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def render_exllama(e) -> str:
    """An ExLlama estimate (estimator.exllama.ExllamaEstimate): each GPU's share, the verdict, the
    speeds and TabbyAPI's command line."""
    engine = "ExLlamaV2" if e.runtime == "exllamav2" else "ExLlamaV3"
    split = "tensor parallel" if e.tensor_parallel else "autosplit"
    lines = [
        f"{e.model} · {e.quant} · {engine} (TabbyAPI) · {e.max_seq_len:,} tokens · {e.cache_mode} cache of "
        f"{e.cache_size:,} tokens",
        "",
    ]
    for g in e.gpus:
        lines.append(
            f"{g.name}: {gb(g.used_bytes, 2)} of {gb(g.free_bytes, 2)} free — {g.layers} layers "
            f"{gb(g.weights_bytes, 2)} + cache {gb(g.cache_bytes, 2)}"
            + (f" + FP16 layer copy {gb(g.cache_temp_bytes, 2)}" if g.cache_temp_bytes else "")
            + f" + scratch and context {gb(g.scratch_bytes, 2)} + reserve {gb(g.reserve_bytes, 2)}"
        )
    if e.refused:
        verdict = f"does not run: {e.refused}"
    elif e.loads:
        verdict = f"loads ({split}{'' if e.batched else ', one request at a time'})"
    else:
        verdict = "does not load: too little GPU memory (ExLlama does not offload to RAM)"
    lines += [
        f"embedding  {gb(e.host_bytes, 2)} in system RAM",
        f"verdict    {verdict}",
        f"decode     {rate(e.decode_tokens_per_s)}"
        + (
            f" · first token after {e.time_to_first_token_s:.2f} s ({e.prompt_tokens:,}-token prompt)"
            if e.time_to_first_token_s is not None
            else ""
        )
        + (
            f" · {e.output_tokens:,} tokens in {e.completion_time_s:.1f} s"
            if e.completion_time_s is not None and e.output_tokens
            else ""
        ),
        "launch     " + " ".join(e.args),
    ]
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines)


def render_serve(e) -> str:
    """A vLLM estimate (estimator.vllm.ServeEstimate): the memory its profiler would log, the KV
    cache in blocks and sessions, the speeds, and the command."""
    m = e.memory
    gpus = f"{e.tensor_parallel_size} × {e.gpu}" if e.tensor_parallel_size > 1 else e.gpu
    verdict = (
        f"starts: {e.kv_tokens:,} KV tokens ("
        + (f"{e.kv_blocks:,} one-token pages" if e.runtime == "sglang" else f"{e.kv_blocks:,} blocks of 16 tokens")
        + ") = "
        f"{e.max_concurrency:.1f} sequences of {e.max_model_len:,} tokens"
        if e.loads
        else "does not start: the KV cache left cannot hold one sequence"
    )
    if not e.free_ok:
        verdict = "does not start: too little free memory for its share"
    if e.refused:
        verdict = f"does not run: {e.refused}"
    serves = "serves" if e.serves else "does not hold"
    lines = [
        f"{e.model} · {e.quant} · {'SGLang' if e.runtime == 'sglang' else 'vLLM'} · max-model-len {e.max_model_len:,}",
        f"on {gpus} · "
        + ("mem-fraction-static" if e.runtime == "sglang" else "gpu-memory-utilization")
        + f" {e.gpu_memory_utilization:.2f} · max-num-seqs {e.max_num_seqs}",
        "",
        f"per GPU    {gb(m.budget_bytes, 2)} of {gb(m.total_bytes, 2)}: weights {gb(m.weights_bytes, 2)} + "
        f"non-torch {gb(m.non_torch_bytes, 2)} + activations {gb(m.activation_bytes, 2)} + "
        f"CUDA graphs {gb(m.cuda_graph_bytes, 2)} + KV cache {gb(max(0, m.kv_cache_bytes), 2)}",
        f"verdict    {verdict}",
        f"sessions   {e.concurrency} × {e.max_model_len:,} tokens: {serves} them all at full length",
        f"decode     {rate(e.decode_tokens_per_s)} for one stream"
        + (
            f" · first token after {e.time_to_first_token_s:.2f} s ({e.prompt_tokens:,}-token prompt, idle server)"
            if e.time_to_first_token_s is not None
            else ""
        ),
    ]
    if e.concurrency > 1 and e.per_user_tokens_per_s:
        lines.append(
            f"batch      {rate(e.per_user_tokens_per_s)} a session, {rate(e.aggregate_tokens_per_s)} in all "
            f"({e.batch_sessions} sessions half-way through their context; {e.batch_bound}-bound)"
        )
    if e.time_to_first_token_under_load_s is not None and e.burst_time_to_first_token_s:
        median, last = e.burst_time_to_first_token_s
        lines.append(
            f"load       a {e.prompt_tokens:,}-token prompt among {e.batch_sessions - 1} decoding sessions: first "
            f"token after {e.time_to_first_token_under_load_s:.2f} s; {e.batch_sessions} arriving at once: "
            f"median {median:.2f} s, last {last:.2f} s"
        )
    lines += ["launch     " + " ".join(e.args)]
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines)


def render_vllm_ranking(ranked, top: int, settings) -> str:
    """`recommend --runtime vllm`: each model's best checkpoint that vLLM serves here."""
    if not ranked:
        return (
            f"no catalog model's checkpoint starts under {settings.runtime} here and holds {settings.concurrency} session(s) of "
            f"{settings.max_model_len:,} tokens at 5 tokens/s or more"
        )
    speed_head = "tokens/s a session" if settings.concurrency > 1 else "tokens/s"
    rows = []
    for i, r in enumerate(ranked[:top], 1):
        e = r.estimate
        rows.append(
            (
                i,
                e.model,
                e.quant,
                e.tensor_parallel_size,
                f"{r.quality:.1f}",
                rate(r.speed, ""),
                f"{e.max_concurrency:.1f}",
            )
        )
    engine = "SGLang" if settings.runtime == "sglang" else "vLLM"
    header = f"{engine} · {settings.concurrency} × {settings.max_model_len:,} tokens"
    body = table(("#", "model", "checkpoint", "TP", "quality", speed_head, "sessions held"), rows)
    best = ranked[0].estimate
    return "\n".join([header, "", body, "", "launch #1: " + " ".join(best.args)])
