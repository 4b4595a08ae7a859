"""Pareto frontiers: no frontier point is dominated, every other point is."""

import json

from hypothesis import given
from hypothesis import strategies as st

from fitagent.estimator.pareto import dominated, frontier

points = st.lists(
    st.tuples(st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=50)), min_size=1, max_size=60
)


@given(points)
def test_no_frontier_point_is_dominated_and_every_other_point_is(pts):
    front = frontier(pts, metric=lambda p: p[0], cost=lambda p: p[1])
    assert front, "a non-empty set has a non-empty frontier"
    for p in front:
        assert not any(dominated(p, q) for q in pts), f"{p} is dominated"
    for p in pts:
        if p not in front:
            assert any(dominated(p, f) or f == p for f in front), f"{p} is neither on nor below the frontier"


@given(points)
def test_frontier_rises_with_cost(pts):
    front = frontier(pts, metric=lambda p: p[0], cost=lambda p: p[1])
    costs = [p[1] for p in front]
    metrics = [p[0] for p in front]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)
    assert metrics == sorted(metrics) and len(set(metrics)) == len(metrics)


def test_seed_example_frontier():
    # quality vs VRAM: (quality, GB)
    pts = [(60, 5), (58, 6), (70, 9), (70, 12), (65, 20), (80, 40)]
    assert frontier(pts, lambda p: p[0], lambda p: p[1]) == [(60, 5), (70, 9), (80, 40)]


def test_recommend_on_an_rtx_4090_gives_three_undominated_frontiers(cli, snapshot_path):
    out = cli("recommend", "--gpu", "RTX 4090", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    metric_of = {"quality": "quality", "speed": "decode_tokens_per_s", "efficiency": "efficiency"}
    for name, key in metric_of.items():
        front = result["frontiers"][name]
        assert front, f"{name} frontier is empty"
        pts = [(e[key], e["total_bytes"]) for e in front]
        for p in pts:
            assert not any(dominated(p, q) for q in pts)
        assert all(e["fits"] for e in front)
        others = [(e[key], e["total_bytes"]) for e in result["ranked"] if e["fits"] and e[key] is not None]
        for p in pts:
            assert not any(dominated(p, q) for q in others), f"{name}: {p} is dominated by a ranked candidate"
        assert all(e["total_bytes"] <= result["budget_bytes"] for e in front)
    assert result["ranked"] and result["use_case"] == "general" and result["context"] == 8192
