"""The page at `/`: server-rendered HTML with inline CSS and SVG (no script, no CDN, works offline)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ..estimator.quality import USE_CASES, marker
from ..estimator.recommend import Recommendations
from ..estimator.results import Estimate
from .render import rate
from .state import AgentState

PANEL_W, PANEL_H = 1180, 270
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 28, 40
# frontier -> (axis label, the metric of an Estimate, its index in a scatter tuple, tick format)
METRICS = {
    "quality": ("quality score", lambda e: e.quality, 1, "{:.0f}"),
    "speed": ("decode tokens/s", lambda e: e.decode_tokens_per_s, 2, "{:.0f}"),
    "efficiency": ("efficiency", lambda e: e.efficiency, 3, "{:.2f}"),
}
CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:20px 32px;color:#1d232a;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
.muted{color:#66707a}.stale{background:#fff3cd;border:1px solid #e0b94f;padding:8px 12px;border-radius:6px;margin:10px 0}
.gpus{display:flex;flex-wrap:wrap;gap:14px}.gpu{background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:10px 14px;min-width:300px}
.bar{height:14px;background:#d9f0dc;border-radius:7px;overflow:hidden;margin:6px 0 2px;display:flex}
.bar .used{background:#d0573f}.legend span{margin-right:12px}
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{border-bottom:1px solid #e4e8ec;padding:4px 8px;text-align:left}
th{background:#f0f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}
svg text{font-family:system-ui,sans-serif}form{margin:10px 0}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _gb(n: float | None) -> str:
    return "—" if n is None else f"{n / 1e9:.1f} GB"


def _short(model_id: str) -> str:
    return model_id.rsplit("/", 1)[-1]


def _gpu_cards(state: AgentState) -> str:
    snap = state.snapshot
    assert snap is not None  # drawn for a ready state only
    cards = []
    for g in snap.gpus:
        total = max(1, g.memory_total_bytes)
        used = max(0, total - g.memory_free_bytes)
        status = "" if g.usable else f" <span class='muted'>({_e(g.error or 'not usable')})</span>"
        cards.append(
            f"<div class='gpu' data-gpu='{g.index}'><b>GPU {g.index}</b> {_e(g.name)}{status}"
            f"<div class='bar' title='used {_gb(used)} of {_gb(total)}'><div class='used' style='width:{100 * used / total:.1f}%'></div></div>"
            f"<div class='legend'><span>used {_gb(used)}</span><span>free <b>{_gb(g.memory_free_bytes)}</b></span>"
            f"<span>of {_gb(total)}</span></div></div>"
        )
    h = snap.host
    avail = h.memory_available_bytes
    used = max(0, h.memory_total_bytes - avail)
    cards.append(
        f"<div class='gpu' data-gpu='host'><b>RAM</b> {_e(h.cpu_model or 'CPU')} · {h.cpu_cores} cores"
        f"<div class='bar'><div class='used' style='width:{100 * used / max(1, h.memory_total_bytes):.1f}%'></div></div>"
        f"<div class='legend'><span>used {_gb(used)}</span><span>available <b>{_gb(avail)}</b></span>"
        f"<span>of {_gb(h.memory_total_bytes)}</span></div></div>"
    )
    return "<div class='gpus'>" + "".join(cards) + "</div>"


def _ticks(high: float, count: int = 5) -> list[float]:
    if high <= 0:
        return [0.0]
    raw = high / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    return [i * step for i in range(int(high / step) + 1)]


def _panel(name: str, recs: Recommendations, scatter: Sequence[tuple], x_max: float, y_offset: int) -> str:
    label, metric, index, fmt = METRICS[name]
    front = [e for e in recs.frontiers.get(name, []) if metric(e) is not None]
    others = [(p[0], p[index]) for p in scatter if p[index] is not None and p[0] <= x_max]
    others = others or [
        (e.total_bytes, metric(e)) for e in recs.ranked if metric(e) is not None and e.total_bytes <= x_max
    ]
    y_max = max([metric(e) for e in front] + [y for _, y in others] + [1e-9]) * 1.12
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B

    def px(x_bytes: float) -> float:
        return MARGIN_L + w * min(x_bytes, x_max) / x_max

    def py(y: float) -> float:
        return MARGIN_T + h - h * y / y_max

    out = [
        f"<g class='panel' data-frontier='{name}' transform='translate(0,{y_offset})'>",
        f"<rect x='{MARGIN_L}' y='{MARGIN_T}' width='{w}' height='{h}' fill='#fff' stroke='#cfd6dd'/>",
    ]
    fit_w = px(recs.budget_bytes) - MARGIN_L
    out.append(
        f"<rect class='fit-region' x='{MARGIN_L}' y='{MARGIN_T}' width='{fit_w:.1f}' height='{h}' fill='#2e9d4f' fill-opacity='0.09'/>"
    )
    out.append(
        f"<text x='{MARGIN_L + fit_w - 6:.1f}' y='{MARGIN_T + 14}' text-anchor='end' font-size='11' fill='#2e7d42'>"
        f"fits in {_gb(recs.budget_bytes)} free</text>"
    )
    for t in _ticks(x_max / 1e9):
        x = px(t * 1e9)
        out.append(
            f"<line x1='{x:.1f}' y1='{MARGIN_T + h}' x2='{x:.1f}' y2='{MARGIN_T + h + 4}' stroke='#889'/>"
            f"<text x='{x:.1f}' y='{MARGIN_T + h + 16}' font-size='11' text-anchor='middle' fill='#556'>{t:g}</text>"
        )
    out.append(
        _axes_and_dots(
            py,
            y_max,
            "memory needed (GB)",
            label,
            f"{name} frontier",
            [(px(x), py(y)) for x, y in others],
            [(px(e.total_bytes), py(metric(e))) for e in front],
            "#1f6feb",
        )
    )
    placed: list[tuple[float, float, float]] = [
        (MARGIN_L + fit_w - 130, MARGIN_T + 14, 130)
    ]  # labels so far: (x, y, width)
    for e in front:
        x, y = px(e.total_bytes), py(metric(e))
        out.append(
            f"<circle class='frontier-point' data-frontier='{name}' data-model='{_e(e.model)}' data-quant='{_e(e.quant)}' "
            f"cx='{x:.1f}' cy='{y:.1f}' r='4' fill='#1f6feb'><title>{_e(e.model)} {_e(e.quant)}: {_gb(e.total_bytes)}, "
            f"{_e(label)} {fmt.format(metric(e))}</title></circle>"
        )
        text = f"{_short(e.model)} {e.quant}"
        spot = _label_spot(x, y, len(text) * 6.0, placed)
        if spot is not None:  # crowded points keep their tooltip, not a label
            out.append(
                f"<text class='point-label' x='{spot[0]:.1f}' y='{spot[1]:.1f}' font-size='10' fill='#1d3557'>{_e(text)}</text>"
            )
    out.append("</g>")
    return "".join(out)


def _axes_and_dots(
    py,
    y_max: float,
    x_label: str,
    y_label: str,
    title: str,
    dots: list[tuple[float, float]],
    line: list[tuple[float, float]],
    colour: str,
) -> str:
    """A panel's y grid and ticks, axis labels and title, the grey candidates and the frontier's line
    (points in pixels)."""
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B
    out = []
    for t in _ticks(y_max):
        y = py(t)
        out.append(
            f"<line x1='{MARGIN_L - 4}' y1='{y:.1f}' x2='{MARGIN_L + w}' y2='{y:.1f}' stroke='#eef0f3'/>"
            f"<text x='{MARGIN_L - 7}' y='{y + 4:.1f}' font-size='11' text-anchor='end' fill='#556'>{t:g}</text>"
        )
    out.append(
        f"<text x='{MARGIN_L + w / 2}' y='{PANEL_H - 6}' font-size='12' text-anchor='middle' fill='#334'>{_e(x_label)}</text>"
        f"<text x='16' y='{MARGIN_T + h / 2}' font-size='12' text-anchor='middle' fill='#334' "
        f"transform='rotate(-90 16 {MARGIN_T + h / 2})'>{_e(y_label)}</text>"
        f"<text x='{MARGIN_L}' y='{MARGIN_T - 9}' font-size='13' font-weight='600' fill='#1d232a'>{_e(title)}</text>"
    )
    out += [
        f"<circle class='candidate' cx='{x:.1f}' cy='{y:.1f}' r='2' fill='#9aa5b1' fill-opacity='0.5'/>"
        for x, y in dots
    ]
    if line:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
        out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.6'/>")
    return "".join(out)


def _label_spot(x: float, y: float, width: float, placed: list) -> tuple[float, float] | None:
    """Above-right, below-right or left of the point, wherever no earlier label overlaps."""
    for lx, ly in ((x + 6, y - 7), (x + 6, y + 14), (x - 6 - width, y - 7), (x - 6 - width, y + 14)):
        # y is the text baseline: a label spans [ly - 10, ly]
        if lx < MARGIN_L or lx + width > PANEL_W - MARGIN_R or ly < MARGIN_T + 10 or ly > PANEL_H - MARGIN_B:
            continue
        if all(lx + width < px_ or lx > px_ + pw or abs(ly - py_) >= 12 for px_, py_, pw in placed):
            placed.append((lx, ly, width))
            return lx, ly
    return None


def _speed_panel(recs: Recommendations, scatter: Sequence[tuple], y_offset: int) -> str:
    """Quality against decode speed (log scale) among what fits: what each step of speed costs."""
    front = [e for e in recs.frontiers.get("quality_speed", []) if e.decode_tokens_per_s]
    others = [(p[2], p[1]) for p in scatter if p[2] and p[0] <= recs.budget_bytes]
    speeds = [e.decode_tokens_per_s for e in front] + [x for x, _ in others]
    lo = 10 ** math.floor(math.log10(max(min(speeds, default=1.0), 0.1)))
    hi = 10 ** math.ceil(math.log10(max(max(speeds, default=10.0), lo * 10)))
    y_max = max([e.quality for e in front] + [y for _, y in others] + [1e-9]) * 1.12
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B

    def px(tps: float) -> float:
        return MARGIN_L + w * (math.log10(max(tps, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    def py(y: float) -> float:
        return MARGIN_T + h - h * y / y_max

    out = [
        f"<g class='panel' data-frontier='quality_speed' transform='translate(0,{y_offset})'>",
        f"<rect x='{MARGIN_L}' y='{MARGIN_T}' width='{w}' height='{h}' fill='#fff' stroke='#cfd6dd'/>",
    ]
    decade = lo
    while decade <= hi * 1.0001:
        x = px(decade)
        out.append(
            f"<line x1='{x:.1f}' y1='{MARGIN_T}' x2='{x:.1f}' y2='{MARGIN_T + h + 4}' stroke='#eef0f3'/>"
            f"<text x='{x:.1f}' y='{MARGIN_T + h + 16}' font-size='11' text-anchor='middle' fill='#556'>{decade:g}</text>"
        )
        decade *= 10
    out.append(
        _axes_and_dots(
            py,
            y_max,
            "decode tokens/s (log scale), among what fits",
            "quality score",
            "quality vs speed frontier",
            [(px(x), py(y)) for x, y in others],
            [(px(e.decode_tokens_per_s), py(e.quality)) for e in front],  # type: ignore[arg-type]  # front holds only estimates with a speed
            "#b5471b",
        )
    )
    placed: list[tuple[float, float, float]] = []
    for e in front:
        assert e.decode_tokens_per_s is not None
        x, y = px(e.decode_tokens_per_s), py(e.quality)
        out.append(
            f"<circle class='frontier-point' data-frontier='quality_speed' data-model='{_e(e.model)}' data-quant='{_e(e.quant)}' "
            f"cx='{x:.1f}' cy='{y:.1f}' r='4' fill='#b5471b'><title>{_e(e.model)} {_e(e.quant)}: "
            f"{_e(rate(e.decode_tokens_per_s))}, quality {e.quality:.1f}, {_gb(e.total_bytes)}</title></circle>"
        )
        text = f"{_short(e.model)} {e.quant}"
        spot = _label_spot(x, y, len(text) * 6.0, placed)
        if spot is not None:
            out.append(
                f"<text class='point-label' x='{spot[0]:.1f}' y='{spot[1]:.1f}' font-size='10' fill='#5a2410'>{_e(text)}</text>"
            )
    out.append("</g>")
    return "".join(out)


def frontier_svg(recs: Recommendations, scatter: Sequence[tuple] = ()) -> str:
    points = [e for f in recs.frontiers.values() for e in f]
    x_max = max([e.total_bytes for e in points] + [recs.budget_bytes]) * 1.08 or 1.0
    panels = [_panel(name, recs, scatter, x_max, i * PANEL_H) for i, name in enumerate(METRICS)]
    panels.append(_speed_panel(recs, scatter, len(METRICS) * PANEL_H))
    height = PANEL_H * (len(METRICS) + 1)
    return (
        f"<svg id='frontiers' xmlns='http://www.w3.org/2000/svg' width='{PANEL_W}' height='{height}' "
        f"viewBox='0 0 {PANEL_W} {height}' role='img' aria-label='Pareto frontiers'>{''.join(panels)}</svg>"
    )


def _ranked_table(ranked: Sequence[Estimate], devices, top: int) -> str:
    from ..estimator.launch import llama_cpp_args

    rows = []
    for i, e in enumerate(ranked[:top], 1):
        where = {"gpu": "GPU", "cpu": "CPU", "partial_offload": f"{e.gpu_layers}/{e.total_layers} layers on GPU"}.get(
            e.placement, e.placement
        )
        rows.append(
            f"<tr><td class='num'>{i}</td><td>{_e(e.model)}</td><td>{_e(e.quant)}</td><td class='num'>{_gb(e.total_bytes)}</td>"
            f"<td>{_e(where)}</td><td class='num'>{_e(rate(e.decode_tokens_per_s))}</td>"
            f"<td class='num' title='{_e(e.quality_source)}'>{_e(marker(e.quality_source))}{e.quality:.1f}</td>"
            f"<td><code>{_e(' '.join(llama_cpp_args(e, devices)))}</code></td></tr>"
        )
    if not rows:
        return "<p>Nothing in the catalog runs at a usable speed here at this context.</p>"
    return (
        "<table id='ranked'><tr><th>#</th><th>model</th><th>quant</th><th>memory</th><th>placement</th><th>decode</th>"
        "<th>quality</th><th>llama.cpp</th></tr>" + "".join(rows) + "</table>"
    )


def _form(agent, use_case: str, context: int) -> str:
    opts = "".join(f"<option{' selected' if u == use_case else ''}>{u}</option>" for u in USE_CASES)
    contexts = sorted(set(agent.config.precomputed_contexts) | {context})
    ctx_opts = "".join(f"<option value='{c}'{' selected' if c == context else ''}>{c:,}</option>" for c in contexts)
    return (
        f"<form method='get' action='/'>use case <select name='use_case'>{opts}</select> "
        f"context <select name='context'>{ctx_opts}</select> <button>show</button></form>"
    )


def render_page(
    agent, state: AgentState, recs: Recommendations | None, use_case: str, context: int, health: dict
) -> str:
    host = _e(state.snapshot.host.hostname) if state.snapshot else "this host"
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>fitagent · {host}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body>",
        f"<h1>fitagent · {host}</h1>",
    ]
    if health["scanned_at"]:
        parts.append(
            f"<div class='muted' id='last-scan'>last scan <time datetime='{health['scanned_at']}'>{health['scanned_at']}</time> "
            f"({health['age_s']:.0f} s ago, took {health['scan_duration_s']:.2f} s) · rescans every "
            f"{health['rescan_interval_s']:g} s · hardware from {_e(health['hardware_source'])}</div>"
        )
    if health["stale"] and state.error:
        parts.append(
            f"<div class='stale' id='stale'>Stale: the last scan failed ({_e(state.error)}); showing the scan from "
            f"{_e(health['scanned_at'] or 'never')}.</div>"
        )
    if not state.ready:
        parts.append("<p>No scan has succeeded yet. This page shows results once one has.</p></body></html>")
        return "".join(parts)
    parts.append("<h2>Memory</h2>" + _gpu_cards(state))
    parts.append(f"<h2>Pareto frontiers · {use_case} · context {context:,}</h2>" + _form(agent, use_case, context))
    parts.append(
        "<p class='muted'>Each point on a line is a model and quantization that nothing else beats at the same or "
        "less memory. The shaded band is what fits in free memory now; grey dots are the other candidates.</p>"
    )
    computed = state.computed
    assert computed is not None and recs is not None  # ready: the view computed recs
    parts.append(frontier_svg(recs, computed.scatter if (use_case, context) == computed.default_key else ()))
    parts.append(f"<h2>Ranked ({len(recs.ranked)} models run at a usable speed)</h2>")
    left_out = recs.left_out_line()
    if left_out:
        parts.append(
            f"<p class='muted' id='left-out'>{_e(left_out.replace('--all-quants', '/v1/recommendations?all_quants=true'))}</p>"
        )
    parts.append(_ranked_table(recs.ranked, computed.devices, agent.config.top))
    parts.append(
        "<p class='muted'>quality: ~ estimated from the model's size (no benchmark score), * a related model's "
        "score stands in (hover for the source)</p>"
    )
    recent = agent.events.latest(10)
    if recent:
        items = "".join(
            f"<li><span class='muted'>{_e(ev.to_dict()['at'])}</span> {_e(ev.change.message)}</li>"
            for ev in reversed(recent)
        )
        parts.append(f"<h2>Recent changes</h2><ul id='events'>{items}</ul>")
    parts.append(
        "<p class='muted'>JSON: <a href='/v1/recommendations'>/v1/recommendations</a> · <a href='/v1/pick'>/v1/pick</a> · "
        "<a href='/v1/hardware'>/v1/hardware</a> · <a href='/v1/events'>/v1/events</a> · "
        "<a href='/openapi.json'>/openapi.json</a></p></body></html>"
    )
    return "".join(parts)
