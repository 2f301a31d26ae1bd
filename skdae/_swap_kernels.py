"""Swap noise and missing entries for the single-layer autoencoder's minibatches.

Swap noise replaces an entry ``(i, j)`` of a minibatch, with probability
``level``, by the same feature's value in a random *other* training row
(Jahrer's recipe for tables). Dense minibatches reuse the deep engine's
kernel (``_head_kernels.gather_corrupt_groups`` with one column group per
feature); this module holds what the dense kernel cannot do:

- :func:`swap_csr_batch`: swap noise on a CSR minibatch at a cost
  proportional to its non-zeros. A stored entry draws exactly what the
  dense kernel draws (the same corruption uniform and donor row, whose value
  is looked up by binary search). A zero entry ``(i, j)`` turns non-zero
  only if it is corrupted *and* its donor stores feature ``j``: with
  ``n_j`` of the ``n`` training rows storing ``j``, that has probability
  ``q_j = level * n_j / (n - 1)``, independently for every zero entry, and
  the value is then uniform over the ``n_j`` stored values. These receivers
  are drawn per feature by geometric skipping over the minibatch rows
  (O(1 + receivers) per feature) with their own counter-based streams, so
  the distribution is the dense one (rows storing ``j`` are skipped: their
  entries were treated above), not the same draws. Where the emphasis
  needs to know the corrupted entries, the zero entries that received
  nothing are flagged corrupted with probability
  ``(level - q_j) / (1 - q_j)``, so that every entry is flagged with
  probability ``level`` and a flagged zero entry received a value with
  probability ``n_j / (n - 1)``, as in the dense case.
- :func:`zero_missing`: a missing (NaN) entry is fed as masked (0) whatever
  the noise did, and a NaN swapped in from a donor is fed as 0 too.

All draws are counter-based (``_kernels._uniform``) on the row's place in
the minibatch: reproducible and independent of the number of threads.
"""

import numba
import numpy as np

from ._kernels import (
    _STREAM2,
    _check_csr,
    _check_rows,
    _fail,
    _guarded,
    _uniform,
)

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# Further independent streams from a minibatch seed.
_STREAM3 = np.uint64(0x8CB92BA72F3D8DD7)  # receivers: geometric gaps
_STREAM4 = np.uint64(0xA0761D6478BD642F)  # receivers: which stored value
_STREAM5 = np.uint64(0xE7037ED1A0B428DB)  # flags of the other zero entries


@_jit
def _stored(indices, start, stop, j):
    """Position of column ``j`` in the sorted ``indices[start:stop]``, or -1."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < stop and indices[lo] == j else -1


@_jit
def _receiver_probabilities(col_ptr, n_pool, level):
    q = np.zeros(col_ptr.shape[0] - 1)
    if n_pool > 1:
        for j in range(q.shape[0]):
            n_j = col_ptr[j + 1] - col_ptr[j]
            if n_j < n_pool:  # else no training row has a zero there
                q[j] = level * n_j / (n_pool - 1)
    return q


@_jit
def _swap_receivers(indices, indptr, rows, col_ptr, col_values, q, seed,
                    rec_row, rec_col, rec_val):
    """Zero entries of the minibatch that receive a stored value.

    Writes up to ``rec_row.shape[0]`` of them; returns how many there are
    (the caller retries with more room if that is more).
    """
    n_rows = rows.shape[0]
    s3, s4 = np.uint64(seed) ^ _STREAM3, np.uint64(seed) ^ _STREAM4
    count = 0
    for j in range(q.shape[0]):
        if q[j] <= 0.0:
            continue
        log_keep = np.log1p(-q[j])
        n_j = col_ptr[j + 1] - col_ptr[j]
        base = np.uint64(j) << np.uint64(32)
        t = np.uint64(0)
        pos = -1
        while True:
            u = _uniform(s3, base + t)
            gap = np.floor(np.log1p(-u) / log_keep)
            if gap >= n_rows - pos - 1:
                break
            pos += 1 + np.int64(gap)
            r = rows[pos]
            if _stored(indices, indptr[r], indptr[r + 1], j) < 0:
                k = np.int64(_uniform(s4, base + t) * n_j)
                if count < rec_row.shape[0]:
                    rec_row[count] = pos
                    rec_col[count] = j
                    rec_val[count] = col_values[col_ptr[j] + min(k, n_j - 1)]
                count += 1
            t += np.uint64(1)
    return count


@_jit
def _assemble(data, indices, indptr, rows, pool, n_pool, seed, level, q,
              rec_start, rec_col, rec_val, out_data, out_indices, out_indptr,
              flags, has_missing):
    """The corrupted minibatch as CSR: stored entries, then receivers."""
    n_features = q.shape[0]
    whole = pool.shape[0] == 0
    s = np.uint64(seed)
    s2, s5 = s ^ _STREAM2, s ^ _STREAM5
    with_flags = flags.shape[0] > 0
    nz = 0
    out_indptr[0] = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        base = np.uint64(i * n_features)
        if with_flags:
            for j in range(n_features):
                c = (level - q[j]) / (1.0 - q[j])
                flags[i, j] = _uniform(s5, base + np.uint64(j)) < c
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            v = data[p]
            c = base + np.uint64(j)
            corrupted = _uniform(s, c) < level
            if with_flags:
                flags[i, j] = corrupted
            if has_missing and v != v:
                continue  # missing: fed as 0, never swapped into
            if corrupted:
                # The donor of gather_corrupt_groups (same draw, same rule).
                k = np.int64(_uniform(s2, c) * n_pool)
                src = k if whole else pool[k]
                if src == r and n_pool > 1:
                    k = (k + 1) % n_pool
                    src = k if whole else pool[k]
                at = _stored(indices, indptr[src], indptr[src + 1], j)
                v = data[at] if at >= 0 else 0.0 * v
            if v != 0.0 and not (has_missing and v != v):
                out_data[nz] = v
                out_indices[nz] = j
                nz += 1
        for e in range(rec_start[i], rec_start[i + 1]):
            if with_flags:
                flags[i, rec_col[e]] = 1
            v = rec_val[e]
            if not (has_missing and v != v):
                out_data[nz] = v
                out_indices[nz] = rec_col[e]
                nz += 1
        out_indptr[i + 1] = nz


def pool_columns(X, pool):
    """What :func:`swap_csr_batch` needs of the training rows ``pool``.

    ``(col_ptr, col_values)``: the CSC layout of ``X[pool]`` (all rows if
    ``pool`` is empty), computed once per fit; memory O(nnz).
    """
    Xp = X if pool.shape[0] == 0 else X[pool]
    Xc = Xp.tocsc()
    return Xc.indptr.astype(np.int64), Xc.data


def swap_csr_batch(X, rows, pool, columns, seed, level, flags, has_missing):
    """Swap noise on the CSR minibatch ``X[rows]``; see the module docstring.

    ``X`` is the canonical CSR training matrix (sorted indices, no
    duplicates), ``pool`` the training rows donors come from (empty: all),
    ``columns`` from :func:`pool_columns`. ``flags`` (uint8, shape
    ``(len(rows), n_features)``, or empty) receives the corrupted entries,
    for the emphasis. Returns ``(data, indices, indptr)``.
    """
    col_ptr, col_values = columns
    n_features = X.shape[1]
    n_pool = pool.shape[0] if pool.shape[0] else X.shape[0]
    _check_rows("swap_csr_batch", rows, rows.shape[0], X.shape[0])
    _check_rows("swap_csr_batch", pool, pool.shape[0], X.shape[0])
    _check_csr("swap_csr_batch", X.data, X.indices, X.indptr, n_features)
    if col_ptr.shape != (n_features + 1,) or col_ptr[-1] > col_values.shape[0]:
        _fail("swap_csr_batch", "columns do not match X")
    if flags.shape[0] and flags.shape != (rows.shape[0], n_features):
        _fail("swap_csr_batch", f"flags has shape {flags.shape}, expected "
              f"{(rows.shape[0], n_features)}")
    q = _receiver_probabilities(col_ptr, n_pool, level)
    nnz = int(np.sum(X.indptr[rows + 1] - X.indptr[rows]))
    room = 64 + 2 * int(level * nnz)
    while True:
        rec_row = np.empty(room, dtype=np.int64)
        rec_col = np.empty(room, dtype=X.indices.dtype)
        rec_val = np.empty(room, dtype=X.dtype)
        count = _swap_receivers(X.indices, X.indptr, rows, col_ptr,
                                col_values, q, seed, rec_row, rec_col, rec_val)
        if count <= room:
            break
        room = count
    # Receivers grouped by minibatch row (a stable counting sort).
    order = np.argsort(rec_row[:count], kind="stable")
    rec_start = np.searchsorted(rec_row[:count][order],
                                np.arange(rows.shape[0] + 1))
    out_data = np.empty(nnz + count, dtype=X.dtype)
    out_indices = np.empty(nnz + count, dtype=X.indices.dtype)
    out_indptr = np.empty(rows.shape[0] + 1, dtype=X.indptr.dtype)
    _assemble(X.data, X.indices, X.indptr, rows, pool, n_pool, seed, level,
              q, rec_start, rec_col[:count][order], rec_val[:count][order],
              out_data, out_indices, out_indptr, flags, has_missing)
    nz = out_indptr[-1]
    return out_data[:nz], out_indices[:nz], out_indptr


def _check_zero_missing(out, X, rows):
    n = rows.shape[0]
    if out.ndim != 2 or out.shape[0] < n or out.shape[1] != X.shape[1]:
        _fail("zero_missing", f"out has shape {out.shape}, needs at least "
              f"{n} rows of {X.shape[1]} columns")
    _check_rows("zero_missing", rows, n, X.shape[0])


@_guarded(_check_zero_missing)
@_jit
def zero_missing(out, X, rows):
    """In place: ``out[i, j] = 0`` where ``X[rows[i], j]`` or ``out[i, j]`` is NaN.

    After any noise on a minibatch with missing entries: a missing entry is
    fed masked, and so is a missing value that swap noise brought in.
    """
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(X.shape[1]):
            if X[r, j] != X[r, j] or out[i, j] != out[i, j]:
                out[i, j] = 0.0
