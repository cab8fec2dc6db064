"""The nightly report: one static HTML file per run plus `latest.html`, with its plots embedded as
PNG images (matplotlib, Agg backend), so it opens anywhere without a network or a server.

Sections: the state of every scenario (approved and recommended level, accepted-as-is rate with
its interval, alerts); outcome rates per scenario over time with their 95% intervals and the
rollout days of prompt and model versions marked; reliability diagrams; the top failure clusters
and their growth (when failure clusters are built); open drift alerts; decisions awaiting
approval. Every value from the data is HTML-escaped, with e-mail addresses, phone numbers and
card numbers redacted.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from flywheel.catalog import connect_views
from flywheel.config import Settings
from flywheel.privacy import redact
from flywheel.report.failures import cluster_share_plot, top_clusters
from flywheel.report.render import png as _png, rows as _rows
from flywheel.store import write_bytes_atomic

MAX_SCENARIOS_PLOTTED = 12


def _e(value: Any) -> str:
    """Escaped for HTML, with personal data (e-mails, phones, card numbers) redacted."""
    return html.escape(redact("" if value is None else str(value)) or "", quote=True)


def _img(data: str, alt: str) -> str:
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict], columns: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


def rate_plots(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(scenario, PNG) of the daily accepted-as-is rate with its 95% interval, rollouts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from flywheel.stats import wilson_interval

    daily = _rows(con, """SELECT scenario, event_date, sum(accepted)::BIGINT AS k, sum(reviewed)::BIGINT AS n,
                                 sum(edited)::BIGINT AS edited, sum(rejected)::BIGINT AS rejected
                          FROM outcomes.daily_rates GROUP BY ALL ORDER BY scenario, event_date""")
    rollouts = _rows(con, """SELECT scenario, 'prompt ' || prompt_version AS what, min(event_date) AS day FROM outcomes.daily_rates
                             GROUP BY scenario, prompt_version
                             UNION ALL SELECT scenario, 'model ' || model, min(event_date) FROM outcomes.daily_rates
                             GROUP BY scenario, model""")
    first_day = min((r["event_date"] for r in daily), default=None)
    out = []
    scenarios = sorted({r["scenario"] for r in daily})[:MAX_SCENARIOS_PLOTTED]
    for scenario in scenarios:
        rows = [r for r in daily if r["scenario"] == scenario and r["n"]]
        if not rows:
            continue
        days = [r["event_date"] for r in rows]
        k = np.array([r["k"] for r in rows], float)
        n = np.array([r["n"] for r in rows], float)
        lo, hi = wilson_interval(k, n)
        fig, ax = plt.subplots(figsize=(7.5, 2.6))
        ax.fill_between(days, lo, hi, alpha=0.25, label="95% interval")
        ax.plot(days, k / n, marker=".", label="accepted as-is")
        ax.plot(days, np.array([r["rejected"] for r in rows]) / n, linestyle="--", label="rejected")
        for r in rollouts:
            if r["scenario"] == scenario and r["day"] != first_day:
                ax.axvline(r["day"], color="grey", linestyle=":")
                ax.annotate(r["what"], (r["day"], 0.98), fontsize=7, rotation=90, va="top", ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(scenario, fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
        ax.tick_params(labelsize=7)
        fig.autofmt_xdate(bottom=0.27)
        fig.subplots_adjust(left=0.06, right=0.99, top=0.9)
        out.append((scenario, _png(fig)))
    return out


def reliability_plot(con: duckdb.DuckDBPyConnection) -> str | None:
    """One PNG with the latest reliability diagram of every scenario (all models)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = _rows(con, """SELECT scenario, mean_confidence, observed_rate, n FROM outcomes.reliability_bins
                         WHERE model = '*' AND window_end = (SELECT max(window_end) FROM outcomes.reliability_bins)
                         ORDER BY scenario, bin""")
    if not bins:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for scenario in sorted({b["scenario"] for b in bins})[:MAX_SCENARIOS_PLOTTED]:
        pts = [b for b in bins if b["scenario"] == scenario]
        ax.plot([p["mean_confidence"] for p in pts], [p["observed_rate"] for p in pts], marker="o", markersize=3,
                label=scenario)
    ax.set_xlabel("mean confidence (equal-count bins)")
    ax.set_ylabel("accepted as-is")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.97, bottom=0.11)
    return _png(fig)


def build_report(settings: Settings, run_id: str) -> str:
    """The report of the store's latest day, as an HTML document. It reads the analysts' views
    in memory (`catalog.connect_views`), never the database file, which an analyst may hold."""
    con = connect_views(settings)
    try:
        day = _rows(con, "SELECT max(event_date) AS d FROM ingest.events")
        data_day = day[0]["d"] if day else None
        state = _rows(con, """
            SELECT d.scenario, d.current AS level, d.recommended, d.rule, d.effect,
                   round(CAST(json_extract(d.evidence, '$.accepted_rate') AS DOUBLE), 3) AS accepted_as_is,
                   round(CAST(json_extract(d.evidence, '$.accepted_lo') AS DOUBLE), 3) AS lo,
                   round(CAST(json_extract(d.evidence, '$.accepted_hi') AS DOUBLE), 3) AS hi,
                   CAST(json_extract(d.evidence, '$.reviewed') AS BIGINT) AS reviewed
            FROM signals.decisions d
            WHERE d.kind = 'autonomy' AND d.day = (SELECT max(day) FROM signals.decisions)
            ORDER BY d.scenario""")
        alerts = _rows(con, """SELECT scenario, model, prompt_version, signal, baseline_value, current_value,
                                      baseline_n, current_n
                               FROM signals.drift WHERE severity = 'alert' AND day = (SELECT max(day) FROM signals.drift)
                               ORDER BY scenario, signal""")
        pending = _rows(con, """SELECT decision_id, scenario, current, recommended, rule FROM signals.decisions
                                WHERE requires_approval AND day = (SELECT max(day) FROM signals.decisions)""")
        try:
            decided = {r[0] for r in con.sql("SELECT decision_id FROM signals.approvals").fetchall()}
        except duckdb.Error:
            decided = set()
        pending = [p for p in pending if p["decision_id"] not in decided]
        clusters = top_clusters(con)
        cluster_plot = cluster_share_plot(con, MAX_SCENARIOS_PLOTTED)
        plots = rate_plots(con)
        reliability = reliability_plot(con)
    finally:
        con.close()
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>flywheel report {_e(data_day)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f3f3f3}.plot{display:block;margin:0.3em 0 1em;max-width:100%}.empty{color:#777}"
        "h2{margin-top:1.8em;border-bottom:1px solid #ddd}</style></head><body>",
        f"<h1>flywheel nightly report</h1><p>data through <b>{_e(data_day)}</b>; run <code>{_e(run_id)}</code>;"
        f" generated {_e(generated)}</p>",
        "<h2 id='scenarios'>Scenarios</h2>",
        _table(state, ["scenario", "level", "recommended", "rule", "effect", "accepted_as_is", "lo", "hi", "reviewed"],
               "no decisions yet"),
        "<h2 id='pending'>Decisions awaiting approval</h2>",
        _table(pending, ["decision_id", "scenario", "current", "recommended", "rule"], "nothing awaits approval"),
        "<p>Approve with <code>flywheel decisions approve ID --by NAME --note TEXT</code>.</p>",
        "<h2 id='alerts'>Drift alerts</h2>",
        _table(alerts, ["scenario", "model", "prompt_version", "signal", "baseline_value", "current_value",
                        "baseline_n", "current_n"], "no open alerts"),
        "<h2 id='rates'>Outcome rates over time</h2>",
        "<p>Daily accepted-as-is rate with its 95% Wilson interval, and the rejection rate; dotted lines mark "
        "the first day of each prompt version and model.</p>",
        *[_img(png, f"outcome rates of {scenario}") for scenario, png in plots],
        "<h2 id='calibration'>Reliability diagrams</h2>",
        _img(reliability, "reliability diagram") if reliability else "<p class='empty'>no calibration yet</p>",
        "<h2 id='failures'>Top failure clusters</h2>",
        "<p>Each scenario's largest failure clusters on the latest day: their share of the scenario's failing "
        "events, the share over the baseline window before it, growth (share / baseline share), and whether the "
        "cluster is new or growing. Exemplars: <code>failures.clusters</code>.</p>",
        _table(clusters, ["scenario", "cluster_id", "label", "events", "share", "baseline_share", "growth_ratio",
                          "flag"], "no failure clusters yet"),
        _img(cluster_plot, "daily share of the top failure clusters") if cluster_plot else "",
        "</body></html>",
    ]
    return "\n".join(parts)


def publish_report(settings: Settings, run_id: str) -> Path:
    """Write the report for this run and replace `latest.html`, atomically; returns the run's file."""
    doc = build_report(settings, run_id).encode()
    folder = settings.publish / "report"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)[:80]
    path = folder / f"{safe}.html"
    write_bytes_atomic(doc, path)
    write_bytes_atomic(doc, folder / "latest.html")
    return path


def report_summary(path: Path) -> dict[str, Any]:
    """Counts of what a report holds (for asset metadata): images and tables."""
    text = path.read_text()
    return {"plots": text.count('<img class="plot"'), "tables": text.count("<table>"), "bytes": len(text)}


__all__ = ["build_report", "publish_report", "report_summary"]
