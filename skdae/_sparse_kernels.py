"""Numba kernels for sparse (CSR) targets and reconstruction sampling.

- ``csr_gather_corrupt`` / ``csr_output_delta``: the corruption and the
  decoder loss of ``_kernels`` with the clean targets read from a CSR batch
  instead of a densified copy of it. Each row is scattered into a scratch row
  of one batch-row's width, and the same arithmetic as the dense kernels runs
  on it, so the results are bitwise those of the dense kernels on
  ``batch.toarray()``.
- ``csr_output_delta`` also serves reconstruction sampling (Dauphin et al.,
  2011): the decoder output then holds only the columns ``columns`` of the
  reconstruction, each with an importance weight.
- ``sample_columns``: the columns a sampled minibatch reconstructs.
- ``adam_update_columns`` / ``sgd_update_columns``: optimizer steps on the
  columns a sampled minibatch has gradients for ("lazy" updates).

:func:`output_delta` and :func:`gather_corrupt` dispatch on the type of the
targets, dense array or CSR matrix, with the signatures of the dense kernels.
"""

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._kernels import (
    _CROSS_ENTROPY,
    _GAUSSIAN,
    _HALF,
    _MASKING,
    _ONE,
    _SALT_AND_PEPPER,
    _STREAM2,
    _ZERO,
    _check_csr,
    _check_rows,
    _cross_entropy,
    _fail,
    _guarded,
    _jit,
    _normal,
    _uniform,
)

# The stream of the column draws: independent of the noise of the same seed.
_COLUMN_STREAM = np.uint64(0x8CB92BA72F3D8DD7)


# --------------------------------------------------------------------------
# Shape checks (Numba does no bounds checking)
# --------------------------------------------------------------------------
def _check_csr_gather_corrupt(data, indices, indptr, rows, out, *_):
    _check_csr("csr_gather_corrupt", data, indices, indptr, out.shape[1])
    if out.ndim != 2 or out.shape[0] < rows.shape[0]:
        _fail("csr_gather_corrupt", f"out has shape {out.shape}, needs at "
              f"least {rows.shape[0]} rows")
    _check_rows("csr_gather_corrupt", rows, rows.shape[0],
                indptr.shape[0] - 1)


def _check_columns(kernel, columns, n_columns, n_available):
    if columns.ndim != 1 or columns.shape[0] != n_columns:
        _fail(kernel, f"columns has shape {columns.shape}, expected "
              f"({n_columns},)")
    _check_rows(kernel, columns, n_columns, n_available)


def _check_csr_output_delta(A, bias, data, indices, indptr, rows, seed,
                            first_row, kind, level, uncorrupted_weight, loss,
                            grad_bias, columns, importance, n_features,
                            identity):
    kernel = "csr_output_delta"
    m = A.shape[1]
    if A.ndim != 2 or bias.shape != (m,) or grad_bias.shape != (m,):
        _fail(kernel, f"bias and grad_bias have shapes {bias.shape}, "
              f"{grad_bias.shape}; A has {A.shape}")
    _check_csr(kernel, data, indices, indptr, m)
    _check_rows(kernel, rows, A.shape[0], indptr.shape[0] - 1)
    if identity:
        if m != n_features:
            _fail(kernel, f"A has {m} columns, n_features={n_features}")
    else:
        _check_columns(kernel, columns, m, n_features)
        if importance.shape != (m,):
            _fail(kernel, f"importance has shape {importance.shape}, "
                  f"expected ({m},)")


def _check_update_columns(kernel, param, grads, states, columns, weights):
    m = columns.shape[0]
    for g in grads:
        if g.shape != (param.shape[0], m):
            _fail(kernel, f"gradient has shape {g.shape}, expected "
                  f"{(param.shape[0], m)}")
    for s in states:
        if s.shape != param.shape:
            _fail(kernel, f"state has shape {s.shape}, expected "
                  f"{param.shape}")
    if weights.shape != (m,):
        _fail(kernel, f"weights has shape {weights.shape}, expected ({m},)")
    _check_columns(kernel, columns, m, param.shape[1])


def _check_adam_update_columns(param, grad, grad2, use_grad2, m, v, columns,
                               weights, *_):
    _check_update_columns("adam_update_columns", param, (grad, grad2),
                          (m, v), columns, weights)


def _check_sgd_update_columns(param, grad, grad2, use_grad2, velocity,
                              columns, weights, *_):
    _check_update_columns("sgd_update_columns", param, (grad, grad2),
                          (velocity,), columns, weights)


# --------------------------------------------------------------------------
# Dense-signature dispatchers (used by ``_minibatch``)
# --------------------------------------------------------------------------
_NO_COLUMNS = np.empty(0, dtype=np.int64)


def gather_corrupt(X, rows, out, seed, first_row, kind, level, low, high):
    """``_kernels.gather_corrupt`` for a dense array or a CSR matrix X."""
    if sp.issparse(X):
        return csr_gather_corrupt(X.data, X.indices, X.indptr, rows, out,
                                  seed, first_row, kind, level, low, high)
    return K.gather_corrupt(X, rows, out, seed, first_row, kind, level, low,
                            high)


def output_delta(A, bias, X, rows, seed, first_row, kind, level,
                 uncorrupted_weight, loss, grad_bias):
    """``_kernels.output_delta`` for a dense array or a CSR matrix X."""
    if sp.issparse(X):
        return csr_output_delta(
            A, bias, X.data, X.indices, X.indptr, rows, seed, first_row, kind,
            level, uncorrupted_weight, loss, grad_bias, _NO_COLUMNS,
            np.empty(0, dtype=A.dtype), A.shape[1], True)
    return K.output_delta(A, bias, X, rows, seed, first_row, kind, level,
                          uncorrupted_weight, loss, grad_bias)


# --------------------------------------------------------------------------
# Corruption and loss with CSR targets
# --------------------------------------------------------------------------
@_guarded(_check_csr_gather_corrupt)
@_jit
def csr_gather_corrupt(data, indices, indptr, rows, out, seed, first_row,
                       kind, level, low, high):
    """``gather_corrupt`` of the CSR rows ``rows`` into dense ``out`` rows.

    Gaussian and salt-and-pepper noise corrupt the zeros too: the corrupted
    rows are dense. The draws are those of ``_kernels.gather_corrupt``.
    """
    n_features = out.shape[1]
    s = np.uint64(seed)
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(n_features):
            out[i, j] = _ZERO
        for p in range(indptr[r], indptr[r + 1]):
            out[i, indices[p]] += data[p]
        base = np.uint64((first_row + i) * n_features)
        if kind == _MASKING:
            for j in range(n_features):
                u = _uniform(s, base + np.uint64(j))
                out[i, j] = 0.0 if u < level else out[i, j]
        elif kind == _GAUSSIAN:
            for j in range(n_features):
                out[i, j] = out[i, j] + level * _normal(s, base + np.uint64(j))
        elif kind == _SALT_AND_PEPPER:
            for j in range(n_features):
                c = base + np.uint64(j)
                if _uniform(s, c) < level:
                    out[i, j] = low if _uniform(s ^ _STREAM2, c) < 0.5 else high


@_guarded(_check_csr_output_delta)
@_jit
def csr_output_delta(A, bias, data, indices, indptr, rows, seed, first_row,
                     kind, level, uncorrupted_weight, loss, grad_bias, columns,
                     importance, n_features, identity):
    """``_kernels.output_delta`` with CSR targets, optionally on sampled columns.

    ``A`` holds ``H @ W_dec[:, columns]`` for the rows ``rows`` of the CSR
    matrix ``(data, indices, indptr)``, whose ``indices`` are positions in
    ``columns`` (0 to ``A.shape[1]``). The emphasis noise of column ``c`` is
    that of feature ``columns[c]`` of ``n_features``, and its loss and
    gradient are multiplied by ``importance[c]``. With ``identity`` the
    columns are all ``n_features`` features in order with weight 1
    (``columns`` and ``importance`` are not read): the exact loss, bitwise
    that of ``output_delta`` on the densified rows.
    """
    m = A.shape[1]
    s = np.uint64(seed)
    emphasis = uncorrupted_weight != 1.0 and (
        kind == _MASKING or kind == _SALT_AND_PEPPER
    )
    uw = A.dtype.type(uncorrupted_weight)
    column_weight = np.ones(m, dtype=A.dtype)
    if not identity:
        for c in range(m):
            column_weight[c] = importance[c]
    weight = column_weight.copy()
    x = np.zeros(m, dtype=A.dtype)  # the clean row, scattered
    col_loss = np.zeros(m, dtype=A.dtype)
    total = 0.0
    grad_bias[:] = 0.0
    for i in range(A.shape[0]):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            x[indices[p]] += data[p]
        if emphasis:
            base = np.uint64((first_row + i) * n_features)
            if identity:
                for c in range(m):
                    u = _uniform(s, base + np.uint64(c))
                    weight[c] = column_weight[c] * (uw if u >= level else _ONE)
            else:
                for c in range(m):
                    u = _uniform(s, base + np.uint64(columns[c]))
                    weight[c] = column_weight[c] * (uw if u >= level else _ONE)
        if loss == _CROSS_ENTROPY:
            for c in range(m):
                a = A[i, c] + bias[c]
                xc = x[c]
                elementwise, z = _cross_entropy(a, xc)
                w = weight[c]
                g = w * (z - xc)
                A[i, c] = g
                grad_bias[c] += g
                col_loss[c] += w * elementwise
        else:
            for c in range(m):
                a = A[i, c] + bias[c]
                d = a - x[c]
                w = weight[c]
                g = w * d
                A[i, c] = g
                grad_bias[c] += g
                col_loss[c] += w * (_HALF * d * d)
        for p in range(indptr[r], indptr[r + 1]):
            x[indices[p]] = _ZERO
        if i % 64 == 63 or i == A.shape[0] - 1:
            for c in range(m):
                total += col_loss[c]
                col_loss[c] = 0.0
    return total


# --------------------------------------------------------------------------
# Reconstruction sampling: which columns a minibatch reconstructs
# --------------------------------------------------------------------------
@_jit
def _sample_ranks(n, k, seed):
    """``k`` distinct integers of ``[0, n)``, uniformly, sorted (Floyd)."""
    s = np.uint64(seed) ^ _COLUMN_STREAM
    if k >= n:
        return np.arange(n)
    chosen = set()
    out = np.empty(k, dtype=np.int64)
    for t, j in enumerate(range(n - k, n)):
        r = min(np.int64(_uniform(s, np.uint64(t)) * (j + 1)), j)
        if r in chosen:
            r = j
        chosen.add(r)
        out[t] = r
    out.sort()
    return out


@_jit
def _merge_columns(present, ranks):
    """Sorted union of ``present`` and the other columns of rank ``ranks``.

    ``present`` are sorted distinct columns; the others are the complement,
    in increasing order, and ``ranks`` (sorted) picks some of them. Returns
    the union, whether each of its columns was drawn, and the position of
    each present column in it.
    """
    n_present, n_drawn = present.shape[0], ranks.shape[0]
    columns = np.empty(n_present + n_drawn, dtype=np.int64)
    drawn = np.zeros(n_present + n_drawn, dtype=np.bool_)
    position = np.empty(n_present, dtype=np.int64)
    a = b = j = other = 0
    for out in range(n_present + n_drawn):
        # The column of rank ranks[b] among those not present.
        if b < n_drawn:
            while j < n_present and present[j] <= ranks[b] + j:
                j += 1
            other = ranks[b] + j
        if b < n_drawn and (a == n_present or other < present[a]):
            columns[out] = other
            drawn[out] = True
            b += 1
        else:
            columns[out] = present[a]
            position[a] = out
            a += 1
    return columns, drawn, position


def sample_columns(indices, n_features, k, seed, dtype):
    """The columns a sampled minibatch reconstructs, and their weights.

    Parameters
    ----------
    indices : ndarray of int
        Column indices of the minibatch's stored entries (CSR ``indices``).
    n_features : int
        Number of features.
    k : int
        Number of other columns drawn, uniformly without replacement, from
        those with no stored entry in the minibatch (all of them if fewer).
    seed : int
        Seed of the draw (a stream apart from the noise of the same seed).
    dtype : dtype
        Dtype of the weights.

    Returns
    -------
    columns : ndarray of int64
        Sorted distinct columns: every column of ``indices``, and the drawn.
    importance : ndarray
        1 for the columns of ``indices``, ``n_other / min(k, n_other)`` for
        the drawn ones, where ``n_other`` counts the columns not in
        ``indices``: each of those is drawn with probability
        ``min(k, n_other) / n_other``, so the weighted loss is an unbiased
        estimate of the loss over all columns.
    local : ndarray of int64
        The position in ``columns`` of each entry of ``indices``.
    """
    # One O(nnz log nnz) sort gives the distinct columns and every entry's
    # rank among them (np.unique and np.searchsorted cost several times more).
    order = np.argsort(indices)
    ordered = indices[order]
    new = np.empty(ordered.shape[0], dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    present = ordered[new].astype(np.int64)
    n_other = n_features - present.shape[0]
    k = min(k, n_other)
    ranks = _sample_ranks(n_other, k, seed)
    columns, drawn, position = _merge_columns(present, ranks)
    importance = np.ones(columns.shape[0], dtype=dtype)
    if k:
        importance[drawn] = n_other / k
    local = np.empty(indices.shape[0], dtype=np.int64)
    local[order] = position[np.cumsum(new) - 1]
    return columns, importance, local


# --------------------------------------------------------------------------
# Lazy optimizer steps on columns
# --------------------------------------------------------------------------
@_guarded(_check_adam_update_columns)
@_jit
def adam_update_columns(param, grad, grad2, use_grad2, m, v, columns, weights,
                        scale, l2, step, beta_1, beta_2, epsilon):
    """``adam_update`` of the columns ``columns`` of ``param``, ``m``, ``v``.

    ``grad[:, c]`` (and ``grad2``) is the gradient of column ``columns[c]``;
    the L2 term of that column is multiplied by ``weights[c]`` (its
    importance weight). Other columns and their moments are left as they
    are (the "lazy" Adam of sparse gradients). With all columns in order and
    weights 1 the arithmetic is that of ``adam_update``.
    """
    t = param.dtype.type
    scale, l2, step, epsilon = t(scale), t(l2), t(step), t(epsilon)
    b1, b2 = t(beta_1), t(beta_2)
    c1, c2 = t(1.0 - beta_1), t(1.0 - beta_2)
    for i in range(param.shape[0]):
        for c in range(columns.shape[0]):
            j = columns[c]
            g = grad[i, c] + grad2[i, c] if use_grad2 else grad[i, c]
            g = g * scale + (l2 * weights[c]) * param[i, j]
            mi = b1 * m[i, j] + c1 * g
            vi = b2 * v[i, j] + c2 * g * g
            m[i, j] = mi
            v[i, j] = vi
            param[i, j] -= step * mi / (np.sqrt(vi) + epsilon)


@_guarded(_check_sgd_update_columns)
@_jit
def sgd_update_columns(param, grad, grad2, use_grad2, velocity, columns,
                       weights, scale, l2, learning_rate, momentum, nesterov):
    """``sgd_update`` of the columns ``columns`` (see ``adam_update_columns``)."""
    t = param.dtype.type
    scale, l2 = t(scale), t(l2)
    lr, mu = t(learning_rate), t(momentum)
    mu_p = mu if nesterov else _ONE
    lr_p = lr if nesterov else _ZERO
    for i in range(param.shape[0]):
        for c in range(columns.shape[0]):
            j = columns[c]
            g = grad[i, c] + grad2[i, c] if use_grad2 else grad[i, c]
            g = g * scale + (l2 * weights[c]) * param[i, j]
            vel = mu * velocity[i, j] - lr * g
            velocity[i, j] = vel
            param[i, j] += mu_p * vel - lr_p * g

