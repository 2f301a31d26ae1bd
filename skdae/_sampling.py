"""Reconstruction sampling: a sparse minibatch's loss on a few columns.

Dauphin, Glorot & Bengio (2011): with sparse input, most of the decoder's
work goes into reconstructing zeros. A sampled minibatch reconstructs only
the columns ``C``: every feature with a stored entry in the minibatch, plus
``k`` of the others drawn uniformly without replacement, each drawn column's
loss weighted by ``n_other / k`` (``_sparse_kernels.sample_columns``). The
loss and every gradient are linear in these weighted per-column terms, and
each column is in ``C`` with probability 1 or ``k / n_other``: they are
unbiased estimates of the loss and gradients over all features (the tests
check it by Monte Carlo).

The cost of a minibatch of ``n`` rows is O(nnz * n_components) for the
encoder and O(n * |C| * n_components) for the decoder, and its buffers are
O(n * |C| + n_components * |C|): nothing is as wide as ``n_features``.
Only the columns ``C`` of the decoder weights, the visible biases and (for
tied weights, or untied encoder weights) the encoder weights have
gradients, and only those columns are updated, with their optimizer state
("lazy" Adam / momentum, as ``torch.optim.SparseAdam`` and TensorFlow's
``LazyAdamOptimizer``): the moments of a column not in ``C`` do not decay and
its weights do not move in that step. The L2 term of a column is weighted
like its loss, so the penalised gradient stays unbiased. With ``k`` at least
the number of other columns, ``C`` is every feature with weight 1 and a step
is bitwise that of the exact sparse path.

The visible biases start at the reconstruction of each feature by its mean
(:func:`initial_visible_bias`) instead of 0. A drawn column's loss weighs
``n_other / k`` times its share: with biases at 0 every absent feature
starts at output 0.5, and the few drawn among them dominate the gradient
of the hidden units with noise. Starting from the means, the drawn columns
contribute little until the codes explain them (on a 10,000-word bag of
words, a logistic regression on the codes went from 0.13 to 0.95 topic
accuracy with ``k=200``; the exact path, which keeps its zero biases, would
gain too: 0.34 to 0.78).

The blocks are those of ``_minibatch``: fixed blocks of rows for the forward
and backward passes, of hidden units for the weight gradients, so the result
does not depend on the number of threads.
"""

import numpy as np

from . import _kernels as K
from ._parallel import ROWS_PER_BLOCK, UNITS_PER_BLOCK, BlockRunner, blocks
from ._sparse_kernels import csr_output_delta, sample_columns


def initial_visible_bias(X, loss):
    """Visible biases that reconstruct every feature by its mean in X.

    The logit of the mean, clipped to ``[0.5 / n, 1 - 0.5 / n]``, for the
    cross-entropy; the mean for the squared error. O(nnz + n_features).
    """
    mean = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / X.shape[0]
    if loss == "squared_error":
        return mean
    half = 0.5 / X.shape[0]
    p = np.clip(mean, half, 1 - half)
    return np.log(p / (1 - p))


class SampledWorkspace:
    """Buffers of a sampled minibatch; the column buffers grow as needed.

    ``runner`` runs the blocks of a minibatch (serially by default).
    """

    def __init__(self, batch_size, n_components, dtype, activation, loss,
                 runner=None):
        self.activation = activation
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self.batch_size = batch_size
        self.n_components = n_components
        self.runner = runner if runner is not None else BlockRunner(1)
        self.unit_blocks = blocks(n_components, UNITS_PER_BLOCK)
        n_row_blocks = len(blocks(batch_size, ROWS_PER_BLOCK))
        self.grad_hidden_bias_parts = np.empty((n_row_blocks, n_components),
                                               dtype=dtype)
        self.hidden = np.empty((batch_size, n_components), dtype=dtype)
        self.delta_hidden = np.empty((batch_size, n_components), dtype=dtype)
        self.grad_hidden_bias = np.empty(n_components, dtype=dtype)
        self.arange = np.arange(batch_size)
        self._capacity = 0
        self.n_columns = 0

    def reserve(self, n_columns):
        """Views of the column buffers for ``n_columns`` columns."""
        if n_columns > self._capacity:
            # Grow by half again: a few reallocations per fit at most.
            cap = max(n_columns, self._capacity * 3 // 2)
            n, h, b = self.batch_size, self.n_components, \
                len(self.grad_hidden_bias_parts)
            self._flat = {name: np.empty(size * cap, dtype=self.dtype)
                          for name, size in [("visible", n), ("decoder", h),
                                             ("grad_encoder", h),
                                             ("grad_decoder", h),
                                             ("grad_bias_parts", b),
                                             ("bias", 1), ("grad_bias", 1)]}
            self._capacity = cap
        m = self.n_columns = n_columns
        f = self._flat
        self.visible = f["visible"][:self.batch_size * m].reshape(-1, m)
        self.decoder = f["decoder"][:self.n_components * m].reshape(-1, m)
        self.grad_encoder = f["grad_encoder"][
            :self.n_components * m].reshape(-1, m)
        self.grad_decoder = f["grad_decoder"][
            :self.n_components * m].reshape(-1, m)
        self.grad_visible_bias_parts = f["grad_bias_parts"][
            :len(self.grad_hidden_bias_parts) * m].reshape(-1, m)
        self.visible_bias = f["bias"][:m]
        self.grad_visible_bias = f["grad_bias"][:m]


def forward_backward_sampled(W, W_dec, b_hidden, b_visible, batch, seed,
                             noise, columns, importance, local, ws,
                             after_units=None):
    """Loss and gradients of the CSR minibatch ``batch`` on ``columns``.

    As ``_minibatch.forward_backward`` for the rows of a CSR ``X`` (masking
    or no noise), but the decoder reconstructs only the sorted columns
    ``columns`` (which must hold every column of the minibatch's stored
    entries; ``local`` gives the position of each in ``columns``), the loss
    and
    gradients of column ``c`` weighted by ``importance[c]``. The gradients
    land in ``ws`` restricted to these columns: ``ws.grad_encoder`` and
    ``ws.grad_decoder`` of shape (n_components, len(columns)),
    ``ws.grad_visible_bias`` of shape (len(columns),), and
    ``ws.grad_hidden_bias``. Returns the weighted loss sum.
    """
    kind, level, uncorrupted_weight = noise[:3]
    n, n_features = batch.shape
    ws.reserve(columns.shape[0])
    if kind == K.CORRUPTION_CODES["masking"]:
        data = np.empty_like(batch.data)
        K.mask_csr_data(batch.data, batch.indices, batch.indptr, n_features,
                        data, seed, level)
    else:
        data = batch.data
    np.take(W_dec, columns, axis=1, out=ws.decoder)
    np.take(b_visible, columns, out=ws.visible_bias)
    W_c = ws.decoder
    row_blocks = blocks(n, ROWS_PER_BLOCK)
    clean_rows = ws.arange[:n]

    def forward_backward_rows(k):
        r = row_blocks[k]
        H = ws.hidden[r]
        K.csr_matmul_t(data, batch.indices, batch.indptr[r.start:r.stop + 1],
                       W, H)
        K.bias_activate(H, b_hidden, ws.activation)
        delta_out = ws.visible[r]
        np.matmul(H, W_c, out=delta_out)
        loss_sum = csr_output_delta(
            delta_out, ws.visible_bias, batch.data, local, batch.indptr,
            clean_rows[r], seed, r.start, kind, level, uncorrupted_weight,
            ws.loss, ws.grad_visible_bias_parts[k], columns, importance,
            n_features, False)
        delta_hidden = ws.delta_hidden[r]
        np.matmul(delta_out, W_c.T, out=delta_hidden)
        K.hidden_delta(delta_hidden, H, ws.activation,
                       ws.grad_hidden_bias_parts[k])
        return loss_sum

    def weight_gradients(units):
        np.matmul(ws.hidden[:n, units].T, ws.visible[:n],
                  out=ws.grad_decoder[units])
        ws.grad_encoder[units] = 0.0
        K.csr_t_matmul_add(data, local, batch.indptr,
                           ws.delta_hidden[:n, units], ws.grad_encoder[units])
        if after_units is not None:
            after_units(units)

    losses = ws.runner.map(forward_backward_rows, range(len(row_blocks)))
    ws.runner.map(weight_gradients, ws.unit_blocks)
    n_blocks = len(row_blocks)
    np.sum(ws.grad_hidden_bias_parts[:n_blocks], axis=0,
           out=ws.grad_hidden_bias)
    np.sum(ws.grad_visible_bias_parts[:n_blocks], axis=0,
           out=ws.grad_visible_bias)
    return float(sum(losses))


def train_batch_sampled(optimizer, params, l2_flags, alpha, X, rows, seed,
                        noise, k, ws):
    """One sampled gradient step on the rows ``rows`` of X; the loss sum.

    ``params`` are ``[W, b_hidden, b_visible]`` (tied weights) or ``[W,
    W_dec, b_hidden, b_visible]``; only the sampled columns of the weights
    and visible biases, and their optimizer state, change (see the module
    docstring). The weight rows are updated one block of hidden units at a
    time, as in ``DenoisingAutoencoder._train_batch``.
    """
    tied = len(params) == 3
    W, W_dec = params[0], params[0] if tied else params[1]
    b_hidden, b_visible = params[-2], params[-1]
    batch = X[rows]
    columns, importance, local = sample_columns(batch.indices, X.shape[1], k, seed,
                                         W.dtype)
    n, n_weights = rows.shape[0], len(params) - 2
    optimizer.start_step()

    def update_weights(units):
        grads = ([(ws.grad_encoder, ws.grad_decoder)] if tied else
                 [(ws.grad_encoder,), (ws.grad_decoder,)])
        for j in range(n_weights):
            optimizer.update_columns(j, params[j], grads[j], n, l2_flags[j],
                                     alpha, columns, importance, units)

    loss_sum = forward_backward_sampled(W, W_dec, b_hidden, b_visible, batch,
                                        seed, noise, columns, importance,
                                        local, ws, update_weights)
    optimizer.update(n_weights, b_hidden, (ws.grad_hidden_bias,), n,
                     l2_flags[n_weights], alpha)
    optimizer.update_columns(n_weights + 1, b_visible,
                             (ws.grad_visible_bias,), n,
                             l2_flags[n_weights + 1], alpha, columns,
                             importance)
    return loss_sum
