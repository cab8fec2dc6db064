"""The failure-mode model: clusters with stable ids, and one night's step (fit, track, assign, name).

A night (`advance`) takes the day's failure documents (`documents`) and the state the previous
night left (`ModelState`: per cluster its id, birth, size, centroid, label terms and exemplars;
and, kept beside it, a sample of the last `window_days` nights' documents with the cluster each
joined):

1. Fit: today's documents and the kept ones are grouped together (`fit.group`: Louvain
   communities of the k-nearest-neighbour graph of stateless hashed text features,
   `features.Featurizer`), at most `max_fit` documents, today's sampled by event id hash.
2. Track: a group whose past members mostly belonged to one cluster continues it; another group
   joins the known cluster it resembles; only a group that fits none founds a new cluster, and a
   small new kind still hiding inside a big group is split off first (`_split_novel`).
3. Assign: every failing event gets a row: its group's cluster, else the nearest group or
   cluster when close enough, else none (unmatched).
4. Update: centroids (running sums of member vectors, pruned), sizes, names (`labels`: c-TF-IDF
   over the accumulated counts of words and edit tokens, with what the events share as a fallback,
   made distinct over every cluster known after the night), exemplars of the new clusters (their
   summary shows the diff of draft and shipped text).

Stable identity: a cluster keeps its id for as long as groups of its failures turn up. A night's
new clusters take the next ids of the previous night's state (`ModelState.next_id`, which only
grows from night to night), in a fixed order (most events that night first), so a night's result
is a function of the previous night's state and the night's documents only: re-running a night,
every night, or a night after a killed run gives every id and assignment a clean run gives. The
featurizer is stateless (hashing) and its parameters are frozen into the state: features never
drift. A state saved before the featurizer recorded its fields keeps hashing the fields of then
(`features.LEGACY_FIELDS`, no edit_text) for as long as its clusters live.

Why this method: measured with `python -m flywheel.failures.benchmark compare` (the whole nightly
process, once per fit method, against the failure modes the generator injected; an unmatched
event counts as its own cluster; CPU seconds, the machine being shared). 14 days x 2,000 events,
seed 9 (the data of tests/test_failures.py): 2,974 failing events with a known mode, 15 modes;
the emerging mode appears on day 10:

| fit method | NMI | ARI | clusters | unmatched | emerging mode's cluster born | CPU s |
|---|---|---|---|---|---|---|
| louvain (chosen) | 0.847 | 0.809 | 16 | 0.0% | its first day | 3.0 |
| diffusion: kNN random-walk smoothing, average-linkage cut | 0.846 | 0.773 | 11 | 0.7% | its first day | 121 |
| agglomerative: average-linkage cut of cosine distances | 0.686 | 0.402 | 31 | 14.3% | its first day | 3.8 |
| hdbscan on cosine distances | 0.619 | 0.285 | 10 | 14.8% | a day later | 2.5 |
| kmeans on 100-dimension LSA, k by silhouette | 0.675 | 0.393 | 32 | 4.1% | its first day | 682 |

The louvain row is measured with the edit tokens as a feature (issue 15; before them: NMI 0.841,
ARI 0.796, 18 clusters, 0.1% unmatched); the other rows before them. 24 days x 2,000 events,
seed 7 (5,272 events): louvain NMI 0.835 / ARI 0.772 (5.5 s; 0.828 / 0.743 before the edit
tokens), agglomerative 0.701 / 0.435 (7.7 s), hdbscan 0.641 / 0.388 (6.0 s). Plain text similarity
(agglomerative, hdbscan, kmeans) splits a failure mode into the phrasings reviewers use for it, or
leaves them unmatched; the graph joins them through shared neighbours. Diffusion over the same
graph scores as well but costs 30 times more and makes coarser clusters. Over six generated data
sets (seeds 3, 5, 7, 9, 11, 21; 14-24 days; 1,500-2,500 events a day) the chosen process scored
NMI 0.81-0.85 and ARI 0.73-0.80 before the edit tokens, and gives the emerging mode its own cluster on its first day or
the day after. What it cannot separate are modes that reviewers describe alike (an omitted contract
clause and missing information) and what the first night merged before there was history to tell
them apart; a mode is split per scenario where its comments differ by scenario.

Bounded cost: `python -m flywheel.failures.benchmark scale --docs 1000000` (a night of 1 M failing
events made by repeating generated ones, from raw rows to written assignments, after 13 normal
nights; 2 cores, load average 2.8): 20.2 s wall, 21.4 s CPU (documents 14.1 s: their text fields
once per distinct draft, final and source text; model 5.9 s), peak resident memory 1.8 GB (0.5 GB
before the night); 5,000 fitted, every event assigned (3.3% unmatched). Before the edit tokens, on
the same machine at load 2.6: 26.3 s wall, 28.9 s CPU, 2.2 GB. The same night as the very first
(`--cold`): 22.3 s wall, 20.5 s CPU, 1.8 GB, 43 clusters founded, 5.1% unmatched.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from flywheel.failures.documents import TEXT_FIELDS
from flywheel.failures.features import Featurizer
from flywheel.failures.fit import FitParams, Grouping, group
from flywheel.failures.labels import ctfidf, merge_counts, name_terms, names, term_counts, top_terms, trait_counts
from flywheel.tables import ASSIGNMENTS

EXISTING, FOUNDING, NEW, UNMATCHED = "existing", "founding", "new", "unmatched"
MATCHES: tuple[str, ...] = (EXISTING, FOUNDING, NEW, UNMATCHED)
STATE_VERSION = 1

# The columns of failures/assignments as polars dtypes (declared in the table registry).
ASSIGNMENT_SCHEMA: dict[str, pl.DataType] = ASSIGNMENTS.polars_schema()


@dataclass(frozen=True)
class FailureConfig:
    """Every knob of the failure model, with defaults that work on the generated sample data.

    - `featurizer`: hash width, field weights, comment n-grams (`features.Featurizer`). Frozen into
      the model state when the first cluster is born; later runs keep the state's featurizer.
    - `fit`: how the nightly fit groups documents (`fit.FitParams`: method, neighbours, Louvain
      resolution, minimum cluster size, ...).
    - `window_days` (7): the nightly fit sees today's failures and the samples kept from this many
      previous nights, so a failure mode is seen with several days of its phrasings.
    - `max_fit` (5000): documents fitted per night at most (today's share at least half); the
      rest of a large night is assigned by similarity, never dropped.
    - `assign_threshold` (0.25): cosine similarity to a centroid at or above which an event that
      the fit did not group joins that cluster.
    - `fold_threshold` (0.5): a group continues the cluster most of its past members were in only
      when its centroid is this close to that cluster's; a group that continues none joins the
      known cluster whose centroid is this close; otherwise it founds a new cluster.
    - `novelty_threshold` (0.35): a community of the fit's finer partition with at least
      `fit.min_size` events from today whose centroid is below this cosine to every known cluster
      is a new failure mode even while it hides inside a big group.
    - `first_resolution` (0.7): Louvain resolution of the very first night (no history yet to
      correct a merge of two modes, so it fits finer groups than the nights after); None: as others.
    - `centroid_terms` (2048): non-zero features kept per stored centroid.
    - `label_terms` (300): term counts kept per cluster for its label (and at most as many outcome,
      status and scenario counts for its fallback name); `label_sample` (500): events per cluster
      and night whose terms are counted.
    - `exemplars` (3): founding events kept per cluster as its examples.
    - `chunk_size` (50000): events featurized at a time (bounds memory on large nights).
    """

    featurizer: Featurizer = field(default_factory=Featurizer)
    fit: FitParams = field(default_factory=FitParams)
    window_days: int = 7
    max_fit: int = 5000
    assign_threshold: float = 0.25
    fold_threshold: float = 0.5
    novelty_threshold: float = 0.35
    first_resolution: float | None = 0.7
    centroid_terms: int = 2048
    label_terms: int = 300
    label_sample: int = 500
    exemplars: int = 3
    chunk_size: int = 50_000

    @property
    def keep_per_night(self) -> int:
        """Documents of a night kept for the fits of the following nights."""
        return max(1, self.max_fit // (2 * max(1, self.window_days)))


@dataclass
class Cluster:
    """One failure mode as the model knows it."""

    cluster_id: int
    born_date: date
    born_run: str
    size: int = 0
    last_seen: date | None = None
    terms: dict[str, int] = field(default_factory=dict)
    top_terms: list[str] = field(default_factory=list)
    label: str = ""
    exemplars: list[dict] = field(default_factory=list)
    traits: dict[str, int] = field(default_factory=dict)
    name_terms: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The cluster as a JSON-ready dict."""
        return {"cluster_id": self.cluster_id, "born_date": self.born_date.isoformat(), "born_run": self.born_run,
                "size": self.size, "last_seen": self.last_seen.isoformat() if self.last_seen else None,
                "terms": self.terms, "top_terms": self.top_terms, "label": self.label, "exemplars": self.exemplars,
                "traits": self.traits, "name_terms": self.name_terms}

    @classmethod
    def from_json(cls, d: dict) -> "Cluster":
        """The cluster `to_json` described (a state written before names were made of edits has no
        traits and no name terms)."""
        return cls(int(d["cluster_id"]), date.fromisoformat(d["born_date"]), d["born_run"], int(d["size"]),
                   date.fromisoformat(d["last_seen"]) if d["last_seen"] else None, dict(d["terms"]),
                   list(d["top_terms"]), d["label"], list(d["exemplars"]), dict(d.get("traits", {})),
                   list(d.get("name_terms", [])))


@dataclass
class ModelState:
    """The clusters known after `day` and their centroid sums (one row per cluster, pruned)."""

    featurizer: Featurizer
    clusters: list[Cluster] = field(default_factory=list)
    sums: sp.csr_matrix | None = None
    next_id: int = 1
    day: date | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.sums is None:
            self.sums = sp.csr_matrix((0, self.featurizer.width), dtype=np.float32)

    def centroids(self) -> sp.csr_matrix:
        """Unit-length centroids, one row per cluster."""
        return _unit(self.sums)

    def ids(self) -> list[int]:
        """The cluster ids, in row order."""
        return [c.cluster_id for c in self.clusters]

    def to_bytes(self) -> bytes:
        """The state as one .npz file's bytes (centroid sums plus a JSON document)."""
        meta = {"version": STATE_VERSION, "featurizer": self.featurizer.to_json(), "next_id": self.next_id,
                "day": self.day.isoformat() if self.day else None, "run_id": self.run_id,
                "clusters": [c.to_json() for c in self.clusters]}
        s = self.sums.tocsr()
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
                            data=s.data.astype(np.float32), indices=s.indices.astype(np.int64),
                            indptr=s.indptr.astype(np.int64), shape=np.array(s.shape, dtype=np.int64))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelState":
        """The state `to_bytes` wrote."""
        with np.load(io.BytesIO(data)) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("version") != STATE_VERSION:
                raise ValueError(f"failure model state version {meta.get('version')} is not {STATE_VERSION}")
            shape = tuple(int(x) for x in z["shape"])
            sums = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape, dtype=np.float32)
        return cls(Featurizer.from_json(meta["featurizer"]), [Cluster.from_json(c) for c in meta["clusters"]], sums,
                   int(meta["next_id"]), date.fromisoformat(meta["day"]) if meta["day"] else None, meta["run_id"])


@dataclass
class DayResult:
    """One night's step: the state after it, one assignment row per failing event, and the
    night's sample of documents (with their cluster ids) kept for the fits of the next nights."""

    state: ModelState
    assignments: pl.DataFrame
    kept: pl.DataFrame


def stable_rank(keys: list[str], seed: int = 0) -> np.ndarray:
    """A pseudo-random but reproducible order key per string (keyed blake2b of the string)."""
    salt = str(seed).encode()
    return np.array([int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8, key=salt).digest(), "big") >> 1
                     for k in keys], dtype=np.int64)


def _unit(M: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit length (zero rows stay zero; an empty matrix stays empty)."""
    return normalize(M, copy=True).astype(np.float32) if M.shape[0] else M.tocsr().astype(np.float32)


def _prune(sums: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row reduced to its `keep` largest entries."""
    sums = sums.tocsr()
    rows = []
    for i in range(sums.shape[0]):
        row = sums.getrow(i)
        if row.nnz > keep:
            top = np.argpartition(-row.data, keep - 1)[:keep]
            row = sp.csr_matrix((row.data[top], (np.zeros(keep, dtype=np.int64), row.indices[top])), shape=row.shape)
        rows.append(row)
    out = sp.vstack(rows, format="csr", dtype=np.float32) if rows else sums.astype(np.float32)
    out.sort_indices()
    return out


def _onehot(labels: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """Row r has a 1 in column i where labels[i] == r (labels < 0 are left out)."""
    cols = np.flatnonzero(labels >= 0)
    return sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (labels[cols], cols)), shape=(n_rows, labels.size))


def _best(X: sp.csr_matrix, C: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Index and cosine of each row's nearest centroid (-1 and 0 when there is none)."""
    if C.shape[0] == 0 or X.shape[0] == 0:
        return np.full(X.shape[0], -1, dtype=np.int64), np.zeros(X.shape[0], dtype=np.float32)
    S = (X @ C.T).toarray()
    j = S.argmax(axis=1)
    return j.astype(np.int64), S[np.arange(S.shape[0]), j].astype(np.float32)


def _fit_set(docs: pl.DataFrame, ranks: np.ndarray, recent: pl.DataFrame, cfg: FailureConfig
             ) -> tuple[np.ndarray, pl.DataFrame]:
    """Which of today's documents are fitted (indices) and which recent documents join them."""
    n = docs.height
    recent_cap = cfg.max_fit // 2 if n > cfg.max_fit // 2 else cfg.max_fit - n
    recent = recent.sort("rank", "event_id").head(min(recent.height, recent_cap))
    today_cap = cfg.max_fit - recent.height
    today = np.arange(n) if n <= today_cap else np.sort(np.argsort(ranks, kind="stable")[:today_cap])
    return today, recent


def _track(g: np.ndarray, past_ids: np.ndarray, is_today: np.ndarray, G: sp.csr_matrix, state: ModelState,
           cfg: FailureConfig) -> tuple[np.ndarray, list[int]]:
    """The known cluster row each group continues (-1: none), and the groups that found new clusters.

    A group's candidate is the cluster at least half of its past members belonged to, provided the
    group's centroid is within `fold_threshold` of that cluster's (a new failure that hid in an old
    cluster yesterday does not inherit it). When several groups have the same candidate, the one
    with most such members continues it; the others stay in it while their centroid is within
    `fold_threshold` of that group's, else they split off. A group that neither continues nor stays
    joins the known cluster whose centroid is nearest when their cosine reaches `fold_threshold`.
    What fits none founds a new cluster if it has at least `fit.min_size` members from today; a
    split too small to found stays in its candidate; anything else too small is left to the
    per-event assignment.
    """
    n_groups = G.shape[0]
    row_of = {c.cluster_id: i for i, c in enumerate(state.clusters)}
    C = state.centroids()
    target = np.full(n_groups, -1, dtype=np.int64)
    candidate = np.full(n_groups, -1, dtype=np.int64)
    support = np.zeros(n_groups, dtype=np.int64)
    for k in range(n_groups):
        past = (g == k) & ~is_today
        labelled = past_ids[past]
        labelled = labelled[labelled >= 0]
        if labelled.size == 0:
            continue
        ids, counts = np.unique(labelled, return_counts=True)
        top = int(np.argmax(counts))
        row = row_of.get(int(ids[top]), -1)
        close = row >= 0 and float(G[k].multiply(C[row]).sum()) >= cfg.fold_threshold
        if close and 2 * int(counts[top]) >= int(past.sum()):
            candidate[k], support[k] = row, int(counts[top])
    keeper: dict[int, int] = {}
    for k in sorted(np.flatnonzero(candidate >= 0).tolist(), key=lambda k: (-int(support[k]), k)):
        keeper.setdefault(int(candidate[k]), k)
    for row, k in keeper.items():
        target[k] = row
    founders: list[int] = []
    for k in range(n_groups):
        if target[k] >= 0:
            continue
        others = np.arange(C.shape[0])
        if candidate[k] >= 0:
            if float(G[k].multiply(G[keeper[int(candidate[k])]]).sum()) >= cfg.fold_threshold:
                target[k] = candidate[k]
                continue
            others = others[others != candidate[k]]
        j, b = _best(G[k], C[others])
        if j[0] >= 0 and b[0] >= cfg.fold_threshold:
            target[k] = int(others[j[0]])
        elif int((is_today & (g == k)).sum()) >= cfg.fit.min_size:
            founders.append(k)
        elif candidate[k] >= 0:
            target[k] = candidate[k]
    return target, founders


def _split_novel(grouping: Grouping, Xf: sp.csr_matrix, is_today: np.ndarray, state: ModelState,
                 cfg: FailureConfig) -> np.ndarray:
    """Group labels where each novel fine community is made a group of its own.

    A small new failure mode hides inside a big coarse group before it is big enough to stand
    out. A community of the finer partition (`fit.Grouping.fine`) is novel when the model already
    has clusters, at least `fit.min_size` of its members are from today, and its centroid's cosine
    to every known cluster's centroid is below `novelty_threshold`.
    """
    g = grouping.labels.copy()
    if grouping.fine is None or not state.clusters or g.size == 0:
        return g
    fine = grouping.fine
    n_fine = int(fine.max()) + 1 if fine.max() >= 0 else 0
    if n_fine == 0:
        return g
    F = _unit(_onehot(fine, n_fine) @ Xf)
    _, near = _best(F, state.centroids())
    next_label = int(g.max()) + 1 if g.max() >= 0 else 0
    for f in range(n_fine):
        members = fine == f
        today = int((members & is_today).sum())
        if today >= cfg.fit.min_size and near[f] < cfg.novelty_threshold:
            g[members] = next_label
            next_label += 1
    return g


def kept_schema() -> dict[str, pl.DataType]:
    """Columns of the documents a night keeps for the next nights' fits."""
    return {"event_id": pl.String(), "event_date": pl.Date(), **{f: pl.String() for f in TEXT_FIELDS},
            "cluster_id": pl.Int64(), "rank": pl.Int64()}


def conform_kept(kept: pl.DataFrame) -> pl.DataFrame:
    """Kept documents in `kept_schema`; a field that a snapshot written before it existed lacks
    (edit_text) is empty."""
    missing = [pl.lit("", dtype=pl.String).alias(f) for f in TEXT_FIELDS if f not in kept.columns]
    return kept.with_columns(missing).select(list(kept_schema())).cast(kept_schema())


def advance(state: ModelState, docs: pl.DataFrame, day: date, run_id: str, config: FailureConfig | None = None,
            recent: pl.DataFrame | None = None) -> DayResult:
    """Fold one night's failure documents (`documents.documents` rows of `day`) into `state`.

    1. Fit: today's documents (a hash-ranked sample when there are more than the budget) and the
       documents kept from the previous nights (`recent`, with the cluster each joined) are grouped
       together (`fit.group`).
    2. Track: each group continues the known cluster its past members mostly belonged to, joins a
       known cluster it is close to, or founds a new one (`_track`).
    3. Assign: today's fitted documents take their group's cluster; every other one (not fitted,
       or in no group) joins the nearest group or known cluster when its cosine reaches
       `assign_threshold`, else stays unmatched (cluster_id null).
    New clusters take the ids from `state.next_id` on, most events today first: the result is a
    function of `state`, `docs` and `recent` only, so re-running a day from the same state and
    inputs gives the same ids and assignments. `state` is not modified.
    """
    cfg = config or FailureConfig()
    if not state.clusters:
        empty = sp.csr_matrix((0, cfg.featurizer.width), dtype=np.float32)
        state = replace(state, featurizer=cfg.featurizer, sums=empty)
    feat = state.featurizer
    docs = docs.sort("event_id")
    if docs["event_id"].n_unique() != docs.height:
        raise ValueError("failure documents must have unique event ids")
    n = docs.height
    ids = docs["event_id"].to_list()
    ranks = stable_rank(ids, cfg.fit.seed)
    if recent is None:
        recent = pl.DataFrame(schema=kept_schema())
    recent = conform_kept(recent)
    recent = recent.filter(pl.col("event_date") < day)
    today_idx, recent = _fit_set(docs, ranks, recent, cfg)
    recent = recent.sort("event_date", "event_id")
    nf = recent.height
    cols = ["event_id", *TEXT_FIELDS]
    fit_docs = pl.concat([recent.select(cols), docs[today_idx].select(cols)])
    is_today = np.r_[np.zeros(nf, dtype=bool), np.ones(today_idx.size, dtype=bool)]
    past_ids = np.r_[recent["cluster_id"].fill_null(-1).to_numpy().astype(np.int64), np.full(today_idx.size, -1)]
    Xf = feat.transform(fit_docs) if fit_docs.height else sp.csr_matrix((0, feat.width), dtype=np.float32)
    fit_params = cfg.fit
    if not state.clusters and cfg.first_resolution is not None:
        fit_params = replace(cfg.fit, resolution=cfg.first_resolution)
    grouping = group(Xf, fit_params) if fit_docs.height else Grouping(np.zeros(0, dtype=np.int64))
    g = _split_novel(grouping, Xf, is_today, state, cfg)
    n_groups = int(g.max()) + 1 if g.size and g.max() >= 0 else 0
    G = _unit(_onehot(g, n_groups) @ Xf) if n_groups else sp.csr_matrix((0, feat.width), dtype=np.float32)
    target, founders = _track(g, past_ids, is_today, G, state, cfg)

    # New clusters, largest first (by today's members), then by first member.
    gt = g[nf:]
    today_sizes = np.bincount(gt[gt >= 0], minlength=n_groups) if n_groups else np.zeros(0, dtype=np.int64)
    first = {k: int(np.flatnonzero(gt == k)[0]) for k in founders}
    founders = sorted(founders, key=lambda k: (-int(today_sizes[k]), first[k]))
    K0 = len(state.clusters)
    clusters = [replace(c) for c in state.clusters]
    next_id = state.next_id
    for m, k in enumerate(founders):
        clusters.append(Cluster(next_id, day, run_id))
        next_id += 1
        target[k] = K0 + m
    K = len(clusters)

    cluster_of = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float32)
    how = np.full(n, UNMATCHED, dtype=object)
    fitted = np.zeros(n, dtype=bool)
    fitted[today_idx] = True
    Xt = Xf[nf:]
    if n_groups:
        gsim = np.asarray(Xt.multiply(G[np.maximum(gt, 0)]).sum(axis=1)).ravel().astype(np.float32)
        lab = np.where(gt >= 0, target[np.maximum(gt, 0)], -1)
    else:
        gsim = np.zeros(today_idx.size, dtype=np.float32)
        lab = np.full(today_idx.size, -1, dtype=np.int64)
    ok = lab >= 0
    cluster_of[today_idx[ok]] = lab[ok]
    sim[today_idx[ok]] = gsim[ok]
    how[today_idx[ok]] = np.where(lab[ok] >= K0, FOUNDING, EXISTING)
    sums_add = _onehot(lab, K) @ Xt if today_idx.size else sp.csr_matrix((K, feat.width), dtype=np.float32)

    # Everything else joins the nearest group or known cluster, when close enough.
    valid = np.flatnonzero(target >= 0) if n_groups else np.zeros(0, dtype=np.int64)
    cand = sp.vstack([G[valid], state.centroids()], format="csr")
    cand_target = np.r_[target[valid], np.arange(K0)].astype(np.int64)
    rest = np.flatnonzero(cluster_of < 0)
    for start in range(0, rest.size, max(1, cfg.chunk_size)):
        idx = rest[start:start + cfg.chunk_size]
        X = feat.transform(docs[idx])
        j, b = _best(X, cand)
        hit = (j >= 0) & (b >= cfg.assign_threshold)
        lab = np.where(hit, cand_target[np.maximum(j, 0)], -1) if cand_target.size else np.full(idx.size, -1)
        cluster_of[idx] = lab
        sim[idx] = b
        how[idx[hit]] = np.where(lab[hit] >= K0, NEW, EXISTING)
        sums_add = sums_add + _onehot(lab, K) @ X
    sums = sp.vstack([state.sums, sp.csr_matrix((K - K0, feat.width), dtype=np.float32)], format="csr") + sums_add
    sums = _prune(sums, cfg.centroid_terms)

    counts = np.bincount(cluster_of[cluster_of >= 0], minlength=K)
    for i, c in enumerate(clusters):
        c.size += int(counts[i])
        if counts[i]:
            c.last_seen = day
    summary = docs["summary"]
    for m, k in enumerate(founders):
        pos = np.flatnonzero(gt == k)
        order = sorted(pos.tolist(), key=lambda t: (-float(gsim[t]), ids[today_idx[t]]))[:cfg.exemplars]
        clusters[K0 + m].exemplars = [
            {"event_id": ids[today_idx[t]], "event_date": day.isoformat(), "summary": summary[int(today_idx[t])][:300],
             "similarity": round(float(gsim[t]), 4)} for t in order]
    _update_labels(clusters, docs, cluster_of, ranks, cfg)

    id_of = np.array([c.cluster_id for c in clusters] or [0], dtype=np.int64)
    cid = np.where(cluster_of >= 0, id_of[np.maximum(cluster_of, 0)], -1)
    assignments = docs.select("event_id", "event_date", "scenario", "model", "prompt_version", "status",
                              "outcome").with_columns(
        pl.Series("cluster_id", cid, dtype=pl.Int64),
        pl.Series("similarity", sim.astype(np.float64)).round(4),
        pl.Series("matched_as", how.tolist(), dtype=pl.String),
        pl.Series("fitted", fitted),
        pl.lit(run_id, dtype=pl.String).alias("run_id"),
    ).with_columns(pl.when(pl.col("cluster_id") >= 0).then(pl.col("cluster_id")).alias("cluster_id"))
    keep = np.sort(np.argsort(ranks, kind="stable")[:cfg.keep_per_night]) if n else np.zeros(0, dtype=np.int64)
    kept = docs[keep].select("event_id", pl.col("event_date").cast(pl.Date), *TEXT_FIELDS).with_columns(
        pl.Series("cluster_id", cid[keep], dtype=pl.Int64), pl.Series("rank", ranks[keep], dtype=pl.Int64),
    ).with_columns(pl.when(pl.col("cluster_id") >= 0).then(pl.col("cluster_id")).alias("cluster_id"))
    new_state = ModelState(feat, clusters, sums, next_id, day, run_id)
    return DayResult(new_state, assignments.select(list(ASSIGNMENT_SCHEMA)).cast(ASSIGNMENT_SCHEMA),
                     kept.cast(kept_schema()))


def _update_labels(clusters: list[Cluster], docs: pl.DataFrame, cluster_of: np.ndarray, ranks: np.ndarray,
                   cfg: FailureConfig) -> None:
    """Add the night's term counts (a hash-ranked sample of each cluster's events) and rename every
    cluster. A cluster keeps the terms its name says while they are all still among its five most
    distinctive (a reordering of near-equal terms does not rename it); names are then made distinct."""
    rows = np.full(docs.height, -1, dtype=np.int64)
    assigned = np.flatnonzero(cluster_of >= 0)
    if assigned.size:
        by = pl.DataFrame({"i": assigned, "c": cluster_of[assigned], "r": ranks[assigned]}).sort("r", "i").with_columns(
            pl.int_range(pl.len()).over("c").alias("k")).filter(pl.col("k") < cfg.label_sample)
        rows[by["i"].to_numpy()] = by["c"].to_numpy()
    for c, t, tr in zip(clusters, term_counts(docs, rows, len(clusters)), trait_counts(docs, rows, len(clusters))):
        c.terms = merge_counts(c.terms, t, cfg.label_terms)
        c.traits = merge_counts(c.traits, tr, cfg.label_terms)
    ranked = []
    for c, w in zip(clusters, ctfidf([c.terms for c in clusters])):
        c.top_terms = top_terms(w, 5)
        keep = bool(c.name_terms) and set(c.name_terms) <= set(c.top_terms)
        ranked.append([*c.name_terms, *(t for t in c.top_terms if t not in c.name_terms)] if keep else c.top_terms)
    for c, r, name in zip(clusters, ranked, names(ranked, [c.traits for c in clusters], [c.cluster_id for c in clusters])):
        c.label = name
        c.name_terms = name_terms(r)
