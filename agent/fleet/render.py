"""The fleet's answers as text tables (GB = 10^9 bytes)."""

from __future__ import annotations

from ..render import gb, rate, table


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _gpus(row: dict) -> str:
    usable = [g for g in row["gpus"] if g["usable"]]
    if not usable:
        return "none (CPU)" if row["status"] != "down" else "—"
    names = [g["name"].replace("NVIDIA GeForce ", "").replace("NVIDIA ", "") for g in usable]
    counted = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(f"{c} × {n}" if c > 1 else n for n, c in counted.items())


def _down_lines(answer: dict) -> list[str]:
    return [
        f"down: {d['host'] + ' (' + d['target'] + ')' if d.get('host') else d['target']}: {d['error']}"
        for d in answer["down"]
    ]


def render_hosts(answer: dict) -> str:
    rows = [
        [
            r["host"],
            r["target"],
            r["status"],
            _gpus(r),
            gb(r["gpu_memory_free_bytes"] if r["gpus"] else None),
            gb(r["host_memory_available_bytes"]),
            _age(r["scan_age_s"]),
        ]
        for r in answer["hosts"]
    ]
    out = [table(["host", "target", "status", "GPUs", "GPU free", "RAM available", "last scan"], rows)]
    if answer["down"]:
        out += [""] + _down_lines(answer)
    return "\n".join(out)


def _layers(r: dict) -> str:
    return f"{r['gpu_layers']}/{r['total_layers']}"


def render_place(answer: dict) -> str:
    out = [f"{answer['model']} {answer['quant']} at {answer['context']:,} tokens"]
    if answer["placements"]:
        rows = [
            [
                "yes" if r["fits"] else "no",
                r["host"],
                r["target"],
                r["placement"],
                _layers(r),
                rate(r["decode_tokens_per_s"]),
                gb(r["headroom_bytes"]),
                ("stale scan; " if r["stale"] else "") + (r["note"] or ""),
            ]
            for r in answer["placements"]
        ]
        out += ["", table(["fits", "host", "target", "placement", "GPU layers", "decode", "headroom", "note"], rows)]
    for r in answer["cannot_run"]:
        out.append(f"cannot run on {r['host']} ({r['target']}): needs {gb(r['total_bytes'])}")
    out += [""] + _down_lines(answer) + [line for line in answer["notes"]] + [answer["summary"]]
    return "\n".join(line for i, line in enumerate(out) if line or (i and out[i - 1]))


def render_best(answer: dict) -> str:
    rows = []
    for r in answer["hosts"]:
        if r["model"] is None:
            rows.append([r["host"], r["target"], "—", "", "", "", "", r["note"]])
        else:
            rows.append(
                [
                    r["host"],
                    r["target"],
                    r["model"],
                    r["quant"],
                    r["placement"],
                    _layers(r),
                    rate(r["decode_tokens_per_s"]),
                    "stale scan" if r["stale"] else "",
                ]
            )
    out = [
        f"best model per host for {answer['use_case']} at {answer['context']:,} tokens",
        "",
        table(["host", "target", "model", "quant", "placement", "GPU layers", "decode", "note"], rows),
    ]
    if answer["down"]:
        out += [""] + _down_lines(answer)
    if answer.get("notes"):
        out += [""] + answer["notes"]
    return "\n".join(out)
