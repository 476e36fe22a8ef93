"""Shared pieces of the collaborative-filtering models: input checks, fold-in, normalisation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import top_n


def check_matrix(user_items: sp.spmatrix) -> sp.csr_matrix:
    """The training matrix as CSR float32, or a clear error."""
    if not sp.issparse(user_items):
        raise TypeError(
            f"user_items must be a SciPy sparse matrix, not {type(user_items).__name__}"
        )
    m = user_items.tocsr()
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"user_items is empty (shape {m.shape})")
    if m.nnz and not np.all(np.isfinite(m.data)):
        raise ValueError("user_items holds NaN or infinite values")
    return m


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, int | float | np.number) and np.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")


def check_int(name: str, value: int, minimum: int = 1) -> None:
    if not (
        isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum
    ):
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")


def positives(user_items: sp.csr_matrix, binary: bool = True) -> sp.csr_matrix:
    """Entries > 0 (set to 1 where ``binary``), CSR float32."""
    m = user_items.tocsr().astype(np.float32, copy=True)
    m.data[m.data < 0] = 0
    if binary:
        m.data[m.data > 0] = 1
    m.eliminate_zeros()
    return m


def fold_in(
    item_factors: np.ndarray,
    rows: sp.csr_matrix,
    regularization: float,
    alpha: float = 1.0,
    yty: np.ndarray | None = None,
) -> np.ndarray:
    """User vectors solved from item vectors and the users' rows, as one ALS half-step does.

    Implicit-feedback least squares (Hu, Koren and Volinsky 2008) with implicit's reading of
    the values: ``c = alpha * value``; a positive ``c`` is preference 1 with confidence ``c``,
    a negative one preference 0 with confidence ``|c|``, a missing one preference 0 with
    confidence 1. Solves ``(YᵀY + Yᵀ(C - I)Y + λI) x = YᵀCp`` per user, exactly.

    Returns float32 (n_rows, factors); an empty row gives a zero vector.
    """
    # Only the rows' own item vectors are read in float64: the whole matrix in float64 at each
    # call cost more than a playlist continuation's other parts together.
    Y = np.asarray(item_factors)
    k = Y.shape[1]
    if yty is None:
        Y64 = Y.astype(np.float64)
        YtY = Y64.T @ Y64
    else:
        YtY = np.asarray(yty, np.float64)
    base = YtY + regularization * np.eye(k)
    rows = rows.tocsr()
    out = np.zeros((rows.shape[0], k), dtype=np.float32)
    for r in range(rows.shape[0]):
        start, end = rows.indptr[r], rows.indptr[r + 1]
        if start == end:
            continue
        idx = rows.indices[start:end]
        c = alpha * rows.data[start:end].astype(np.float64)
        Yi = Y[idx].astype(np.float64)
        A = base + (Yi.T * (np.abs(c) - 1.0)) @ Yi
        b = Yi.T @ np.where(c > 0, c, 0.0)
        out[r] = np.linalg.solve(A, b)
    return out


def scale_rows(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its largest absolute value (rows of zeros stay zero), in place."""
    m = np.abs(scores).max(axis=1, keepdims=True)
    m[m == 0] = 1
    scores /= m
    return scores


def top_k_sparse(dense_rows: np.ndarray, k: int, row_offset: int = 0) -> sp.coo_matrix:
    """The k largest positive entries of each row as a COO block (rows offset by row_offset)."""
    n, m = dense_rows.shape
    k = min(k, m)
    if k <= 0 or n == 0:
        return sp.coo_matrix((n, m), dtype=np.float32)
    part, vals = top_n(dense_rows, k)
    keep = vals > 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)[keep] + row_offset
    return sp.coo_matrix(
        (vals[keep].astype(np.float32), (rows, part[keep])), shape=(n + row_offset, m)
    )


def cosine_top_k(features: sp.csr_matrix, k: int, block: int = 1024) -> sp.csr_matrix:
    """Items x items: the k most cosine-similar items of each item by feature rows (no self)."""
    from sklearn.preprocessing import normalize

    f = normalize(features.tocsr().astype(np.float32), norm="l2", axis=1)
    ft = f.T.tocsc()
    n = f.shape[0]
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        dense = (f[start:stop] @ ft).toarray()
        dense[np.arange(stop - start), np.arange(start, stop)] = 0
        coo = top_k_sparse(dense, k, 0)
        rows.append(coo.row + start)
        cols.append(coo.col)
        vals.append(coo.data)
    out = sp.csr_matrix(
        (
            np.concatenate(vals) if vals else np.zeros(0, np.float32),
            (
                np.concatenate(rows) if rows else np.zeros(0, int),
                np.concatenate(cols) if cols else np.zeros(0, int),
            ),
        ),
        shape=(n, n),
        dtype=np.float32,
    )
    out.sort_indices()
    return out


def tfidf(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of counts (items x terms) weighted by log(1 + tf) * idf."""
    m = counts.tocsr().astype(np.float32, copy=True)
    df = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float32)
    idf = np.log((m.shape[0] + 1.0) / (df + 1.0)).astype(np.float32)
    m.data = np.log1p(m.data) * idf[m.indices]
    m.eliminate_zeros()
    return m
