"""The limits users ask about: the longest context that fits, and how many sessions fit.

Memory in every pool of a placement (each GPU's share, the host) is piecewise linear in the
padded context P — weights and reserves are fixed, the KV cache of the pool's layers grows as
full × P + swa × min(P, window cap), the compute buffer's mask as 2 × n_ubatch × P — so both
answers are solved in closed form per pool, keeping the placement (which layers sit where)
that the estimate chose.
"""

from __future__ import annotations

import math
from collections import namedtuple

from .memory import KV_PAD
from .placement import MemoryParts, Placement


class Pool(
    namedtuple(
        "Pool",
        (
            "free_bytes",
            "fixed_bytes",  # weights, reserve, the compute buffer's context-free part
            "kv_fraction",  # share of the KV cache (of every layer) that lives here
            "mask_bytes_per_cell",  # 0 where the pool holds no compute buffer
        ),
    )
):
    """One memory of a placement (a GPU's share, or the host) as the limits see it. A namedtuple,
    like placement's records: cheaper than a frozen dataclass to define at start-up and to build."""

    __slots__ = ()


def pools(need: MemoryParts, placed: Placement, host_available: int) -> list[Pool]:
    mask_now = need.mask_bytes_per_cell * need.cells
    out = []
    k = len(placed.shares)
    for share in placed.shares:
        fraction = 1 / k if placed.tensor_parallel else share.layers / need.layers
        out.append(
            Pool(
                share.device.free_bytes,
                share.weights_bytes + share.overhead_bytes - mask_now,
                fraction,
                need.mask_bytes_per_cell,
            )
        )
    host_fraction = (
        0.0 if placed.tensor_parallel or placed.n_cpu_moe else (need.layers - placed.gpu_layers) / need.layers
    )
    host_mask = need.mask_bytes_per_cell if placed.host_overhead_bytes else 0
    out.append(
        Pool(
            host_available,
            placed.host_weights_bytes + placed.host_overhead_bytes - host_mask * need.cells,
            host_fraction,
            host_mask,
        )
    )
    return out


def _max_cells(pool: Pool, need: MemoryParts) -> float:
    """The largest P with fixed + mask·P + f·(full·P + swa·min(P, cap)) ≤ free."""
    room = pool.free_bytes - pool.fixed_bytes
    if room < 0:
        return -math.inf
    a = pool.mask_bytes_per_cell + pool.kv_fraction * need.kv.full_per_cell
    b = pool.kv_fraction * need.kv.swa_per_cell
    cap = need.kv.swa_cap_cells
    if a + b <= 0:
        return math.inf
    if b and (a + b) * cap <= room:
        return (room - b * cap) / a if a > 0 else math.inf
    return room / (a + b)


def max_context(need: MemoryParts, placed: Placement, host_available: int, model_max: int) -> int | None:
    """Longest context (a multiple of llama.cpp's 256-cell padding, at most the model's trained
    window) that keeps this placement within every pool's memory; 0 if none does."""
    if placed.mode == "none":
        return None
    cells = min(_max_cells(p, need) for p in pools(need, placed, host_available))
    if cells == math.inf:
        return model_max
    if cells < KV_PAD:
        return 0
    return min(model_max, int(cells // KV_PAD) * KV_PAD)


def concurrent_sessions(need: MemoryParts, placed: Placement, host_available: int) -> int | None:
    """Sessions of this context that fit at once beside the weights, each with its own KV cache:
    llama-server ``-np N -c N×context`` (an explicit -np leaves kv_unified off, so each slot is a
    stream of its own; memory.kv_linear's separate-streams layout). Every session adds its
    full-attention cells and its own window in each sliding layer; the compute buffer stays that of
    one session, since with separate streams the KQ mask spans one stream's cells (n_ubatch ×
    context), however many there are. (With -kvu, or -np left on auto, the slots share one unified
    cache instead: one window of n_swa × N + n_ubatch cells, and a mask over all N × context cells.)"""
    if placed.mode == "none":
        return None
    swa_cells = min(need.cells, need.kv.swa_cap_cells)
    best = math.inf
    for pool in pools(need, placed, host_available):
        per_session = pool.kv_fraction * (need.kv.full_per_cell * need.cells + need.kv.swa_per_cell * swa_cells)
        room = pool.free_bytes - pool.fixed_bytes - pool.mask_bytes_per_cell * need.cells
        if room < per_session:
            return 0
        if per_session > 0:
            best = min(best, room // per_session)
    return int(best) if best != math.inf else None
