"""The default method against public measurements (tests/data/measurements.csv), as
docs/accuracy.md reports it: the issue's thresholds in sample and out of sample (every fitted
constant refitted without the row's GPU, or without its model), never worse than the report says,
and the shipped constants and speed ranges what the fit gives."""

import json
import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import accuracy  # the repository root is on pytest's pythonpath (pyproject.toml)
from fitagent.estimator import calibration, fitting, speed
from fitagent.estimator.budget import Budget, Device, device_from_spec, infer_memory
from fitagent.estimator.estimate import estimate
from fitagent.estimator.results import Options

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rows():
    return accuracy.evaluate()


@pytest.fixture(scope="module")
def everything(rows):
    return accuracy.all_figures(rows)


@pytest.fixture(scope="module")
def figures(everything):
    return everything["in_sample"]


@pytest.fixture(scope="module")
def cv(everything):
    return everything["cv"]


def test_the_measurements_cover_what_the_issue_asks(rows):
    sizes = [r for r in accuracy.counted(rows, "weights")]
    assert len(sizes) >= 40 and len({r.raw["model"] for r in sizes}) >= 10
    speed_rows = [r for r in rows if r.kind in ("decode", "prefill") and r.default is not None and not r.excluded]
    assert len(speed_rows) >= 400
    gpus = {r.raw["gpu"] for r in speed_rows if r.raw["gpu"] not in ("", "CPU")}
    assert len(gpus) >= 40
    # every Apple chip of llama.cpp's discussion #4167, M1 to M4, in both bins where there are two
    apple = {r.raw["gpu"] for r in speed_rows if r.raw["gpu"].startswith("Apple")}
    assert len(apple) >= 25 and all(any(g.startswith(f"Apple M{n}") for g in apple) for n in range(1, 5))
    # prefill on Apple and GB10 is estimated now that data/gpus.yaml has their FLOPS
    assert any(r.kind == "prefill" and r.raw["gpu"].startswith("Apple") for r in speed_rows)
    assert any(r.kind == "prefill" and "GB10" in r.raw["gpu"] for r in speed_rows)
    assert len(accuracy.counted(rows, "prefill, long prompt")) >= 50
    assert accuracy.counted(rows, "decode, MoE") and accuracy.counted(rows, "decode, partial offload")
    assert all(r.raw["source"].startswith("http") for r in rows)


BARS = [
    ("weights", 0.02, 0.05),
    ("decode, single GPU", 0.15, None),
    ("decode, multi-GPU", 0.15, None),
    ("decode, Apple", 0.15, None),
    ("decode, MoE", 0.25, None),
    ("decode, partial offload", 0.25, None),
]


@pytest.mark.parametrize("group, median, maximum", BARS)
def test_default_method_meets_the_issues_thresholds(figures, group, median, maximum):
    default = figures[group]["default"]
    assert default["median"] <= median, f"{group}: median {default['median']:.3f}"
    if maximum is not None:
        assert default["max"] <= maximum, f"{group}: max {default['max']:.3f}"


# One bar the host rows do not meet with a GPU left out: leaving out the RTX 5060 Ti leaves out its
# only host (an i7-8700 whose dual-channel DDR4 reaches 68 % of its peak), and the constants fitted
# on the other hosts (an i9-10900X at ≤ 50 % of its quad-channel peak) predict it 22-34 % slow, and
# the other way round. Strict: the test fails as soon as the bar is met, so the mark cannot outlive it.
HOST_BAR_MISSED = pytest.mark.xfail(
    strict=True, reason="partial offload, GPU left out: 26 % against the issue's 25 % (docs/accuracy.md)"
)


@pytest.mark.parametrize(
    "kind, group, median, maximum",
    [
        pytest.param(kind, *bar, marks=HOST_BAR_MISSED)
        if (kind, bar[0]) == ("gpu", "decode, partial offload")
        else (kind, *bar)
        for kind in ("gpu", "model")
        for bar in BARS
    ],
)
def test_the_thresholds_hold_out_of_sample(cv, kind, group, median, maximum):
    # Refit without the GPU (or the model) of each row, predict the row: the median still meets the bar.
    entry = cv[kind][group]
    assert entry["median"] <= median, f"{group}, {kind} left out: median {entry['median']:.3f}"


def test_out_of_sample_covers_every_speed_row(rows, everything):
    for kind, predictions in everything["predictions"].items():
        for group in fitting.DECODE_GROUPS + fitting.PREFILL_GROUPS:
            for r in accuracy.counted(rows, group):
                assert r.index in predictions, (kind, r.label)


def test_default_method_beats_the_seed_where_the_seed_is_wrong(figures):
    for group in ("weights", "decode, MoE", "decode, partial offload"):
        assert figures[group]["default"]["median"] < figures[group]["seed"]["median"], group


def _reported():
    """The summary table of docs/accuracy.md: group → six fractions (in sample, GPU left out, model
    left out; median and max each)."""
    text = (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")
    out = {}
    for line in text.split("## Constants")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0] in accuracy.GROUP_ORDER and re.fullmatch(r"\d+", cells[1]):
            out[cells[0]] = tuple(float(c.rstrip(" %")) / 100 for c in cells[2:8])
    return out


def test_default_method_is_at_least_as_good_as_docs_accuracy_reports(figures, cv):
    reported = _reported()
    assert {group for group, *_ in BARS} <= set(reported), (
        "docs/accuracy.md lacks a group; run python -m benchmarks.accuracy"
    )
    for group, numbers in reported.items():
        measured = [figures[group]["default"], cv["gpu"][group], cv["model"][group]]
        for i, (name, entry) in enumerate(zip(("in sample", "GPU left out", "model left out"), measured)):
            # The report rounds to 0.1 %: allow that much.
            assert entry["median"] <= numbers[2 * i] + 0.0005, (
                f"{group}, {name}: median {entry['median']:.4f} > {numbers[2 * i]}"
            )
            assert entry["max"] <= numbers[2 * i + 1] + 0.0005, (
                f"{group}, {name}: max {entry['max']:.4f} > {numbers[2 * i + 1]}"
            )


def test_shipped_constants_are_what_the_fit_gives(rows):
    fitted = fitting.fit(rows)
    for name in accuracy.FITTED_FIELDS:
        shipped, now = calibration.FITTED[name], getattr(fitted, name)
        if isinstance(shipped, dict):
            assert set(shipped) == set(now), name
            for key in shipped:
                assert now[key] == pytest.approx(shipped[key], rel=1e-2), f"{name}[{key}]"
        else:
            assert now == pytest.approx(shipped, rel=1e-2, abs=1e-9), name
    assert calibration.DEFAULT_CALIBRATION.gpu_decode_efficiency == calibration.FITTED["gpu_decode_efficiency"]


def test_shipped_speed_ranges_are_the_cross_validated_residuals(rows, everything):
    now = accuracy.speed_ranges(rows, everything["predictions"]["gpu"])
    assert set(now) == set(calibration.SPEED_RANGES)
    for regime, table in now.items():
        assert set(table) == set(calibration.SPEED_RANGES[regime]), regime
        for key, (low, high, n) in table.items():
            shipped = calibration.SPEED_RANGES[regime][key]
            assert (low, high) == pytest.approx(shipped[:2], abs=1e-2) and n == shipped[2], (regime, key)
            assert low < high


def test_excluded_rows_say_why(rows):
    for r in rows:
        if r.excluded:
            assert len(r.excluded) > 40


# ---------------------------------------------------------------- what the estimate says

GiB = 2**30


def _estimate(catalog, model, quant, gpu, **options):
    spec = catalog.gpu(gpu)
    budget = Budget((device_from_spec(spec),), 1024 * GiB, 100e9, 16)
    return estimate(catalog.model(model), catalog.quant(quant), budget, catalog, Options(**options))


def test_every_speed_carries_a_range_that_holds_measurements(catalog):
    # llama.cpp's CUDA scoreboard and randomfoo2's post: Llama 2 7B Q4_0 tg128 on an RTX 4090, 187.7 and
    # 189.0 t/s. Llama 3.1 8B Q4_K_M is the catalog's nearest: its estimate's range brackets its own
    # estimate and is a few per cent either side, as the leave-one-GPU-out residuals of NVIDIA boards are.
    e = _estimate(catalog, "meta-llama/Llama-3.1-8B-Instruct", "Q4_K_M", "RTX 4090", context=4096)
    low, high = e.decode_tokens_per_s_range
    assert low < e.decode_tokens_per_s < high and high / low < 1.5
    low, high = e.prefill_tokens_per_s_range
    assert low < e.prefill_tokens_per_s < high
    data = e.to_dict()
    assert isinstance(data["decode_tokens_per_s_range"], list) and len(data["decode_tokens_per_s_range"]) == 2
    # A class with its own rows uses them; one without borrows (Apple M5: Apple's; an Intel Arc: the pool).
    assert calibration.speed_range("decode", "apple-m5") == calibration.speed_range("decode", "apple")
    assert calibration.speed_range("decode", "intel") is not None
    assert calibration.speed_range("decode-host", "nvidia") is not None


def test_decode_at_depth_reads_the_whole_context(catalog):
    e = _estimate(catalog, "meta-llama/Llama-3.1-8B-Instruct", "Q4_K_M", "RTX 4090", context=32768, prompt_tokens=512)
    deep = _estimate(
        catalog,
        "meta-llama/Llama-3.1-8B-Instruct",
        "Q4_K_M",
        "RTX 4090",
        context=32768,
        prompt_tokens=512,
        decode_depth=32768,
    )
    assert e.decode_tokens_per_s_at_context < e.decode_tokens_per_s
    assert e.decode_tokens_per_s_at_context == pytest.approx(deep.decode_tokens_per_s, rel=1e-9)
    # Sliding-window layers stop growing at their window: Gemma 3 slows far less at depth than Llama.
    g = _estimate(catalog, "google/gemma-3-12b-it", "Q4_K_M", "RTX 4090", context=32768)
    assert (
        g.decode_tokens_per_s_at_context / g.decode_tokens_per_s
        > e.decode_tokens_per_s_at_context / e.decode_tokens_per_s
    )


def test_apple_chips_are_priced_by_generation_with_metals_layer_time(rows, everything):
    # The second round's structural fix: one efficiency and one time per layer for every Apple chip
    # put the Ultras 25–57 % too fast and the small chips 16–20 % too slow on discussion #4167's rows.
    # With Metal's own time per layer and an efficiency per generation, every one of them is within
    # 20 % out of sample (its GPU left out of the fit).
    cal = calibration.DEFAULT_CALIBRATION
    assert cal.layer_seconds("apple") > 2 * cal.layer_seconds("gpu")
    predictions = everything["predictions"]["gpu"]
    chips = [r for r in accuracy.counted(rows, "decode, Apple") if "4167" in r.raw["source"]]
    assert len(chips) >= 70
    errors = [abs(predictions[r.index] / r.measured - 1) for r in chips]
    assert max(errors) < 0.20 and statistics.median(errors) < 0.07


def test_a_gpu_the_catalog_lacks_gets_the_class_of_its_memory(catalog):
    # What the probe knows — the name and NVIDIA's compute capability — tells HBM boards, SoCs and iGPUs apart.
    assert infer_memory("nvidia", "NVIDIA H800 PCIe", "9.0") == ("HBM", False)
    assert infer_memory("nvidia", "NVIDIA A800-SXM4-80GB", None) == ("HBM", False)
    assert infer_memory("amd", "AMD Instinct MI308X", None) == ("HBM", False)
    assert infer_memory("nvidia", "Orin (nvgpu)", "8.7") == (None, True)
    assert infer_memory("amd", "AMD Radeon 780M", None) == (None, True)
    assert infer_memory("nvidia", "NVIDIA GeForce RTX 3060", "8.6") == (None, False)
    assert infer_memory("amd", "AMD Radeon RX 7900 XTX", None) == (None, False)
    hbm = Device("x", "NVIDIA H800 PCIe", "nvidia", 80 * GiB, 80 * GiB, 2.0e12, None, memory_type="HBM")
    assert speed.device_class(hbm) == "nvidia-hbm"
    # An HBM class without rows of its own (AMD's CDNA) borrows from HBM boards, not from RDNA's GDDR.
    assert calibration.class_chain("amd-hbm") == ["amd-hbm", "hbm", "amd"]
    cal = calibration.DEFAULT_CALIBRATION
    assert cal.decode_efficiency("amd-hbm") == cal.decode_efficiency("nvidia-hbm")
    assert speed.device_class(device_from_spec(catalog.gpu("M2 Ultra"))) == "apple-m2"


def test_latent_attention_is_priced_absorbed(catalog):
    # llama.cpp's deepseek2 graph attends in the latent space for the prompt too (q_nope × wk_b, MQA
    # over kv_lora_rank + rope, wv_b after): 2 × heads × (2 × 512 + 64) FLOPs per position and layer.
    arch = catalog.model("deepseek-ai/DeepSeek-V3").architecture
    per_position = speed.attention_flops_per_token(arch, 2, depth=0) / arch.layers  # 1 position on average
    assert per_position == 2 * arch.attention_heads * (2 * arch.kv_lora_rank + arch.qk_rope_head_dim)


def test_flash_attention_off_costs_what_the_rows_without_it_say():
    cal = calibration.DEFAULT_CALIBRATION
    assert cal.kv_read_factor_nofa > 2 * cal.kv_read_factor
    assert cal.prefill_attention_factor_nofa > 2 * cal.prefill_attention_factor
    # the estimate never prices the no-flash-attention factors: every cost it builds has flash attention
    cost = speed.DecodeCost(weight_s={"nvidia": 1.0}, kv_s={"nvidia": 1.0})
    assert cost.flash_attention
    assert speed.decode_seconds(cost, cal) < speed.decode_seconds(replace(cost, flash_attention=False), cal)


def test_neutral_calibration_leaves_the_new_factors_out():
    neutral = calibration.Calibration()
    assert (
        neutral.kv_read_factor,
        neutral.prefill_attention_factor,
        neutral.prefill_score_flops,
        neutral.prefill_moe_half_batch,
    ) == (1.0, 1.0, 0.0, 0.0)
    assert replace(neutral, gpu_layer_seconds=1e-4).layer_seconds("apple") == 1e-4


def _decode(cli, config, *extra):
    out = cli(
        "estimate",
        "--config",
        str(ROOT / "tests" / "fixtures" / "hf_configs" / config),
        "--quant",
        "Q4_K_M",
        "--gpu",
        "RTX 4090",
        "--json",
        *extra,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["decode_tokens_per_s"]


def test_qwen3_30b_a3b_decodes_several_times_faster_than_dense_32b(cli):
    # Measured: llama-bench tg128 on one machine and build (Radeon 8060S, ROCm, 2025-07-13,
    # https://blog.tosukui.xyz/posts/gmktec-ryzen-ai-rocm-therock, rows in measurements.csv):
    # Qwen3-30B-A3B Q4_K_M 56.55 t/s, Qwen3-32B Q4_K_M 9.91 t/s — 5.7×. A token of the MoE reads
    # its 8 routed experts of 128 (≈3.3 B parameters), the dense model all 32.8 B.
    moe, dense = _decode(cli, "qwen3-30b-a3b.json"), _decode(cli, "qwen3-32b.json")
    assert moe / dense >= 4
    # The seed's formula reads every weight and takes 10 % off for routing: the MoE comes out slower.
    seed_moe = _decode(cli, "qwen3-30b-a3b.json", "--method", "seed")
    seed_dense = _decode(cli, "qwen3-32b.json", "--method", "seed")
    assert seed_moe / seed_dense < 1
