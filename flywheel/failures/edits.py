"""What the human changed between the AI's draft and the text that shipped, as edit operations.

Language-agnostic and pure (no I/O): `tokens` splits a text into word tokens (runs of letters and
digits, each punctuation mark its own token) and compares unsegmented scripts (CJK, Japanese kana,
Thai, Lao, Khmer, Myanmar) character by character; `diff` aligns the draft's tokens with the final
text's (longest common subsequence, rapidfuzz `Indel.opcodes`) and reads each changed region as a
deletion (the AI added it), an insertion (the AI omitted it), a substitution (paired token by token
where both sides have the same length, else one span for the other) or a move (a span deleted in one
place and inserted unchanged in another), with flags for changed numbers, dates, names, URLs and code
identifiers, punctuation-, casing- or whitespace-only edits, a draft that copies the input, no change
and a rewrite. `edit_tokens` turns the result into feature tokens ("sub:sie>du", "ins:nicht",
"flag:numbers", "len:added_5_12"), `describe` into a person's phrase, `render_diff` into a readable
"[-Sie-]{+du+}" diff, and `edit_columns` adds both to a frame, computing each distinct
(draft, final, source) triple once (in a process pool, one worker per core, from `PARALLEL_MIN`
triples on: the 84,856 of the 1M-event day of bench/deploy_bench, seed 7, took 23.6 s of CPU in one
process, 20.6 s wall in two with 26.8 s of CPU, on 2 cores shared with other work, load about 3).

Measured on MLQE-PE (`../shared/data/mlqe-pe`: 7,000 machine-translated sentences per pair, each
post-edited by a professional) with `.venv/bin/python -m flywheel.failures.edits
../shared/data/mlqe-pe/*.tsv --rows 100000 --repeat 1000000` (2 cores shared with other work,
load about 18, 2026-12-06, so wall times are long against CPU times):
- en-de: 4,732 of 7,000 rows edited (67.6%, every row whose post-edit differs from the MT); of
  those, flags numbers 0.9%, dates 0.3%, names 15.3%, urls 0.0%, code 0.1%, punctuation_only 2.1%,
  casing_only 0.3%, whitespace_only 0.0%, copy_of_input 1.2%, rewrite 4.5%. Top substitutions:
  " -> „ (85), " -> “ (81), die -> der (53), die -> den (39), der -> die (33), "," -> und (32),
  die -> das (29), den -> die (27), das -> die (19), der -> des (16): quotes made German and
  articles put in the right case.
- en-zh: 6,770 of 7,000 edited (96.7%); numbers 2.7%, dates 0.9%, names 29.3%, code 0.1%,
  punctuation_only 4.0%, whitespace_only 4.5%, rewrite 16.0%. Top substitutions: . -> 。 (2,384),
  , -> ， (1,065), " -> “ (302), " -> ” (290), 、 -> ， (102), " -> 《 (31), , -> （ (31), 和 -> 与 (31),
  把 -> 将 (31), , -> 、 (30): full-width punctuation first, then register (和 -> 与, 把 -> 将).
- `edit_columns` on each file: 1.95 s wall, 0.72 s CPU (en-de) and 3.75 s, 1.44 s CPU (en-zh) for
  7,000 rows; 100,000 rows drawn from both files with replacement, every second one varied (63,535
  distinct triples): 21.9 s wall, 10.5 s CPU (about 0.17 ms of CPU per distinct triple);
  `--repeat`: 1,000,000 rows repeating the first 3,000 of the en-de file (2,064 of them edited):
  1.4 s wall, 0.61 s CPU (rows are matched to their triple by hash). On the 1,000,000 failing
  events that `python -m flywheel.failures.benchmark scale` builds (its 3,064 generated failing
  events repeated; 1,250 distinct changed triples), built the same way by a one-off script:
  1.1 s CPU, 3.1 s wall under that load.
"names" looks only at capitalised words of the source when there is one; without a source a
capitalised word replaced by another counts, so German nouns do (see `_names_changed`).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import polars as pl
from rapidfuzz.distance import Indel

from flywheel.processes import spawned_pool

# Unsegmented scripts, compared character by character: CJK ideographs (with extensions A-F and
# the compatibility block), Japanese kana, Thai, Lao, Khmer, Myanmar. Their punctuation (U+3000-303F,
# full-width forms) stays punctuation.
_UNSEGMENTED = ("\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u309f\u30a0-\u30ff"
                "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_UNSEG_CHAR = re.compile(f"[{_UNSEGMENTED}]")


def _marks() -> str:
    """Combining marks of the Basic Multilingual Plane as a character-class body: they belong to the
    word they sit on (Devanagari vowel signs, Arabic harakat, decomposed accents), though Python's
    `\\w` leaves them out."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x10000):
        if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me") and not _UNSEG_CHAR.match(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_MARKS = _marks()
# A word: a letter or digit, then letters, digits and marks; or one punctuation mark (`_` included:
# `\w` counts it as a word character). Unsegmented characters are spaced apart first, so that each
# is a word of its own (`tokens`).
_TOKEN = re.compile(f"[^\\W_](?:[^\\W_]|[{_MARKS}])*|[^\\w\\s]|_")
_UNSEG_RUN = re.compile(f"[{_UNSEGMENTED}]+")


def _spaced(match: re.Match) -> str:
    return " " + " ".join(match.group()) + " "


FLAGS: tuple[str, ...] = ("numbers", "dates", "names", "urls", "code", "punctuation_only", "casing_only",
                          "whitespace_only", "copy_of_input", "unchanged", "rewrite")
KINDS: tuple[str, ...] = ("deletion", "insertion", "substitution", "move")
_PREFIX = {"deletion": "del", "insertion": "ins", "substitution": "sub", "move": "mov"}
# Content tokens ("sub:...", "ins:...") are made for spans of at most this many tokens per side: a
# longer span is a rewrite of that part, not a recurring pattern, and shows as its length bucket.
MAX_SPAN_TOKENS = 4
# Share of the draft's tokens the human did not keep above which the edit is a rewrite.
REWRITE_SHARE = 0.5
# Length buckets of the net length change (tokens), for "len:added_5_12" / "len:removed_1".
LENGTH_BUCKETS: tuple[tuple[int, int, str], ...] = ((1, 1, "1"), (2, 4, "2_4"), (5, 12, "5_12"),
                                                    (13, sys.maxsize, "13_plus"))

_DIGIT = re.compile(r"\d")
_URL_HINT = re.compile(r"://|www\.", re.IGNORECASE)
# Characters without which no `_CODE` pattern matches: a changed region without them changed no code.
_CODE_HINT = re.compile(r"[`/\\()_.]|[a-z][A-Z]")
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'）)\]]+", re.IGNORECASE)
# A number, with its thousands groups ("181,000", "181 000", "1.234,5"); compared by its digits only.
_NUMBER = re.compile(r"\d+(?:(?:[,.'\u00a0\u202f]|\s+)\d{3}(?!\d))*(?:[.,]\d+)?")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|"
           "januar|februar|märz|mai|juni|juli|oktober|dezember|jänner|"
           "janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|"
           "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre|"
           "gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre")
_MONTH_WORDS = frozenset(_MONTHS.split("|"))
_DATE_WORD = re.compile(rf"\b(?:{_MONTHS})\b|[年月日]", re.IGNORECASE)
_DATE = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}\b"                                    # 2026-03-01
    r"|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b"                          # 01.03.2026, 3/1/26
    r"|\d+\s*年(?:\s*\d+\s*月)?(?:\s*\d+\s*日)?|\d+\s*月\s*\d+\s*日"  # 2026年3月1日
    # a month name counts with a number beside it ("3 May", "May 3rd, 2026", "May 2026"): alone it is
    # too often a word ("you may", "Mars")
    rf"|\b\d{{1,2}}\.?\s+(?:{_MONTHS})\b\.?(?:\s+\d{{4}})?"
    rf"|\b(?:{_MONTHS})\b\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b,?(?:\s+\d{{4}})?"
    rf"|\b(?:{_MONTHS})\b\.?\s+\d{{4}}\b",
    re.IGNORECASE)
_CODE = re.compile(
    r"`[^`\n]+`"                                                     # `inline code`
    r"|(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)+|\b[A-Za-z]:\\[\w\\.-]+"   # paths
    r"|\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\([^()\s]*\)"                # x.y(), f(a)
    r"|\b[A-Za-z_][A-Za-z0-9]*_\w+\b"                                # snake_case
    r"|\b[a-z]+(?:[A-Z][a-z0-9]*)+\b"                                # camelCase
    r"|\b[a-z_]\w*\.[a-z_]\w*(?:\.[a-z_]\w*)*\b")                    # module.attr, file.ext
# The same two patterns, each behind a lookahead that passes over at once the positions where no
# match can start (`findall` tries every position): a date starts with a digit, or with a month name
# that a number follows; an identifier with a backtick, a path's first character, or a word that
# holds "_" or a lower-to-upper-case step or is followed by ".", "(" or ":". Same matches (each
# lookahead only says what every branch needs); on the 154,048 distinct drafts and final texts of
# the 1M-event day of bench/deploy_bench (seed 7) `findall` took 3.9 s in place of 18.9 (dates)
# and 3.0 s in place of 7.0 (identifiers).
_MONTH_FIRST = "".join(sorted({re.escape(w[0]) for w in _MONTH_WORDS}))
_DATE_FAST = re.compile(rf"(?=\d|\b[{_MONTH_FIRST}]\w*\.?\s+\d)(?:{_DATE.pattern})", re.IGNORECASE)
_CODE_FAST = re.compile(rf"(?=[`~./]|\b[A-Za-z_](?=\w*[_.(:]|[a-z]*[A-Z]))(?:{_CODE.pattern})")
_SURFACE_ONLY = frozenset({"punctuation_only", "casing_only", "whitespace_only"})
_SENTENCE_END = frozenset(".!?:;\"'«»„“”。！？：；")


@dataclass(frozen=True)
class Edit:
    """One edit: `kind` is "deletion" (the human deleted `before`: the AI added it; `after` is ""),
    "insertion" (the human inserted `after`: the AI omitted it; `before` is ""), "substitution"
    (`before` -> `after`) or "move" (`before` == `after`, moved elsewhere). Spans are their tokens
    joined by one space, lower-cased."""

    kind: str
    before: str
    after: str


@dataclass(frozen=True)
class EditSummary:
    """Everything `diff` found: the edits in draft order, the `FLAGS` that apply (in `FLAGS` order),
    the tokens the human added and removed (not kept from the draft) and the net length change
    (tokens of the final text minus tokens of the draft)."""

    edits: tuple[Edit, ...]
    flags: tuple[str, ...]
    tokens_added: int
    tokens_removed: int
    length_change: int


def tokens(text: str | None) -> list[str]:
    """The word tokens of `text` (see the module docstring), case kept; [] for None or ""."""
    if not text:
        return []
    if _UNSEG_CHAR.search(text):
        text = _UNSEG_RUN.sub(_spaced, text)
    return _TOKEN.findall(text)


def _is_punct(token: str) -> bool:
    return not any(c.isalnum() for c in token)


def _span(toks: Iterable[str]) -> str:
    return " ".join(toks).lower()


def _numbers(text: str) -> Counter:
    return Counter(re.sub(r"\D", "", m) for m in _NUMBER.findall(text))


def _dates(text: str) -> Counter:
    return Counter(re.sub(r"\s+", " ", m.strip().lower()) for m in _DATE_FAST.findall(text))


def _urls(text: str) -> Counter:
    return Counter(u.rstrip(".,;:!?") for u in _URL.findall(text))


def _code(text: str) -> Counter:
    # every URL holds "://" or "www." (`_URL_HINT`): without one there is none to take out
    return Counter(_CODE_FAST.findall(_URL.sub(" ", text) if _URL_HINT.search(text) else text))


def _capitalised(toks: list[str], start: int, end: int, source: frozenset[str] | None) -> dict[str, int]:
    """Capitalised tokens of toks[start:end] that do not start a sentence and are no month name,
    with how often each occurs; with a source text, only those that also occur in it. (A plain
    dict: counts are positive, so == compares as Counters do, without their cost per call.)"""
    out: dict[str, int] = {}
    for i in range(max(start, 1), end):
        t = toks[i]
        if not t[0].isupper() or toks[i - 1] in _SENTENCE_END:
            continue
        if (source is None or t in source) and t.lower() not in _MONTH_WORDS:
            out[t] = out.get(t, 0) + 1
    return out


def _names_changed(a: list[str], b: list[str], regions: list[tuple[int, int, int, int]],
                   source: frozenset[str] | None) -> bool:
    """Whether a name changed. With a source text: the capitalised, not sentence-initial words that
    also occur in the source (names carried over from the input) differ between draft and final.
    (Kept tokens count the same on both sides, so only the changed regions are compared.)
    Without one: some changed region has such words on both sides and they differ ("Smith" ->
    "Smyth"); a capitalised word replaced by a lower-case one is no name change (German "Sie" ->
    "du"), and neither is one added or removed alone (German capitalises every noun)."""
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for a0, a1, b0, b1 in regions:
        ra, rb = _capitalised(a, a0, a1, source), _capitalised(b, b0, b1, source)
        if source is None:
            if ra and rb and ra != rb:
                return True
            continue
        for counts, part in ((before, ra), (after, rb)):
            for t, n in part.items():
                counts[t] = counts.get(t, 0) + n
    return source is not None and before != after


@lru_cache(maxsize=16)
def _aligned(draft: str, final: str) -> tuple[list[str], list[str], list[tuple[int, int, int, int]], int]:
    """Tokens of `draft` and `final`, their changed regions and the number of kept tokens; cached
    for the few latest pairs, since `edit_columns` asks `diff` and `render_diff` about each pair
    (callers must not change the lists)."""
    a, b = tokens(draft), tokens(final)
    if draft == final:
        return a, b, [], len(a)
    regions, kept = _regions(a, b)
    return a, b, regions, kept


def _regions(a: list[str], b: list[str]) -> tuple[list[tuple[int, int, int, int]], int]:
    """The changed regions (a_start, a_end, b_start, b_end) between equal blocks of the alignment
    of `a` and `b`, and the number of tokens kept (aligned as equal)."""
    regions: list[tuple[int, int, int, int]] = []
    kept = 0
    current: list[int] | None = None
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            kept += op.src_end - op.src_start
            if current is not None:
                regions.append(tuple(current))  # type: ignore[arg-type]
                current = None
            continue
        if current is None:
            current = [op.src_start, op.src_end, op.dest_start, op.dest_end]
        else:
            current[1], current[3] = max(current[1], op.src_end), max(current[3], op.dest_end)
    if current is not None:
        regions.append(tuple(current))  # type: ignore[arg-type]
    return regions, kept


def _edits(a: list[str], b: list[str], regions: list[tuple[int, int, int, int]]) -> tuple[Edit, ...]:
    """Regions read as edits, deletions and insertions of the same span paired into moves."""
    # Pure deletions and insertions first, to pair moves: each deleted span re-inserted unchanged.
    deleted = {i: tuple(t.lower() for t in a[r[0]:r[1]]) for i, r in enumerate(regions) if r[3] == r[2]}
    inserted = {i: tuple(t.lower() for t in b[r[2]:r[3]]) for i, r in enumerate(regions) if r[1] == r[0]}
    moved: set[int] = set()
    for i, span in deleted.items():
        for j, other in inserted.items():
            if j not in moved and other == span:
                moved.update((i, j))
                break
    out: list[Edit] = []
    for i, (a0, a1, b0, b1) in enumerate(regions):
        if i in moved:
            if a1 > a0:  # report a move once, where it was taken from
                out.append(Edit("move", _span(a[a0:a1]), _span(a[a0:a1])))
            continue
        if b1 == b0:
            out.append(Edit("deletion", _span(a[a0:a1]), ""))
        elif a1 == a0:
            out.append(Edit("insertion", "", _span(b[b0:b1])))
        else:
            out.extend(_replaced(a, b, a0, a1, b0, b1))
    return tuple(out)


def _pairs(xs: list[str], ys: list[str]) -> list[Edit]:
    # casing-only pairs are no substitution (see casing_only)
    return [Edit("substitution", x.lower(), y.lower()) for x, y in zip(xs, ys) if x.lower() != y.lower()]


def _replaced(a: list[str], b: list[str], a0: int, a1: int, b0: int, b1: int) -> list[Edit]:
    """The edits of a region where a[a0:a1] was replaced by b[b0:b1] (both non-empty): token by token
    when the lengths are equal; else punctuation facing punctuation at either end is paired off
    first ("X Y ." -> "Z 。" is "." -> "。" and "x y" -> "z"), and what is left is one span for the
    other (or a deletion or insertion when one side is used up)."""
    if a1 - a0 == b1 - b0:
        return _pairs(a[a0:a1], b[b0:b1])
    head = 0
    while a0 + head < a1 and b0 + head < b1 and _is_punct(a[a0 + head]) and _is_punct(b[b0 + head]):
        head += 1
    tail = 0
    while (a1 - tail - 1 >= a0 + head and b1 - tail - 1 >= b0 + head
           and _is_punct(a[a1 - tail - 1]) and _is_punct(b[b1 - tail - 1])):
        tail += 1
    out = _pairs(a[a0:a0 + head], b[b0:b0 + head])
    m0, m1, n0, n1 = a0 + head, a1 - tail, b0 + head, b1 - tail
    if m1 - m0 == n1 - n0:
        out += _pairs(a[m0:m1], b[n0:n1])
    elif m1 == m0:
        out.append(Edit("insertion", "", _span(b[n0:n1])))
    elif n1 == n0:
        out.append(Edit("deletion", _span(a[m0:m1]), ""))
    else:
        out.append(Edit("substitution", _span(a[m0:m1]), _span(b[n0:n1])))
    return out + _pairs(a[m1:a1], b[n1:b1])


def diff(draft: str | None, final: str | None, source: str | None = None) -> EditSummary:
    """The edits that turn `draft` into `final` (see the module docstring) and their flags.

    `source` (the input the draft answers or translates) is optional: with it, a draft equal to it
    (tokens compared case-insensitively) is flagged "copy_of_input", and "names" looks only at
    capitalised words that occur in it (see `_names_changed`). None texts count as "".
    """
    draft, final = draft or "", final or ""
    a, b, regions, kept = _aligned(draft, final)
    src = tokens(source) if source else []
    flags: list[str] = []
    if draft == final:
        edits: tuple[Edit, ...] = ()
    else:
        edits = _edits(a, b, regions)
        # The tokens in changed regions decide which of the (slower) whole-text comparisons can differ.
        changed = [t for a0, a1, b0, b1 in regions for t in (*a[a0:a1], *b[b0:b1])]
        changed_text = " ".join(changed)
        digits = _DIGIT.search(changed_text) is not None
        if digits and _numbers(draft) != _numbers(final):
            flags.append("numbers")
        if (digits or _DATE_WORD.search(changed_text)) and _dates(draft) != _dates(final):
            flags.append("dates")
        if _names_changed(a, b, regions, frozenset(src) if src else None):
            flags.append("names")
        if (_URL_HINT.search(draft) or _URL_HINT.search(final)) and _urls(draft) != _urls(final):
            flags.append("urls")
        # an identifier spans several tokens ("get _ user ( )"): look at each region's neighbours too
        near: list[str] = []
        for a0, a1, b0, b1 in regions:
            near += a[max(a0 - 1, 0):a1 + 1]
            near += b[max(b0 - 1, 0):b1 + 1]
        around = " ".join(near)
        if _CODE_HINT.search(around) and _code(draft) != _code(final):
            flags.append("code")
        if a == b:
            flags.append("whitespace_only")
        elif all(_is_punct(t) for t in changed):
            flags.append("punctuation_only")
        elif len(a) == len(b) and [t.lower() for t in a] == [t.lower() for t in b]:
            flags.append("casing_only")
    if src and len(a) == len(src) and [t.lower() for t in a] == [t.lower() for t in src]:
        flags.append("copy_of_input")
    if draft == final:
        flags.append("unchanged")
    elif a and (len(a) - kept) / len(a) > REWRITE_SHARE and not set(flags) & _SURFACE_ONLY:
        flags.append("rewrite")
    flags.sort(key=FLAGS.index)
    added, removed = len(b) - kept, len(a) - kept
    return EditSummary(edits=edits, flags=tuple(flags), tokens_added=added, tokens_removed=removed,
                       length_change=len(b) - len(a))


def _bucket(n: int) -> str:
    return next(label for lo, hi, label in LENGTH_BUCKETS if lo <= n <= hi)


def _token_span(span: str) -> str:
    return span.replace(" ", "_")


PATTERN_KINDS: tuple[str, ...] = ("substitution", "insertion", "deletion", "move", "flag", "length")
# A span longer than MAX_SPAN_TOKENS is a length token by its kind: "len:rewrote_5_12".
_LONG = {"substitution": "rewrote", "insertion": "inserted", "deletion": "deleted", "move": "moved"}


def edit_patterns(summary: EditSummary) -> list[tuple[str, str, str, str]]:
    """`summary` as (token, kind, before, after), one per distinct `edit_tokens` token, in the same
    order: kind is one of `PATTERN_KINDS`; before/after are the spans (tokens joined by one space,
    lower-cased) of an edit, the flag name and "" of a flag, and for a length token its direction
    and bucket ("added", "5_12"): "added" / "removed" for the net length change, "rewrote",
    "inserted", "deleted", "moved" for an edit whose span is longer than `MAX_SPAN_TOKENS`."""
    out: dict[str, tuple[str, str, str, str]] = {}
    for e in summary.edits:
        size = max(e.before.count(" ") + 1 if e.before else 0, e.after.count(" ") + 1 if e.after else 0)
        if size > MAX_SPAN_TOKENS:
            what, bucket = _LONG[e.kind], _bucket(size)
            out.setdefault(f"len:{what}_{bucket}", (f"len:{what}_{bucket}", "length", what, bucket))
            continue
        if e.kind == "substitution":
            token = f"sub:{_token_span(e.before)}>{_token_span(e.after)}"
        elif e.kind == "insertion":
            token = f"ins:{_token_span(e.after)}"
        else:
            token = f"{_PREFIX[e.kind]}:{_token_span(e.before)}"
        out.setdefault(token, (token, e.kind, e.before, e.after))
    for f in summary.flags:
        out.setdefault(f"flag:{f}", (f"flag:{f}", "flag", f, ""))
    if summary.length_change:
        direction = "added" if summary.length_change > 0 else "removed"
        bucket = _bucket(abs(summary.length_change))
        out.setdefault(f"len:{direction}_{bucket}", (f"len:{direction}_{bucket}", "length", direction, bucket))
    return list(out.values())


def edit_tokens(summary: EditSummary) -> list[str]:
    """`summary` as feature tokens, no spaces inside a token, each once, in this order: the edits
    ("sub:sie>du", "ins:nicht", "del:bitte", "mov:heute"; multi-token spans joined with "_"; an edit
    with a span longer than `MAX_SPAN_TOKENS` is its size instead: "len:rewrote_5_12",
    "len:inserted_13_plus", "len:deleted_5_12", "len:moved_5_12"), the flags ("flag:numbers") and
    the net length change as a bucket ("len:added_5_12", "len:removed_1"; none when it is 0). A draft
    and final that differ always give at least one token."""
    return [p[0] for p in edit_patterns(summary)]


_FLAG_PHRASES = {
    "numbers": "numbers changed", "dates": "dates changed", "names": "names changed", "urls": "URLs changed",
    "code": "code identifiers changed", "punctuation_only": "punctuation-only edits",
    "casing_only": "casing-only edits", "whitespace_only": "whitespace-only edits",
    "copy_of_input": "output copies the input untranslated", "unchanged": "no change",
    "rewrite": "most of the draft rewritten",
}


def _words(span: str) -> str:
    """A token span ("_"-joined) as text: tokens joined by a space, except between two characters of
    an unsegmented script ("举_着" -> "举着")."""
    parts = span.split("_") if span != "_" else ["_"]
    text = parts[0] if parts else ""
    for prev, cur in zip(parts, parts[1:]):
        text += ("" if _UNSEG_CHAR.fullmatch(prev) and _UNSEG_CHAR.fullmatch(cur) else " ") + cur
    return text


def describe(token: str) -> str:
    """A person's phrase for one `edit_tokens` token: "human replaced 'sie' with 'du'", "human
    added 'nicht' (AI omitted it)", "human deleted 'bitte' (AI added it)", "human moved 'heute'",
    "numbers changed", "omission: 5-12 words added", ...; an unknown token is returned as it is."""
    kind, sep, rest = token.partition(":")
    if not sep or not rest:
        return token
    if kind == "sub":
        # Split at the ">" between the spans; a span that is itself ">" keeps its own.
        cut = rest.find(">", 1)
        if cut < 0:
            return token
        return f"human replaced '{_words(rest[:cut])}' with '{_words(rest[cut + 1:])}'"
    if kind == "ins":
        return f"human added '{_words(rest)}' (AI omitted it)"
    if kind == "del":
        return f"human deleted '{_words(rest)}' (AI added it)"
    if kind == "mov":
        return f"human moved '{_words(rest)}'"
    if kind == "flag":
        return _FLAG_PHRASES.get(rest, token)
    if kind == "len":
        direction, _, bucket = rest.partition("_")
        words = {"1": "1 word", "2_4": "2-4 words", "5_12": "5-12 words", "13_plus": "13+ words"}.get(bucket)
        if words is None:
            return token
        phrase = {"added": f"omission: {words} added", "removed": f"addition: {words} removed",
                  "rewrote": f"human rewrote a passage of {words}",
                  "inserted": f"human inserted a passage of {words} (AI omitted it)",
                  "deleted": f"human deleted a passage of {words} (AI added it)",
                  "moved": f"human moved a passage of {words}"}.get(direction)
        if phrase is not None:
            return phrase
    return token


_NO_SPACE_BEFORE_CHARS = ",.;:!?)]}%»“”。，、；：！？）」』》"
_NO_SPACE_AFTER_CHARS = "([{«„“（「『《"
_NO_SPACE_BEFORE = frozenset(_NO_SPACE_BEFORE_CHARS)
_NO_SPACE_AFTER = frozenset(_NO_SPACE_AFTER_CHARS)


_WIDE = f"{_UNSEGMENTED}\u3000-\u303f\uff00-\uffef"
# Spaces that `_join` takes out again: before closing punctuation, after opening punctuation, and
# between characters of unsegmented scripts and their full-width punctuation.
_UNSPACE = re.compile(f" (?=[{re.escape(''.join(sorted(_NO_SPACE_BEFORE_CHARS)))}])"
                      f"|(?<=[{re.escape(''.join(sorted(_NO_SPACE_AFTER_CHARS)))}]) "
                      f"|(?<=[{_WIDE}]) (?=[{_WIDE}])")


def _join(toks: list[str]) -> str:
    """Tokens shown as text: one space between them, except where `_UNSPACE` says none."""
    return _UNSPACE.sub("", " ".join(toks))


def _space(prev: str, cur: str) -> bool:
    """Whether a space goes between two tokens when they are shown as text (as in `_join`)."""
    return _UNSPACE.search(f"{prev[-1:]} {cur[:1]}") is None


def _glue(pieces: list[tuple[str, str, str]]) -> str:
    text = ""
    for i, (piece, first, _) in enumerate(pieces):
        if i and _space(pieces[i - 1][2], first):
            text += " "
        text += piece
    return text


def render_diff(draft: str | None, final: str | None, width: int = 200) -> str:
    """A readable word diff of `draft` -> `final`: kept text as it is, "[-deleted-]", "{+inserted+}",
    a substitution as "[-Sie-]{+du+}" (case kept). Longer than `width` characters, it is cut to
    `width` with "…", starting shortly before the first change so that the change shows."""
    a, b, regions, _ = _aligned(draft or "", final or "")
    # pieces: (text, first token, last token); kept text and the marks of each changed region
    pieces: list[tuple[str, str, str]] = []
    first_change = -1
    pos = 0
    text = ""
    for a0, a1, b0, b1 in regions:
        if pos < a0:
            pieces.append((_join(a[pos:a0]), a[pos], a[a0 - 1]))
        if first_change < 0:
            first_change = len(_glue(pieces))
        mark = (f"[-{_join(a[a0:a1])}-]" if a1 > a0 else "") + (f"{{+{_join(b[b0:b1])}+}}" if b1 > b0 else "")
        first = a[a0] if a1 > a0 else b[b0]
        last = b[b1 - 1] if b1 > b0 else a[a1 - 1]
        pieces.append((mark, first, last))
        pos = a1
    if pos < len(a):
        pieces.append((_join(a[pos:]), a[pos], a[-1]))
    text = _glue(pieces)
    if len(text) <= width:
        return text
    start = max(0, min(first_change - 30, len(text) - width + 1)) if first_change > width // 3 else 0
    head = "…" if start else ""
    return head + text[start:start + width - len(head) - 1] + "…"


# One pattern of an edit (`edit_patterns`), as the `edit_patterns` column of `edit_columns` holds it.
PATTERN = pl.Struct({"token": pl.String, "kind": pl.String, "before": pl.String, "after": pl.String})


def edit_columns(frame: pl.DataFrame, output: str = "output_text", final: str = "final_text",
                 source: str = "input_text", patterns: bool = False, rendered: bool = True,
                 workers: int | None = None, known: pl.DataFrame | None = None) -> pl.DataFrame:
    """`frame` with two more columns: `edit_text` (the space-joined `edit_tokens` of the draft in
    `output` against the text in `final`, with `source` when that column exists) and `edit_diff`
    (`render_diff`; left out when not `rendered`: it aligns the texts once more); both "" where
    `final` is null or equal to the draft (a null draft counts as ""). With `patterns`, one more,
    `edit_patterns`: the edit's `edit_patterns` as a list of `PATTERN` (empty where there is no
    edit), from the same diff. Each distinct (draft, final, source) triple is diffed once; row
    order is kept. The triples are diffed in `workers` processes (default: one per core from
    `PARALLEL_MIN` triples on, else in this process; `_read_all`); the result is the same.

    `known`: an earlier result of `edit_columns` by this code with the same column names and at
    least the same options (the same day's frame before late reviews changed some of its rows):
    a triple found there is taken from it instead of diffed again. A triple's edit depends on its
    three texts alone, so the result is the same as without it."""
    keys, distinct = _distinct(frame, output, final, source)
    reused = _reusable(known, distinct, output, final, source, patterns, rendered)
    pending = distinct if reused is None else distinct.join(reused.select("_k"), on="_k", how="anti",
                                                            maintain_order="left")
    todo = pending["_k"].to_list()
    texts, diffs, pats = _read_all(list(pending.select("_d", "_f", "_s").iter_rows()), patterns, rendered, workers)
    fresh = pl.DataFrame({"_k": pl.Series(todo, dtype=pl.UInt32), "edit_text": pl.Series(texts, dtype=pl.String)})
    if rendered:
        fresh = fresh.with_columns(pl.Series("edit_diff", diffs, dtype=pl.String))
    if patterns:
        # one list per triple, built from flat rows (a Series of lists of dicts took 4 times longer)
        flat = pl.DataFrame(pats, schema={"_i": pl.UInt32, **PATTERN.to_schema()}, orient="row")
        per = (flat.with_columns(pl.Series("_k", todo, dtype=pl.UInt32).gather(flat["_i"]))
               .group_by("_k").agg(pl.struct(*PATTERN.to_schema()).alias("edit_patterns")))
        fresh = fresh.join(per, on="_k", how="left", maintain_order="left")
    results = fresh if reused is None else pl.concat([reused.select(fresh.columns), fresh])
    per_triple = (pl.DataFrame({"_k": pl.Series(range(distinct.height), dtype=pl.UInt32)})
                  .join(results, on="_k", how="left", maintain_order="left"))
    out = frame.with_columns(per_triple["edit_text"].gather(keys).fill_null("").alias("edit_text"))
    if rendered:
        out = out.with_columns(per_triple["edit_diff"].gather(keys).fill_null("").alias("edit_diff"))
    if patterns:
        lists = per_triple["edit_patterns"].cast(pl.List(PATTERN))
        out = out.with_columns(lists.gather(keys).fill_null([]).alias("edit_patterns"))
    return out


def _reusable(known: pl.DataFrame | None, distinct: pl.DataFrame, output: str, final: str, source: str,
              patterns: bool, rendered: bool) -> pl.DataFrame | None:
    """The triples of `distinct` (`_distinct`) that `known` (see `edit_columns`) holds, with their
    index `_k` and `known`'s edit columns; None when `known` has none to give."""
    wanted = ["edit_text"] + (["edit_diff"] if rendered else []) + (["edit_patterns"] if patterns else [])
    if known is None or known.height == 0 or distinct.height == 0 \
            or any(c not in known.columns for c in (output, final, *wanted)):
        return None
    _, old = _distinct(known.select(output, final, *([source] if source in known.columns else []), *wanted),
                       output, final, source, keep=wanted)
    # a changed triple always has an edit: a row of `known` without one lends nothing
    old = old.filter(pl.col("edit_text").is_not_null() & (pl.col("edit_text") != ""),
                     *([pl.col("edit_diff").is_not_null()] if rendered else []),
                     *([pl.col("edit_patterns").list.len() > 0] if patterns else []))
    on = ["_d", "_f", "_s"]
    found = distinct.select("_k", *on).join(old.select(*on, *wanted), on=on, how="inner", nulls_equal=True,
                                            maintain_order="left")
    return found.select("_k", *wanted) if found.height else None


# From this many distinct triples on, `edit_columns` diffs them in a process pool by default: a
# worker's start (spawn, imports) costs about a second, the diff about 0.3 ms of CPU per triple.
PARALLEL_MIN = 20_000
# Chunks per worker: the pool's idle tail is at most one chunk's work.
_CHUNKS_PER_WORKER = 4


def _read_chunk(triples: list[tuple[str, str, str | None]], patterns: bool, rendered: bool,
                offset: int = 0) -> tuple[list[str], list[str], list[tuple]]:
    """`edit_tokens` text, `render_diff` (when `rendered`) and `edit_patterns` rows (when
    `patterns`: (index + `offset`, token, kind, before, after)) of each triple, in order."""
    edit_text: list[str] = []
    edit_diff: list[str] = []
    edit_pats: list[tuple] = []
    for k, (d, f, s) in enumerate(triples, start=offset):
        pats = edit_patterns(diff(d, f, s))  # once: `edit_tokens` is its first column
        edit_text.append(" ".join(p[0] for p in pats))
        if rendered:
            edit_diff.append(render_diff(d, f))
        if patterns:
            edit_pats.extend((k, *p) for p in pats)
    return edit_text, edit_diff, edit_pats


def _read_all(triples: list[tuple[str, str, str | None]], patterns: bool, rendered: bool,
              workers: int | None = None) -> tuple[list[str], list[str], list[tuple]]:
    """`_read_chunk` of all `triples`, in `workers` processes ("spawn": safe in a threaded parent
    such as a Dagster run) when more than one; None: one per core from `PARALLEL_MIN` triples on.
    A daemonic process (a prefork pool's worker) may start none: it reads them itself. Chunks come
    back in order, so the result is the same as in one process."""
    if workers is None:
        workers = (os.cpu_count() or 1) if len(triples) >= PARALLEL_MIN else 1
    if multiprocessing.current_process().daemon:
        workers = 1
    workers = min(workers, len(triples))
    if workers <= 1:
        return _read_chunk(triples, patterns, rendered)
    size = -(-len(triples) // (workers * _CHUNKS_PER_WORKER))
    starts = range(0, len(triples), size)
    edit_text: list[str] = []
    edit_diff: list[str] = []
    edit_pats: list[tuple] = []
    with spawned_pool(workers) as pool:
        for texts, diffs, pats in pool.map(_read_chunk, [triples[i:i + size] for i in starts],
                                           [patterns] * len(starts), [rendered] * len(starts), starts):
            edit_text += texts
            edit_diff += diffs
            edit_pats += pats
    return edit_text, edit_diff, edit_pats


def distinct_changes(frame: pl.DataFrame, output: str = "output_text", final: str = "final_text",
                     source: str = "input_text") -> tuple[pl.Series, list[tuple[str, str, str | None]]]:
    """The distinct (draft, final, source) triples of `frame` whose final text is set and differs
    from the draft (a null draft counts as ""), and per row of `frame` the index of its triple in
    that list (null for rows without a change). `source` may be absent from `frame` (then None)."""
    keys, distinct = _distinct(frame, output, final, source)
    return keys, list(distinct.select("_d", "_f", "_s").iter_rows())


def _distinct(frame: pl.DataFrame, output: str, final: str, source: str,
              keep: list[str] | None = None) -> tuple[pl.Series, pl.DataFrame]:
    """`distinct_changes` as (the index `_k` of each row's triple, null for rows without a change;
    a frame of the distinct triples: `_k`, `_d`, `_f`, `_s` and the `keep` columns of their first row)."""
    src = source if source in frame.columns else None
    key_frame = frame.select(
        pl.col(output).cast(pl.String).fill_null("").alias("_d"), pl.col(final).cast(pl.String).alias("_f"),
        (pl.col(src).cast(pl.String) if src else pl.lit(None, dtype=pl.String)).alias("_s"), *(keep or []))
    # Rows are matched to their triple by a 64-bit hash of it (its three column hashes combined; a
    # struct hash was ten times slower): joining a million rows on the three long strings took 5 s,
    # on the hash well under one. Two distinct triples of one frame collide with a chance of about
    # n^2 / 2^65.
    changed = pl.col("_f").is_not_null() & (pl.col("_f") != pl.col("_d"))
    triple_hash = pl.col("_d").hash(1) ^ (pl.col("_f").hash(2) * 3) ^ (pl.col("_s").hash(3) * 5)
    key_frame = key_frame.with_columns(pl.when(changed).then(triple_hash).alias("_h"))
    distinct = (key_frame.filter(pl.col("_h").is_not_null()).unique(subset="_h", keep="first", maintain_order=True)
                .with_row_index("_k"))
    joined = key_frame.select("_h").join(distinct.select("_h", "_k"), on="_h", how="left", maintain_order="left")
    return joined["_k"], distinct.drop("_h")

def measure(paths: list[str], rows: int = 0, seed: int = 0, repeat: int = 0) -> str:
    """Figures of `edit_columns` on post-edited MT in MLQE-PE's TSV layout (columns source, mt,
    post_edit): per file, the share of edited rows with each flag, the 10 most frequent
    substitutions and the time; with `rows`, the time of one frame of `rows` rows drawn from all
    files with replacement, every second row varied (a ticket number put in front of draft, final
    and source, as logs repeat templates with other values); with `repeat`, the time of one frame of
    `repeat` rows that repeat the first 3,000 rows of the first file (logs that repeat a lot)."""
    import random
    import time

    lines: list[str] = []
    frames = []
    for path in paths:
        frame = pl.read_csv(path, separator="\t", infer_schema_length=0)
        frames.append(frame.select("source", "mt", "post_edit"))
        _aligned.cache_clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = edit_columns(frame, output="mt", final="post_edit", source="source")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        edited = out.filter(pl.col("edit_text") != "")
        toks = edited["edit_text"].str.split(" ")
        lines.append(f"{path}: {frame.height} rows, {edited.height} edited ({edited.height / frame.height:.1%}), "
                     f"edit_columns {seconds:.2f} s ({cpu:.2f} s CPU)")
        shares = ", ".join(f"{f} {toks.list.contains(f'flag:{f}').mean():.1%}" for f in FLAGS if f != "unchanged")
        lines.append(f"  flags (share of edited rows): {shares}")
        subs = (toks.explode().to_frame("t").filter(pl.col("t").str.starts_with("sub:"))
                .group_by("t").len().sort(["len", "t"], descending=[True, False]).head(10))
        lines.append("  top substitutions: " + ", ".join(f"{t[4:]} ({n})" for t, n in subs.iter_rows()))
    if rows:
        pool = pl.concat(frames)
        rng = random.Random(seed)
        picks = [rng.randrange(pool.height) for _ in range(rows)]
        big = pool[picks].with_row_index("i").with_columns(
            [pl.when(pl.col("i") % 2 == 1).then(pl.lit("Ticket ") + (pl.col("i") % 997).cast(pl.String) + pl.lit(": ")
                                                + pl.col(c)).otherwise(pl.col(c)).alias(c)
             for c in ("source", "mt", "post_edit")])
        distinct = big.select("source", "mt", "post_edit").unique().height
        _aligned.cache_clear()
        t0, c0 = time.perf_counter(), time.process_time()
        edit_columns(big, output="mt", final="post_edit", source="source")
        lines.append(f"{rows} rows drawn from all files ({distinct} distinct triples): edit_columns "
                     f"{time.perf_counter() - t0:.2f} s ({time.process_time() - c0:.2f} s CPU)")
    if repeat:
        head = frames[0].head(3000)
        big = pl.concat([head] * -(-repeat // head.height)).head(repeat).rechunk()
        distinct = big.unique().height
        _aligned.cache_clear()
        t0, c0 = time.perf_counter(), time.process_time()
        edit_columns(big, output="mt", final="post_edit", source="source")
        lines.append(f"{repeat} rows repeating {distinct} distinct triples: edit_columns "
                     f"{time.perf_counter() - t0:.2f} s ({time.process_time() - c0:.2f} s CPU)")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Edit figures on post-edited MT (MLQE-PE TSV files).")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--rows", type=int, default=0, help="also time one frame of this many rows, varied")
    parser.add_argument("--repeat", type=int, default=0, help="also time one frame of this many repeated rows")
    args = parser.parse_args()
    print(measure(args.paths, args.rows, repeat=args.repeat))
