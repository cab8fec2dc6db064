"""The report's failure section: each scenario's top failure clusters on the latest day (with
their growth against the baseline window), and a plot of their daily shares over time."""

from __future__ import annotations

import duckdb

from flywheel.report.render import png, rows

TOP = 3
PLOT_DAYS = 28

_LATEST = """
    SELECT scenario, cluster_id, label, events, share, baseline_share, growth_ratio,
           CASE WHEN is_new THEN 'new' WHEN is_growing THEN 'growing' ELSE '' END AS flag
    FROM failures.cluster_daily
    WHERE event_date = (SELECT max(event_date) FROM failures.cluster_daily) AND events > 0
    QUALIFY row_number() OVER (PARTITION BY scenario ORDER BY events DESC, cluster_id) <= $top
    ORDER BY scenario, events DESC, cluster_id"""

_SERIES = """
    WITH recent AS (
        SELECT * FROM failures.cluster_daily
        WHERE event_date > (SELECT max(event_date) FROM failures.cluster_daily) - CAST($days AS INTEGER)
    ), top AS (
        SELECT scenario, cluster_id FROM recent GROUP BY scenario, cluster_id
        QUALIFY row_number() OVER (PARTITION BY scenario ORDER BY sum(events) DESC, cluster_id) <= $top
    )
    SELECT r.scenario, r.cluster_id, c.label, r.event_date, r.share
    FROM recent r JOIN top USING (scenario, cluster_id) LEFT JOIN failures.clusters c USING (cluster_id)
    ORDER BY r.scenario, r.cluster_id, r.event_date"""


def top_clusters(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The latest day's top `TOP` clusters of each scenario."""
    return rows(con, _LATEST, {"top": TOP})


def cluster_share_plot(con: duckdb.DuckDBPyConnection, max_scenarios: int) -> str | None:
    """One PNG: per scenario, the daily share of its failing events in each of its top clusters
    over the last `PLOT_DAYS` days; None before failure clusters exist."""
    series = rows(con, _SERIES, {"days": PLOT_DAYS, "top": TOP})
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted({r["scenario"] for r in series})[:max_scenarios]
    cols = 2
    height = (len(scenarios) + cols - 1) // cols
    fig, axes = plt.subplots(height, cols, figsize=(10, 2.4 * height), squeeze=False, sharey=True)
    for ax, scenario in zip(axes.flat, scenarios):
        mine = [r for r in series if r["scenario"] == scenario]
        for cid in sorted({r["cluster_id"] for r in mine}):
            pts = [r for r in mine if r["cluster_id"] == cid]
            label = f"#{cid} {(pts[0]['label'] or '')[:40]}"
            ax.plot([p["event_date"] for p in pts], [p["share"] for p in pts], marker=".", label=label)
        ax.set_title(scenario, fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(scenarios):]:
        ax.set_visible(False)
    fig.supylabel("share of the scenario's failing events", fontsize=8)
    inches = 2.4 * height  # margins in inches: a title's room above, the slanted dates' below
    fig.autofmt_xdate(bottom=0.75 / inches)
    fig.subplots_adjust(top=1 - 0.3 / inches, left=0.08, right=0.98, hspace=0.45)
    return png(fig)
