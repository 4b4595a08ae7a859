"""MLX on Apple silicon (#15): llama.cpp's decode physics with MLX's own two constants, fitted on
public mlx_lm runs (tests/data/mlx_measurements.csv, each row sourced)."""

from __future__ import annotations

import pytest

from benchmarks import mlx_accuracy
from fitagent.estimator import calibration
from fitagent.estimator.budget import Budget, device_from_spec
from fitagent.estimator.estimate import estimate
from fitagent.estimator.mlx import mlx_calibration
from fitagent.estimator.results import Options


@pytest.fixture(scope="module")
def rows():
    return mlx_accuracy.evaluate()


def test_shipped_mlx_constants_are_what_the_fit_gives(rows):
    assert mlx_accuracy.fitted_fields(mlx_accuracy.fit(rows)) == calibration.MLX_FITTED


def test_llama_31_8b_4bit_on_an_m4_pro_after_32k_tokens(catalog):
    """ml-explore/mlx-examples#1029: mlx-community/Meta-Llama-3.1-8B-Instruct-4bit generates 1,000
    tokens at 23.146 tokens/s after a 32,159-token prompt on a Mac mini M4 Pro."""
    model, quant = catalog.model("llama3.1-8b"), catalog.quant("MLX-4BIT")
    budget = Budget((device_from_spec(catalog.gpu("Apple M4 Pro")),), 512 * 2**30, 273e9, 12)
    options = Options(context=33_200, prompt_tokens=32_159, decode_depth=32_659, calibration=mlx_calibration())
    assert estimate(model, quant, budget, catalog, options).decode_tokens_per_s == pytest.approx(23.146, rel=0.15)


def test_mlx_constants_beat_llama_cpps_on_mlx_runs(rows):
    figures = mlx_accuracy.figures(rows)["group"]
    assert figures["rows"] == 10
    as_llama = sorted(
        abs(1 / mlx_accuracy.speed.decode_seconds(r.cost, calibration.DEFAULT_CALIBRATION) / r.measured - 1)
        for r in rows
    )
    assert figures["in"][0] < as_llama[len(as_llama) // 2]  # the median error
    assert figures["model out"][0] < 0.12  # docs/accuracy.md, "MLX"
    small = next(r for r in rows if r.raw["model"] == "Qwen/Qwen2.5-0.5B-Instruct")
    assert small.estimate == pytest.approx(small.measured, rel=0.25)  # llama.cpp's Metal τ put it 38 % slow


def test_mlx_is_refused_off_apple_and_for_other_formats(cli):
    off = cli("estimate", "--model", "llama3.1-8b", "--runtime", "mlx", "--gpu", "RTX 4090")
    assert off.returncode == 2 and "Apple silicon only" in off.stderr
    gguf = cli("estimate", "--model", "llama3.1-8b", "--runtime", "mlx", "--quant", "Q4_K_M", "--gpu", "Apple M4 Pro")
    assert gguf.returncode == 2 and "loads MLX checkpoints" in gguf.stderr
    ok = cli("estimate", "--model", "llama3.1-8b", "--runtime", "mlx", "--gpu", "Apple M4 Pro", "--json")
    assert ok.returncode == 0 and '"quant": "MLX-4BIT"' in ok.stdout and "mlx_lm.server" in ok.stdout


def test_plan_recommend_and_pick_for_mlx(cli, catalog):
    from fitagent.estimator.plan import plan

    answer = plan(
        catalog.model("llama3.1-8b"), catalog.quant("MLX-4BIT"), catalog, 8192, runtime="mlx", target_tokens_per_s=40
    )
    assert answer.options and all(o.gpu.startswith("Apple") for o in answer.options)
    assert any("cannot run MLX-4BIT" in n for n in answer.notes)
    out = cli("recommend", "--runtime", "mlx", "--gpu", "Apple M4 Pro", "--top", "3", "--json")
    assert out.returncode == 0, out.stderr
    import json

    ranked = json.loads(out.stdout)["ranked"]
    assert ranked and all(e["quant"].startswith("MLX-") and e["placement"] == "gpu" for e in ranked)
    assert [e["quality"] for e in ranked] == sorted((e["quality"] for e in ranked), reverse=True)
    line = cli("pick", "--runtime", "mlx", "--gpu", "Apple M4 Pro").stdout.split()
    assert line == [ranked[0]["model"], ranked[0]["quant"]]
    off = cli("recommend", "--runtime", "mlx", "--gpu", "RTX 4090")
    assert off.returncode == 2 and "Apple silicon only" in off.stderr
