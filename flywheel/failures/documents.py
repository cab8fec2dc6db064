"""The failing events of a day, each turned into the text fields that describe its failure.

An event fails when its outcome is rejected, escalated or reverted, when it was edited with a
heavy edit, or when its status is error, timeout or fallback (`FAILING_OUTCOMES`,
`FAILING_STATUSES`). Its failure is described by separate fields (`FIELDS`, what the featurizer
hashes), kept apart so the featurizer can weigh them: `reason_text` (the deciding intervention's
reason code split into words; codes that say nothing, such as "other", are dropped),
`comment_text`, `draft_text` (the draft itself), `status_text` (error or timeout: no output and no
review, so the status is the main evidence), `system_text` (`error.type` and `error.message` from
the attributes, tools that failed or were denied, a fallback) and `edit_text`: what the human
changed between the AI's draft (`output_text`) and what they shipped (the deciding intervention's
`final_text`), as the edit tokens of `edits.edit_tokens` ("sub:sie>du", "ins:nicht",
"flag:numbers", "len:added_5_12"), computed on the redacted texts with their case and the event's
`input_text` as the source (an output that copies it is flagged), and "len:same" where the edit
kept the length (the tokens have no bucket for that: without it an edit whose spans are all its
own shares nothing: 3 of MLQE-PE's 5,704 heavy edits fit no cluster in examples/mlqe_pe); "" when there is no
final text or it equals the draft. `removed_words` and `added_words` (set differences of the word tokens of
draft and final text, sorted) are still made for model states saved before edit_text existed,
which hash them (`TEXT_FIELDS`); edit_text replaced them as features (measured in
`features`). Every field is lower-cased with each digit written as 0 (in edit_text: in the edited
spans, not in the length buckets; a number replaced by one of the same shape is left to
flag:numbers), so amounts, ids and card numbers keep their shape but not their value. `edit_diff` is the readable diff ("[-Sie-]{+du+}", `edits.render_diff`) and `summary` the
evidence in one readable line: reason, comment, the diff, status, system, outcome (what
exemplars show). The outcome itself is not a feature: the same failure is sometimes rejected and
sometimes rewritten.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.failures.edits import edit_columns
from flywheel.objectstore import AnyPath, read_table
from flywheel.privacy import redact_series
from flywheel.schemas import STORED
from flywheel.sql import load_sql
from flywheel.store import Layout, exclusive, write_parquet_atomic
from flywheel.tables import EVENT_OUTCOMES

FAILING_OUTCOMES: tuple[str, ...] = ("rejected", "escalated", "reverted")
FAILING_STATUSES: tuple[str, ...] = ("error", "timeout", "fallback")
NO_OUTPUT_STATUSES: tuple[str, ...] = ("error", "timeout")
HEAVY = "heavy"
# Reason codes that carry no information about what went wrong.
GENERIC_REASONS: tuple[str, ...] = ("other", "others", "none", "n/a", "na", "unknown", "misc", "general")
# The fields a featurizer hashes (`features.Featurizer.fields`), and every text field a document
# has: removed_words and added_words are only hashed by model states saved before edit_text.
FIELDS: tuple[str, ...] = ("reason_text", "comment_text", "draft_text", "status_text", "system_text", "edit_text")
TEXT_FIELDS: tuple[str, ...] = (*FIELDS, "removed_words", "added_words")

# Word tokens for the edit diff: runs of letters or digits (digits already written as 0).
_WORD = r"[^\W_]+"

DOCUMENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(), "event_date": pl.Date(), "scenario": pl.String(), "model": pl.String(),
    "prompt_version": pl.String(), "status": pl.String(), "outcome": pl.String(), "edit_class": pl.String(),
    "reason_code": pl.String(), "comment": pl.String(), "final_intervention_id": pl.String(),
    **{f: pl.String() for f in TEXT_FIELDS}, "edit_diff": pl.String(), "summary": pl.String(),
}


def day_events(settings: Settings, day: date) -> pl.DataFrame:
    """The events of `day` that the failure tables read, with their raw evidence (outcome, reason,
    comment, texts, errors) and two flags: `failing` (see the module docstring) and `edited` (the
    deciding intervention shipped a final text different from the draft; a null draft is "").
    Every other event of the day is left out; rows are sorted by event_id.

    Assumes `outcomes/event_outcomes` of `day` is built; raises FileNotFoundError when it is not.
    """
    layout = Layout(settings.store)
    outcomes: Path = layout.table(EVENT_OUTCOMES.path, day)
    if not outcomes.exists():
        raise FileNotFoundError(f"{outcomes} does not exist: build outcomes/event_outcomes for {day} first")
    with connect(settings) as con:
        return con.sql(load_sql("day_events"), params={
            "outcomes": str(outcomes), "events": str(layout.day_file("events", day, STORED["events"])),
            "interventions": str(layout.day_file("interventions", day, STORED["interventions"])),
            "outcomes_failing": list(FAILING_OUTCOMES), "statuses_failing": list(FAILING_STATUSES), "heavy": HEAVY,
        }).pl()


def failing_events(settings: Settings, day: date) -> pl.DataFrame:
    """The failing events of `day` with their raw evidence (outcome, reason, comment, texts, errors).

    Assumes `outcomes/event_outcomes` of `day` is built; raises FileNotFoundError when it is not.
    Rows are sorted by event_id.
    """
    return day_events(settings, day).filter("failing").drop("failing", "edited")


def day_edits(settings: Settings, day: date, rows: str | None = None, ahead: FramesAhead | None = None) -> pl.DataFrame:
    """The day's edit frame: `day_events`, its free text redacted unless FLYWHEEL_REDACT is off
    (`REDACTED`, `settings.redact`), with each event's edit read once from the redacted texts
    (`edits.edit_columns`: `edit_text`, `edit_diff`, `edit_patterns`). It feeds both the failure
    documents (`day_documents`) and the edit patterns (`patterns.build_edit_patterns`), so the two
    read the same edits. With `rows` ("failing" or "edited") only those rows, with what their reader
    needs: the failing rows without `edit_patterns`, the edited rows without `edit_diff`.

    The frame is computed once per version of the day's inputs: the first reader of a night diffs
    and redacts, and keeps the frame in the store (`EDITS`, one Parquet file per day) with the
    fingerprint of what it was computed from (`_fingerprint`: the day's `day_events` rows, the
    redaction setting and the code that reads edits); a later reader whose `day_events` give the
    same fingerprint reads it back, any other recomputes it (a rebuilt day, late interventions,
    another version of flywheel), diffing only the edits the kept frame lacks when that frame was
    made by the same code (`_maker`): a day rebuilt for a few late reviews diffs those (2025-01-30
    of the bench's 100k-event days, 14,470 rows, 3% of its edits changed: 2.45 s afresh, 0.34 s
    with the kept frame, the same frame). Readers take the store's `edits` lock, so two steps running at
    once diff a day once (on the 1M-event day of `bench/deploy_bench`, seed 7: 150,797 rows,
    84,856 distinct edits, of which the failing rows alone hold 38,854; each reader diffed its own
    before). With `ahead` (`FramesAhead`, e.g. `ahead.EditsAhead`), a frame it computed in a helper
    process from the same rows is kept instead of diffing them here."""
    frame = day_events(settings, day)
    edits = _edit_frame(settings, day, frame, ahead)
    if rows is None:
        return edits
    return edits.filter(rows).drop("edit_patterns" if rows == "failing" else "edit_diff")


class FramesAhead(Protocol):
    """Edit frames computed ahead, elsewhere (`ahead.EditsAhead`): `take` gives the frame of `day`
    when it was computed from rows whose `_fingerprint` is `key`, else None."""

    def take(self, day: date, key: str) -> pl.DataFrame | None: ...


# Where `day_edits` keeps each day's edit frame: a private working file of the store, no table.
EDITS = "_work/edits"
# The Parquet key-value metadata entry that holds the frame's `_fingerprint`.
_FINGERPRINT = b"flywheel.edits.fingerprint"
_MAKER = b"flywheel.edits.maker"  # `_maker` of the kept frame
LOCK = "edits"


def _edit_frame(settings: Settings, day: date, frame: pl.DataFrame, ahead: FramesAhead | None = None
                ) -> pl.DataFrame:
    """The edit frame of `frame` (all of `day_events` of `day`): read back from `EDITS` when it
    was computed from the same inputs, else taken from `ahead` when it computed it from the same
    rows, else computed; kept there in both cases."""
    if frame.height == 0:
        return _compute_edits(settings, frame)
    layout = Layout(settings.store)
    path = layout.table(EDITS, day)
    key = _fingerprint(frame, settings.redact).encode()
    maker = _maker(settings.redact).encode()
    # waited for before the lock: another process's reader of another day need not wait for the helper
    taken = ahead.take(day, key.decode()) if ahead is not None else None
    with exclusive(layout.lock(LOCK)):
        current, known = _kept(path, key, maker)
        if current is not None:
            return current
        edits = taken if taken is not None else _compute_edits(settings, frame, known)
        table = edits.to_arrow()
        write_parquet_atomic(table.replace_schema_metadata({**(table.schema.metadata or {}), _FINGERPRINT: key,
                                                            _MAKER: maker}), path)
    return edits


def prepare_edit_frame(settings: Settings, day: date) -> tuple[str, pl.DataFrame] | None:
    """The edit frame of `day` as `day_edits` would compute it, with the fingerprint of the rows it
    was computed from; None when the frame kept in the store is already current (or the day has no
    rows). Writes nothing and takes no lock: a helper process's side of `ahead.EditsAhead` (the
    frame it reads to lend diffs from is replaced only by atomic renames)."""
    frame = day_events(settings, day)
    if frame.height == 0:
        return None
    key = _fingerprint(frame, settings.redact)
    current, known = _kept(Layout(settings.store).table(EDITS, day), key.encode(), _maker(settings.redact).encode())
    return None if current is not None else (key, _compute_edits(settings, frame, known))


def _kept(path: AnyPath, key: bytes, maker: bytes) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """The edit frame kept at `path` as (current, known): current when it was computed from the rows
    whose fingerprint is `key`; known when the same code (`maker`) computed it from other rows (its
    diffs still hold: it lends them); (None, None) when there is none or another version made it."""
    if not path.exists():
        return None, None
    table = read_table(path)
    metadata = table.schema.metadata or {}
    if metadata.get(_FINGERPRINT) == key:
        return pl.from_arrow(table), None  # type: ignore[return-value]
    if metadata.get(_MAKER) == maker:
        return None, pl.from_arrow(table)  # type: ignore[return-value]
    return None, None


def _compute_edits(settings: Settings, frame: pl.DataFrame, known: pl.DataFrame | None = None) -> pl.DataFrame:
    if settings.redact:
        frame = _redact(frame)
    return edit_columns(frame, patterns=True, rendered=True, known=known)


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of the source of the modules that make the edit frame (redaction, edit reading,
    this one): a kept frame made by other code is not read back."""
    from flywheel import privacy
    from flywheel.failures import edits

    digest = hashlib.sha256()
    for module in (privacy, edits, sys.modules[__name__]):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _versions() -> str:
    """The versions the diffs depend on besides flywheel's code: polars, rapidfuzz (the alignment),
    Python and its Unicode tables (`re`'s word characters, `str.isupper`)."""
    import unicodedata

    import rapidfuzz

    return (f"polars {pl.__version__} rapidfuzz {rapidfuzz.__version__} python {sys.version_info[:2]} "
            f"unicode {unicodedata.unidata_version}")


def _maker(redact: bool) -> str:
    """What makes an edit frame's diffs what they are, whatever its rows: `_code_digest`,
    `_versions` and the redaction setting. A kept frame with the same maker lends its diffs to the
    day's next frame (`edits.edit_columns`' `known`): a night whose late reviews changed a few of a
    rebuilt day's rows diffs those rows only."""
    return hashlib.sha256(f"{_code_digest()} {_versions()} {redact}".encode()).hexdigest()


def _fingerprint(frame: pl.DataFrame, redact: bool) -> str:
    """What the edit frame of `frame` is computed from: its schema, its rows (polars' row hashes,
    stable within one polars version; another version gives another fingerprint), the redaction
    setting, `_code_digest` and `_versions`."""
    digest = hashlib.sha256(f"{_code_digest()} {_versions()} {redact} {frame.height} {frame.schema}".encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def _norm(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.replace_all(r"\d", "0").fill_null("")


# Free text that may carry personal data; redacted (on by default) before anything is derived from it.
REDACTED: tuple[str, ...] = ("comment", "input_text", "output_text", "final_text", "error_message")


def documents(raw: pl.DataFrame, redact: bool = True) -> pl.DataFrame:
    """The text fields of each failing event (see the module docstring), from `failing_events` rows.

    Needs the columns event_id, event_date, scenario, status, outcome, reason_code, comment,
    output_text and final_text; model, prompt_version, edit_class, input_text, error_type,
    error_message and failed_tools are used when present. Returns the columns of
    `DOCUMENT_SCHEMA`, in input order. With `redact` (the default), e-mail addresses, phone and
    card numbers in the free text (`REDACTED`) are replaced by [EMAIL], [PHONE], [CARD] first
    (`flywheel.privacy.redact`), so neither the features, the labels, the edits nor the
    exemplars' summaries hold them. Rows that come with their edit (`edit_text` and `edit_diff` of
    `edits.edit_columns`, as `day_edits` gives them) are not diffed again.
    """
    frame = _redact(raw) if redact else raw
    for name, dtype in (("model", pl.String()), ("prompt_version", pl.String()), ("edit_class", pl.String()),
                        ("final_intervention_id", pl.String()), ("input_text", pl.String()),
                        ("error_type", pl.String()), ("error_message", pl.String()),
                        ("failed_tools", pl.List(pl.String()))):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(name))
    frame = frame.with_columns(pl.col(*TEXTS).cast(pl.String))
    if "edit_text" not in frame.columns or "edit_diff" not in frame.columns:
        # The edit operations, on the redacted texts with their case (a casing-only edit is one).
        frame = edit_columns(frame)
    code = _norm(pl.col("reason_code")).str.strip_chars()
    # Errors and timeouts have no output and no review: their status is their main evidence. A
    # fallback served a canned reply that a reviewer usually judged: its status is one more detail.
    no_output = pl.col("status").is_in(list(NO_OUTPUT_STATUSES))
    other_status = ~no_output & (pl.col("status") != "ok")
    system = pl.concat_str([
        pl.when(other_status).then(pl.lit("status_") + pl.col("status")).otherwise(pl.lit("")),
        pl.col("error_type").fill_null(""), pl.col("error_message").fill_null(""),
        pl.col("failed_tools").fill_null([]).list.join(" ")], separator=" ")
    frame = frame.join(_text_fields(frame.select(TEXTS).unique(maintain_order=True)), on=list(TEXTS), how="left",
                       nulls_equal=True, maintain_order="left")
    frame = frame.with_columns(_edit_text(pl.col("edit_text")).alias("edit_text"), pl.col("edit_diff").fill_null(""))
    frame = frame.with_columns(
        pl.when(code.is_in(list(GENERIC_REASONS))).then(pl.lit("")).otherwise(code.str.replace_all(r"[_\-/.]+", " "))
        .alias("reason_text"),
        _norm(pl.col("comment")).alias("comment_text"),
        pl.when(no_output).then(pl.lit("status_") + pl.col("status")).otherwise(pl.lit("")).alias("status_text"),
        _norm(system).str.strip_chars().str.replace_all(r"\s+", " ").alias("system_text"),
    )
    summary = pl.concat_str([
        _part("reason", pl.col("reason_code")), _part("comment", pl.col("comment")),
        _part("edit", pl.col("edit_diff")),
        _part("status", pl.when(pl.col("status") != "ok").then(pl.col("status"))),
        _part("system", pl.col("system_text")), pl.lit("outcome: ") + pl.col("outcome"),
    ])
    out = frame.with_columns(summary.alias("summary"), pl.col("event_date").cast(pl.Date))
    return out.select(list(DOCUMENT_SCHEMA))


TEXTS: tuple[str, ...] = ("output_text", "final_text", "input_text")
def _text_fields(texts: pl.DataFrame) -> pl.DataFrame:
    """Per distinct (output_text, final_text, input_text): draft_text, removed_words and
    added_words (each distinct triple once: real logs repeat drafts and edits a lot)."""
    out_words = _norm(pl.col("output_text")).str.extract_all(_WORD)
    fin_words = _norm(pl.col("final_text")).str.extract_all(_WORD)
    changed = pl.col("final_text").is_not_null() & (pl.col("final_text") != pl.col("output_text").fill_null(""))
    removed = out_words.list.set_difference(fin_words).list.sort().list.join(" ")
    added = fin_words.list.set_difference(out_words).list.sort().list.join(" ")
    return texts.select(
        *TEXTS,
        _norm(pl.col("output_text")).alias("draft_text"),
        pl.when(changed).then(removed).otherwise(pl.lit("")).alias("removed_words"),
        pl.when(changed).then(added).otherwise(pl.lit("")).alias("added_words"),
    )


SAME_LENGTH = "len:same"


def _edit_text(tokens: pl.Expr) -> pl.Expr:
    """`edits.edit_tokens` text as a document field: digits as 0 in the edited spans
    ("sub:000.00>0.00"), not in the length buckets ("len:added_5_12"); an edit that left the
    length as it was, which the tokens give no bucket, gets `SAME_LENGTH`, so that an edit whose
    spans are all its own still shares a feature with edits like it."""
    masked = pl.when(pl.element().str.starts_with("len:")).then(pl.element()) \
        .otherwise(pl.element().str.replace_all(r"\d", "0"))
    # A number replaced by one of the same shape ("sub:12>15" -> "sub:00>00") says no more than
    # flag:numbers, which it comes with: dropped.
    same_shape = masked.str.extract(r"^sub:([^>]*)>", 1) == masked.str.extract(r"^sub:[^>]*>(.*)$", 1)
    text = tokens.fill_null("").str.split(" ").list.eval(masked.filter(~same_shape.fill_null(False))).list.join(" ")
    same = (text != "") & ~text.str.contains(r"(^| )len:(added|removed)_")
    return pl.when(same).then(text + pl.lit(" " + SAME_LENGTH)).otherwise(text)


def _part(name: str, value: pl.Expr) -> pl.Expr:
    return pl.when(value.fill_null("") != "").then(pl.lit(f"{name}: ") + value + pl.lit("; ")).otherwise(pl.lit(""))


def day_documents(settings: Settings, day: date, ahead: FramesAhead | None = None) -> pl.DataFrame:
    """`documents` of the failing rows of `day_edits`: the failing events of `day` ready to
    featurize, redacted unless FLYWHEEL_REDACT is off (`settings.redact`). `ahead`: see `day_edits`."""
    return documents(day_edits(settings, day, rows="failing", ahead=ahead), redact=False)


def _redact(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with e-mail addresses, phone and card numbers replaced in its `REDACTED` text columns."""
    return frame.with_columns([redact_series(frame[c]) for c in REDACTED if c in frame.columns
                               and frame.schema[c] == pl.String])
