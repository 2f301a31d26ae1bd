"""Backpropagation through a stack of layers topped by a softmax layer.

The driver side of supervised fine-tuning (``_classifier.py``): the
minibatch buffers, the forward and backward passes of a minibatch, and the
network's output for prediction. Matrix products go to BLAS; the elementwise
work to Numba kernels (``_kernels`` for the hidden layers,
``_finetune_kernels`` for the softmax layer).

Layers follow scikit-learn's MLP layout: ``coefs[i]`` of shape (fan_in,
fan_out) and ``intercepts[i]`` of shape (fan_out,); the last pair is the
softmax layer. Training splits each minibatch into fixed blocks of rows (and
the weight gradients into fixed blocks of input units) that run on
single-threaded BLAS (``_parallel``), so the result does not depend on the
number of threads.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import gen_batches

from . import _finetune_kernels as FK
from . import _kernels as K
from ._parallel import ROWS_PER_BLOCK, UNITS_PER_BLOCK, BlockRunner, blocks

# Rows per chunk when predicting many samples: bounds the temporaries.
_CHUNK_ELEMENTS = 2**22


class Workspace:
    """Minibatch buffers, allocated once per call to fit / partial_fit.

    ``runner`` runs the blocks of a minibatch (serially by default).
    """

    def __init__(self, batch_size, n_features, coefs, dtype, dense_input,
                 runner=None):
        self.runner = runner if runner is not None else BlockRunner(1)
        self.inputs = (np.empty((batch_size, n_features), dtype=dtype)
                       if dense_input else None)
        self.hidden = [np.empty((batch_size, W.shape[1]), dtype=dtype)
                       for W in coefs[:-1]]
        # Gradients with respect to the pre-activations of every layer.
        self.deltas = [np.empty((batch_size, W.shape[1]), dtype=dtype)
                       for W in coefs]
        n_row_blocks = len(blocks(batch_size, ROWS_PER_BLOCK))
        self.bias_parts = [np.empty((n_row_blocks, W.shape[1]), dtype=dtype)
                           for W in coefs]
        self.grad_coefs = [np.empty_like(W) for W in coefs]
        self.grad_intercepts = [np.empty(W.shape[1], dtype=dtype)
                                for W in coefs]
        # Weight gradients by blocks of input units of each layer.
        self.weight_tasks = [(k, units) for k, W in enumerate(coefs)
                             for units in blocks(W.shape[0], UNITS_PER_BLOCK)]


def forward_backward(coefs, intercepts, activations, X, rows, y, ws):
    """Loss and gradients of one minibatch, summed over its samples.

    Forward through the hidden layers (weights ``coefs[:-1]``, biases
    ``intercepts[:-1]``, activation codes ``activations``) and the softmax
    layer for the rows ``rows`` of X with labels (class indices) ``y``, then
    backward. The loss sum is returned; the gradients land in
    ``ws.grad_coefs`` and ``ws.grad_intercepts``. No L2 term.

    Each fixed block of rows runs forward and backward through all layers
    on its own; the weight gradients are then computed over fixed blocks
    of input units (``_parallel``), and the per-block bias gradients and
    losses summed in a fixed order.
    """
    n = rows.shape[0]
    sparse_batch = X[rows] if sp.issparse(X) else None
    n_hidden = len(coefs) - 1
    row_blocks = blocks(n, ROWS_PER_BLOCK)

    def forward_backward_rows(b):
        r = row_blocks[b]
        if sparse_batch is None:
            below = ws.inputs[r]
            np.take(X, rows[r], axis=0, out=below)
        else:
            below = sparse_batch[r]
        for k in range(n_hidden):
            H = ws.hidden[k][r]
            if sp.issparse(below):
                H[...] = below @ coefs[k]
            else:
                np.matmul(below, coefs[k], out=H)
            K.bias_activate(H, intercepts[k], activations[k])
            below = H
        delta = ws.deltas[n_hidden][r]
        np.matmul(below, coefs[-1], out=delta)
        loss_sum = FK.softmax_cross_entropy(
            delta, intercepts[-1], y[r], ws.bias_parts[n_hidden][b])
        for k in range(n_hidden, 0, -1):
            delta_below = ws.deltas[k - 1][r]
            np.matmul(delta, coefs[k].T, out=delta_below)
            K.hidden_delta(delta_below, ws.hidden[k - 1][r],
                           activations[k - 1],
                           ws.bias_parts[k - 1][b])
            delta = delta_below
        return loss_sum

    def weight_gradients(task):
        k, units = task
        if k == 0 and sparse_batch is not None:
            ws.grad_coefs[0][...] = sparse_batch.T @ ws.deltas[0][:n]
            return
        below = ws.inputs if k == 0 else ws.hidden[k - 1]
        np.matmul(below[:n, units].T, ws.deltas[k][:n],
                  out=ws.grad_coefs[k][units])

    losses = ws.runner.map(forward_backward_rows, range(len(row_blocks)))
    tasks = ws.weight_tasks
    if sparse_batch is not None:
        # One product for the sparse input layer.
        tasks = [(0, None)] + [t for t in tasks if t[0] > 0]
    ws.runner.map(weight_gradients, tasks)
    n_blocks = len(row_blocks)
    for parts, grad in zip(ws.bias_parts, ws.grad_intercepts):
        np.sum(parts[:n_blocks], axis=0, out=grad)
    return float(sum(losses))


def predict_output(coefs, intercepts, activations, X, log):
    """Softmax output (or its log) of the network for X, in chunks of rows."""
    dtype = coefs[0].dtype
    if X.dtype != dtype:
        X = X.astype(dtype)
    widest = max(X.shape[1], *(W.shape[1] for W in coefs))
    chunk = max(1, _CHUNK_ELEMENTS // widest)
    out = np.empty((X.shape[0], coefs[-1].shape[1]), dtype=dtype)
    for batch in gen_batches(X.shape[0], chunk):
        H = X[batch]
        for k in range(len(coefs) - 1):
            H = np.asarray(H @ coefs[k], order="C")
            K.bias_activate(H, intercepts[k], activations[k])
        A = np.ascontiguousarray(H @ coefs[-1])
        FK.softmax(A, intercepts[-1], log)
        out[batch] = A
    return out
