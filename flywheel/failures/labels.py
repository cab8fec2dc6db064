"""Names for failure clusters: their distinctive terms by class-based TF-IDF (c-TF-IDF).

Each cluster keeps counts of the words and word pairs of its members' reason codes, comments and
system messages (`term_counts` counts one day's members; the model adds them up and keeps the
most frequent). A term's weight in a cluster is its share of the cluster's terms times
log(1 + A / f), A the mean number of terms per cluster and f the term's count over every cluster:
frequent in this cluster and rare in the others. The label is the top terms, skipping a term
whose words are all already in a better one ("wrong amount" makes "amount" redundant).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from flywheel.failures.features import STOP_WORDS, TOKEN_PATTERN

LABEL_FIELDS: tuple[str, ...] = ("reason_text", "comment_text", "status_text", "system_text")


def term_counts(docs: pl.DataFrame, groups: np.ndarray, n_groups: int) -> list[dict[str, int]]:
    """Per group 0..n_groups-1, the counts of terms (words and word pairs, no stop words) in the
    label fields of its documents; `groups[i]` is document i's group, -1 for none."""
    out: list[dict[str, int]] = [{} for _ in range(n_groups)]
    keep = np.flatnonzero(groups >= 0)
    if keep.size == 0:
        return out
    texts = docs[list(LABEL_FIELDS)].select(pl.concat_str(list(LABEL_FIELDS), separator=" . ")).to_series()
    texts = texts.gather(keep).to_list()
    vec = CountVectorizer(lowercase=False, token_pattern=TOKEN_PATTERN, stop_words=list(STOP_WORDS), ngram_range=(1, 2))
    try:
        counts = vec.fit_transform(texts)
    except ValueError:  # nothing but stop words
        return out
    vocab = vec.get_feature_names_out()
    member = sp.csr_matrix((np.ones(keep.size), (groups[keep], np.arange(keep.size))), shape=(n_groups, keep.size))
    per_group = (member @ counts).tocsr()
    for g in range(n_groups):
        row = per_group[g]
        out[g] = {str(vocab[j]): int(v) for j, v in zip(row.indices.tolist(), row.data.tolist())}
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


def label(terms: list[str], n: int = 3) -> str:
    """A cluster's name: its first `n` distinctive terms joined with ' / ' ('(no words)' if none)."""
    return " / ".join(terms[:n]) if terms else "(no words)"
