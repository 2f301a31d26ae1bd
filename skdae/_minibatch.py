"""One minibatch of denoising-autoencoder training, and its buffers.

The forward and backward passes run over fixed blocks of rows of the
minibatch and the weight gradients over fixed blocks of hidden units, so the
result is the same whatever the number of threads (see ``_parallel``).
"""

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._parallel import ROWS_PER_BLOCK, UNITS_PER_BLOCK, BlockRunner, blocks
from ._sparse_kernels import gather_corrupt, output_delta


def forward_backward(W, W_dec, b_hidden, b_visible, X, rows, seed, noise, ws,
                     after_units=None):
    """Loss and gradients of one minibatch, summed over its samples.

    Corrupts the rows ``rows`` of X with the noise of ``seed``, encodes,
    decodes and back-propagates. The loss sum is returned; the gradients
    land in ``ws.grad_encoder`` (with respect to the encoder weights),
    ``ws.grad_decoder`` (decoder weights, in the layout of
    ``W_dec``; for tied weights, ``W_dec is W`` and the total gradient is
    their sum), ``ws.grad_hidden_bias`` and ``ws.grad_visible_bias``. No L2 term.

    The forward and backward passes run over fixed blocks of rows, the
    weight gradients over fixed blocks of hidden units (``_parallel``).
    ``after_units(units)``, if given, is called once the weight gradients
    of the hidden units ``units`` are complete (when the weights are no
    longer read: the optimizer may update these rows then).
    """
    kind, level, uncorrupted_weight, low, high = noise
    n = rows.shape[0]
    sparse_batch = None  # (data, indices, indptr) of a corrupted CSR batch
    if sp.issparse(X):
        batch = X[rows]
        # The clean targets are read from the CSR batch: no dense copy.
        clean, clean_rows = batch, ws.arange[:n]
        if kind == K.CORRUPTION_CODES["masking"]:
            # Masking keeps the sparsity pattern: encode the sparse batch.
            data = np.empty_like(batch.data)
            K.mask_csr_data(batch.data, batch.indices, batch.indptr,
                            X.shape[1], data, seed, level)
            sparse_batch = (data, batch.indices, batch.indptr)
        elif kind == K.CORRUPTION_CODES["none"]:
            sparse_batch = (batch.data, batch.indices, batch.indptr)
    else:
        clean, clean_rows = X, rows
    row_blocks = blocks(n, ROWS_PER_BLOCK)

    def forward_backward_rows(k):
        r = row_blocks[k]
        H = ws.hidden[r]
        if sparse_batch is None:
            corrupted = ws.corrupted[r]
            gather_corrupt(clean, clean_rows[r], corrupted, seed,
                           r.start, kind, level, low, high)
            np.matmul(corrupted, W.T, out=H)
        else:
            data, indices, indptr = sparse_batch
            K.csr_matmul_t(data, indices, indptr[r.start:r.stop + 1], W, H)
        K.bias_activate(H, b_hidden, ws.activation)
        delta_out = ws.visible[r]
        np.matmul(H, W_dec, out=delta_out)
        loss_sum = output_delta(
            delta_out, b_visible, clean, clean_rows[r], seed,
            r.start, kind, level, uncorrupted_weight, ws.loss,
            ws.grad_visible_bias_parts[k])
        delta_hidden = ws.delta_hidden[r]
        np.matmul(delta_out, W_dec.T, out=delta_hidden)
        K.hidden_delta(delta_hidden, H, ws.activation,
                       ws.grad_hidden_bias_parts[k])
        return loss_sum

    def weight_gradients(units):
        np.matmul(ws.hidden[:n, units].T, ws.visible[:n],
                  out=ws.grad_decoder[units])
        if sparse_batch is None:
            np.matmul(ws.delta_hidden[:n, units].T, ws.corrupted[:n],
                      out=ws.grad_encoder[units])
        else:
            # O(nnz * n_components) instead of a dense product.
            ws.grad_encoder[units] = 0.0
            K.csr_t_matmul_add(*sparse_batch, ws.delta_hidden[:n, units],
                               ws.grad_encoder[units])
        if after_units is not None:
            after_units(units)

    losses = ws.runner.map(forward_backward_rows, range(len(row_blocks)))
    ws.runner.map(weight_gradients, ws.unit_blocks)
    # Block sums are added in a fixed order: the result does not depend on
    # the number of threads.
    n_blocks = len(row_blocks)
    np.sum(ws.grad_hidden_bias_parts[:n_blocks], axis=0,
           out=ws.grad_hidden_bias)
    np.sum(ws.grad_visible_bias_parts[:n_blocks], axis=0,
           out=ws.grad_visible_bias)
    return float(sum(losses))


class Workspace:
    """Minibatch buffers, allocated once per call to fit / partial_fit.

    ``runner`` runs the blocks of a minibatch (serially by default).
    """

    def __init__(self, batch_size, n_features, n_components, dtype, activation,
                 loss, runner=None):
        self.activation = activation
        self.loss = loss
        self.runner = runner if runner is not None else BlockRunner(1)
        self.unit_blocks = blocks(n_components, UNITS_PER_BLOCK)
        n_row_blocks = len(blocks(batch_size, ROWS_PER_BLOCK))
        self.grad_hidden_bias_parts = np.empty((n_row_blocks, n_components),
                                               dtype=dtype)
        self.grad_visible_bias_parts = np.empty((n_row_blocks, n_features),
                                                dtype=dtype)
        self.corrupted = np.empty((batch_size, n_features), dtype=dtype)
        self.hidden = np.empty((batch_size, n_components), dtype=dtype)
        self.visible = np.empty((batch_size, n_features), dtype=dtype)
        self.delta_hidden = np.empty((batch_size, n_components), dtype=dtype)
        self.grad_encoder = np.empty((n_components, n_features), dtype=dtype)
        self.grad_decoder = np.empty((n_components, n_features), dtype=dtype)
        self.grad_hidden_bias = np.empty(n_components, dtype=dtype)
        self.grad_visible_bias = np.empty(n_features, dtype=dtype)
        self.arange = np.arange(batch_size)


def data_range(X):
    """Minimum and maximum of X, counting the implicit zeros of sparse X.

    Duplicate entries of a sparse X count as their sum, the value they
    stand for (two stored 0.6 at one position are 1.2).
    """
    if sp.issparse(X):
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        data = X.data
        low = float(data.min()) if data.size else 0.0
        high = float(data.max()) if data.size else 0.0
        if X.nnz < X.shape[0] * X.shape[1]:
            low, high = min(low, 0.0), max(high, 0.0)
        return low, high
    return float(np.min(X)), float(np.max(X))
