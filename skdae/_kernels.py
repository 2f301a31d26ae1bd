"""Numba kernels for the elementwise work of a denoising autoencoder.

The matrix products of a training step are left to BLAS (``np.matmul`` in the
driver). Each kernel here fuses one stretch of elementwise work into a single
pass over memory: gathering and corrupting a minibatch, adding a bias and
applying an activation, the reconstruction loss with its gradient and the
emphasis weights, the activation derivative, and the optimizer updates.

Noise comes from a counter-based generator: the noise at entry ``(i, j)`` of a
minibatch is a hash of ``(seed, i * n_features + j)``. It needs no state, costs
a few integer operations, can be recomputed where it is needed (the emphasis
weights of the loss are not stored but re-derived), and gives the same draws
for dense and sparse input and whatever the number of threads.

Kernels take and return arrays and scalars only; they are compiled once per
dtype and cached on disk (``cache=True``), and never stored on an estimator.
"""

import numba
import numpy as np

from ._vecmath import exp_nonpositive, log1p_unit, tanh

# ``error_model="numpy"`` lets divisions vectorize (no ZeroDivisionError check);
# fastmath stays off so that overflow gives inf / 0 as IEEE says, never NaN.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
# Fused multiply-adds (``contract``) change no IEEE special case; they halve
# the cost of the polynomials of the loss kernel. Results differ between CPUs
# with and without FMA only by rounding, as BLAS results already do.
_jit_contract = numba.njit(cache=True, nogil=True, error_model="numpy",
                           fastmath={"contract"})

# Codes shared with the Python driver (``_autoencoder.py``).
CORRUPTION_CODES = {"none": 0, "masking": 1, "gaussian": 2, "salt_and_pepper": 3,
                    "swap": 4}
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "identity": 3}
LOSS_CODES = {"cross_entropy": 0, "squared_error": 1}

_NONE, _MASKING, _GAUSSIAN, _SALT_AND_PEPPER, _SWAP = 0, 1, 2, 3, 4
_SIGMOID, _TANH, _RELU, _IDENTITY = 0, 1, 2, 3
_CROSS_ENTROPY, _SQUARED_ERROR = 0, 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# A second, independent stream (salt or pepper) from the same seed.
_STREAM2 = np.uint64(0xD1B54A32D192ED03)
_TWO_PI = 2.0 * np.pi
# Exactly representable constants typed float32: they keep float32 arithmetic
# in float32 (a float64 literal would promote it) and are exact in float64.
_ZERO, _HALF, _ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)


# --------------------------------------------------------------------------
# Shape checks: every kernel that writes (or reads) through indices is called
# through a cheap Python-side check of the shapes it is given, so that no
# caller can make it write out of bounds (Numba does no bounds checking).
# --------------------------------------------------------------------------
def _fail(kernel, message):
    raise ValueError(f"skdae._kernels.{kernel}: {message}")


@_jit
def _rows_in_range(rows, n_rows, n_available):
    for i in range(n_rows):
        if rows[i] < 0 or rows[i] >= n_available:
            return False
    return True


@_jit
def _csr_in_range(indices, indptr, n_columns, n_entries):
    if indptr[0] < 0 or indptr[-1] > n_entries:
        return False
    for i in range(indptr.shape[0] - 1):
        if indptr[i + 1] < indptr[i]:
            return False
    for p in range(indptr[0], indptr[-1]):
        if indices[p] < 0 or indices[p] >= n_columns:
            return False
    return True


def _check_rows(kernel, rows, n_rows, n_available):
    # Index ranges are scanned by a compiled loop: a NumPy min / max would
    # cost more than the kernel on small minibatches.
    if rows.ndim != 1 or rows.shape[0] < n_rows:
        _fail(kernel, f"needs at least {n_rows} row indices, got shape "
              f"{rows.shape}")
    if not _rows_in_range(rows, n_rows, n_available):
        _fail(kernel, f"row indices out of range [0, {n_available})")


def _check_csr(kernel, data, indices, indptr, n_columns):
    if indptr.ndim != 1 or indptr.shape[0] < 1:
        _fail(kernel, "indptr must be a non-empty 1-d array")
    if not _csr_in_range(indices, indptr, n_columns,
                         min(data.shape[0], indices.shape[0])):
        _fail(kernel, "indptr does not index into data / indices, or column "
              f"indices are out of range [0, {n_columns})")


def _check_shape(kernel, name, array, shape):
    if array.shape != tuple(shape):
        _fail(kernel, f"{name} has shape {array.shape}, expected "
              f"{tuple(shape)}")


def _guarded(check):
    """Call the jitted kernel below only after ``check(*args)`` passed."""
    def decorate(kernel):
        def guarded(*args):
            check(*args)
            return kernel(*args)

        guarded.__name__ = guarded.__qualname__ = kernel.__name__
        guarded.__doc__ = kernel.__doc__
        guarded.kernel = kernel
        return guarded
    return decorate


def _check_gather_corrupt(X, rows, out, *_):
    n = rows.shape[0]
    if out.ndim != 2 or out.shape[0] < n or out.shape[1] != X.shape[1]:
        _fail("gather_corrupt", f"out has shape {out.shape}, needs at least "
              f"{n} rows of {X.shape[1]} columns")
    _check_rows("gather_corrupt", rows, n, X.shape[0])


def _check_mask_csr_data(data, indices, indptr, n_features, out, *_):
    _check_csr("mask_csr_data", data, indices, indptr, n_features)
    if out.shape[0] < indptr[-1]:
        _fail("mask_csr_data", f"out has {out.shape[0]} entries, needs "
              f"{indptr[-1]}")


def _check_csr_matmul_t(data, indices, indptr, W, out):
    _check_csr("csr_matmul_t", data, indices, indptr, W.shape[1])
    n_rows = indptr.shape[0] - 1
    if out.ndim != 2 or out.shape[0] < n_rows or out.shape[1] != W.shape[0]:
        _fail("csr_matmul_t", f"out has shape {out.shape}, needs at least "
              f"{n_rows} rows of W.shape[0]={W.shape[0]} columns")


def _check_csr_t_matmul_add(data, indices, indptr, D, G):
    _check_csr("csr_t_matmul_add", data, indices, indptr, G.shape[1])
    n_rows = indptr.shape[0] - 1
    if D.ndim != 2 or D.shape[0] < n_rows or D.shape[1] != G.shape[0]:
        _fail("csr_t_matmul_add", f"D has shape {D.shape}, needs at least "
              f"{n_rows} rows of G.shape[0]={G.shape[0]} columns")


def _check_bias(kernel, A, bias):
    if A.ndim != 2 or bias.shape != (A.shape[1],):
        _fail(kernel, f"bias has shape {bias.shape}, expected "
              f"({A.shape[1] if A.ndim == 2 else '?'},)")


def _check_bias_activate(A, bias, kind):
    _check_bias("bias_activate", A, bias)


def _check_columns(kernel):
    def check(A, bias, kind, start, stop):
        _check_bias(kernel, A, bias)
        _check_range(kernel, start, stop, A.shape[1])
    return check


def _check_range(kernel, start, stop, n_columns):
    if not 0 <= start <= stop <= n_columns:
        _fail(kernel, f"columns {start}:{stop} are not within the "
              f"{n_columns} columns")


def _check_hidden_delta_columns(dH, H, kind, grad_bias, start, stop):
    _check_hidden_delta(dH, H, kind, grad_bias)
    _check_range("hidden_delta_columns", start, stop, dH.shape[1])


def _check_bias_output(A, bias, loss):
    _check_bias("bias_output", A, bias)


def _check_hidden_delta(dH, H, kind, grad_bias):
    if H.shape != dH.shape or grad_bias.shape != dH.shape[1:]:
        _fail("hidden_delta", f"H and grad_bias have shapes {H.shape}, "
              f"{grad_bias.shape}; dH has {dH.shape}")


def _check_output_delta(A, bias, X, rows, seed, first_row, kind, level,
                        uncorrupted_weight, loss, grad_bias, flags=None,
                        has_missing=False):
    if flags is not None and flags.shape != A.shape:
        _fail("output_delta", f"flags has shape {flags.shape}, expected "
              f"{A.shape}")
    _check_bias("output_delta", A, bias)
    _check_shape("output_delta", "grad_bias", grad_bias, bias.shape)
    if X.ndim != 2 or X.shape[1] != A.shape[1]:
        _fail("output_delta", f"X has shape {X.shape}, needs "
              f"{A.shape[1]} columns")
    _check_rows("output_delta", rows, A.shape[0], X.shape[0])


def _check_output_delta_columns(A, bias, X, rows, seed, first_row, kind,
                                level, uncorrupted_weight, loss, grad_bias,
                                col_loss, flags, has_missing, start, stop):
    _check_output_delta(A, bias, X, rows, seed, first_row, kind, level,
                        uncorrupted_weight, loss, grad_bias, flags,
                        has_missing)
    _check_shape("output_delta_columns", "col_loss", col_loss, bias.shape)
    _check_range("output_delta_columns", start, stop, A.shape[1])


def _check_row_losses(A, bias, X, loss, out):
    _check_bias("row_losses", A, bias)
    _check_shape("row_losses", "X", X, A.shape)
    if out.ndim != 1 or out.shape[0] < A.shape[0]:
        _fail("row_losses", f"out has shape {out.shape}, needs "
              f"{A.shape[0]} entries")


def _check_adam_update(param, grad, grad2, use_grad2, m, v, *_):
    shape = param.shape
    if not (grad.shape == grad2.shape == m.shape == v.shape == shape):
        _fail("adam_update", f"grad, grad2, m and v have shapes {grad.shape}, "
              f"{grad2.shape}, {m.shape}, {v.shape}; param has {shape}")


def _check_sgd_update(param, grad, grad2, use_grad2, velocity, *_):
    shape = param.shape
    if not (grad.shape == grad2.shape == velocity.shape == shape):
        _fail("sgd_update", f"grad, grad2 and velocity have shapes "
              f"{grad.shape}, {grad2.shape}, {velocity.shape}; param has "
              f"{shape}")


# --------------------------------------------------------------------------
# Counter-based random numbers (splitmix64 finaliser)
# --------------------------------------------------------------------------
@_inline
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_inline
def _uniform(seed, counter):
    """Uniform float64 in [0, 1) for ``(seed, counter)``; both are uint64."""
    z = _mix64(seed + (counter + np.uint64(1)) * _GOLDEN)
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_inline
def _normal(seed, counter):
    """Standard normal for ``(seed, counter)`` by the Box-Muller transform."""
    u1 = 1.0 - _uniform(seed, counter)  # in (0, 1]: log is finite
    u2 = _uniform(seed ^ _STREAM2, counter)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@_jit
def uniform_block(seed, n_rows, n_cols):
    """The uniforms a minibatch of shape (n_rows, n_cols) sees (for tests)."""
    out = np.empty((n_rows, n_cols))
    s = np.uint64(seed)
    for i in range(n_rows):
        for j in range(n_cols):
            out[i, j] = _uniform(s, np.uint64(i * n_cols + j))
    return out


# --------------------------------------------------------------------------
# Corruption
# --------------------------------------------------------------------------
@_guarded(_check_gather_corrupt)
@_jit
def gather_corrupt(X, rows, out, seed, first_row, kind, level, low, high):
    """Write the corrupted rows ``X[rows]`` into ``out[:len(rows)]``.

    kind: 0 none, 1 masking (zero a fraction ``level``), 2 gaussian (add
    N(0, level**2)), 3 salt and pepper (set a fraction ``level`` to ``low`` or
    ``high`` with equal probability). ``rows`` may be a block of a minibatch
    that starts at row ``first_row``: the noise depends on the row's place in
    the whole minibatch, not on how the minibatch is split into blocks.
    """
    n_features = X.shape[1]
    s = np.uint64(seed)
    for i in range(rows.shape[0]):
        r = rows[i]
        base = np.uint64((first_row + i) * n_features)
        if kind == _NONE:
            for j in range(n_features):
                out[i, j] = X[r, j]
        elif kind == _MASKING:
            for j in range(n_features):
                u = _uniform(s, base + np.uint64(j))
                out[i, j] = 0.0 if u < level else X[r, j]
        elif kind == _GAUSSIAN:
            for j in range(n_features):
                out[i, j] = X[r, j] + level * _normal(s, base + np.uint64(j))
        else:
            for j in range(n_features):
                c = base + np.uint64(j)
                if _uniform(s, c) < level:
                    out[i, j] = low if _uniform(s ^ _STREAM2, c) < 0.5 else high
                else:
                    out[i, j] = X[r, j]


@_guarded(_check_mask_csr_data)
@_jit
def mask_csr_data(data, indices, indptr, n_features, out, seed, level):
    """Masking noise on a CSR minibatch: zero stored entries, keep the pattern.

    Uses the same draw per ``(row, column)`` as ``gather_corrupt``, so sparse
    and dense input see identical noise.
    """
    s = np.uint64(seed)
    for i in range(indptr.shape[0] - 1):
        base = np.uint64(i * n_features)
        for p in range(indptr[i], indptr[i + 1]):
            u = _uniform(s, base + np.uint64(indices[p]))
            out[p] = 0.0 if u < level else data[p]


# --------------------------------------------------------------------------
# Sparse (CSR) products with dense weights
# --------------------------------------------------------------------------
@_guarded(_check_csr_matmul_t)
@_jit
def csr_matmul_t(data, indices, indptr, W, out):
    """``out = S @ W.T`` for the CSR matrix ``S = (data, indices, indptr)``.

    ``out[i, k] = sum_p data[p] * W[k, indices[p]]`` over the entries ``p`` of
    row ``i``; ``indptr`` may be a slice of a larger matrix's (its values are
    positions in ``data``). The cost is O(nnz(S) * n_components) with no
    transposed copy of ``W`` (which ``scipy.sparse`` would make): rows of
    ``W`` are taken four at a time, stay in cache for all rows of ``S``, and
    each entry of ``S`` is loaded once per four of them.
    """
    n_rows, n_out = indptr.shape[0] - 1, W.shape[0]
    k = 0
    while k < n_out:
        if k + 4 <= n_out:
            for i in range(n_rows):
                a0 = a1 = a2 = a3 = _ZERO * W[k, 0]
                for p in range(indptr[i], indptr[i + 1]):
                    c, v = indices[p], data[p]
                    a0 += v * W[k, c]
                    a1 += v * W[k + 1, c]
                    a2 += v * W[k + 2, c]
                    a3 += v * W[k + 3, c]
                out[i, k] = a0
                out[i, k + 1] = a1
                out[i, k + 2] = a2
                out[i, k + 3] = a3
            k += 4
        else:
            for i in range(n_rows):
                a0 = _ZERO * W[k, 0]
                for p in range(indptr[i], indptr[i + 1]):
                    a0 += data[p] * W[k, indices[p]]
                out[i, k] = a0
            k += 1


@_guarded(_check_csr_t_matmul_add)
@_jit
def csr_t_matmul_add(data, indices, indptr, D, G):
    """In place: ``G += D.T @ S`` for the CSR matrix ``S = (data, indices, indptr)``.

    ``G[k, indices[p]] += D[i, k] * data[p]`` for the entries ``p`` of row
    ``i``: the encoder weight gradient of a sparse minibatch, added where the
    decoder gradient already is (tied weights) or into zeros. Cost
    O(nnz(S) * n_components); rows of ``G`` are taken four at a time, as in
    ``csr_matmul_t``.
    """
    n_rows, n_out = indptr.shape[0] - 1, G.shape[0]
    k = 0
    while k < n_out:
        if k + 4 <= n_out:
            for i in range(n_rows):
                d0, d1, d2, d3 = D[i, k], D[i, k + 1], D[i, k + 2], D[i, k + 3]
                for p in range(indptr[i], indptr[i + 1]):
                    c, v = indices[p], data[p]
                    G[k, c] += d0 * v
                    G[k + 1, c] += d1 * v
                    G[k + 2, c] += d2 * v
                    G[k + 3, c] += d3 * v
            k += 4
        else:
            for i in range(n_rows):
                d0 = D[i, k]
                for p in range(indptr[i], indptr[i + 1]):
                    G[k, indices[p]] += d0 * data[p]
            k += 1


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------
@_inline
def _exp_sigmoid(a):
    """``exp(-|a|)`` and the logistic function of ``a`` computed from it.

    No overflow, and it vectorizes; the cross-entropy reuses the
    exponential for its softplus term.
    """
    e = exp_nonpositive(-abs(a))
    return e, (_ONE if a >= _ZERO else e) / (_ONE + e)


@_inline
def _sigmoid(a):
    """Logistic function from ``exp(-|a|)``: no overflow, and it vectorizes."""
    return _exp_sigmoid(a)[1]


@_inline
def _activate(a, kind):
    if kind == _SIGMOID:
        return _sigmoid(a)
    elif kind == _TANH:
        return tanh(a)
    elif kind == _RELU:
        return a if a > _ZERO else _ZERO * a
    return a


@_inline
def _derivative(h, kind):
    """Activation derivative written in terms of the activation ``h``."""
    if kind == _SIGMOID:
        return h * (_ONE - h)
    elif kind == _TANH:
        return _ONE - h * h
    elif kind == _RELU:
        return _ONE if h > _ZERO else _ZERO
    return _ONE


@_guarded(_check_bias_activate)
@_jit
def bias_activate(A, bias, kind):
    """In place: ``A[i, j] = activation(A[i, j] + bias[j])``."""
    _bias_activate_columns(A, bias, kind, 0, A.shape[1])


@_guarded(_check_bias_activate)
@_jit
def bias_activate_observed(A, bias, kind):
    """``bias_activate``, and whether A held a NaN (then A is not usable).

    For ``A = X @ W.T`` of dense X: a NaN (missing) entry of X makes its
    row of A NaN, so this one pass over A, the activation's own, finds the
    missing entries without a pass over the wider X.
    """
    for i in range(A.shape[0]):
        row = A[i]
        nan = 0
        for j in range(row.shape[0]):  # an OR-reduction: it vectorizes
            nan |= row[j] != row[j]
        if nan:
            return True
        _bias_activate_columns(A[i:i + 1], bias, kind, 0, A.shape[1])
    return False


@_jit_contract
def _bias_activate_columns(A, bias, kind, start, stop):
    """``bias_activate`` on the columns ``start:stop`` of A only."""
    # Loops run over views that start at 0: an index from range(start, stop)
    # could be negative as far as LLVM knows, and the wraparound check then
    # keeps the loop from vectorizing. One loop per activation: a branch
    # inside the loop would block SIMD too.
    b = bias[start:stop]
    for i in range(A.shape[0]):
        a = A[i, start:stop]
        if kind == _SIGMOID:
            for j in range(a.shape[0]):
                a[j] = _sigmoid(a[j] + b[j])
        elif kind == _TANH:
            for j in range(a.shape[0]):
                a[j] = tanh(a[j] + b[j])
        elif kind == _RELU:
            for j in range(a.shape[0]):
                a[j] = _activate(a[j] + b[j], _RELU)
        else:
            for j in range(a.shape[0]):
                a[j] = a[j] + b[j]


bias_activate_columns = _guarded(
    _check_columns("bias_activate_columns"))(_bias_activate_columns)


@_guarded(_check_hidden_delta)
@_jit
def hidden_delta(dH, H, kind, grad_bias):
    """In place: ``dH *= activation'(H)``; ``grad_bias`` gets its column sums."""
    _hidden_delta_columns(dH, H, kind, grad_bias, 0, dH.shape[1])


@_jit
def _hidden_delta_columns(dH, H, kind, grad_bias, start, stop):
    """``hidden_delta`` on the columns ``start:stop`` of dH only.

    ``grad_bias`` has one entry per column of dH; only ``start:stop`` are
    written. Each column is summed over the rows in order, so the result
    does not depend on how the columns are split into ranges.
    """
    gb = grad_bias[start:stop]  # views from 0 vectorize (bias_activate)
    gb[:] = 0.0
    for i in range(dH.shape[0]):
        d, h = dH[i, start:stop], H[i, start:stop]
        if kind == _SIGMOID:
            for j in range(d.shape[0]):
                g = d[j] * _derivative(h[j], _SIGMOID)
                d[j] = g
                gb[j] += g
        else:
            for j in range(d.shape[0]):
                g = d[j] * _derivative(h[j], kind)
                d[j] = g
                gb[j] += g


hidden_delta_columns = _guarded(
    _check_hidden_delta_columns)(_hidden_delta_columns)


# --------------------------------------------------------------------------
# Reconstruction loss
# --------------------------------------------------------------------------
@_inline
def _output(a, loss):
    if loss == _CROSS_ENTROPY:
        return _sigmoid(a)
    return a


@_inline
def _cross_entropy(a, x):
    """``softplus(a) - x * a`` and ``sigmoid(a)``, sharing one exponential.

    The loss of one component from the decoder logit ``a``: finite for every
    finite ``a`` (log(sigmoid) would underflow to -inf).
    """
    e, z = _exp_sigmoid(a)
    return max(a, _ZERO) - x * a + log1p_unit(e), z


@_inline
def _elementwise_loss(a, x, loss):
    """Loss of one component from the decoder pre-activation ``a``."""
    if loss == _CROSS_ENTROPY:
        return _cross_entropy(a, x)[0]
    d = a - x
    return _HALF * d * d


@_guarded(_check_output_delta)
@_jit
def output_delta(A, bias, X, rows, seed, first_row, kind, level,
                 uncorrupted_weight, loss, grad_bias, flags=None,
                 has_missing=False):
    """Loss and gradient at the decoder, in one pass.

    On entry ``A`` holds ``H @ W_dec`` (no bias); on exit it holds the gradient
    of the loss with respect to the decoder pre-activation, ``w * (z - x)``,
    for the clean targets ``X[rows]``. Both losses share this form: sigmoid
    with cross-entropy and identity with half squared error.

    The emphasis weight ``w`` is 1 for corrupted components and
    ``uncorrupted_weight`` for the others (masking, salt and pepper and swap
    noise); which components were corrupted is read from ``flags`` (non-zero
    where corrupted, one row per row of ``A``) if given, else recomputed
    from ``seed`` (and the row ``first_row`` of the minibatch where this
    block starts). With ``has_missing``, a NaN target is a missing entry:
    weight 0, no loss and no gradient.

    Returns the sum over the batch of the weighted per-sample losses.
    """
    col_loss = np.empty(A.shape[1])
    _output_delta_columns(A, bias, X, rows, seed, first_row, kind, level,
                         uncorrupted_weight, loss, grad_bias, col_loss,
                         flags, has_missing, 0, A.shape[1])
    return col_loss.sum()


@_jit_contract
def _output_delta_columns(A, bias, X, rows, seed, first_row, kind, level,
                          uncorrupted_weight, loss, grad_bias, col_loss,
                          flags, has_missing, start, stop):
    """``output_delta`` on the columns ``start:stop`` only.

    ``grad_bias`` and ``col_loss`` (float64) have one entry per column of A;
    only ``start:stop`` are written: ``col_loss[j]`` is the loss of column
    ``j`` summed over the rows. Every column is summed over the rows in
    order, so the results do not depend on how the columns are split.
    """
    n_features, width = A.shape[1], stop - start
    s = np.uint64(seed)
    emphasis = uncorrupted_weight != 1.0 and (
        kind == _MASKING or kind == _SALT_AND_PEPPER or kind == _SWAP
    )
    uw = A.dtype.type(uncorrupted_weight)
    # Loops run over views that start at 0, so that they vectorize (see
    # bias_activate_columns).
    weight = np.ones(width, dtype=A.dtype)
    targets = np.empty(width if has_missing else 0, dtype=A.dtype)
    b, gb, cl = bias[start:stop], grad_bias[start:stop], col_loss[start:stop]
    # Per-column sums in the dtype of A, flushed into float64 every 64 rows:
    # a running scalar sum is a serial dependency that keeps LLVM from
    # vectorizing the loop (without fastmath), and float64 sums would halve
    # the SIMD width of float32 work.
    partial = np.zeros(width, dtype=A.dtype)
    # The cross-entropy's log1p(exp(-|a|)) terms are summed as the log of a
    # product: a multiply per entry, and a log per column at each flush
    # instead of one per entry (2-4x faster). The factors lie in [1, 2], so
    # 64 rows of them stay below 2**64. Weights are 0 (missing), 1 or uw:
    # the terms of weight 1 and of weight uw get a product each.
    product = np.ones(width, dtype=A.dtype)
    product_uw = np.ones(width, dtype=A.dtype)
    cl[:] = 0.0
    gb[:] = 0.0
    for i in range(A.shape[0]):
        a_row, x_row = A[i, start:stop], X[rows[i], start:stop]
        if emphasis and flags is not None:
            f_row = flags[i, start:stop]
            for j in range(width):
                weight[j] = _ONE if f_row[j] else uw
        elif emphasis:
            base = np.uint64((first_row + i) * n_features + start)
            for j in range(width):
                u = _uniform(s, base + np.uint64(j))
                weight[j] = uw if u >= level else _ONE
        if has_missing:
            # One extra pass over the row, only for data with missing entries:
            # the loops below then see a finite target of weight 0.
            _missing_targets(x_row, weight, emphasis, targets)
            x_row = targets
        if loss == _CROSS_ENTROPY and (has_missing or emphasis):
            for j in range(width):
                a = a_row[j] + b[j]
                x = x_row[j]
                e, z = _exp_sigmoid(a)
                w = weight[j]
                g = w * (z - x)
                a_row[j] = g
                gb[j] += g
                partial[j] += w * (max(a, _ZERO) - x * a)
                factor = _ONE + e
                product[j] *= factor if w == _ONE else _ONE
                product_uw[j] *= factor if (w != _ONE and w != _ZERO) else _ONE
        elif loss == _CROSS_ENTROPY:
            for j in range(width):
                a = a_row[j] + b[j]
                x = x_row[j]
                e, z = _exp_sigmoid(a)
                g = z - x
                a_row[j] = g
                gb[j] += g
                partial[j] += max(a, _ZERO) - x * a
                product[j] *= _ONE + e
        else:
            for j in range(width):
                a = a_row[j] + b[j]
                d = a - x_row[j]
                w = weight[j]
                g = w * d
                a_row[j] = g
                gb[j] += g
                partial[j] += w * (_HALF * d * d)
        if i % 64 == 63 or i == A.shape[0] - 1:
            for j in range(width):
                cl[j] += partial[j]
                partial[j] = 0.0
            if loss == _CROSS_ENTROPY:
                for j in range(width):
                    cl[j] += np.log(np.float64(product[j]))
                    product[j] = _ONE
                if has_missing or emphasis:
                    for j in range(width):
                        cl[j] += uw * np.log(np.float64(product_uw[j]))
                        product_uw[j] = _ONE


output_delta_columns = _guarded(
    _check_output_delta_columns)(_output_delta_columns)


@_jit
def _missing_targets(x_row, weight, emphasis, targets):
    """Targets of one row with NaN (missing) as 0, their weights set to 0."""
    for j in range(x_row.shape[0]):
        x = x_row[j]
        missing = x != x
        targets[j] = 0.0 if missing else x
        if missing:
            weight[j] = _ZERO
        elif not emphasis:
            weight[j] = _ONE


@_guarded(_check_row_losses)
@_jit
def row_losses(A, bias, X, loss, out):
    """``out[i]`` = loss of row ``i`` of ``X`` given decoder products ``A``.

    NaN entries of ``X`` (missing) are left out: the loss over the observed
    entries.
    """
    buf = np.empty(A.shape[1])
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            x = X[i, j]
            buf[j] = (0.0 if x != x
                      else _elementwise_loss(A[i, j] + bias[j], x, loss))
        out[i] = buf.sum()


@_guarded(_check_bias_output)
@_jit
def bias_output(A, bias, loss):
    """In place: decoder output ``z = output(A + bias)``."""
    for i in range(A.shape[0]):
        if loss == _CROSS_ENTROPY:
            for j in range(A.shape[1]):
                A[i, j] = _sigmoid(A[i, j] + bias[j])
        else:
            for j in range(A.shape[1]):
                A[i, j] = A[i, j] + bias[j]


# --------------------------------------------------------------------------
# Optimizer updates (parameters and state are 2-D; biases as (1, n) views)
# --------------------------------------------------------------------------
@_guarded(_check_adam_update)
@_jit
def adam_update(param, grad, grad2, use_grad2, m, v, scale, l2, step, beta_1,
                beta_2, epsilon):
    """One Adam step. The gradient is ``(grad [+ grad2]) * scale + l2 * param``.

    ``grad2`` lets tied weights sum their encoder and decoder gradients here
    instead of in a separate pass; ``scale`` is 1 / batch size.
    """
    # Scalars in the parameters' dtype, so float32 stays float32.
    t = param.dtype.type
    scale, l2, step, epsilon = t(scale), t(l2), t(step), t(epsilon)
    b1, b2 = t(beta_1), t(beta_2)
    c1, c2 = t(1.0 - beta_1), t(1.0 - beta_2)
    for i in range(param.shape[0]):
        for j in range(param.shape[1]):
            g = grad[i, j] + grad2[i, j] if use_grad2 else grad[i, j]
            g = g * scale + l2 * param[i, j]
            mi = b1 * m[i, j] + c1 * g
            vi = b2 * v[i, j] + c2 * g * g
            m[i, j] = mi
            v[i, j] = vi
            param[i, j] -= step * mi / (np.sqrt(vi) + epsilon)


@_guarded(_check_sgd_update)
@_jit
def sgd_update(param, grad, grad2, use_grad2, velocity, scale, l2,
               learning_rate, momentum, nesterov):
    """One SGD step with (Nesterov) momentum, as scikit-learn's MLP does it."""
    t = param.dtype.type
    scale, l2 = t(scale), t(l2)
    lr, mu = t(learning_rate), t(momentum)
    # Nesterov: param += mu * vel - lr * g; plain momentum: param += vel.
    mu_p = mu if nesterov else _ONE
    lr_p = lr if nesterov else _ZERO
    for i in range(param.shape[0]):
        for j in range(param.shape[1]):
            g = grad[i, j] + grad2[i, j] if use_grad2 else grad[i, j]
            g = g * scale + l2 * param[i, j]
            vel = mu * velocity[i, j] - lr * g
            velocity[i, j] = vel
            param[i, j] += mu_p * vel - lr_p * g
