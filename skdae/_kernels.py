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

# ``error_model="numpy"`` lets divisions vectorize (no ZeroDivisionError check);
# fastmath stays off so that overflow gives inf / 0 as IEEE says, never NaN.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")

# Codes shared with the Python driver (``_autoencoder.py``).
CORRUPTION_CODES = {"none": 0, "masking": 1, "gaussian": 2, "salt_and_pepper": 3}
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "identity": 3}
LOSS_CODES = {"cross_entropy": 0, "squared_error": 1}

_NONE, _MASKING, _GAUSSIAN, _SALT_AND_PEPPER = 0, 1, 2, 3
_SIGMOID, _TANH, _RELU, _IDENTITY = 0, 1, 2, 3
_CROSS_ENTROPY, _SQUARED_ERROR = 0, 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# A second, independent stream (salt or pepper) from the same seed.
_STREAM2 = np.uint64(0xD1B54A32D192ED03)
_TWO_PI = 2.0 * np.pi


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
# Activations
# --------------------------------------------------------------------------
@_inline
def _activate(a, kind):
    if kind == _SIGMOID:
        return 1.0 / (1.0 + np.exp(-a))
    elif kind == _TANH:
        return np.tanh(a)
    elif kind == _RELU:
        return a if a > 0.0 else 0.0 * a
    return a


@_inline
def _derivative(h, kind):
    """Activation derivative written in terms of the activation ``h``."""
    if kind == _SIGMOID:
        return h * (1.0 - h)
    elif kind == _TANH:
        return 1.0 - h * h
    elif kind == _RELU:
        return 1.0 if h > 0.0 else 0.0
    return 1.0


@_jit
def bias_activate(A, bias, kind):
    """In place: ``A[i, j] = activation(A[i, j] + bias[j])``."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = _activate(A[i, j] + bias[j], kind)


@_jit
def hidden_delta(dH, H, kind, grad_bias):
    """In place: ``dH *= activation'(H)``; ``grad_bias`` gets its column sums."""
    grad_bias[:] = 0.0
    for i in range(dH.shape[0]):
        for j in range(dH.shape[1]):
            g = dH[i, j] * _derivative(H[i, j], kind)
            dH[i, j] = g
            grad_bias[j] += g


# --------------------------------------------------------------------------
# Reconstruction loss
# --------------------------------------------------------------------------
@_inline
def _output(a, loss):
    if loss == _CROSS_ENTROPY:
        return 1.0 / (1.0 + np.exp(-a))
    return a


@_inline
def _elementwise_loss(a, x, loss):
    """Loss of one component from the decoder pre-activation ``a``.

    Cross-entropy is computed from the logit, ``softplus(a) - x * a``, which
    is finite for every finite ``a`` (log(sigmoid) would underflow to -inf).
    """
    if loss == _CROSS_ENTROPY:
        return max(a, 0.0) - x * a + np.log1p(np.exp(-abs(a)))
    d = a - x
    return 0.5 * d * d


@_jit
def output_delta(A, bias, X, rows, seed, first_row, kind, level,
                 uncorrupted_weight, loss, grad_bias):
    """Loss and gradient at the decoder, in one pass.

    On entry ``A`` holds ``H @ W_dec`` (no bias); on exit it holds the gradient
    of the loss with respect to the decoder pre-activation, ``w * (z - x)``,
    for the clean targets ``X[rows]``. Both losses share this form: sigmoid
    with cross-entropy and identity with half squared error.

    The emphasis weight ``w`` is 1 for corrupted components and
    ``uncorrupted_weight`` for the others (masking and salt and pepper only);
    which components were corrupted is recomputed from ``seed`` (and the row
    ``first_row`` of the minibatch where this block starts).

    Returns the sum over the batch of the weighted per-sample losses.
    """
    n_features = A.shape[1]
    s = np.uint64(seed)
    emphasis = uncorrupted_weight != 1.0 and (
        kind == _MASKING or kind == _SALT_AND_PEPPER
    )
    grad_bias[:] = 0.0
    total = 0.0
    for i in range(A.shape[0]):
        r = rows[i]
        base = np.uint64((first_row + i) * n_features)
        row_loss = 0.0
        for j in range(n_features):
            a = A[i, j] + bias[j]
            x = X[r, j]
            w = 1.0
            if emphasis and _uniform(s, base + np.uint64(j)) >= level:
                w = uncorrupted_weight
            g = w * (_output(a, loss) - x)
            A[i, j] = g
            grad_bias[j] += g
            row_loss += w * _elementwise_loss(a, x, loss)
        total += row_loss
    return total


@_jit
def row_losses(A, bias, X, loss, out):
    """``out[i]`` = loss of row ``i`` of ``X`` given decoder products ``A``."""
    for i in range(A.shape[0]):
        row_loss = 0.0
        for j in range(A.shape[1]):
            row_loss += _elementwise_loss(A[i, j] + bias[j], X[i, j], loss)
        out[i] = row_loss


@_jit
def bias_output(A, bias, loss):
    """In place: decoder output ``z = output(A + bias)``."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = _output(A[i, j] + bias[j], loss)


# --------------------------------------------------------------------------
# Optimizer updates (parameters and state are 2-D; biases as (1, n) views)
# --------------------------------------------------------------------------
@_jit
def adam_update(param, grad, grad2, use_grad2, m, v, scale, l2, step, beta_1,
                beta_2, epsilon):
    """One Adam step. The gradient is ``(grad [+ grad2]) * scale + l2 * param``.

    ``grad2`` lets tied weights sum their encoder and decoder gradients here
    instead of in a separate pass; ``scale`` is 1 / batch size.
    """
    for i in range(param.shape[0]):
        for j in range(param.shape[1]):
            g = grad[i, j]
            if use_grad2:
                g += grad2[i, j]
            g = g * scale + l2 * param[i, j]
            mi = beta_1 * m[i, j] + (1.0 - beta_1) * g
            vi = beta_2 * v[i, j] + (1.0 - beta_2) * g * g
            m[i, j] = mi
            v[i, j] = vi
            param[i, j] -= step * mi / (np.sqrt(vi) + epsilon)


@_jit
def sgd_update(param, grad, grad2, use_grad2, velocity, scale, l2,
               learning_rate, momentum, nesterov):
    """One SGD step with (Nesterov) momentum, as scikit-learn's MLP does it."""
    for i in range(param.shape[0]):
        for j in range(param.shape[1]):
            g = grad[i, j]
            if use_grad2:
                g += grad2[i, j]
            g = g * scale + l2 * param[i, j]
            vel = momentum * velocity[i, j] - learning_rate * g
            velocity[i, j] = vel
            if nesterov:
                param[i, j] += momentum * vel - learning_rate * g
            else:
                param[i, j] += vel
