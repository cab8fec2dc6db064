"""Build the failure tables of one day in the store, in order: assignments, clusters, history, daily.

- `failures/assignments` (`build_failure_assignments`): runs the night's model step
  (`model.advance`) from the latest snapshot before the day, writes one row per failing event and
  the night's snapshot. Day D depends on the snapshots of the days before it: build days in order.
- `failures/clusters` (`build_clusters`): every cluster known after the night, with its label,
  distinctive terms, exemplars, birth and size so far (a snapshot per day).
- `failures/cluster_history` (`build_cluster_history`): per cluster born or seen that night, how
  its events were matched (joined an existing cluster, founded it, joined it the night it was
  born), plus one row with a null cluster_id counting the events that fit no cluster.
- `failures/cluster_daily` (`growth.build_cluster_daily`): per scenario x cluster, counts, shares,
  growth against a baseline window, new and growing flags.
Each write replaces the day's file atomically; building a day twice leaves the same data.
`build_failures` builds the four in one step under the store's `failures` lock and writes the
night's snapshot last; `refresh_stale` then rebuilds, in order, the later nights that continued
from an earlier build of a rebuilt night (or were built before an earlier night existed), so
reruns, killed runs and overlapping runs leave every table as one clean run in day order does.
"""

from __future__ import annotations

import uuid
from datetime import date

import polars as pl
import pyarrow as pa

from flywheel.config import Settings
from flywheel.failures.documents import FramesAhead, day_documents
from flywheel.failures.growth import build_cluster_daily
from flywheel.failures.model import (
    ASSIGNMENT_SCHEMA,
    EXISTING,
    FOUNDING,
    NEW,
    UNMATCHED,
    DayResult,
    FailureConfig,
    ModelState,
    advance,
)
from flywheel.failures.store import (
    Snapshot,
    basis,
    is_stale,
    load_snapshot,
    previous_state,
    recent_documents,
    save_snapshot,
    snapshot_days,
)
from flywheel.objectstore import polars_options, url
from flywheel.store import Layout, exclusive, write_parquet_atomic
from flywheel.tables import ASSIGNMENTS, CLUSTER_DAILY, CLUSTER_HISTORY, CLUSTERS

LOCK = "failures"


def build_failure_assignments(settings: Settings, day: date, run_id: str | None = None,
                              config: FailureConfig | None = None) -> pl.DataFrame:
    """Assign every failing event of `day` to a failure cluster; store the assignments and the
    night's model snapshot; returns the assignments (one row per failing event).

    `run_id` names the run in the history (default: a fresh `adhoc-...` id); `config` holds the
    model's knobs (`model.FailureConfig`). Continues from the latest snapshot before `day` and
    reads the documents kept by the `config.window_days` nights before it. Runs under the store's
    `failures` lock, so two processes never interleave nights.
    """
    cfg = config or FailureConfig()
    run = run_id or f"adhoc-{uuid.uuid4().hex[:12]}"
    layout = Layout(settings.store)
    docs = day_documents(settings, day)
    with exclusive(layout.lock(LOCK)):
        result, built_from = _advance(layout, docs, day, run, cfg)
        write_parquet_atomic(result.assignments.to_arrow(), layout.table(ASSIGNMENTS.path, day))
        save_snapshot(layout, day, Snapshot(result.state, result.kept, built_from))
    return result.assignments


def _advance(layout: Layout, docs: pl.DataFrame, day: date, run: str, cfg: FailureConfig
             ) -> tuple[DayResult, dict[str, str]]:
    """Night `day`'s step from the snapshots before it, and their digests (call under the lock)."""
    built_from = basis(layout, day, cfg.window_days)
    state = previous_state(layout, day) or ModelState(cfg.featurizer)
    return advance(state, docs, day, run, cfg, recent=recent_documents(layout, day, cfg.window_days)), built_from


def _snapshot_state(settings: Settings, day: date) -> ModelState:
    snap = load_snapshot(Layout(settings.store), day)
    if snap is None:
        raise FileNotFoundError(f"no failure model snapshot for {day}: run build_failure_assignments first")
    return snap.state


def _assignments(settings: Settings, day: date) -> pl.DataFrame:
    path = Layout(settings.store).table(ASSIGNMENTS.path, day)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run build_failure_assignments for {day} first")
    return pl.read_parquet(url(path), storage_options=polars_options(path)).cast(ASSIGNMENT_SCHEMA)


def clusters_frame(state: ModelState, assignments: pl.DataFrame, day: date) -> pl.DataFrame:
    """One row per cluster known after night `day` (see `flywheel.tables.CLUSTERS`)."""
    today = dict(assignments.filter(pl.col("cluster_id").is_not_null()).group_by("cluster_id").len().iter_rows())
    rows = [{
        "event_date": day, "cluster_id": c.cluster_id, "label": c.label, "terms": list(c.top_terms),
        "exemplars": [{"event_id": e["event_id"], "event_date": date.fromisoformat(e["event_date"]),
                       "summary": e["summary"], "similarity": float(e["similarity"])} for e in c.exemplars],
        "born_date": c.born_date, "born_run": c.born_run, "size_total": c.size,
        "events": int(today.get(c.cluster_id, 0)),
        "last_seen": c.last_seen, "is_new": c.born_date == day,
    } for c in state.clusters]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=CLUSTERS.schema))  # type: ignore[return-value]


def build_clusters(settings: Settings, day: date) -> pl.DataFrame:
    """Store `failures/clusters` of `day`: every cluster known after the night; returns it."""
    frame = clusters_frame(_snapshot_state(settings, day), _assignments(settings, day), day)
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table(CLUSTERS.path, day))
    return frame


def history_frame(state: ModelState, assignments: pl.DataFrame, day: date) -> pl.DataFrame:
    """How night `day`'s events were matched, per cluster born or seen that night (see `flywheel.tables.CLUSTER_HISTORY`)."""
    counts = assignments.group_by("cluster_id", "matched_as").len()
    by: dict[int | None, dict[str, int]] = {}
    for cid, how, n in counts.iter_rows():
        by.setdefault(cid, {})[how] = n
    run = assignments["run_id"][0] if assignments.height else state.run_id
    rows = []
    for c in state.clusters:
        seen = by.get(c.cluster_id, {})
        if not seen and c.born_date != day:
            continue
        rows.append({"event_date": day, "run_id": run, "cluster_id": c.cluster_id, "label": c.label,
                     "born": c.born_date == day, "born_date": c.born_date, "born_run": c.born_run,
                     "events": sum(seen.values()), "events_existing": seen.get(EXISTING, 0),
                     "events_founding": seen.get(FOUNDING, 0), "events_new": seen.get(NEW, 0), "events_unmatched": 0,
                     "size_total": c.size})
    unmatched = by.get(None, {}).get(UNMATCHED, 0)
    if unmatched:
        rows.append({"event_date": day, "run_id": run, "cluster_id": None, "label": None, "born": False,
                     "born_date": None, "born_run": None, "events": unmatched, "events_existing": 0,
                     "events_founding": 0, "events_new": 0, "events_unmatched": unmatched, "size_total": None})
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=CLUSTER_HISTORY.schema))  # type: ignore[return-value]


def build_cluster_history(settings: Settings, day: date) -> pl.DataFrame:
    """Store `failures/cluster_history` of `day`; returns it."""
    frame = history_frame(_snapshot_state(settings, day), _assignments(settings, day), day)
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table(CLUSTER_HISTORY.path, day))
    return frame


def _night(settings: Settings, layout: Layout, day: date, run: str, cfg: FailureConfig,
           ahead: FramesAhead | None = None) -> dict[str, pl.DataFrame]:
    """Build night `day`'s four tables, then its snapshot (call under the failures lock). The
    snapshot is written last, so a night killed half-way keeps its earlier snapshot: its re-run,
    or `refresh_stale`, builds it again. Whether a cluster is new or growing follows the policy
    `settings.policy` names (`growth.build_cluster_daily`)."""
    result, built_from = _advance(layout, day_documents(settings, day, ahead=ahead), day, run, cfg)
    write_parquet_atomic(result.assignments.to_arrow(), layout.table(ASSIGNMENTS.path, day))
    clusters = clusters_frame(result.state, result.assignments, day)
    write_parquet_atomic(clusters.to_arrow(), layout.table(CLUSTERS.path, day))
    history = history_frame(result.state, result.assignments, day)
    write_parquet_atomic(history.to_arrow(), layout.table(CLUSTER_HISTORY.path, day))
    daily = build_cluster_daily(settings, day)
    save_snapshot(layout, day, Snapshot(result.state, result.kept, built_from))
    return {ASSIGNMENTS.path: result.assignments, CLUSTERS.path: clusters, CLUSTER_HISTORY.path: history,
            CLUSTER_DAILY.path: daily}


def build_failures(settings: Settings, day: date, run_id: str | None = None,
                   config: FailureConfig | None = None, ahead: FramesAhead | None = None) -> dict[str, pl.DataFrame]:
    """Build every failure table of `day` in order, under the store's `failures` lock (a night is
    never interleaved with another process's); returns them by table name. The nights after
    `day` that continued from an earlier build of it are then stale: `refresh_stale` rebuilds them.
    A run over several days passes the same `ahead` (`ahead.EditsAhead` of its days) to each call, in
    day order: the day's edits are then diffed in a helper process while earlier nights run."""
    cfg = config or FailureConfig()
    layout = Layout(settings.store)
    with exclusive(layout.lock(LOCK)):
        return _night(settings, layout, day, run_id or f"adhoc-{uuid.uuid4().hex[:12]}", cfg, ahead)


def refresh_stale(settings: Settings, run_id: str | None = None, config: FailureConfig | None = None) -> list[date]:
    """Rebuild, in order, every built night that is stale (`store.is_stale`: an earlier night it
    continued from was rebuilt with another result, or built after it, by this run or another);
    returns the nights rebuilt. Afterwards every night's tables are what building every night in
    order from its current documents gives. Call it after building a run's nights; a night whose
    earlier nights are unchanged is only checked (a few small reads), not rebuilt."""
    cfg = config or FailureConfig()
    layout = Layout(settings.store)
    run = run_id or f"adhoc-{uuid.uuid4().hex[:12]}"
    rebuilt = []
    with exclusive(layout.lock(LOCK)):
        for day in snapshot_days(layout):
            if is_stale(layout, day, cfg.window_days):
                _night(settings, layout, day, run, cfg)
                rebuilt.append(day)
    return rebuilt
