"""The per-scenario summary `flywheel run` and `flywheel summary` print, read from the analysts'
database (so it shows exactly what an analyst would query)."""

from __future__ import annotations

import duckdb
import numpy as np

from flywheel.analyst import connect_read_only
from flywheel.config import Settings
from flywheel.sql import load_sql
from flywheel.stats import wilson_interval


def scenario_summary(settings: Settings, days: int = 28) -> list[dict]:
    """One dict per scenario over the last `days` stored days, with the accepted-as-is rate's
    95% Wilson interval, the levels the logs show (`levels`) and the level in force
    (`level_in_force`, from the approvals ledger); empty when no outcomes are built."""
    con = connect_read_only(settings)
    try:
        if not con.sql("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'outcomes' AND view_name = 'daily_rates'").fetchall()[0][0]:
            return []
        rel = con.sql(load_sql("scenario_summary"), params={"days": days})
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    except duckdb.Error:
        return []
    finally:
        con.close()
    in_force = levels_in_force(settings)
    for r in rows:
        r["level_in_force"] = in_force.get(r["scenario"], r["levels"])
        lo, hi = wilson_interval(r["accepted"], r["reviewed"])
        r["accepted_rate"] = r["accepted"] / r["reviewed"] if r["reviewed"] else None
        r["accepted_lo"], r["accepted_hi"] = (None, None) if np.isnan(lo) else (float(lo), float(hi))
    return rows


def levels_in_force(settings: Settings) -> dict[str, str]:
    """Per scenario, the autonomy level in force: the approvals ledger's (an approved promotion or
    a fail-safe demotion), else the level the newest decisions were made under (what the logs show)."""
    from flywheel.signals.feed import load_decisions
    from flywheel.signals.ledger import effective_levels

    decisions = load_decisions(settings)
    out = {}
    if decisions.height:
        out = {r["scenario"]: r["current"] for r in decisions.filter(decisions["kind"] == "autonomy").iter_rows(named=True)}
    out.update({s: e["level"] for s, e in effective_levels(settings).items()})
    return out


def format_summary(rows: list[dict]) -> str:
    """The summary as a fixed-width text table."""
    if not rows:
        return "no outcomes yet"
    head = f"{'scenario':<18} {'level':<11} {'events':>7} {'reviewed':>8}  {'accepted as-is [95% CI]':<25} {'edited':>6} {'rejected':>8} {'failed':>6}  gate (coverage)"
    lines = [f"per scenario, last 28 days to {rows[0]['last_day']}:", head]
    for r in rows:
        pct = lambda k, n: f"{100 * k / n:5.1f}%" if n else "    -"  # noqa: E731
        acc = (f"{100 * r['accepted_rate']:5.1f}% [{100 * r['accepted_lo']:4.1f}-{100 * r['accepted_hi']:4.1f}]"
               if r["accepted_rate"] is not None else "-")
        gate = "none" if r["gate_threshold"] is None else f"{r['gate_threshold']:.2f} ({100 * r['gate_coverage']:.0f}%)"
        lines.append(f"{r['scenario']:<18} {r.get('level_in_force', r['levels']):<11} {r['events']:>7} {r['reviewed']:>8}  {acc:<25} "
                     f"{pct(r['edited'], r['reviewed']):>6} {pct(r['rejected'], r['reviewed']):>8} "
                     f"{pct(r['failures'], r['events']):>6}  {gate}")
    return "\n".join(lines)
