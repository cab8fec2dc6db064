"""Names for failure clusters: their distinctive terms and edits by class-based TF-IDF (c-TF-IDF),
made distinct, with a fallback from what the events share when nothing is distinctive.

Each cluster keeps counts of its members' terms (`term_counts` counts one day's members; the model
adds them up and keeps the most frequent): the words and word pairs of reason codes, comments,
statuses and system messages, and the edit tokens of what the human changed (`edits.edit_tokens`:
"sub:sie>du", "ins:nicht", "flag:numbers", "len:added_5_12"), both in one pool. A term's weight in
a cluster is its share of the cluster's terms times log(1 + A / f), A the mean number of terms per
cluster and f the term's count over every cluster: frequent in this cluster and rare in the others.
The name (`names`) is the top three terms, skipping a term whose words are all already in a better
one ("wrong amount" makes "amount" redundant), each edit token said as a person would say it
(`edits.describe`: "human replaced 'sie' with 'du'", "numbers changed", "omission: 5-12 words
added"). A cluster with no term at all is named from what its events share (`fallback_name`: the
outcome, a failed status, the scenario: "rejected without a reason (refund_request)"). Names are
distinct over the clusters known after a night: clusters that would share one are told apart by
their next distinctive term, then their scenario, then their id. Names come from accumulated
counts, and a cluster keeps the terms its name says while they are all still among its five most
distinctive (`model`), so names change slowly: on the generated data of
`python -m flywheel.failures.benchmark compare` (seed 9, 14 nights) 16 of 148 cluster-nights
renamed a cluster (35 without that rule, 39 with the word-only names before), most in the first
week and most in the third term.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from flywheel.failures.documents import SAME_LENGTH
from flywheel.failures.edits import describe
from flywheel.failures.features import EDIT_TOKEN_PATTERN, STOP_WORDS, TOKEN_PATTERN

LABEL_FIELDS: tuple[str, ...] = ("reason_text", "comment_text", "status_text", "system_text")
EDIT_FIELD = "edit_text"
# The kinds of edit token (`edits.edit_tokens`); a word term never holds a ':'.
EDIT_KINDS: frozenset[str] = frozenset({"sub", "ins", "del", "mov", "flag", "len"})
# What a cluster's events share, counted beside its terms for the fallback name.
TRAIT_COLUMNS: tuple[str, ...] = ("outcome", "status", "scenario")
NAME_TERMS = 3


def term_counts(docs: pl.DataFrame, groups: np.ndarray, n_groups: int) -> list[dict[str, int]]:
    """Per group 0..n_groups-1, the counts of terms in its documents: words and word pairs (no stop
    words) of the label fields, and the edit tokens of `edit_text` (when the documents have it);
    `groups[i]` is document i's group, -1 for none."""
    out: list[dict[str, int]] = [{} for _ in range(n_groups)]
    keep = np.flatnonzero(groups >= 0)
    if keep.size == 0:
        return out
    member = sp.csr_matrix((np.ones(keep.size), (groups[keep], np.arange(keep.size))), shape=(n_groups, keep.size))
    texts = docs[list(LABEL_FIELDS)].select(pl.concat_str(list(LABEL_FIELDS), separator=" . ")).to_series()
    words = CountVectorizer(lowercase=False, token_pattern=TOKEN_PATTERN, stop_words=list(STOP_WORDS),
                            ngram_range=(1, 2))
    sources = [(words, texts)]
    if EDIT_FIELD in docs.columns:
        sources.append((CountVectorizer(lowercase=False, token_pattern=EDIT_TOKEN_PATTERN), docs[EDIT_FIELD]))
    for vec, column in sources:
        try:
            counts = vec.fit_transform(column.fill_null("").gather(keep).to_list())
        except ValueError:  # nothing but stop words, or no edits
            continue
        vocab = vec.get_feature_names_out()
        per_group = (member @ counts).tocsr()
        for g in range(n_groups):
            row = per_group[g]
            for j, v in zip(row.indices.tolist(), row.data.tolist()):
                out[g][str(vocab[j])] = out[g].get(str(vocab[j]), 0) + int(v)
    return out


def trait_counts(docs: pl.DataFrame, groups: np.ndarray, n_groups: int) -> list[dict[str, int]]:
    """Per group, how many of its documents have each outcome, status and scenario
    ("outcome:rejected", "status:timeout", "scenario:refund_request")."""
    out: list[dict[str, int]] = [{} for _ in range(n_groups)]
    keep = np.flatnonzero(groups >= 0)
    if keep.size == 0:
        return out
    frame = docs.select([(pl.lit(f"{c}:") + pl.col(c).fill_null("none")).alias(c) for c in TRAIT_COLUMNS]).with_columns(
        pl.Series("g", groups)).gather(keep)
    for c in TRAIT_COLUMNS:
        for g, trait, n in frame.group_by("g", c).len().iter_rows():
            out[g][trait] = n
    return out


def merge_counts(old: dict[str, int], new: dict[str, int], keep: int) -> dict[str, int]:
    """`old` + `new`, keeping the `keep` most frequent terms (ties broken alphabetically)."""
    total = dict(old)
    for term, n in new.items():
        total[term] = total.get(term, 0) + n
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    return dict(ranked)


def ctfidf(counts: list[dict[str, int]]) -> list[dict[str, float]]:
    """Per cluster, the c-TF-IDF weight of each of its terms (see the module docstring)."""
    totals = [sum(c.values()) for c in counts]
    nonempty = [t for t in totals if t > 0]
    if not nonempty:
        return [{} for _ in counts]
    mean_terms = sum(nonempty) / len(nonempty)
    freq: dict[str, int] = {}
    for c in counts:
        for term, n in c.items():
            freq[term] = freq.get(term, 0) + n
    return [{term: (n / total) * math.log(1.0 + mean_terms / freq[term]) for term, n in c.items()} if total else {}
            for c, total in zip(counts, totals)]


def top_terms(weights: dict[str, float], n: int) -> list[str]:
    """The `n` heaviest terms, skipping a term whose words all appear in terms already taken."""
    taken: list[str] = []
    words: set[str] = set()
    for term, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
        parts = set(term.split())
        if parts <= words:
            continue
        taken.append(term)
        words |= parts
        if len(taken) == n:
            break
    return taken


def is_edit_token(term: str) -> bool:
    """Whether a term is an edit token ("sub:sie>du", "flag:numbers") rather than words."""
    kind, sep, _ = term.partition(":")
    return bool(sep) and kind in EDIT_KINDS and " " not in term


def render(term: str) -> str:
    """A term as a name shows it: an edit token in words (`edits.describe`), words as they are."""
    if term == SAME_LENGTH:
        return "length unchanged"
    return describe(term) if is_edit_token(term) else term


def _family(term: str) -> str:
    """What a name says once: the direction of a net length change ("len:added" for every
    "len:added_<bucket>"), any other term itself."""
    return term.split("_", 1)[0] if term.startswith(("len:added_", "len:removed_")) else term


def _name_terms(terms: list[str], n: int) -> list[str]:
    """The first `n` terms a name says (see `label`), then the next one if any."""
    taken: list[str] = []
    families: set[str] = set()
    for term in terms:
        if _family(term) in families:
            continue
        taken.append(term)
        families.add(_family(term))
        if len(taken) == n + 1:
            break
    return taken


def name_terms(terms: list[str], n: int = NAME_TERMS) -> list[str]:
    """The terms `label(terms, n)` says, in order."""
    return _name_terms(terms, n)[:n]


def label(terms: list[str], n: int = NAME_TERMS) -> str:
    """Its first `n` distinctive terms, rendered, joined with ' / ' ("" when there are none); a
    net length change in the same direction as one already taken is skipped ("omission: 2-4 words
    added / omission: 5-12 words added" says one thing twice)."""
    return " / ".join(render(t) for t in name_terms(terms, n))


_OUTCOME_WORDS = {"edited": "heavily edited", "awaiting_review": "not reviewed", "accepted": "accepted"}


def _ranked(traits: dict[str, int], kind: str) -> list[tuple[str, int]]:
    prefix = f"{kind}:"
    return sorted(((k[len(prefix):], n) for k, n in traits.items() if k.startswith(prefix)), key=lambda kv: (-kv[1], kv[0]))


def fallback_name(traits: dict[str, int]) -> str:
    """A name from what a cluster's events share, for a cluster with no distinctive term: its
    outcome (the two commonest when none has 80%), its failed status when most events have one,
    its scenario when at least half its events are in it: "rejected without a reason
    (refund_request)", "not reviewed without a reason, status timeout (several scenarios)"."""
    outcomes = _ranked(traits, "outcome")
    total = sum(n for _, n in outcomes)
    if not total:
        return "failures without a reason"
    words = [_OUTCOME_WORDS.get(o, o) for o, _ in outcomes[:2]]
    text = words[0] if outcomes[0][1] >= 0.8 * total or len(words) == 1 else f"{words[0]} or {words[1]}"
    text += " without a reason"
    statuses = _ranked(traits, "status")
    if statuses and statuses[0][0] not in ("ok", "none") and 2 * statuses[0][1] > total:
        text += f", status {statuses[0][0]}"
    return f"{text} ({main_scenario(traits) or 'several scenarios'})"


def main_scenario(traits: dict[str, int]) -> str | None:
    """The scenario of most of a cluster's events, or None when no scenario has half of them."""
    scenarios = _ranked(traits, "scenario")
    total = sum(n for _, n in scenarios)
    return scenarios[0][0] if scenarios and 2 * scenarios[0][1] >= total else None


def names(terms: list[list[str]], traits: list[dict[str, int]], ids: list[int], n: int = NAME_TERMS) -> list[str]:
    """Distinct names for clusters (their ranked distinctive terms, trait counts and ids).

    A cluster's name is `label(terms, n)`, or `fallback_name(traits)` when it has no term. While
    names collide, every cluster of a colliding name is told apart one step further: its next
    distinctive term (the one after those its name says), then its main scenario in brackets,
    then "#id".
    """
    base = [label(t, n) or fallback_name(tr) for t, tr in zip(terms, traits)]
    steps: list[list[str]] = []
    for b, t, tr, cid in zip(base, terms, traits, ids):
        more = [b]
        said = _name_terms(t, n)
        if len(said) > n:
            more.append(f"{more[-1]} / {render(said[n])}")
        scenario = main_scenario(tr)
        if scenario and f"({scenario})" not in more[-1]:
            more.append(f"{more[-1]} ({scenario})")
        more.append(f"{more[-1]} #{cid}")
        steps.append(more)
    level = [0] * len(base)
    while True:
        current = [s[k] for s, k in zip(steps, level)]
        seen: dict[str, list[int]] = {}
        for i, name in enumerate(current):
            seen.setdefault(name, []).append(i)
        clash = [i for same in seen.values() if len(same) > 1 for i in same if level[i] < len(steps[i]) - 1]
        if not clash:
            return current
        for i in clash:
            level[i] += 1
