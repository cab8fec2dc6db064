"""Sample-data generator: realistic AI audit events and human interventions with known truth.

`generate(landing, days, events_per_day, seed, start, changes=True)` simulates a world of ten
scenarios (see `world.py`) day by day and writes into `landing`:

- `events/events-YYYY-MM-DD.<ext>`: the events delivered that day (about 1% arrive a day late);
- `interventions/interventions-YYYY-MM-DD.<ext>`: the interventions that occurred that day;
- `truth.json` and `truth_labels.parquet`: what the world was and what was written.

`<ext>` rotates deterministically over jsonl.gz (most days), jsonl, parquet and csv; the first four
days of a run use all four. About 0.5% exact duplicates and 0.5% malformed records (one defect
each, tagged with its `contracts.REASONS` code) are added to the valid records. Output is
byte-identical for the same (seed, start, days, events_per_day, changes).

With `changes=True` (the default) the world changes twice during the period: prompt v3, rolled
out on day `days // 2`, regresses `kb_answer`, and the emerging failure mode (`pii_exposure`) hits
`refund_request` and `order_status` from day `2 * days // 3`. With `changes=False` v3 is rolled out
with v2's rates everywhere and no emerging mode appears: a stable world (truth.json says
`"changes": false`, and `regression` and `emerging_failure_mode` are null).

truth.json keys: generator, seed, start, end, days, events_per_day, changes, events_by_day, scenarios,
latent_outcomes, fallback_outcome_probs, confidence_beta_by_latent_outcome, models,
prompt_versions, regression, emerging_failure_mode, failure_modes, tools, counts, malformed,
outcomes, outcome_definition, files, and the expected outcome shares among reviewed events
(`expected.py`): reviewed_outcome_probs (scenario -> segment -> {accepted, edited, rejected,
escalated, reverted}), reviewed_outcome_probs_by_model, reviewed_outcome_probs_segments,
reviewed_outcome_probs_complete_through, reviewed_outcome_probs_censored and
reviewed_outcome_probs_note.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from flywheel.generate.malformed import FileContent, assemble, plan_kinds
from flywheel.generate.records import make_context, simulate_day
from flywheel.generate.truth import Tally, build_truth, write_truth
from flywheel.generate.writers import write_file

FORMATS = ("jsonl.gz", "jsonl", "parquet", "csv")
_FIRST_DAYS = {"events": ("jsonl.gz", "parquet", "jsonl", "csv"), "interventions": ("csv", "jsonl.gz", "parquet", "jsonl")}
_CYCLE = ("jsonl.gz", "jsonl.gz", "parquet", "jsonl.gz", "jsonl", "jsonl.gz", "csv", "jsonl.gz")
_CYCLE_SHIFT = {"events": 0, "interventions": 3}

__all__ = ["FORMATS", "file_format", "generate"]


def file_format(family: str, day: int) -> str:
    """The format of `family`'s file on day index `day`: all four kinds in days 0-3, then mostly jsonl.gz."""
    if day < 4:
        return _FIRST_DAYS[family][day]
    return _CYCLE[(day - 4 + _CYCLE_SHIFT[family]) % len(_CYCLE)]


def generate(landing: Path, days: int = 30, events_per_day: int = 2000, seed: int = 7,
             start: date | None = None, progress: bool = True, changes: bool = True) -> dict[str, Any]:
    """Write `days` days of sample data into `landing` (see the module docstring); return the truth.

    `start` defaults to today (UTC) minus `days`, so the last generated day is yesterday. `changes`
    False generates a stable world: no v3 regression and no emerging failure mode.
    """
    if days < 1 or events_per_day < 1:
        raise ValueError("days and events_per_day must be at least 1")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    landing = Path(landing)
    if start is None:
        start = datetime.now(timezone.utc).date() - timedelta(days=days)
    elif isinstance(start, datetime):
        start = start.date()
    ctx = make_context(seed, start, days, events_per_day, bool(changes))
    formats = {fam: [file_format(fam, d) for d in range(days)] for fam in ("events", "interventions")}
    plan = plan_kinds(seed, ctx.counts, formats)
    for family in ("events", "interventions"):
        (landing / family).mkdir(parents=True, exist_ok=True)
        _remove_stale(landing / family, family, [start + timedelta(days=d) for d in range(days)])
    tally = Tally(ctx)
    labels: list[pl.DataFrame] = []
    pending: dict[int, list[pl.DataFrame]] = defaultdict(list)
    late_events: pl.DataFrame | None = None
    carried: dict[str, pl.DataFrame | None] = {"events": None, "interventions": None}
    # Files are serialised and compressed on a background thread (polars and zlib release the GIL)
    # while the next day is simulated; at most one day's files are in flight.
    in_flight: list[tuple[str, str, str, date, FileContent, Future[int]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-writer") as pool:
        for d in tqdm(range(days), desc="generating", unit="day", disable=not progress, file=sys.stderr):
            res = simulate_day(ctx, d)
            tally.add_day(d, res)
            labels.append(res.labels)
            on_time = res.events.filter(~pl.col("_late"))
            valid = {"events": pl.concat([late_events, on_time]) if late_events is not None else on_time}
            late_events = res.events.filter(pl.col("_late"))
            for (when,), part in res.interventions.partition_by("_day", as_dict=True, maintain_order=True).items():
                pending[int(when)].append(part)
            todays = pending.pop(d, [])
            valid["interventions"] = (pl.concat(todays).sort("_t", maintain_order=True) if todays
                                      else res.interventions.clear())
            rng = np.random.default_rng([seed, d, 202])
            day = start + timedelta(days=d)
            contents = []
            for family in ("events", "interventions"):
                fmt = formats[family][d]
                content, carried[family] = assemble(family, fmt, d, d == days - 1, valid[family], carried[family],
                                                    plan[family][d], rng, seed,
                                                    on_time if family == "interventions" else None)
                contents.append((f"{family}/{family}-{day.isoformat()}.{fmt}", family, fmt, content))
            _settle(tally, in_flight)
            in_flight = [(rel, family, fmt, day, content, pool.submit(write_file, landing / rel, fmt, family, content))
                         for rel, family, fmt, content in contents]
        _settle(tally, in_flight)
    truth = build_truth(ctx, tally, events_per_day)
    write_truth(landing, truth, pl.concat(labels))
    return truth


def _settle(tally: Tally, in_flight: list[tuple[str, str, str, date, FileContent, Future[int]]]) -> None:
    """Wait for the files in flight and count them, in submission order."""
    for rel, family, fmt, day, content, future in in_flight:
        tally.add_file(rel, family, fmt, day, content, future.result())


def _remove_stale(folder: Path, family: str, days: list[date]) -> None:
    """Remove earlier generated files for these days in any format, so a re-run never leaves two copies."""
    for day in days:
        for fmt in FORMATS:
            (folder / f"{family}-{day.isoformat()}.{fmt}").unlink(missing_ok=True)
