"""Failure cluster names made from what the human changed and what the reviewers said, distinct,
with a fallback from what the events share; documents carrying the edit; model states saved
before edit_text still loading and continuing."""

from __future__ import annotations

import io
import json
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flywheel.failures.documents import FIELDS, TEXT_FIELDS, documents
from flywheel.failures.features import LEGACY_FIELDS, Featurizer
from flywheel.failures.labels import ctfidf, fallback_name, label, names, render, term_counts, top_terms
from flywheel.failures.model import FailureConfig, ModelState, advance
from flywheel.failures.store import Snapshot

D1 = date(2026, 3, 1)
D2 = D1 + timedelta(days=1)
TEXTS = {"reason_code": pl.String, "comment": pl.String, "input_text": pl.String, "output_text": pl.String,
         "final_text": pl.String}


def _docs(rows: list[dict]) -> pl.DataFrame:
    base = {"scenario": "translation_ende", "status": "ok", "outcome": "edited", "reason_code": None, "comment": None,
            "input_text": None, "final_text": None}
    return documents(pl.DataFrame([{**base, **r} for r in rows], schema_overrides=TEXTS))


# ----------------------------------------------------------------------------- names by hand

def test_edit_tokens_are_named_as_a_person_says_them():
    assert render("sub:sie>du") == "human replaced 'sie' with 'du'"
    assert render("flag:numbers") == "numbers changed"
    assert render("len:added_5_12") == "omission: 5-12 words added"
    assert render("wrong amount") == "wrong amount"  # words stay words
    assert render("len:same") == "length unchanged"  # documents' own bucket for an edit of the same length
    assert label(["flag:numbers", "sub:sie>du", "refund", "ins:nicht"]) == \
        "numbers changed / human replaced 'sie' with 'du' / refund"
    # One net length change per direction: the second "added" bucket is skipped.
    assert label(["len:added_2_4", "len:added_5_12", "len:removed_1", "flag:names"]) == \
        "omission: 2-4 words added / addition: 1 word removed / names changed"


def test_a_name_is_made_of_the_most_distinctive_edits_and_words():
    # Cluster 0: six events whose reviewer replaced "Sie" with "du", two of them also "numbers";
    # cluster 1: the reason code "wrong amount" and numbers on every event.
    counts = [{"sub:sie>du": 6, "flag:numbers": 2}, {"wrong": 4, "amount": 4, "wrong amount": 4, "flag:numbers": 4}]
    weights = ctfidf(counts)
    # A = (8 + 16) / 2 = 12; f(sub:sie>du) = 6, f(flag:numbers) = 6, f(wrong amount) = 4.
    assert weights[0]["sub:sie>du"] == pytest.approx(6 / 8 * math.log(1 + 12 / 6))
    assert weights[1]["wrong amount"] == pytest.approx(4 / 16 * math.log(1 + 12 / 4))
    terms = [top_terms(w, 5) for w in weights]
    # "wrong amount" and its words tie; the pair is taken first alphabetically after "amount",
    # then "wrong" adds nothing new.
    assert terms[0] == ["sub:sie>du", "flag:numbers"]
    assert terms[1] == ["amount", "wrong", "flag:numbers"]
    traits = [{"scenario:a": 6}, {"scenario:a": 4}]
    assert names(terms, traits, [1, 2]) == ["human replaced 'sie' with 'du' / numbers changed",
                                            "amount / wrong / numbers changed"]


def test_a_cluster_with_no_distinctive_term_is_named_from_what_its_events_share():
    assert fallback_name({"outcome:rejected": 5, "status:ok": 5, "scenario:refund_request": 5}) == \
        "rejected without a reason (refund_request)"
    # 3 of 5 rejected is not 80%: the two commonest outcomes; no scenario has half of them.
    assert fallback_name({"outcome:rejected": 3, "outcome:escalated": 2, "status:ok": 5, "scenario:a": 3,
                          "scenario:b": 1, "scenario:c": 1}) == "rejected or escalated without a reason (a)"
    assert fallback_name({"outcome:rejected": 3, "outcome:escalated": 2, "status:ok": 5, "scenario:a": 2,
                          "scenario:b": 1, "scenario:c": 1, "scenario:d": 1}) == \
        "rejected or escalated without a reason (several scenarios)"
    assert fallback_name({"outcome:awaiting_review": 4, "status:timeout": 3, "status:ok": 1, "scenario:s": 4}) == \
        "not reviewed without a reason, status timeout (s)"
    assert names([[]], [{"outcome:rejected": 2, "scenario:refund_request": 2}], [7]) == \
        ["rejected without a reason (refund_request)"]


def test_names_are_distinct_next_term_then_scenario_then_id():
    terms = [["flag:numbers", "refund"], ["flag:numbers", "credit"], ["flag:numbers"], ["flag:numbers"], ["tone"]]
    traits = [{"scenario:a": 1}, {"scenario:a": 1}, {"scenario:a": 3}, {"scenario:b": 2}, {"scenario:a": 1}]
    got = names(terms, traits, [1, 2, 3, 4, 5], n=1)
    assert got == ["numbers changed / refund", "numbers changed / credit", "numbers changed (a)", "numbers changed (b)",
                   "tone"]
    # The same terms and scenario: only the id tells them apart.
    assert names([["tone"], ["tone"]], [{"scenario:a": 1}, {"scenario:a": 1}], [8, 9]) == ["tone (a) #8", "tone (a) #9"]
    # Two fallback names that agree are told apart by the id (the scenario is already in them).
    same = {"outcome:rejected": 2, "scenario:a": 2}
    assert names([[], []], [same, same], [3, 4]) == ["rejected without a reason (a) #3",
                                                     "rejected without a reason (a) #4"]
    assert len(set(got)) == len(got)


def test_term_counts_hold_words_and_edit_tokens():
    docs = _docs([
        {"event_id": "a", "event_date": D1, "reason_code": "wrong_amount", "output_text": "Sie zahlen 10 Euro",
         "final_text": "du zahlst 12 Euro"},
        {"event_id": "b", "event_date": D1, "output_text": "Sie zahlen", "final_text": "du zahlen"},
    ])
    counts = term_counts(docs, np.array([0, 0]), 1)[0]
    assert counts["wrong amount"] == 1 and counts["wrong"] == 1
    assert counts["sub:sie>du"] == 2 and counts["sub:zahlen>zahlst"] == 1
    # 10 -> 12: digits keep their shape only, and a number replaced by one of its shape is flag:numbers alone
    assert "sub:00>00" not in counts and counts["flag:numbers"] == 1
    assert not any(t[:1].isdigit() or (":" in t and "len:" not in t and any(ch in "123456789" for ch in t))
                   for t in counts)


# ----------------------------------------------------------------------------- documents

def test_documents_carry_the_edit_tokens_and_the_diff_of_the_redacted_texts():
    frame = _docs([
        {"event_id": "a", "event_date": D1, "input_text": "You get 120 euros back, mail me at ann@example.com",
         "output_text": "Sie bekommen 120 Euro zurück", "final_text": "Du bekommst 90 Euro zurück, an ann@example.com"},
        {"event_id": "b", "event_date": D1, "outcome": "rejected", "output_text": "Sie bekommen 120 Euro zurück"},
        {"event_id": "c", "event_date": D1, "output_text": "Sie sind dran", "final_text": "du bist dran"},
    ])
    a, b, c = frame.row(0, named=True), frame.row(1, named=True), frame.row(2, named=True)
    assert c["edit_text"].split()[-1] == "len:same" and "len:same" not in a["edit_text"]  # 3 words stay 3
    tokens = a["edit_text"].split()
    assert "flag:numbers" in tokens
    assert any(t.startswith("len:added_") for t in tokens)  # 4 words became 7
    assert not any(ch.isdigit() for t in tokens if not t.startswith("len:") for ch in t.replace("0", ""))
    assert "[-" in a["edit_diff"] and "{+" in a["edit_diff"] and "Du" in a["edit_diff"]  # case kept
    assert "ann@example.com" not in a["edit_diff"] + a["edit_text"] + a["summary"]
    assert "[EMAIL]" in a["edit_diff"]
    assert a["summary"].startswith("edit: " + a["edit_diff"][:20])
    assert b["edit_text"] == "" and b["edit_diff"] == "" and "edit:" not in b["summary"]
    assert set(FIELDS) < set(TEXT_FIELDS) and "edit_text" in FIELDS and "removed_words" not in FIELDS


# ----------------------------------------------------------------------------- the model names its clusters

# Three of the register edits also shorten the draft: every edit that keeps the length shares
# "len:same", and on a first night of 30 events two small modes that both keep it merged.
DU = [("Können Sie mir bitte helfen", "Kannst du mir helfen"), ("Sie haben recht", "du hast recht"),
      ("Wissen Sie das schon", "Weißt du das"), ("Sie sind jetzt dran", "du bist dran"), ("Haben Sie Zeit", "Hast du Zeit")]
NUM = [("Es kostet 12 Euro", "Es kostet 15 Euro"), ("Er kam 1999 an", "Er kam 2001 an"),
       ("Nur 3 Tage", "Nur 4 Tage"), ("Seite 10 lesen", "Seite 12 lesen"), ("Um 8 Uhr", "Um 9 Uhr")]


def _edited(prefix: str, day: date, pairs: list[tuple[str, str]], n: int) -> list[dict]:
    return [{"event_id": f"{prefix}{i:03d}", "event_date": day, "output_text": pairs[i % len(pairs)][0],
             "final_text": pairs[i % len(pairs)][1]} for i in range(n)]


def test_clusters_of_edits_alone_are_named_by_the_edit_and_distinct():
    docs = _docs(_edited("du-", D1, DU, 10) + _edited("num-", D1, NUM, 10) + [
        {"event_id": f"rej-{i}", "event_date": D1, "outcome": "rejected", "scenario": "refund_request",
         "output_text": f"the refund of {i} dollars is on its way"} for i in range(10)])
    result = advance(ModelState(FailureConfig().featurizer), docs, D1, "r1")
    a = result.assignments
    by_id = {c.cluster_id: c for c in result.state.clusters}
    name = {p: by_id[a.filter(pl.col("event_id").str.starts_with(p))["cluster_id"][0]].label
            for p in ("du-", "num-", "rej-")}
    assert a["cluster_id"].null_count() == 0 and len(by_id) == 3
    assert "numbers changed" in name["num-"]
    assert "'du'" in name["du-"] and "numbers" not in name["du-"]
    # Drafts rejected without a word: nothing distinctive to say but what they share.
    assert name["rej-"] == "rejected without a reason (refund_request)"
    labels = [c.label for c in result.state.clusters]
    assert len(set(labels)) == len(labels) and all(labels)
    exemplar = by_id[a.filter(pl.col("event_id") == "num-000")["cluster_id"][0]].exemplars[0]["summary"]
    assert exemplar.startswith("edit: ") and "{+" in exemplar


# ----------------------------------------------------------------------------- states saved before edit_text

def _as_saved_before_edit_text(state: ModelState) -> bytes:
    """The state's bytes as a version without `fields` and `traits` wrote them."""
    with np.load(io.BytesIO(state.to_bytes())) as z:
        parts = {k: z[k] for k in z.files}
    meta = json.loads(parts["meta"].tobytes().decode())
    del meta["featurizer"]["fields"]
    for c in meta["clusters"]:
        del c["traits"]
    parts["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **parts)
    return buf.getvalue()


def _coded(rows: list[dict], reason: str) -> list[dict]:
    return [{**r, "reason_code": reason} for r in rows]


def test_a_state_saved_before_edit_text_loads_and_continues_with_its_own_fields():
    legacy = Featurizer(weights={"reason_text": 1.0, "comment_text": 1.0, "removed_words": 0.5, "added_words": 0.2,
                                 "draft_text": 0.5, "status_text": 1.0, "system_text": 0.5}, fields=LEGACY_FIELDS)
    cfg = FailureConfig(featurizer=legacy)
    first = advance(ModelState(legacy), _docs(_coded(_edited("du1-", D1, DU, 10), "register")
                                              + _coded(_edited("num1-", D1, NUM, 10), "wrong_number")), D1, "r1", cfg)
    old = ModelState.from_bytes(_as_saved_before_edit_text(first.state))
    assert old.featurizer.fields == LEGACY_FIELDS and old.featurizer.width == 7 * legacy.n_features
    assert old.sums.shape[1] == old.featurizer.width and [c.traits for c in old.clusters] == [{}, {}]
    # Its kept documents, as that version stored them: no edit_text column.
    kept = Snapshot.from_bytes(Snapshot(old, first.kept.drop("edit_text")).to_bytes()).kept
    assert kept["edit_text"].to_list() == [""] * kept.height
    second = advance(old, _docs(_coded(_edited("du2-", D2, DU, 8), "register")
                                + _coded(_edited("num2-", D2, NUM, 8), "wrong_number")), D2, "r2", FailureConfig(),
                     recent=kept)
    assert second.state.featurizer.fields == LEGACY_FIELDS  # the state keeps its features, not the config's
    same = {p: set(second.assignments.filter(pl.col("event_id").str.starts_with(p))["cluster_id"]) for p in
            ("du2-", "num2-")}
    first_ids = {p: set(first.assignments.filter(pl.col("event_id").str.starts_with(p))["cluster_id"]) for p in
                 ("du1-", "num1-")}
    assert same["du2-"] == first_ids["du1-"] and same["num2-"] == first_ids["num1-"]
    assert second.state.next_id == first.state.next_id
    assert all(c.traits for c in second.state.clusters)  # counted from the night on
    assert "numbers changed" in " ".join(c.label for c in second.state.clusters)


def test_a_state_hashing_a_field_this_version_does_not_make_is_refused_with_why():
    data = Featurizer().to_json()
    data["fields"] = [*data["fields"], "sentiment_text"]
    with pytest.raises(ValueError, match="sentiment_text.*rebuild the failure tables"):
        Featurizer.from_json(data)
    assert Featurizer.from_json(Featurizer().to_json()) == Featurizer()


def test_a_cluster_keeps_its_name_while_the_terms_it_says_stay_among_its_five_best():
    from flywheel.failures.documents import DOCUMENT_SCHEMA
    from flywheel.failures.model import Cluster, _update_labels

    none = pl.DataFrame(schema=DOCUMENT_SCHEMA)
    # Cluster 1's terms, all its own (the same idf), rank by count: amount 5, refund 4, wrong 3, credit 2, late 1.
    one = Cluster(1, D1, "r", terms={"amount": 5, "refund": 4, "wrong": 3, "credit": 2, "late": 1, "ninth": 1},
                  name_terms=["wrong", "refund", "amount"], label="wrong / refund / amount")
    two = Cluster(2, D1, "r", terms={"tone": 2})
    _update_labels([one, two], none, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), FailureConfig())
    assert one.top_terms == ["amount", "refund", "wrong", "credit", "late"]
    assert one.label == "wrong / refund / amount"  # reordered, still its five best: kept
    one.terms = {"amount": 5, "refund": 4, "credit": 3, "late": 3, "ninth": 3, "wrong": 1}
    _update_labels([one, two], none, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), FailureConfig())
    assert "wrong" not in one.top_terms and one.label == "amount / refund / credit"  # fell out: renamed
    assert one.name_terms == ["amount", "refund", "credit"] and two.label == "tone"


# ----------------------------------------------------------------------------- real post-edits (MLQE-PE)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mlqe-pe"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlqe-pe"


def test_real_post_edits_without_comments_all_land_in_named_clusters_on_the_sample():
    from flywheel.failures.benchmark import mlqe_pe_raw, run_nights

    raw = mlqe_pe_raw(FIXTURE, rows_per_day=50)
    assert raw.height == 125 and set(raw["scenario"]) == {"translation_ende", "translation_enzh"}
    assignments, state, _ = run_nights(documents(raw), FailureConfig())
    assert assignments["cluster_id"].null_count() == 0
    labels = [c.label for c in state.clusters]
    assert labels and all(labels) and len(set(labels)) == len(labels)
    assert all("without a reason" not in name for name in labels)  # named by the edits, not the fallback


@pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} is absent (the shared MLQE-PE files)")
def test_real_post_edits_all_land_in_distinctly_named_clusters_on_the_whole_data():
    from flywheel.failures.benchmark import real

    per, clusters = real(SHARED)
    assert per["scenario"].to_list() == ["translation_ende", "translation_enzh"]
    assert per["failing"].to_list() == [1194, 4510] and per["unmatched"].to_list() == [0.0, 0.0]
    names_ = clusters["name"].to_list()
    assert all(names_) and len(set(names_)) == len(names_) and clusters["events"].sum() == 1194 + 4510
