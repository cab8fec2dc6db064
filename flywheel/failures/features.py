"""Stateless text features of failure documents: hashed, per-field, sublinear, weighted, unit length.

Each text field of a document (`documents.FIELDS`) is hashed on its own (scikit-learn's
`HashingVectorizer`: no vocabulary, so nothing to fit, store or drift; a word means the same column
tomorrow as today), its counts dampened (1 + log tf), scaled to unit length, multiplied by the
field's weight, and the fields are laid side by side and the row scaled to unit length again. The
dot product of two rows is then their cosine similarity. Stop words are dropped (scikit-learn's
English list less the content words in it that describe failures: "amount", "call", "full",
"system", ...); the comment also gets word pairs. The edit tokens of `edit_text` ("sub:sie>du",
"flag:numbers") are hashed whole, none dropped. No IDF: measured on the generated data it changed
neither the neighbours nor the clusters (10-nearest-neighbour purity 0.973 with, 0.974 without),
and a frozen IDF would be one more piece of state.

The edit_text weight (0.5) and the choice of edit_text over the set-difference words
(removed_words, added_words, weights 0.5 and 0.2 before) were measured with
`python -m flywheel.failures.benchmark compare` (generated, seed 9, louvain: NMI / ARI) and
`python -m flywheel.failures.benchmark real` (MLQE-PE's 5,173 heavy edits of real post-edited
translation, no comments). The word fields without edit_text: 0.840 / 0.796. Both, edit_text at
0.25 / 0.5: 0.851 / 0.817, 0.833 / 0.790. edit_text in place of the word fields at 0.25 / 0.5 /
0.7 / 1.0: 0.857 / 0.812, 0.848 / 0.810, 0.817 / 0.748, 0.775 / 0.666 (0.847 / 0.809 at 0.5
once documents added "len:same"). On MLQE-PE (the draft and edit_text its only non-empty fields;
5,173 heavy edits of whitespace-normalised texts) 0.25 made 3 clusters, 0.5 and 1.0 made 8, every
event matched; `real` as it is now (5,704 heavy edits, as examples/mlqe_pe selects them) at 0.5
leaves 1 unmatched without "len:same", none with it (7 clusters). The word fields split Chinese
into whole runs of characters and said little there.

A featurizer records the fields it hashes (`Featurizer.fields`): a model state saved before
edit_text existed names none and keeps hashing `LEGACY_FIELDS` with its saved weights, so its
centroids keep their meaning; one naming a field this version does not make is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.preprocessing import normalize

from flywheel.failures.documents import FIELDS, TEXT_FIELDS

DEFAULT_WEIGHTS: dict[str, float] = {
    "reason_text": 1.0, "comment_text": 1.0, "draft_text": 0.5, "status_text": 1.0, "system_text": 0.5,
    "edit_text": 0.5,
}
# The weights of the fields only states saved before edit_text hash (their saved weights apply).
LEGACY_WEIGHTS: dict[str, float] = {"removed_words": 0.5, "added_words": 0.2}
# The fields a featurizer saved before it recorded its own (before edit_text existed): a state
# written then keeps hashing these, so its centroids keep their width and meaning.
LEGACY_FIELDS: tuple[str, ...] = ("reason_text", "comment_text", "removed_words", "added_words", "draft_text",
                                  "status_text", "system_text")
# Edit tokens ("sub:sie>du", "flag:numbers") are hashed whole, none dropped.
EDIT_FIELDS: frozenset[str] = frozenset({"edit_text"})
EDIT_TOKEN_PATTERN = r"\S+"
TOKEN_PATTERN = r"(?u)\b[^\W\d_]\w+\b"  # words starting with a letter: "0000" or "00s" say nothing
# scikit-learn's English stop words, less the ones that name what went wrong ("wrong amount",
# "full card number", "model call", "system prompt", "empty reply", "billing").
STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS - {
    "amount", "bill", "call", "system", "full", "empty", "detail", "describe", "find", "found", "fill", "fire",
    "interest", "move", "show", "side", "top", "bottom", "back", "front", "part", "name", "serious"})


@dataclass(frozen=True)
class Featurizer:
    """How documents become vectors (hash width per field, field weights, comment n-grams, and the
    fields hashed, in order).

    Part of a model's state: the same parameters must be used for as long as its clusters live. A
    state saved before `fields` was recorded hashes `LEGACY_FIELDS` (no edit_text) for good.
    """

    n_features: int = 2 ** 18
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    comment_ngrams: int = 2
    fields: tuple[str, ...] = FIELDS

    @property
    def width(self) -> int:
        """Columns of a feature row (every field's hash block side by side)."""
        return self.n_features * len(self.fields)

    def to_json(self) -> dict:
        """The parameters as a JSON-ready dict."""
        return {"n_features": self.n_features, "weights": dict(self.weights), "comment_ngrams": self.comment_ngrams,
                "fields": list(self.fields)}

    @classmethod
    def from_json(cls, data: dict) -> "Featurizer":
        """The featurizer `to_json` described (`LEGACY_FIELDS` when it names no fields)."""
        weights = {k: float(v) for k, v in data["weights"].items()}
        fields = tuple(data.get("fields", LEGACY_FIELDS))
        unknown = [f for f in fields if f not in TEXT_FIELDS]
        if unknown:
            raise ValueError(f"the failure model state hashes fields this version does not make ({unknown}): "
                             "rebuild the failure tables from the first night")
        return cls(int(data["n_features"]), weights, int(data["comment_ngrams"]), fields)

    def transform(self, docs: pl.DataFrame) -> sp.csr_matrix:
        """One unit-length float32 row per document (rows of an all-empty document are zero), one
        hash block per field of `fields`, in order; a field `docs` lacks counts as empty."""
        blocks = []
        for name in self.fields:
            weight = float(self.weights.get(name, 0.0))
            ngrams = (1, self.comment_ngrams) if name == "comment_text" else (1, 1)
            edit = name in EDIT_FIELDS
            vec = HashingVectorizer(n_features=self.n_features, alternate_sign=False, norm=None, lowercase=False,
                                    token_pattern=EDIT_TOKEN_PATTERN if edit else TOKEN_PATTERN,
                                    stop_words=None if edit else list(STOP_WORDS), ngram_range=ngrams,
                                    dtype=np.float32)
            if weight == 0.0 or docs.height == 0 or name not in docs.columns:
                blocks.append(sp.csr_matrix((docs.height, self.n_features), dtype=np.float32))
                continue
            # Each distinct text is hashed once (reason codes, statuses and error messages repeat a
            # lot); rows take their text's vector.
            texts = docs[name].fill_null("").to_frame("text")
            distinct = texts.unique(maintain_order=True).with_row_index("i")
            which = texts.join(distinct, on="text", how="left", maintain_order="left")["i"].to_numpy()
            block = vec.transform(distinct["text"].to_list()).tocsr()[which]
            np.log(block.data, out=block.data)
            block.data += 1.0
            block = normalize(block, copy=False)
            block.data *= weight
            blocks.append(block)
        return normalize(sp.hstack(blocks, format="csr", dtype=np.float32), copy=False)
