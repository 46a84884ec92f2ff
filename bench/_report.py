"""The results table and the issue's goals, from the medians `realtime.py` collected."""

from __future__ import annotations

import math
from typing import Any

NOISY_OTHER_CPU_PCT = 25.0
"""A run during which other processes used more than this (% of one core) is noisy."""
GOAL_CONNECTIONS = 32
OVERHEAD_GOAL_US = 500.0
FAST_BARE = "bare-asgi[fastpredict]"
"""The bare app calling modelhost's C predict (informational column `÷fast`)."""


def _compiled(name: str) -> bool:
    """A modelhost variant with the compiled tier (`compiled`, or `default` where the
    machine can compile): its goals are reported apart from the framework path's, since
    the baselines (the bare app, MLServer) predict with XGBoost."""
    return "compiled" in name or "default" in name


def _best(
    servers: dict[str, Any], prefix: str, c: int, compiled: bool = False
) -> tuple[str, dict[str, float]] | None:
    """The variant of a server with the most req/s at `c` connections (`compiled`: among
    the compiled tier's variants only)."""
    found = [
        (name, s["median"][c])
        for name, s in servers.items()
        if name.startswith(prefix) and c in s["median"] and _compiled(name) == compiled
    ]
    return max(found, key=lambda x: x[1]["requests_per_s"]) if found else None


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each with its figures and whether the best modelhost variant meets it."""
    servers = results["servers"]
    c = GOAL_CONNECTIONS
    mh = _best(servers, "modelhost", c)
    ml = _best(servers, "mlserver", c)
    bare = servers.get("bare-asgi", {}).get("median", {}).get(c)
    out: list[dict[str, Any]] = []
    if mh and ml:
        ratio = mh[1]["requests_per_s"] / ml[1]["requests_per_s"]
        out.append(
            {
                "goal": f"req/s at {c} conns >= 2x MLServer's best ({ml[0]})",
                "value": f"{mh[0]} {ratio:.2f}x",
                "met": ratio >= 2,
            }
        )
        half = ml[1]["p99_us"] / 2
        out.append(
            {
                "goal": f"p99 at {c} conns <= half of MLServer's ({ml[0]}: {half / 1e3:.1f} ms)",
                "value": f"{mh[0]} {mh[1]['p99_us'] / 1e3:.2f} ms",
                "met": mh[1]["p99_us"] <= half,
            }
        )
    if mh and bare:
        share = mh[1]["requests_per_s"] / bare["requests_per_s"]
        out.append(
            {
                "goal": f"req/s at {c} conns >= 60% of the bare ASGI app",
                "value": f"{mh[0]} {share:.0%}",
                "met": share >= 0.6,
            }
        )
    out += _issue20_goals(servers, mh, ml, bare)
    overheads = [
        (name, s["median"][1]["overhead_p50_us"])
        for name, s in servers.items()
        if name.startswith("modelhost") and 1 in s["median"] and "overhead_p50_us" in s["median"][1]
    ]
    for name, value in overheads:
        out.append(
            {
                "goal": "OverheadLatency p50 <= 0.5 ms at 1 conn",
                "value": f"{name} {value:.0f} µs",
                "met": not math.isnan(value) and value <= OVERHEAD_GOAL_US,
            }
        )
    return out


def _issue20_goals(
    servers: dict[str, Any],
    mh: tuple[str, dict[str, float]] | None,
    ml: tuple[str, dict[str, float]] | None,
    bare: dict[str, float] | None,
) -> list[dict[str, Any]]:
    """Issue 20's raised goals: 5x MLServer and 2.5x the bare app at 32 connections, one
    connection's p50 within 1.15x of the bare app's, 2 workers without batching at 90% of
    the bare app, and (with a `+tcp` twin in the run) the Unix-socket hop losing nothing."""
    c = GOAL_CONNECTIONS
    out: list[dict[str, Any]] = []

    def goal(text: str, value: str, met: bool) -> None:
        out.append({"goal": text, "value": value, "met": met})

    if mh and ml:
        ratio = mh[1]["requests_per_s"] / ml[1]["requests_per_s"]
        goal(f"req/s at {c} conns >= 5x MLServer's best ({ml[0]})", f"{mh[0]} {ratio:.2f}x",
             ratio >= 5)  # fmt: skip
    if mh and bare:
        ratio = mh[1]["requests_per_s"] / bare["requests_per_s"]
        goal(f"req/s at {c} conns >= 2.5x the bare app", f"{mh[0]} {ratio:.2f}x", ratio >= 2.5)
    tier = _best(servers, "modelhost", c, compiled=True)
    if tier and ml:  # the compiled tier is on by default where a C compiler exists
        ratio = tier[1]["requests_per_s"] / ml[1]["requests_per_s"]
        goal(f"compiled tier (default): req/s at {c} conns >= 5x MLServer's best",
             f"{tier[0]} {ratio:.2f}x", ratio >= 5)  # fmt: skip
    if tier and bare:
        ratio = tier[1]["requests_per_s"] / bare["requests_per_s"]
        goal(f"compiled tier (default): req/s at {c} conns >= 2.5x the bare app",
             f"{tier[0]} {ratio:.2f}x", ratio >= 2.5)  # fmt: skip
    bare1 = servers.get("bare-asgi", {}).get("median", {}).get(1)
    for name, series in servers.items():
        m = series["median"]
        if not name.startswith("modelhost") or _compiled(name):
            continue
        if bare1 and 1 in m:
            ratio = m[1]["p50_us"] / bare1["p50_us"]
            goal("p50 at 1 conn <= 1.15x the bare app's", f"{name} {ratio:.2f}x", ratio <= 1.15)
        if bare and c in m and "workers2" in name and "batching" not in name:
            share = m[c]["requests_per_s"] / bare["requests_per_s"]
            goal(f"no batching, 2 workers: req/s at {c} conns >= 90% of the bare app",
                 f"{name} {share:.0%}", share >= 0.9)  # fmt: skip
        tcp = servers.get(name[:-1] + "+tcp]", {}).get("median", {})
        if c in m and c in tcp:
            ratio = m[c]["requests_per_s"] / tcp[c]["requests_per_s"]
            goal(f"Unix socket vs TCP hop: no loss at {c} conns", f"{name} {ratio:.2f}x",
                 ratio >= 0.97)  # fmt: skip
    return out


def report(results: dict[str, Any], connections: list[int]) -> str:
    ip = results["in_process"]
    lines = [
        "",
        ip.get("label", "XGBoost in-process (baseline A, one thread): one-row inplace_predict")
        + " "
        f"p50 {ip['one_row_p50_us']:.0f} µs, p99 {ip['one_row_p99_us']:.0f} µs, "
        f"{ip['one_row_calls_per_s']:,.0f} calls/s; batch of {ip['batch_rows']:,} rows "
        f"{ip['batch_rows_per_s_1_thread'] / 1e6:.2f} M rows/s (1 thread), "
        f"{ip['batch_rows_per_s_2_thread'] / 1e6:.2f} M rows/s (2 threads)",
        "",
        "medians; [min–max] over the runs",
        f"{'server':<28} {'conns':>5} {'req/s':>7} {'[min–max]':>15} {'p50 ms':>6} "
        f"{'p99 ms':>6} {'[min–max]':>13} {'p99.9':>6} {'ovh p50':>7} {'wrk%':>4} "
        f"{'srv%':>4} {'oth%':>4} {'÷MLS':>5} {'÷bare':>5} {'÷fast':>5} {'÷in-p':>5}",
    ]
    servers = results["servers"]
    for name, series in servers.items():
        for c in connections:
            m = series["median"].get(c)
            if m is None:
                continue
            vs_ml = vs_bare = vs_fast = "-"
            best_ml = _best(servers, "mlserver", c)
            if name.startswith("modelhost") and best_ml:
                vs_ml = f"{m['requests_per_s'] / best_ml[1]['requests_per_s']:.2f}"
            bare = servers.get("bare-asgi", {}).get("median", {}).get(c)
            if bare and name != "bare-asgi":
                vs_bare = f"{m['requests_per_s'] / bare['requests_per_s']:.2f}"
            fast = servers.get(FAST_BARE, {}).get("median", {}).get(c)
            if fast and name.startswith("modelhost"):
                vs_fast = f"{m['requests_per_s'] / fast['requests_per_s']:.2f}"
            ovh = m.get("overhead_p50_us")
            ovh_text = f"{ovh:.0f}µs" if ovh is not None and not math.isnan(ovh) else "-"
            rps_range = f"{m['requests_per_s_min']:,.0f}–{m['requests_per_s_max']:,.0f}"
            p99_range = f"{m['p99_us_min'] / 1e3:.2f}–{m['p99_us_max'] / 1e3:.2f}"
            lines.append(
                f"{name:<28} {c:>5} {m['requests_per_s']:>7,.0f} {rps_range:>15} "
                f"{m['p50_us'] / 1e3:>6.2f} {m['p99_us'] / 1e3:>6.2f} {p99_range:>13} "
                f"{m['p999_us'] / 1e3:>6.2f} {ovh_text:>7} {m['wrk_cpu_pct']:>4.0f} "
                f"{m['server_cpu_pct']:>4.0f} {m['other_cpu_pct']:>4.0f} {vs_ml:>5} "
                f"{vs_bare:>5} {vs_fast:>5} {m['requests_per_s'] / ip['one_row_calls_per_s']:>5.2f}"
                + ("  noisy" if m["other_cpu_pct"] > NOISY_OTHER_CPU_PCT else "")
            )
    lines += ["", "goals (issues 8 and 20):"]
    for g in results.get("goals", []):
        lines.append(f"  [{'met' if g['met'] else 'NOT MET'}] {g['goal']}: {g['value']}")
    lines += [f"  (informational) {line}" for line in serving_path(servers)]
    return "\n".join(lines)


def serving_path(servers: dict[str, Any]) -> list[str]:
    """The best modelhost variant against the bare app with the same cheap predict
    (`÷fast`): what the serving path alone buys. Not a goal: the issue's goals are
    against the bare app calling XGBoost's public API (`÷bare`)."""
    out = []
    for c in sorted({c for s in servers.values() for c in s["median"]}):
        mh = _best(servers, "modelhost", c)
        fast = servers.get(FAST_BARE, {}).get("median", {}).get(c)
        if mh and fast:
            ratio = mh[1]["requests_per_s"] / fast["requests_per_s"]
            out.append(f"req/s at {c} conns ÷ {FAST_BARE}: {mh[0]} {ratio:.2f}x")
    return out
