"""Group a sample of failure vectors into candidate failure modes (the nightly fit).

The chosen method, `louvain`: link each document to its `neighbors` (15) most similar documents
(cosine; the k-nearest-neighbour graph, symmetrised), then find the graph's communities by
modularity with the Louvain method at `resolution` (0.4). Why a graph: reviewers describe one
failure in many phrasings ("wrong figure", "refund value off", "amount doesn't match") that share
few words with each other, so any cut on plain text similarity splits a failure mode into its
phrasings; but each phrasing's documents have neighbours among the others (through the same
reason code, the same flaw in the draft, the same words removed), so the phrasings of one mode
form one densely linked community. The same graph made mutual (an edge only where each document
is among the other's neighbours) and cut at the finer `fine_resolution` (1.0) gives `fine`
communities, where a new failure mode shows while it is still too small to stand out in its big
neighbour's community (`model._split_novel`).

The alternatives, measured through the whole nightly process (`flywheel.failures.benchmark`, the
figures are in `flywheel.failures.model`'s docstring): `diffusion` (the same graph used to smooth
each vector over `steps` random-walk steps, then an average-linkage cut at cosine distance `cut`),
`agglomerative` (average-linkage cut of the plain cosine distances), `hdbscan` (density
clustering of the cosine distances) and `kmeans` (k-means on a 100-dimension LSA projection, k
picked by silhouette).

Every method is deterministic for its input (rows in a fixed order); group labels are numbered
by first appearance, -1 for rows in no group of at least `min_size` rows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize

METHODS: tuple[str, ...] = ("louvain", "diffusion", "agglomerative", "hdbscan", "kmeans")


@dataclass(frozen=True)
class FitParams:
    """Parameters of the nightly fit (see the module docstring): `method`, `neighbors` (k of the
    graph; also HDBSCAN's min_samples), `resolution` and `fine_resolution` (Louvain; 0 turns the
    fine partition off), `mutual` (coarse graph mutual too), `steps` and `cut` (diffusion,
    agglomerative), `min_size` (smallest group kept) and `seed` (sampling and k-means)."""

    method: str = "louvain"
    neighbors: int = 15
    resolution: float = 0.4
    fine_resolution: float = 1.0
    mutual: bool = False
    steps: int = 6
    cut: float = 0.7
    min_size: int = 5
    seed: int = 0


def _cosine_distances(Z: sp.csr_matrix | np.ndarray) -> np.ndarray:
    S = Z @ Z.T
    S = S.toarray() if sp.issparse(S) else np.asarray(S)
    D = np.clip(1.0 - S, 0.0, 2.0).astype(np.float64)
    np.fill_diagonal(D, 0.0)
    return (D + D.T) / 2.0


def _average_cut(D: np.ndarray, cut: float) -> np.ndarray:
    if D.shape[0] < 2:
        return np.zeros(D.shape[0], dtype=np.int64)
    return AgglomerativeClustering(n_clusters=None, distance_threshold=cut, metric="precomputed",
                                   linkage="average").fit_predict(D).astype(np.int64)


def _knn(X: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """Directed k-nearest-neighbour graph of unit rows: row i links its k most similar rows (cosine >= 0).

    Computed in blocks of rows on a thread per core (the sparse product and numpy's partition let
    go of the GIL; each row's neighbours depend on that row's similarities alone, so the graph is
    the one a single pass gives): on a night's 5,000 fitted documents (30 days x 100k events of the
    bench's generator) 1.30 s wall and CPU in one pass, 0.35 s wall (0.64 s CPU) on two cores."""
    n = X.shape[0]
    k = min(neighbors, n - 1)
    if k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float64)
    XT = X.T.tocsr()  # once: a product with a CSC right side converts it to CSR every block

    def block(start: int) -> tuple[np.ndarray, np.ndarray]:
        stop = min(start + _KNN_BLOCK, n)
        S = (X[start:stop] @ XT).toarray()
        S[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        np.negative(S, out=S)
        idx = np.argpartition(S, k - 1, axis=1)[:, :k].copy()  # not a view of the block's whole partition
        return idx, -np.take_along_axis(S, idx, 1)

    starts = range(0, n, _KNN_BLOCK)
    if len(starts) > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            parts = list(pool.map(block, starts))
    else:
        parts = [block(s) for s in starts]
    idx = np.vstack([p[0] for p in parts])
    w = np.clip(np.vstack([p[1] for p in parts]), 0.0, None).astype(np.float64)
    return sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))


# Rows of the similarity matrix `_knn` holds at once per thread (1,024 x 5,000: 20 MB of float32
# similarities and 40 MB of int64 partition order).
_KNN_BLOCK = 1024


def _symmetric(A: sp.csr_matrix, mutual: bool) -> sp.csr_matrix:
    B = (A.minimum(A.T) if mutual else A.maximum(A.T)).tocsr()
    B.eliminate_zeros()
    return B


def knn_graph(X: sp.csr_matrix, neighbors: int, mutual: bool = False) -> sp.csr_matrix:
    """The k-nearest-neighbour graph of unit rows made undirected: an edge where either row is
    among the other's k nearest (both, when `mutual`), weighted by their cosine (>= 0); no self
    loops. Deterministic for the same rows in the same order."""
    return _symmetric(_knn(X, neighbors), mutual)


def louvain(A: sp.csr_matrix, resolution: float = 1.0, max_levels: int = 20) -> np.ndarray:
    """Communities of the weighted undirected graph `A` by the Louvain method (Blondel et al. 2008).

    Each node in turn moves to the neighbouring community with the largest gain in modularity
    (with `resolution`: lower gives fewer, larger communities) until no move helps; communities
    then become nodes and the process repeats. Nodes are visited in index order and ties keep the
    current community, then the smallest label, so the result is deterministic.
    """
    n = A.shape[0]
    labels = np.arange(n)
    G = sp.csr_matrix(A, dtype=np.float64)
    for _ in range(max_levels):
        comm, moved = _louvain_level(G, resolution)
        _, comm = np.unique(comm, return_inverse=True)
        labels = comm[labels]
        if not moved:
            break
        M = sp.csr_matrix((np.ones(G.shape[0]), (comm, np.arange(G.shape[0]))), shape=(int(comm.max()) + 1, G.shape[0]))
        G = (M @ G @ M.T).tocsr()
    return labels


def _louvain_level(G: sp.csr_matrix, gamma: float) -> tuple[np.ndarray, bool]:
    n = G.shape[0]
    deg = np.asarray(G.sum(axis=1)).ravel()
    m2 = float(deg.sum())
    comm = list(range(n))
    if m2 == 0.0:
        return np.array(comm), False
    tot = deg.tolist()
    degl = deg.tolist()
    indptr, indices, data = G.indptr.tolist(), G.indices.tolist(), G.data.tolist()
    moved_any, improved = False, True
    while improved:
        improved = False
        for i in range(n):
            ci, ki = comm[i], degl[i]
            links: dict[int, float] = {}
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j != i:
                    c = comm[j]
                    links[c] = links.get(c, 0.0) + data[p]
            tot[ci] -= ki
            best_c, best_gain = ci, links.get(ci, 0.0) - gamma * tot[ci] * ki / m2
            for c in sorted(links):
                gain = links[c] - gamma * tot[c] * ki / m2
                if gain > best_gain + 1e-12:
                    best_c, best_gain = c, gain
            tot[best_c] += ki
            if best_c != ci:
                comm[i] = best_c
                improved = moved_any = True
    return np.array(comm), moved_any


def knn_walk(X: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """The random-walk matrix of the k-nearest-neighbour graph with self loops (rows sum to 1)."""
    A = knn_graph(X, neighbors) + sp.identity(X.shape[0], format="csr", dtype=np.float64)
    return normalize(A, norm="l1").astype(np.float32)


def _diffusion(X: sp.csr_matrix, p: FitParams) -> np.ndarray:
    P = knn_walk(X, p.neighbors)
    Z = X
    for _ in range(p.steps):
        Z = P @ Z
    return _average_cut(_cosine_distances(normalize(Z)), p.cut)


def _kmeans(X: sp.csr_matrix, p: FitParams) -> np.ndarray:
    n = X.shape[0]
    dims = max(2, min(100, n - 1, X.shape[1] - 1))
    Z = normalize(TruncatedSVD(dims, random_state=p.seed).fit_transform(X))
    best, best_labels = -2.0, np.zeros(n, dtype=np.int64)
    for k in sorted({k for k in (5, 8, 12, 16, 20, 25, 30, 40) if k < n}):
        labels = KMeans(k, random_state=p.seed, n_init=3).fit_predict(Z)
        score = silhouette_score(Z, labels, metric="cosine", sample_size=min(n, 3000), random_state=p.seed)
        if score > best:
            best, best_labels = score, labels.astype(np.int64)
    return best_labels


@dataclass
class Grouping:
    """The fit's answer: one group label per row (-1: in no group of at least `min_size` rows), and
    for the graph method a finer partition of the same graph (where small new groups show before
    they are big enough to stand out at the coarse resolution), else None."""

    labels: np.ndarray
    fine: np.ndarray | None = None


def _renumber(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Groups smaller than `min_size` become -1; the rest are numbered by first appearance."""
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    keep = (labels >= 0) & (sizes[np.maximum(labels, 0)] >= min_size)
    labels = np.where(keep, labels, -1)
    uniq, first = np.unique(labels[labels >= 0], return_index=True)
    mapping = dict(zip(uniq[np.argsort(first)].tolist(), range(uniq.size)))
    return np.array([mapping.get(x, -1) for x in labels.tolist()], dtype=np.int64)


def group(X: sp.csr_matrix, params: FitParams) -> Grouping:
    """Group the rows of `X` (unit rows) with `params.method` (see the module docstring)."""
    n = X.shape[0]
    if n < max(2, params.min_size):
        return Grouping(np.full(n, -1, dtype=np.int64))
    fine = None
    if params.method == "louvain":
        directed = _knn(X, params.neighbors)
        labels = louvain(_symmetric(directed, params.mutual), params.resolution).astype(np.int64)
        if params.fine_resolution > 0:
            fine_labels = louvain(_symmetric(directed, True), params.fine_resolution).astype(np.int64)
            fine = _renumber(fine_labels, params.min_size)
    elif params.method == "diffusion":
        labels = _diffusion(X, params)
    elif params.method == "agglomerative":
        labels = _average_cut(_cosine_distances(X), params.cut)
    elif params.method == "hdbscan":
        labels = HDBSCAN(min_cluster_size=max(2, params.min_size), min_samples=params.neighbors, metric="precomputed",
                         copy=True).fit_predict(_cosine_distances(X)).astype(np.int64)
    elif params.method == "kmeans":
        labels = _kmeans(X, params)
    else:
        raise ValueError(f"unknown fit method {params.method!r}; one of {METHODS}")
    return Grouping(_renumber(labels, params.min_size), fine)
