"""Resolve each event's outcome from its interventions, and measure its edits.

Rules (also in docs/outcomes.md):
- The latest intervention by `occurred_at` decides. On a tie, the more severe action wins
  (reverted > rejected > escalated > edited > accepted), then the larger `intervention_id`.
- `accepted` with a `final_text` that differs from `output_text` counts as `edited`
  (`accepted_with_changes` is true); `accepted` without `final_text`, or with the same text, is
  accepted as-is.
- An event nobody reviewed is `acted_alone` when it ran `gated` or `autonomous` and acted by
  itself: its `decision_path` route starts with "auto" or, with no route logged, it ran
  `autonomous`, or `gated` with confidence at or above the `decision_path` gate. Every other
  unreviewed event (shadow, assist, gated below the gate, failures routed to a human) is
  `awaiting_review`.
- Edit magnitude: for edited events, the normalised Levenshtein distance between `output_text` and
  the shipped text, in characters and in words (0 = same, 1 = nothing in common); an edit is
  `heavy` at or above FLYWHEEL_HEAVY_EDIT_THRESHOLD (default 0.3, on characters), else `light`.
  For shadow events the same distances say how far the AI's output was from what the human
  shipped (0 when accepted as-is).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl
import pyarrow as pa
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.sql import load_sql
from flywheel.store import Layout, write_batches_atomic
from flywheel.tables import EVENT_OUTCOMES, EVENTS, INTERVENTIONS

OUTCOMES = ("accepted", "edited", "rejected", "escalated", "reverted", "acted_alone", "awaiting_review")
REVIEWED = ("accepted", "edited", "rejected", "escalated", "reverted")


def edit_distances(output: list[str | None], shipped: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised Levenshtein distances (characters, words) between pairs; NaN where either is missing.

    Characters come out of rapidfuzz as float32 (its default), words as float64, as they always
    have: the stored values must not move by a rounding."""
    chars = np.full(len(output), np.nan)
    words = np.full(len(output), np.nan)
    idx = [i for i, (a, b) in enumerate(zip(output, shipped)) if a is not None and b is not None]
    if idx:
        a = [output[i] for i in idx]
        b = [shipped[i] for i in idx]
        chars[idx] = cpdist(a, b, scorer=Levenshtein.normalized_distance, workers=1)
        coded = _word_codes(a + b)
        pairs = (coded[:len(a)], coded[len(a):]) if coded is not None else ([x.split() for x in a], [y.split() for y in b])
        words[idx] = cpdist(*pairs, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=1)
    return chars, words


# str.split()'s whitespace: Unicode White_Space and the four separators \x1c-\x1f
_WORD = r"[^\s\x1c-\x1f]+"
_NOT_PLAIN = r"[[\s\x1c-\x1f]&&[^ ]]|  |^ | $|^$"  # anything str.split(" ") would split otherwise
_CODE_POINTS = 0x110000 - 0x800  # code points that are not surrogates


def _word_codes(texts: list[str]) -> list[str] | None:
    """Each text as a string with one character per word (the words of `str.split()`; equal words,
    equal characters), so that a character edit distance of two of them is their word edit
    distance; tokenised in polars rather than by a Python split per text. None when there are
    more distinct words than characters to code them with."""
    s = pl.Series(texts, dtype=pl.String)
    odd = s.str.contains(_NOT_PLAIN).to_numpy()
    order = np.r_[np.flatnonzero(~odd), np.flatnonzero(odd)]
    tokens = pl.concat([s.filter(~odd).str.split(" "), s.filter(odd).str.extract_all(_WORD)])
    lens = tokens.list.len().fill_null(0).to_numpy()
    codes = tokens.list.explode().drop_nulls().cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    if len(codes) and codes.max() >= _CODE_POINTS:
        codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)
        if codes.max() >= _CODE_POINTS:
            return None
    text = np.where(codes >= 0xD800, codes + 0x800, codes).astype("<u4").tobytes().decode("utf-32-le")
    ends = np.cumsum(lens)
    out: list[str] = [""] * len(texts)
    for i, start, end in zip(order.tolist(), (ends - lens).tolist(), ends.tolist()):
        out[i] = text[start:end]
    return out


_BATCH_ROWS = 262_144  # rows resolved at a time: a 10M-event day never sits in memory whole


def _measure(frame: pl.DataFrame, heavy: float) -> pl.DataFrame:
    """Add the edit distances and the edit class to rows of the outcome query; drop the texts."""
    edited = pl.col("outcome") == "edited"
    measured = edited | ((pl.col("autonomy_level") == "shadow") & (pl.col("outcome") == "accepted"))
    # distances only where they are kept (edited, and shadow accepted as-is: `same_text` is not
    # null); the same text is 0, and the query hands over the texts only where they differ
    flags = frame.select(pl.col("same_text").is_not_null().alias("both"), (~pl.col("same_text")).fill_null(False).alias("differ"))
    chars = np.where(flags["both"].to_numpy(), 0.0, np.nan)
    words = chars.copy()
    differ = np.flatnonzero(flags["differ"].to_numpy())
    if len(differ):
        changed = frame.select(pl.col("output_text", "shipped_text").gather(differ))
        chars[differ], words[differ] = edit_distances(changed["output_text"].to_list(), changed["shipped_text"].to_list())
    frame = frame.with_columns(
        pl.Series("edit_distance_chars", chars, dtype=pl.Float64).fill_nan(None),
        pl.Series("edit_distance_words", words, dtype=pl.Float64).fill_nan(None),
    )
    frame = frame.with_columns(
        pl.when(measured).then(pl.col("edit_distance_chars")).alias("edit_distance_chars"),
        pl.when(measured).then(pl.col("edit_distance_words")).alias("edit_distance_words"),
    ).with_columns(
        pl.when(edited & pl.col("edit_distance_chars").is_not_null())
        .then(pl.when(pl.col("edit_distance_chars") >= heavy).then(pl.lit("heavy")).otherwise(pl.lit("light")))
        .alias("edit_class"),
    )
    return frame.drop("same_text", "output_text", "shipped_text")


def resolve_batches(settings: Settings, day: date, rows: int = _BATCH_ROWS) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The outcome of every stored event of `day` (one row per event, in `occurred_at`, `event_id`
    order), as the schema of the result and an iterator of Arrow batches of at most `rows` rows."""
    layout = Layout(settings.store)
    con = connect(settings)  # held to FLYWHEEL_DUCKDB_MEMORY: a 10M-event day spills
    reader = con.sql(load_sql("event_outcomes"), params={
        "events": str(layout.day_file(EVENTS.path, day, EVENTS.schema)),
        "interventions": str(layout.day_file(INTERVENTIONS.path, day, INTERVENTIONS.schema)),
    }).to_arrow_reader(rows)
    heavy = settings.heavy_edit_threshold
    schema = _measure(pl.from_arrow(reader.schema.empty_table()), heavy).to_arrow().schema

    def batches() -> Iterator[pa.RecordBatch]:
        with con:  # closed (and its spill folder removed) when the last batch is read
            for batch in reader:
                yield from _measure(pl.from_arrow(batch), heavy).to_arrow().cast(schema).to_batches()
    return schema, batches()


def build_event_outcomes(settings: Settings, day: date) -> dict[str, int]:
    """Resolve and store the outcomes of `day` (replacing the day's file) a batch at a time;
    returns the number of events per outcome."""
    schema, batches = resolve_batches(settings, day)
    counts: Counter[str] = Counter()

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            counts.update(dict(pl.from_arrow(batch.select(["outcome"])).group_by("outcome").len().iter_rows()))
            yield batch
    write_batches_atomic(counted(), schema, Layout(settings.store).table(EVENT_OUTCOMES.path, day))
    return dict(counts)
