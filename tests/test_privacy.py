"""Reviewer ids never reach analyst tables raw; personal data is redacted from text."""

from __future__ import annotations

import pytest

from conftest import query, run_pipeline, write_jsonl
from flywheel.privacy import pseudonymise, redact


@pytest.mark.parametrize("text, expected", [
    ("write to jane.doe@example.com today", "write to [EMAIL] today"),
    ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged"),
    ("card 4111-1111-1111-1112 fails Luhn", "card 4111-1111-1111-1112 fails Luhn"),
    ("call +49 30 1234 5678 or (212) 555-0187", "call [PHONE] or [PHONE]"),
    ("order 12345 shipped 2026-03-01", "order 12345 shipped 2026-03-01"),
    (None, None),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_reviewer_ids_are_stored_as_keyed_hashes(settings, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "k1")
    write_jsonl(settings.landing / "events" / "e.jsonl", [
        {"event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z", "scenario": "s", "model": "m",
         "autonomy_level": "assist", "status": "ok"}])
    write_jsonl(settings.landing / "interventions" / "i.jsonl", [
        {"intervention_id": "i1", "event_id": "e1", "occurred_at": "2026-03-01T11:00:00Z", "action": "accepted",
         "reviewer_id": "alice@corp.example"}])
    run_pipeline(settings)
    stored = query(settings, "SELECT reviewer_id FROM ingest.interventions")[0][0]
    assert stored == pseudonymise("alice@corp.example", b"k1") and "alice" not in stored
    assert stored != pseudonymise("alice@corp.example", b"k2")  # rotating the key changes every id
    assert query(settings, "SELECT count(*) FROM ingest.interventions WHERE reviewer_id LIKE '%alice%'")[0][0] == 0


def test_without_a_key_the_store_makes_its_own(settings, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_HASH_KEY", raising=False)
    from flywheel.privacy import hash_key

    key = hash_key(settings.store)
    assert len(key) == 64 and hash_key(settings.store) == key
    assert oct((settings.store / ".hash_key").stat().st_mode & 0o777) == "0o600"
