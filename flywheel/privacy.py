"""Privacy: reviewer ids are pseudonymised with a keyed hash before they are stored, and personal
data (e-mail addresses, phone numbers, payment card numbers) is redacted from text used for
clustering features and shown in the report. Quarantined records keep their raw text, with the
reviewer id in it replaced by the same pseudonym (`pseudonymise_raw`).

The key comes from FLYWHEEL_HASH_KEY; when it is unset, a random key is created once in the store
(`<store>/.hash_key`, mode 600) and used from then on. To rotate it: set the new key in
FLYWHEEL_HASH_KEY, move the store's `staging/` and `manifests/` aside (the landing files are
re-read), and run `flywheel run`: every stored reviewer id is then hashed with the new key. Ids
hashed under different keys never match, so rotate the whole store at once.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from pathlib import Path

import orjson
import polars as pl

from flywheel.config import Settings
from flywheel.objectstore import Conflict, is_remote, put

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def redact(text: str | None) -> str | None:
    """`text` with e-mail addresses, card numbers (13-19 digits passing the Luhn check) and phone
    numbers replaced by [EMAIL], [CARD] and [PHONE]."""
    if not text:
        return text
    text = _EMAIL.sub("[EMAIL]", text)

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else m.group(0)

    text = _CARD.sub(card, text)
    def phone(m: re.Match[str]) -> str:
        found = m.group(0)
        if _DATE.match(found) or not 7 <= sum(ch.isdigit() for ch in found) <= 15:  # E.164 has at most 15
            return found
        return "[PHONE]"

    return _PHONE.sub(phone, text)


# Text that could hold something `redact` replaces: an @, or seven digits with separators between.
_CANDIDATE = r"@|\d(?:[ ().+-]*\d){6}"


def redact_series(values: pl.Series) -> pl.Series:
    """`redact` over a string column; only values that could hold personal data go through Python."""
    mask = values.str.contains(_CANDIDATE).fill_null(False)
    if not mask.any():
        return values
    index = mask.arg_true()
    redacted = pl.Series(values.name, [redact(v) for v in values.gather(index).to_list()], dtype=pl.String)
    return values.scatter(index, redacted)


def hash_key(store: Path) -> bytes:
    """The pseudonymisation key: FLYWHEEL_HASH_KEY (`Settings.hash_key`, read at call time), else the
    store's own key (created once: on an object store by a PUT If-None-Match, so processes creating
    it at once all read the one that won)."""
    configured = Settings.from_env().hash_key
    if configured:
        return configured.encode()
    path = store / ".hash_key"
    if is_remote(path):
        if not path.exists():
            try:
                put(path, secrets.token_hex(32).encode(), create=True)
            except Conflict:
                pass  # another process created it first: read theirs
    elif not path.exists():
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


# A reviewer id in a raw record's text: a JSON `"reviewer_id": value` (JSON Lines, Parquet rows,
# anywhere in a record, even a broken one) and an OTLP attribute
# `{"key": "flywheel.intervention.reviewer_id", "value": {"stringValue": value}}`.
_JSON_VALUE = r'"(?:[^"\\]|\\.)*"?|-?[0-9][0-9.eE+-]*|true|false'
_RAW_IDS = re.compile(
    r'((?:"reviewer_id"|"key"\s*:\s*"flywheel\.intervention\.reviewer_id"\s*,\s*"value"\s*:\s*\{\s*"\w+")\s*:\s*)'
    f"({_JSON_VALUE})")


def pseudonymise_raw(raw: str | None, key: bytes, csv_column: int | None = None) -> str | None:
    """A quarantined record's raw text with its reviewer ids replaced by `pseudonymise`'s: every JSON
    `"reviewer_id"` value and OTLP reviewer attribute (a string is hashed as the string it encodes,
    so the pseudonym is the one stored interventions carry), and, in a CSV row, the cell of the
    reviewer_id column `csv_column`. The rest of the text is kept as it came."""
    if not raw:
        return raw

    def swap(m: re.Match[str]) -> str:
        value = m.group(2)
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:  # a truncated string: hash what there is
            decoded = value
        text = decoded if isinstance(decoded, str) else value
        return f'{m.group(1)}"{pseudonymise(text, key)}"'

    if "reviewer_id" in raw:
        raw = _RAW_IDS.sub(swap, raw)
    if csv_column is not None:
        try:
            rows = list(csv.reader(io.StringIO(raw, newline="")))
        except csv.Error:
            rows = []
        if len(rows) == 1 and len(rows[0]) > csv_column and rows[0][csv_column]:
            row = rows[0]
            row[csv_column] = pseudonymise(row[csv_column], key)  # type: ignore[call-overload]
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(row)
            raw = out.getvalue()
    return raw


def pseudonymise(value: str | None, key: bytes) -> str | None:
    """A keyed hash (HMAC-SHA256, 16 hex characters, prefixed `r_`) of an identifier."""
    if value is None:
        return None
    return "r_" + hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:16]
