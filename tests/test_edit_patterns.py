"""The edit-pattern table `failures/edit_patterns`: hand-computed on a tiny store, redaction, an
idempotent rebuild, an empty day, and the analysts' view."""

from __future__ import annotations

from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import query, run_pipeline, write_jsonl
from flywheel.catalog import build_catalog
from flywheel.failures.patterns import build_edit_patterns, edit_pattern_table
from flywheel.outcomes.resolve import build_event_outcomes
from flywheel.store import Layout
from flywheel.tables import EDIT_PATTERNS

D1 = date(2026, 3, 1)
D2 = date(2026, 3, 2)


def ev(eid: str, scenario: str, output: str | None, day: str = "2026-03-01") -> dict:
    return {"event_id": eid, "occurred_at": f"{day}T10:00:00Z", "scenario": scenario, "model": "m1",
            "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.5,
            "input_text": "a question", "output_text": output}


def iv(iid: str, eid: str, action: str, final: str | None = None, at: str = "2026-03-01T12:00:00Z") -> dict:
    out = {"intervention_id": iid, "event_id": eid, "occurred_at": at, "action": action, "review_seconds": 5}
    if final is not None:
        out["final_text"] = final
    return out


@pytest.fixture
def tiny(settings):
    """Day 1: four edited events in support_de (one only in a redacted e-mail address), one accepted
    and one rejected; one edited event in refund. Day 2: no events."""
    write_jsonl(settings.landing / "events" / "e.jsonl", [
        ev("de1", "support_de", "Können Sie mir helfen?"), ev("de2", "support_de", "Haben Sie Zeit?"),
        ev("de3", "support_de", "Haben Sie Zeit?"), ev("de4", "support_de", "Das ist gut."),
        ev("de5", "support_de", "Schreiben Sie an anna@example.com heute"),
        ev("de6", "support_de", "Wir sind da."),
        ev("rf1", "refund", "Your refund is approved."),
    ])
    write_jsonl(settings.landing / "interventions" / "i.jsonl", [
        iv("1", "de1", "edited", "Kannst du mir helfen?"),
        # de2 was edited twice: the deciding (last) intervention's final text counts
        iv("2a", "de2", "edited", "Haben du Zeit?"),
        iv("2b", "de2", "edited", "Hast du Zeit?", at="2026-03-01T13:00:00Z"),
        iv("3", "de3", "accepted"),
        iv("4", "de4", "edited", "Das ist nicht gut."),
        iv("5", "de5", "edited", "Schreiben Sie an bob@example.org heute"),
        iv("6", "de6", "rejected"),
        iv("7", "rf1", "edited", "Your credit is approved."),
    ])
    run_pipeline(settings, [D1])
    build_event_outcomes(settings, D1)
    build_event_outcomes(settings, D2)
    return settings


def test_hand_computed_table(tiny):
    got = build_edit_patterns(tiny, D1)
    rows = [r for r in got.select("scenario", "kind", "before", "after", "token", "events", "edited_events",
                                  "share").iter_rows()]
    # support_de: de1, de2, de4, de5 edited (de5 only in an address, redacted to [EMAIL] on both sides)
    assert rows == [
        ("refund", "substitution", "refund", "credit", "sub:refund>credit", 1, 1, 1.0),
        ("support_de", "substitution", "sie", "du", "sub:sie>du", 2, 4, 0.5),
        ("support_de", "insertion", "", "nicht", "ins:nicht", 1, 4, 0.25),
        ("support_de", "length", "added", "1", "len:added_1", 1, 4, 0.25),
        ("support_de", "substitution", "haben", "hast", "sub:haben>hast", 1, 4, 0.25),
        ("support_de", "substitution", "können", "kannst", "sub:können>kannst", 1, 4, 0.25),
    ]
    assert set(got["event_date"]) == {D1}
    assert got.filter(pl.col("token") == "sub:sie>du")["description"].to_list() == ["human replaced 'sie' with 'du'"]
    assert got.filter(pl.col("token") == "ins:nicht")["description"].to_list() == [
        "human added 'nicht' (AI omitted it)"]
    stored = pq.read_table(Layout(tiny.store).table(EDIT_PATTERNS.path, D1))
    assert stored.schema.equals(EDIT_PATTERNS.schema)
    assert pl.from_arrow(stored).equals(got)


def test_without_redaction_the_address_change_is_a_pattern():
    events = pl.DataFrame({"event_id": ["x"], "event_date": [D1], "scenario": ["s"], "input_text": ["q"],
                           "output_text": ["Write to anna@example.com"], "final_text": ["Write to bob@example.com"]})
    assert edit_pattern_table(events, redact=False)["token"].to_list() == ["sub:anna>bob"]
    redacted = edit_pattern_table(events, redact=True)
    assert redacted.height == 0 and redacted.schema == pl.from_arrow(EDIT_PATTERNS.schema.empty_table()).schema


def test_rebuild_is_idempotent(tiny):
    path = Layout(tiny.store).table(EDIT_PATTERNS.path, D1)
    first = build_edit_patterns(tiny, D1)
    before = pq.read_table(path)
    second = build_edit_patterns(tiny, D1)
    assert second.equals(first)
    assert pq.read_table(path).equals(before)
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]


def test_empty_day_writes_an_empty_table_with_its_schema(tiny):
    got = build_edit_patterns(tiny, D2)
    assert got.height == 0
    stored = pq.read_table(Layout(tiny.store).table(EDIT_PATTERNS.path, D2))
    assert stored.num_rows == 0 and stored.schema.equals(EDIT_PATTERNS.schema)


def test_a_day_without_outcomes_is_an_error(tiny):
    with pytest.raises(FileNotFoundError, match="event_outcomes"):
        build_edit_patterns(tiny, date(2026, 3, 5))


def test_the_view_answers_the_most_frequent_substitutions(tiny):
    build_edit_patterns(tiny, D1)
    build_edit_patterns(tiny, D2)
    build_catalog(tiny)
    rows = query(tiny, "SELECT scenario, before, after, sum(events) FROM failures.edit_patterns "
                       "WHERE kind = 'substitution' GROUP BY ALL ORDER BY 4 DESC, 1, 2 LIMIT 2")
    assert rows == [("support_de", "sie", "du", 2), ("refund", "refund", "credit", 1)]


def test_the_asset_materialises_a_range_of_days_with_metadata(tiny):
    import dagster as dg

    from assets.failures import edit_patterns
    from assets.jobs import range_tags
    from assets.resources import FlywheelResource

    resources = {"flywheel": FlywheelResource(landing=str(tiny.landing), store=str(tiny.store), db=str(tiny.db))}
    result = dg.materialize([edit_patterns], resources=resources, tags=range_tags(D1, D2))
    assert result.success
    mats = result.asset_materializations_for_node("failures__edit_patterns")
    assert sorted(m.partition for m in mats) == ["2026-03-01", "2026-03-02"]  # one run, both days
    assert {m.metadata["dagster/row_count"].value for m in mats} == {6}
    assert {m.metadata["top_substitutions_last_day"].value for m in mats} == {"no edited events"}  # D2 is empty
    for day in (D1, D2):
        assert Layout(tiny.store).table(EDIT_PATTERNS.path, day).exists()
    assert query(tiny, "SELECT count(*) FROM failures.edit_patterns") == [(6,)]


def test_the_cookbook_question_on_the_tiny_store(tiny):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "cookbook.md").read_text()
    (sql,) = re.findall(r"### 15\. Which words do reviewers always change\?\n.*?```sql\n(.*?)```", page, re.S)
    build_edit_patterns(tiny, D1)
    build_catalog(tiny)
    assert query(tiny, sql) == [("refund", "refund", "credit", 1, 1.0), ("support_de", "sie", "du", 2, 0.5),
                                ("support_de", "haben", "hast", 1, 0.25), ("support_de", "können", "kannst", 1, 0.25)]


def test_the_tables_page_section_is_what_the_database_says(tiny):
    from pathlib import Path

    from flywheel.analyst import tables_page

    build_edit_patterns(tiny, D1)
    build_catalog(tiny)
    page = tables_page(tiny)
    start = page.index("## `failures.edit_patterns`")
    section = page[start:page.index("\n## ", start)]
    committed = (Path(__file__).resolve().parents[1] / "docs" / "analyst-tables.md").read_text()
    assert section in committed, "run: flywheel docs tables > docs/analyst-tables.md"


def test_one_edit_frame_feeds_the_documents_and_the_patterns(tiny, monkeypatch):
    """documents.day_edits: the day's failing and edited events, redacted, each distinct edit diffed once."""
    from flywheel.failures import edits
    from flywheel.failures.documents import day_edits

    calls: list[tuple] = []
    real = edits.diff
    monkeypatch.setattr(edits, "diff", lambda d, f, s=None: calls.append((d, f)) or real(d, f, s))
    frame = day_edits(tiny, D1)
    # de3 (accepted as is) is neither failing nor edited; de6 (rejected) fails without an edit
    assert frame["event_id"].to_list() == ["de1", "de2", "de4", "de5", "de6", "rf1"]
    assert frame.filter("edited")["event_id"].to_list() == ["de1", "de2", "de4", "de5", "rf1"]
    assert frame.filter(pl.col("event_id") == "de6")["failing"].to_list() == [True]
    # de5 changed only the redacted address: edited, with no edit left to read
    assert len(calls) == 4 and ("Schreiben Sie an [EMAIL] heute", "Schreiben Sie an [EMAIL] heute") not in calls
    de2 = frame.filter(pl.col("event_id") == "de2").row(0, named=True)
    assert de2["edit_text"] == "sub:haben>hast sub:sie>du" and de2["edit_diff"] == "[-Haben Sie-]{+Hast du+} Zeit?"
    assert [p["token"] for p in de2["edit_patterns"]] == ["sub:haben>hast", "sub:sie>du"]
    assert frame.filter(pl.col("event_id").is_in(["de5", "de6"]))["edit_patterns"].to_list() == [[], []]
    # the stored table is the same whether its edits come from the frame or are read again
    assert edit_pattern_table(frame.filter("edited")).equals(build_edit_patterns(tiny, D1))


def test_a_night_of_both_readers_diffs_each_edit_once(tiny, monkeypatch):
    """The failure documents and the edit patterns of a night read one edit frame: the second
    reader diffs nothing (the tiny day has 4 distinct changes; de5's is redacted away), and gets the
    values the edits give when read afresh."""
    from flywheel.failures import build_failures, edits
    from flywheel.failures.documents import documents, failing_events
    from flywheel.failures.patterns import edited_events

    calls: list[tuple] = []
    real = edits.diff
    monkeypatch.setattr(edits, "diff", lambda d, f, s=None: calls.append((d, f)) or real(d, f, s))
    built = build_failures(tiny, D1, run_id="night-1")
    patterns = build_edit_patterns(tiny, D1)
    # each distinct change diffed once in the night: the second reader read the kept frame
    assert len(calls) == 4 and len(set(calls)) == 4
    assert Layout(tiny.store).table("_work/edits", D1).exists()
    monkeypatch.setattr(edits, "diff", real)
    assert patterns.equals(edit_pattern_table(edited_events(tiny, D1)))
    docs = documents(failing_events(tiny, D1))
    assigned = built["failures/assignments"].sort("event_id")
    assert assigned["event_id"].to_list() == sorted(docs["event_id"].to_list())
    from flywheel.failures.documents import day_documents
    assert day_documents(tiny, D1).equals(docs)


def test_a_rebuilt_day_gives_its_new_edits_not_the_kept_ones(tiny):
    """A late intervention re-decides de4 with another final text: the rebuilt day's edit patterns
    show the new edit (gut -> schlecht), not the kept frame's (nicht inserted)."""
    assert "ins:nicht" in build_edit_patterns(tiny, D1)["token"].to_list()
    write_jsonl(tiny.landing / "interventions" / "late.jsonl", [
        iv("4b", "de4", "edited", "Das ist schlecht.", at="2026-03-01T18:00:00Z")])
    run_pipeline(tiny, [D1])
    build_event_outcomes(tiny, D1)
    tokens = build_edit_patterns(tiny, D1).filter(pl.col("scenario") == "support_de")["token"].to_list()
    assert "sub:gut>schlecht" in tokens and "ins:nicht" not in tokens
    assert "len:added_1" not in tokens


def test_a_rebuilt_day_diffs_only_the_edits_its_late_reviews_changed(tiny, monkeypatch):
    """A late intervention re-decides de4: the night that rebuilds day 1 diffs de4's new edit only;
    the other three come from the kept frame (made by the same code), and the frame equals one
    computed afresh."""
    from dataclasses import replace

    from flywheel.failures import edits
    from flywheel.failures.documents import _compute_edits, _redact, day_edits, day_events

    day_edits(tiny, D1)
    write_jsonl(tiny.landing / "interventions" / "late.jsonl", [
        iv("4b", "de4", "edited", "Das ist schlecht.", at="2026-03-01T18:00:00Z")])
    run_pipeline(tiny, [D1])
    build_event_outcomes(tiny, D1)
    calls: list[tuple] = []
    real = edits.diff
    monkeypatch.setattr(edits, "diff", lambda d, f, s=None: calls.append((d, f)) or real(d, f, s))
    frame = day_edits(tiny, D1)
    assert calls == [("Das ist gut.", "Das ist schlecht.")]
    monkeypatch.setattr(edits, "diff", real)
    assert frame.equals(_compute_edits(tiny, day_events(tiny, D1)))
    assert frame.filter(pl.col("event_id") == "de4")["edit_text"].to_list() == ["sub:gut>schlecht"]
    # another redaction setting is another maker: nothing is lent, every edit is diffed
    calls.clear()
    monkeypatch.setattr(edits, "diff", lambda d, f, s=None: calls.append((d, f)) or real(d, f, s))
    plain = day_edits(replace(tiny, redact=False), D1)
    assert len(calls) == 5 and plain.equals(edits.edit_columns(day_events(tiny, D1), patterns=True))
    assert _redact(plain.select("output_text"))["output_text"].to_list() != plain["output_text"].to_list()


def test_edits_lent_by_a_known_frame_are_those_a_fresh_diff_gives():
    """`edit_columns(known=...)`: whatever `known` holds (the same rows, some of them, other rows,
    rows made without patterns), the result equals a fresh one; only triples it lacks are diffed."""
    from flywheel.failures import edits
    from flywheel.failures.edits import edit_columns

    drafts = ["Haben Sie Zeit?", "Das ist gut.", "Call 555 at 3 May", "x", None, "get_user() failed", "Wir sind da."]
    finals = ["Hast du Zeit?", "Das ist nicht gut.", "Call 556 at 4 May", "x", "new", "fetch_user() failed", None]
    sources = ["Do you have time?", None, "q", "x", None, "s", "We are here."]
    frame = pl.DataFrame({"output_text": drafts * 2, "final_text": finals * 2, "input_text": sources * 2})
    fresh = edit_columns(frame, patterns=True)
    assert edit_columns(frame, patterns=True, known=fresh).equals(fresh)
    late = frame.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("Das ist schlecht."))
                              .otherwise(pl.col("final_text")).alias("final_text"))
    seen: list[int] = []
    real = edits._read_all
    edits_read_all = lambda triples, *a, **k: seen.append(len(triples)) or real(triples, *a, **k)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(edits, "_read_all", edits_read_all)
        assert edit_columns(late, patterns=True, known=fresh).equals(edit_columns(late, patterns=True))
        assert seen == [1, 6]  # with known: the one new triple; without: all six (row 8 keeps the old)
        # in worker processes, the triples left to diff are the same and land on the same rows
        half = edit_columns(late.head(5), patterns=True)
        seen.clear()
        assert edit_columns(late, patterns=True, known=half, workers=2).equals(edit_columns(late, patterns=True))
        assert seen == [2, 6]  # rows 5 and 8 hold the two triples the first five rows lack
        seen.clear()
        # a known frame without the columns asked for (no patterns) lends nothing
        no_patterns = edit_columns(frame, patterns=False)
        seen.clear()
        assert edit_columns(frame, patterns=True, known=no_patterns).equals(fresh) and seen == [5]
        seen.clear()
        # a known frame of other texts lends nothing; an empty one neither
        other = edit_columns(pl.DataFrame({"output_text": ["a b"], "final_text": ["a c"], "input_text": [None]},
                                          schema={"output_text": pl.String, "final_text": pl.String,
                                                  "input_text": pl.String}), patterns=True)
        seen.clear()
        assert edit_columns(frame, patterns=True, known=other).equals(fresh)
        assert edit_columns(frame, patterns=True, known=other.head(0)).equals(fresh) and seen == [5, 5]
        seen.clear()
        # a known row without the edit a changed triple must have lends nothing: it is diffed again
        broken = fresh.with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(pl.lit([], dtype=pl.List(edits.PATTERN)))
            .otherwise(pl.col("edit_patterns")).alias("edit_patterns"))
        seen.clear()
        assert edit_columns(frame, patterns=True, known=broken).equals(fresh) and seen == [1]
        # a known frame with the source column missing matches only triples without a source
        no_source = edit_columns(frame.drop("input_text"), patterns=True)
        seen.clear()
        assert edit_columns(frame, patterns=True, known=no_source).equals(fresh) and seen == [3]


def test_the_kept_frame_follows_the_redaction_setting(tiny):
    """A frame kept with redaction on is not read back with it off: de5's address change shows."""
    from dataclasses import replace

    assert "sub:anna>bob" not in build_edit_patterns(tiny, D1)["token"].to_list()
    assert "sub:anna>bob" in build_edit_patterns(replace(tiny, redact=False), D1)["token"].to_list()


def test_diffing_in_a_process_pool_gives_the_same_columns():
    """`edit_columns` with two worker processes: the same values, in the same row order, as in one."""
    from flywheel.failures.edits import edit_columns

    drafts = ["Haben Sie Zeit?", "Das ist gut.", "Call 555 at 3 May", "x", None, "get_user() failed"]
    finals = ["Hast du Zeit?", "Das ist nicht gut.", "Call 556 at 4 May", "x", "new", "fetch_user() failed"]
    frame = pl.DataFrame({"output_text": drafts * 3, "final_text": finals * 3,
                          "input_text": ["Do you have time?", None, "q", "x", None, "s"] * 3})
    one = edit_columns(frame, patterns=True, workers=1)
    two = edit_columns(frame, patterns=True, workers=2)
    assert two.equals(one)
    assert one["edit_text"].to_list()[:2] == ["sub:haben>hast sub:sie>du", "ins:nicht len:added_1"]


def _edit_text_in_a_daemon(queue) -> None:
    from flywheel.failures.edits import edit_columns

    frame = pl.DataFrame({"output_text": ["Haben Sie Zeit?", "Das ist gut."], "final_text": ["Hast du Zeit?", "Das ist nicht gut."]})
    try:
        queue.put(edit_columns(frame, workers=2)["edit_text"].to_list())
    except Exception as exc:  # handed to the test
        queue.put(repr(exc))


def test_a_daemonic_process_diffs_in_itself():
    """A daemonic process (a worker of a prefork pool) may not start children: `edit_columns` diffs
    in the process itself there, with the same result."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    worker = ctx.Process(target=_edit_text_in_a_daemon, args=(queue,), daemon=True)
    worker.start()
    got = queue.get(timeout=120)
    worker.join(timeout=60)
    assert got == ["sub:haben>hast sub:sie>du", "ins:nicht len:added_1"]
