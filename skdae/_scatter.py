"""Scatter statistics and the closed-form solve of a marginalized DAE layer.

A marginalized denoising layer (Chen et al., 2012) reconstructs some target
features ``x_T`` from a masked copy of the input with a bias feature appended,
``x~ = [x * m, 1]`` with ``m_j ~ Bernoulli(q)``, ``q = 1 - p``. Its expected
squared loss over all maskings, summed over the samples and with an L2 term
``alpha`` on the weights (not the bias), is minimised by ``W = P (Q + alpha
D)^-1``, where, with ``S = sum_i [x_i, 1] [x_i, 1]^T`` the scatter matrix and
``q`` extended by a 1 for the bias (which is never masked),

    Q_jk = S_jk q_j q_k (j != k),   Q_jj = S_jj q_j,   P_tj = S_tj q_j.

Everything here needs only ``n``, the column sums and products of columns of
``X``: the statistics add up over chunks of rows, which is what ``partial_fit``
accumulates. They are computed in float64 whatever the input's dtype: the
solve involves a matrix whose condition grows with rarely active features,
and float32 scatter sums over tens of thousands of rows lose digits there.

For wide input the paper's reduced variant splits the features into subsets
of about ``r`` features and solves one layer per subset, each reconstructing
the same ``r`` targets from its own subset (O(d r) statistics in all); the
layer's output is the mean of the subsets' reconstructions. With a single
subset holding every feature and every feature a target, this is the plain
d x d layer, and then the cross products are the subset's scatter itself.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ._blas import syrk
from ._parallel import BlockRunner, available_threads, blocks

# Rows converted to float64 at a time: bounds the extra memory of float32
# input to a few MB while keeping each BLAS call large enough to run fast.
ROWS_PER_CHUNK = 2048
# Fixed number of partial sums of the dense scatter. Each is accumulated over
# its own chunks with single-threaded BLAS, and they are added in a fixed
# order, so the result is the same whatever the number of threads.
N_LANES = 2
# Above this width two d x d partial sums cost too much memory: one sum,
# multi-threaded BLAS.
MAX_LANED_WIDTH = 4096


def _float64_rows(X, rows):
    return np.ascontiguousarray(X[rows], dtype=np.float64)


def dense_scatter(X, col_sum=None):
    """``X^T X`` in float64 (upper and lower triangle) of a dense array.

    If ``col_sum`` (float64, (n_features,)) is given, the column sums of X
    are added to it from the same float64 chunks (float32 input is then
    converted once, not twice).
    """
    n, d = X.shape
    chunks = blocks(n, ROWS_PER_CHUNK)
    n_lanes = min(N_LANES, len(chunks)) if d <= MAX_LANED_WIDTH else 1
    sums = [np.zeros((d, d), order="F") for _ in range(n_lanes)]
    col_sums = np.zeros((n_lanes, d))

    def accumulate(lane):
        for rows in chunks[lane::n_lanes]:
            A = _float64_rows(X, rows)
            # C += A^T A, upper triangle; the call releases the GIL, so the
            # lanes run at once (SciPy's dsyrk wrapper holds it throughout).
            syrk(A, sums[lane])
            if col_sum is not None:
                col_sums[lane] += A.sum(axis=0)

    if n_lanes == 1:
        accumulate(0)
    else:
        threads = min(available_threads(), n_lanes)
        with BlockRunner(threads) as runner:
            runner.map(accumulate, list(range(n_lanes)))
    S = sums[0]
    for other in sums[1:]:
        S += other
    if col_sum is not None:
        for part in col_sums:  # in a fixed order
            col_sum += part
    upper = np.triu_indices(d, 1)
    S.T[upper] = S[upper]
    return np.ascontiguousarray(S)


def _sparse_product(A, B):
    """``A^T B`` of two CSC matrices with float64 data, as a dense array."""
    return (A.T @ B).toarray()


def _as_float64_csc(X):
    X = X.tocsc(copy=X.dtype != np.float64)
    return X.astype(np.float64, copy=False)


def layer_statistics(X, targets, subsets):
    """The statistics of one layer on the rows of ``X``.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
    targets : ndarray of int of shape (r,)
        The features reconstructed.
    subsets : list of ndarray of int
        A partition of the features; one layer is solved per subset.

    Returns
    -------
    stats : dict
        ``n`` (float), ``col_sum`` (n_features,), ``scatter`` (one
        ``X_G^T X_G`` per subset ``G``) and ``cross`` (``X^T X_T``, of shape
        (n_features, r); None when there is one subset and every feature is
        a target in order, as ``cross`` is then ``scatter[0]``).
    """
    n, d = X.shape
    plain = len(subsets) == 1 and np.array_equal(targets, np.arange(d))
    if sp.issparse(X):
        Xc = _as_float64_csc(X)
        col_sum = np.asarray(Xc.sum(axis=0)).ravel()
        scatter = [_sparse_product(Xc[:, g], Xc[:, g]) for g in subsets]
        # Sparse times dense: no sparse d x r intermediate.
        cross = None if plain else Xc.T @ Xc[:, targets].toarray()
    else:
        col_sum = np.zeros(d)
        if plain:
            scatter, cross = [dense_scatter(X, col_sum)], None
        else:
            for rows in blocks(n, ROWS_PER_CHUNK):
                col_sum += _float64_rows(X, rows).sum(axis=0)
            scatter = [dense_scatter(X[:, g]) for g in subsets]
            cross = np.zeros((d, len(targets)))
            for rows in blocks(n, ROWS_PER_CHUNK):
                A = _float64_rows(X, rows)
                cross += A.T @ A[:, targets]
    return {"n": float(n), "col_sum": col_sum, "scatter": scatter,
            "cross": cross}


def add_statistics(old, new):
    """The statistics of the rows of both, as new arrays (none modified)."""
    cross = None if old["cross"] is None else old["cross"] + new["cross"]
    return {"n": old["n"] + new["n"],
            "col_sum": old["col_sum"] + new["col_sum"],
            "scatter": [a + b for a, b in zip(old["scatter"], new["scatter"])],
            "cross": cross}


def solve_subset(scatter, col_sum_g, n, cross_g, col_sum_t, p, alpha):
    """Weights ``(r, m + 1)`` of one subset's layer, bias last, in float64.

    ``scatter`` is ``X_G^T X_G`` (m, m), ``cross_g`` is ``X_G^T X_T``
    (m, r), ``col_sum_g`` / ``col_sum_t`` the column sums of ``X_G`` / ``X_T``.
    """
    m = scatter.shape[0]
    q = np.full(m + 1, 1.0 - p)
    q[m] = 1.0
    Q = np.empty((m + 1, m + 1))
    Q[:m, :m] = scatter
    Q[:m, m] = Q[m, :m] = col_sum_g
    Q[m, m] = n
    Q *= q[:, None] * q[None, :]
    # A feature is kept with probability q, so E[x~_j^2] = q x_j^2: the
    # diagonal gets one factor q, not two.
    Q.flat[::m + 2] /= q
    Q.flat[:m * (m + 2):m + 2] += alpha
    # P^T (m + 1, r): E[x~_j x_t] = q_j S_jt (the targets are clean).
    Pt = np.empty((m + 1, cross_g.shape[1]))
    Pt[:m] = cross_g * q[:m, None]
    Pt[m] = col_sum_t
    try:
        factor = scipy.linalg.cho_factor(Q, overwrite_a=False,
                                         check_finite=False)
        Wt = scipy.linalg.cho_solve(factor, Pt, overwrite_b=True,
                                    check_finite=False)
    except np.linalg.LinAlgError:
        # Only with alpha=0 (Q + alpha D is positive definite for alpha > 0):
        # every minimiser solves Q W^T = P^T; take the minimum-norm one.
        Wt = scipy.linalg.lstsq(Q, Pt, check_finite=False)[0]
    return Wt.T


def solve_layer(stats, targets, subsets, p, alpha):
    """Weights ``(r, d)`` and bias ``(r,)`` of a layer, in float64.

    The layer's output is the mean of its subsets' reconstructions.
    """
    d = stats["col_sum"].shape[0]
    coef = np.zeros((len(targets), d))
    intercept = np.zeros(len(targets))
    col_sum_t = stats["col_sum"][targets]
    for g, scatter in zip(subsets, stats["scatter"]):
        if stats["cross"] is None:
            cross_g = scatter
        else:
            cross_g = stats["cross"][g]
        W = solve_subset(scatter, stats["col_sum"][g], stats["n"], cross_g,
                         col_sum_t, p, alpha)
        coef[:, g] = W[:, :-1]
        intercept += W[:, -1]
    if len(subsets) > 1:
        coef /= len(subsets)
        intercept /= len(subsets)
    return coef, intercept
