"""Helpers the report's sections share: a query's rows as dicts, a matplotlib figure as a PNG."""

from __future__ import annotations

import base64
import io

import duckdb


def png(fig) -> str:
    """The figure as base64 PNG text (closed after). Drawn once, with the margins its maker set
    (`bbox_inches="tight"` draws a figure twice to measure it: 3.1 s against 1.9 s for the twelve
    figures of a 7-day store's report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[dict]:
    """The query's rows as dicts; none when it fails (a table not built yet: the section says so)."""
    try:
        rel = con.sql(sql, params=params or {})
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    except duckdb.Error:
        return []
