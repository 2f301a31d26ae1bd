"""Numba kernels of the deep network engine: table corruption and output heads.

The hidden layers reuse ``_kernels.bias_activate`` and ``_kernels.hidden_delta``;
matrix products stay with BLAS in the driver (``_network.py``). What is here:

- corruption of a minibatch of a table by *column groups* (one original
  column: its input block and its missing indicator): swap noise (the
  group's inputs copied from another random training row, a categorical
  column's one-hot block as a whole) or masking (the group set to its missing
  encoding: zeros, indicator on); gaussian and salt-and-pepper noise for
  groups of one feature (the stack's fine-tuning). A missing entry is always
  fed masked and flagged corrupted. The draws are counter-based
  (``_kernels._uniform``) on the row's place in the minibatch, so they do not
  depend on how the minibatch is split into blocks or on the number of
  threads;
- the output head: column groups, each with its loss, summed over groups:
  half squared error on identity outputs, sigmoid cross-entropy, or softmax
  cross-entropy over a group of units with the target given as a code. Every
  target entry has a loss weight (0 for a missing target) times the
  emphasis weight (1 if its column group was corrupted, else
  ``uncorrupted_weight``). Loss and gradient come out of one pass.

Kernels take and return arrays and scalars only; compiled once per dtype and
cached on disk.
"""

import numba
import numpy as np

from ._kernels import _STREAM2, _cross_entropy, _normal, _sigmoid, _uniform
from ._vecmath import exp_nonpositive

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# Codes shared with the driver.
NOISE_CODES = {"none": 0, "masking": 1, "swap": 2, "gaussian": 3,
               "salt_and_pepper": 4}
HEAD_CODES = {"squared_error": 0, "sigmoid_cross_entropy": 1, "softmax": 2}

_NONE, _MASKING, _SWAP, _GAUSSIAN, _SALT_AND_PEPPER = 0, 1, 2, 3, 4
_SQUARED, _SIGMOID_CE, _SOFTMAX = 0, 1, 2
_HALF = np.float32(0.5)


@_jit
def _exp_le0(x):
    """``exp(x)`` for ``x <= 0``; a plain call (LLVM inlines it) because
    Numba's own inlining of ``exp_nonpositive`` into these loops trips its
    SSA checks."""
    return exp_nonpositive(x)


# --------------------------------------------------------------------------
# Corruption
# --------------------------------------------------------------------------
@_jit
def gather_corrupt_groups(X, rows, out, corrupted, seed, first_row, kind,
                          level, starts, stops, indicators, pool,
                          input_missing, has_missing, low=0.0, high=1.0):
    """Write the corrupted rows ``X[rows]`` into ``out[:len(rows)]``.

    Column group ``c`` covers the inputs ``starts[c]:stops[c]`` and the
    indicator input ``indicators[c]`` (-1 if none). ``corrupted[i, c]`` is
    set to 1 where the group was corrupted (or its entry is missing, when
    ``has_missing``: ``input_missing[rows[i], c]``), else 0. Swap noise copies
    the group from row ``pool[k]`` of X (row ``k`` if ``pool`` is empty),
    ``k`` uniform, skipping the row itself; the uniforms are drawn from
    ``seed`` and the row's place ``first_row + i`` in the minibatch.

    Gaussian (add N(0, level**2) to every input of every group) and salt and
    pepper (a group set to ``low`` or ``high``) serve groups of one feature:
    with one group per feature, every kind draws exactly what
    ``_kernels.gather_corrupt`` draws for the same seed.
    """
    n_groups = starts.shape[0]
    n_inputs = X.shape[1]
    whole = pool.shape[0] == 0
    n_pool = X.shape[0] if whole else pool.shape[0]
    s = np.uint64(seed)
    s2 = s ^ _STREAM2
    # The minibatch's rows lie at random places of X: copy them (and their
    # missing flags) in a first, tight pass, whose cache misses the CPU
    # overlaps, rather than one row at a time between the draws (3.5x
    # slower on 128 x 32 minibatches of a 20000-row table).
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(X.shape[1]):
            out[i, j] = X[r, j]
        if has_missing:
            for c in range(n_groups):
                corrupted[i, c] = 1 if input_missing[r, c] else 0
    for i in range(rows.shape[0]):
        r = rows[i]
        base = np.uint64((first_row + i) * n_groups)
        for c in range(n_groups):
            if has_missing and corrupted[i, c]:
                continue
            if kind == _GAUSSIAN:
                corrupted[i, c] = 1
                at = np.uint64((first_row + i) * n_inputs)
                for j in range(starts[c], stops[c]):
                    out[i, j] += level * _normal(s, at + np.uint64(j))
                continue
            if kind == _NONE or _uniform(s, base + np.uint64(c)) >= level:
                corrupted[i, c] = 0
                continue
            corrupted[i, c] = 1
            ind = indicators[c]
            if kind == _MASKING:
                for j in range(starts[c], stops[c]):
                    out[i, j] = 0.0
                if ind >= 0:
                    out[i, ind] = 1.0
            elif kind == _SALT_AND_PEPPER:
                v = low if _uniform(s2, base + np.uint64(c)) < 0.5 else high
                for j in range(starts[c], stops[c]):
                    out[i, j] = v
            else:
                k = np.int64(_uniform(s2, base + np.uint64(c)) * n_pool)
                src = k if whole else pool[k]
                if src == r and n_pool > 1:
                    k = (k + 1) % n_pool
                    src = k if whole else pool[k]
                for j in range(starts[c], stops[c]):
                    out[i, j] = X[src, j]
                if ind >= 0:
                    out[i, ind] = X[src, ind]


@_jit
def mask_csr_groups(data, indices, indptr, out, corrupted, seed, first_row,
                    level):
    """Masking noise on a CSR minibatch block, one column group per feature.

    Zeroes stored entries (the sparsity pattern stays) with the draws of
    ``gather_corrupt_groups`` and writes the flags of every feature to
    ``corrupted``, so dense and sparse input see the same noise.
    """
    n_features = corrupted.shape[1]
    s = np.uint64(seed)
    for i in range(indptr.shape[0] - 1):
        base = np.uint64((first_row + i) * n_features)
        for j in range(n_features):
            corrupted[i, j] = _uniform(s, base + np.uint64(j)) < level
        for p in range(indptr[i], indptr[i + 1]):
            out[p] = 0.0 if corrupted[i, indices[p]] else data[p]


# --------------------------------------------------------------------------
# Output head
# --------------------------------------------------------------------------
@_jit
def head_delta(A, bias, T, rows, TW, has_weights, corrupted, emphasis,
               uncorrupted_weight, kinds, starts, stops, targets, target_group,
               grad_bias):
    """Loss and gradient of the output head, in one pass.

    On entry ``A`` holds the output products ``H @ W_out`` (no bias) of the
    batch rows ``rows``; on exit the gradient of the weighted loss with
    respect to the output pre-activations, and ``grad_bias`` its column
    sums. Group ``g`` covers the output units ``starts[g]:stops[g]``; its
    targets start at column ``targets[g]`` of ``T``: one per unit for the
    elementwise losses (kinds 0 and 1), one code for a softmax group (kind
    2). ``TW[rows[i], t]`` (if ``has_weights``) weighs target entry ``t``;
    with ``emphasis`` it is also multiplied by ``uncorrupted_weight`` where
    the column group ``target_group[t]`` was not corrupted.

    Returns the weighted loss summed over the rows.
    """
    zero = A.dtype.type(0.0)
    one = A.dtype.type(1.0)
    uw = A.dtype.type(uncorrupted_weight)
    n_targets = target_group.shape[0]
    n_rows = A.shape[0]
    # The targets (and weights) of the minibatch's rows, gathered first in
    # a tight pass for the reason given in ``gather_corrupt_groups``.
    T_rows = np.empty((n_rows, T.shape[1]), dtype=T.dtype)
    W_rows = np.empty((n_rows if has_weights else 0, n_targets),
                      dtype=A.dtype)
    for i in range(n_rows):
        r = rows[i]
        for t in range(T.shape[1]):
            T_rows[i, t] = T[r, t]
        if has_weights:
            for t in range(n_targets):
                W_rows[i, t] = TW[r, t]
    w_row = np.ones(n_targets, dtype=A.dtype)
    col_loss = np.zeros(A.shape[1], dtype=A.dtype)
    grad_bias[:] = 0.0
    total = 0.0
    for i in range(n_rows):
        # The loss weight of every target entry of the row (all ones
        # without weights and emphasis).
        if has_weights:
            for t in range(n_targets):
                w_row[t] = W_rows[i, t]
        elif emphasis:
            for t in range(n_targets):
                w_row[t] = one
        if emphasis:
            for t in range(n_targets):
                c = target_group[t]
                if c >= 0 and corrupted[i, c] == 0:
                    w_row[t] *= uw
        for g in range(kinds.shape[0]):
            a0, b0, t0 = starts[g], stops[g], targets[g]
            kind = kinds[g]
            if kind == _SQUARED or kind == _SIGMOID_CE:
                # Views of the group, indexed from 0: with offsets such as
                # ``t0 + u - a0`` Numba's negative-index check stayed in the
                # loop and blocked vectorization (10x slower).
                a = A[i, a0:b0]
                c = col_loss[a0:b0]
                bg = bias[a0:b0]
                x = T_rows[i, t0:t0 + b0 - a0]
                w = w_row[t0:t0 + b0 - a0]
                if kind == _SQUARED:
                    for v in range(a.shape[0]):
                        d = a[v] + bg[v] - x[v]
                        a[v] = w[v] * d
                        c[v] += w[v] * (_HALF * d * d)
                else:
                    for v in range(a.shape[0]):
                        loss, z = _cross_entropy(a[v] + bg[v], x[v])
                        a[v] = w[v] * (z - x[v])
                        c[v] += w[v] * loss
                continue
            # Softmax groups are short (a categorical's categories): plain
            # indexing, no views (creating ~5 views per group and row cost
            # more than the arithmetic), one exponential per unit.
            wt = w_row[t0]
            if wt == zero:
                for u in range(a0, b0):
                    A[i, u] = zero
                continue
            y = a0 + np.int64(T_rows[i, t0])
            top = A[i, a0] + bias[a0]
            for u in range(a0, b0):
                z = A[i, u] + bias[u]
                A[i, u] = z
                top = max(top, z)
            zy = A[i, y]
            norm = zero
            for u in range(a0, b0):
                e = _exp_le0(A[i, u] - top)
                A[i, u] = e
                norm += e
            col_loss[a0] += wt * (top + np.log(norm) - zy)
            inv = wt / norm
            for u in range(a0, b0):
                A[i, u] = A[i, u] * inv
            A[i, y] -= wt
        for u in range(A.shape[1]):
            grad_bias[u] += A[i, u]
        # Per-unit sums in the dtype of A, flushed into a float64 total every
        # 64 rows (a running scalar sum would block vectorization).
        if i % 64 == 63 or i == A.shape[0] - 1:
            for u in range(A.shape[1]):
                total += col_loss[u]
                col_loss[u] = 0.0
    return total


@_jit
def head_output(A, bias, kinds, starts, stops, log):
    """In place: the head's output from the products ``A = H @ W_out``.

    Identity for squared-error groups, the sigmoid for cross-entropy ones,
    softmax probabilities (or their log if ``log``) for softmax groups.
    """
    for i in range(A.shape[0]):
        for g in range(kinds.shape[0]):
            a = A[i, starts[g]:stops[g]]  # views indexed from 0 vectorize
            bg = bias[starts[g]:stops[g]]
            if kinds[g] == _SQUARED:
                for v in range(a.shape[0]):
                    a[v] = a[v] + bg[v]
            elif kinds[g] == _SIGMOID_CE:
                for v in range(a.shape[0]):
                    a[v] = _sigmoid(a[v] + bg[v])
            else:
                top = a[0] + bg[0]
                for v in range(a.shape[0]):
                    a[v] = a[v] + bg[v]
                    top = max(top, a[v])
                norm = A.dtype.type(0.0)
                for v in range(a.shape[0]):
                    norm += _exp_le0(a[v] - top)
                if log:
                    shift = top + np.log(norm)
                    for v in range(a.shape[0]):
                        a[v] = a[v] - shift
                else:
                    inv = A.dtype.type(1.0) / norm
                    for v in range(a.shape[0]):
                        a[v] = _exp_le0(a[v] - top) * inv


@_jit
def head_row_losses(A, bias, T, TW, has_weights, kinds, starts, stops,
                    targets, out):
    """``out[i]``: weighted head loss of row ``i`` (no emphasis; A unchanged)."""
    for i in range(A.shape[0]):
        total = 0.0
        for g in range(kinds.shape[0]):
            a0, b0, t0 = starts[g], stops[g], targets[g]
            if kinds[g] == _SOFTMAX:
                w = TW[i, t0] if has_weights else 1.0
                if w == 0.0:
                    continue
                top = A[i, a0] + bias[a0]
                for u in range(a0, b0):
                    top = max(top, A[i, u] + bias[u])
                norm = 0.0
                for u in range(a0, b0):
                    norm += np.exp(A[i, u] + bias[u] - top)
                y = a0 + np.int64(T[i, t0])
                total += w * (top + np.log(norm) - (A[i, y] + bias[y]))
                continue
            for u in range(a0, b0):
                t = t0 + u - a0
                w = TW[i, t] if has_weights else 1.0
                a, x = A[i, u] + bias[u], T[i, t]
                if kinds[g] == _SQUARED:
                    total += w * 0.5 * (a - x) * (a - x)
                else:
                    total += w * _cross_entropy(a, x)[0]
        out[i] = total
