"""How close fitagent's MLX estimate (estimator/mlx.py) comes to public mlx_lm runs.

tests/data/mlx_measurements.csv holds them with their sources: one stream's generation tokens/s
after a prompt, on a named Apple chip. Each row's decode cost is llama.cpp's (speed.decode_terms)
at the run's mean depth; MLX's two constants are fitted on them by weighted least squares, and
reported in sample and cross-validated (each chip, each model left out).
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

from fitagent.agent.catalog_cache import load_catalog
from fitagent.estimator import speed
from fitagent.estimator.budget import Budget, device_from_spec
from fitagent.estimator.calibration import DEFAULT_CALIBRATION
from fitagent.estimator.candidates import place_candidate
from fitagent.estimator.mlx import DEFAULT_MLX, MlxConstants, mlx_calibration
from fitagent.estimator.results import Options

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "tests" / "data" / "mlx_measurements.csv"


@dataclass
class MlxRow:
    index: int
    raw: dict
    measured: float
    cost: speed.DecodeCost | None = None
    estimate: float | None = None

    @property
    def label(self) -> str:
        r = self.raw
        return f"{r['model'].split('/')[-1]} {r['quant']} · {r['gpu']} (p{r['prompt_tokens']}, g{r['output_tokens']})"


def _cost(r: dict, catalog) -> speed.DecodeCost | None:
    model, quant = catalog.model(r["model"]), catalog.quant(r["quant"])
    device = device_from_spec(catalog.gpu(r["gpu"]))
    budget = Budget((device,), 512 * 2**30, 100e9, 8)
    prompt, output = int(r["prompt_tokens"]), int(r["output_tokens"])
    depth = prompt + output // 2
    options = Options(context=min(model.max_context, prompt + output + 16), prompt_tokens=prompt, detail=False)
    c = place_candidate(model, quant, budget, catalog, options)
    kv = speed.kv_read_bytes_at(c.need, model.architecture, depth)
    return speed.decode_terms(c.need, c.placed, model.architecture, kv, budget)


def evaluate(constants: MlxConstants = DEFAULT_MLX) -> list[MlxRow]:
    catalog = load_catalog()
    cal = mlx_calibration(DEFAULT_CALIBRATION, constants)
    rows = []
    with CSV.open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f)):
            row = MlxRow(i, r, float(r["value"]), _cost(r, catalog))
            if row.cost is not None:
                row.estimate = 1 / speed.decode_seconds(row.cost, cal)
            rows.append(row)
    return rows


def fit(rows: list[MlxRow]) -> MlxConstants:
    """seconds = (weights + KV) seconds at llama.cpp's Apple efficiencies × a + layers × τ: weighted
    least squares on Σ (estimate/measured − 1)², then bandwidth_factor = 1/a."""
    import numpy as np

    base = mlx_calibration(DEFAULT_CALIBRATION, MlxConstants(1.0, 1e-12))  # (0 would fall back to CUDA's τ)
    a, b = [], []
    for r in rows:
        assert r.cost is not None
        layers = sum(r.cost.layers.values())
        memory = speed.decode_seconds(r.cost, base)  # τ = 0 here: bytes only
        a.append([memory * r.measured, layers * r.measured])
        b.append(1.0)
    (inv_factor, tau), *_ = np.linalg.lstsq(np.array(a), np.array(b), rcond=None)
    return MlxConstants(round(1 / float(inv_factor), 3), round(max(0.0, float(tau)), 7))


def cross_validate(rows: list[MlxRow], key) -> dict[int, float]:
    out = {}
    cal_rows = [r for r in rows if r.cost is not None]
    for k in sorted({key(r) for r in cal_rows}):
        train = [r for r in cal_rows if key(r) != k]
        if len(train) < 3:
            continue
        cal = mlx_calibration(DEFAULT_CALIBRATION, fit(train))
        for r in cal_rows:
            if key(r) == k:
                assert r.cost is not None
                out[r.index] = 1 / speed.decode_seconds(r.cost, cal)
    return out


def figures(rows: list[MlxRow]) -> dict:
    cv = {
        "chip out": cross_validate(rows, lambda r: r.raw["gpu"]),
        "model out": cross_validate(rows, lambda r: r.raw["model"]),
    }
    errors = [abs(r.estimate / r.measured - 1) for r in rows if r.estimate]
    out = {"rows": len(errors), "in": (statistics.median(errors), max(errors))}
    for name, predictions in cv.items():
        held = [abs(predictions[r.index] / r.measured - 1) for r in rows if r.index in predictions]
        if held:
            out[name] = (statistics.median(held), max(held), len(held))
    return {"group": out, "predictions": cv}


def _pct(pair) -> str:
    return f"{pair[0] * 100:.1f} / {pair[1] * 100:.0f} %" + (f" ({pair[2]})" if len(pair) > 2 else "")


def render(rows: list[MlxRow], constants: MlxConstants = DEFAULT_MLX) -> list[str]:
    fig = figures(rows)
    g = fig["group"]
    llama_cal = DEFAULT_CALIBRATION
    as_llama = [abs(1 / speed.decode_seconds(r.cost, llama_cal) / r.measured - 1) for r in rows if r.cost is not None]
    lines = [
        "## MLX",
        "",
        "`--runtime mlx` (estimator/mlx.py) against public mlx_lm runs: tests/data/mlx_measurements.csv, each row",
        "with its source; one stream's generation tokens/s at the run's mean depth. Median / max absolute error;",
        "out of sample, each chip's (each model's) rows predicted by constants fitted without them.",
        "",
        "| group | rows | in sample | chip left out | model left out | with llama.cpp's Apple constants |",
        "|---|---|---|---|---|---|",
        f"| MLX decode | {g['rows']} | {_pct(g['in'])} | {_pct(g['chip out']) if 'chip out' in g else '—'} | "
        f"{_pct(g['model out']) if 'model out' in g else '—'} | "
        f"{statistics.median(as_llama) * 100:.1f} / {max(as_llama) * 100:.0f} % |",
        "",
        f"Constants (fitted on these rows): the Apple classes' llama.cpp efficiencies × {constants.bandwidth_factor:.3f}, "
        f"{constants.layer_seconds * 1e6:.0f} µs a layer (llama.cpp's Metal: "
        f"{llama_cal.layer_seconds('apple') * 1e6:.0f} µs). Six of the ten rows are one M3 Max's: with it left",
        "out, four rows are left to fit two constants, which is the chip-left-out figure's maximum.",
        "",
        "| row | measured | estimate | error | chip out | model out | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for name in ("chip out", "model out"):
            p = fig["predictions"][name].get(r.index)
            cells.append(f"{(p / r.measured - 1) * 100:+.1f} %" if p else "—")
        err = "—" if not r.estimate else f"{(r.estimate / r.measured - 1) * 100:+.1f} %"
        est = "—" if not r.estimate else f"{r.estimate:.1f}"
        lines.append(
            f"| {r.label} | {r.measured:.1f} t/s | {est} | {err} | {cells[0]} | {cells[1]} | [source]({r.raw['source']}) |"
        )
    return lines


def fitted_fields(constants: MlxConstants) -> dict:
    return {"bandwidth_factor": constants.bandwidth_factor, "layer_seconds": constants.layer_seconds}
