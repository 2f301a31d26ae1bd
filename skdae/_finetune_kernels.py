"""Numba kernels for supervised fine-tuning of a stack with a softmax output.

The hidden layers reuse the kernels of ``_kernels`` (``bias_activate`` on the
way forward, ``hidden_delta`` on the way back); matrix products stay with BLAS
in the driver (``_classifier.py``). What is new here is the output layer: the
softmax with its cross-entropy loss and gradient fused into one pass, computed
from the logits with the max subtracted so that it never overflows, and the
softmax alone for prediction.

Kernels take and return arrays and scalars only and are compiled once per
dtype (``cache=True``).
"""

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, nogil=True, error_model="numpy",
                     inline="always")


@_inline
def _add_bias_row_max(A, bias, i):
    """In place: add ``bias`` to row ``i`` of ``A``; return the row's max."""
    top = -np.inf
    for j in range(A.shape[1]):
        a = A[i, j] + bias[j]
        A[i, j] = a
        if a > top:
            top = a
    return top


@_jit
def softmax_cross_entropy(A, bias, y, grad_bias):
    """Softmax cross-entropy loss and its gradient, in one pass per row.

    On entry ``A`` holds the output products ``H @ W`` (no bias) of a
    minibatch and ``y`` the class index of each row; on exit ``A`` holds the
    gradient of the loss with respect to the logits, ``softmax(A + bias) -
    onehot(y)``, and ``grad_bias`` its column sums.

    Returns the sum over the rows of ``-log softmax(A + bias)[y]``.
    """
    n_classes = A.shape[1]
    grad_bias[:] = 0.0
    total = 0.0
    for i in range(A.shape[0]):
        top = _add_bias_row_max(A, bias, i)
        target = A[i, y[i]]
        norm = 0.0
        for j in range(n_classes):
            e = np.exp(A[i, j] - top)
            A[i, j] = e
            norm += e
        total += top + np.log(norm) - target
        inv = 1.0 / norm
        for j in range(n_classes):
            g = A[i, j] * inv
            if j == y[i]:
                g -= 1.0
            A[i, j] = g
            grad_bias[j] += g
    return total


@_jit
def softmax(A, bias, log):
    """In place: ``A = softmax(A + bias)`` row by row, or its log if ``log``.

    The log is computed from the logits (``a - max - log(sum(exp))``), finite
    where ``log(softmax)`` would underflow to ``-inf``.
    """
    n_classes = A.shape[1]
    for i in range(A.shape[0]):
        top = _add_bias_row_max(A, bias, i)
        norm = 0.0
        for j in range(n_classes):
            norm += np.exp(A[i, j] - top)
        if log:
            shift = top + np.log(norm)
            for j in range(n_classes):
                A[i, j] -= shift
        else:
            inv = 1.0 / norm
            for j in range(n_classes):
                A[i, j] = np.exp(A[i, j] - top) * inv
