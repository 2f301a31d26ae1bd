"""One minibatch of denoising-autoencoder training, and its buffers.

Dense input: the corruption runs over fixed blocks of rows, then every
matrix product over the whole minibatch and a fixed block of hidden units
(encoder, backward pass, weight gradients) or of features (decoder), with
the elementwise work of the same block fused after it; the whole step is
one compiled call per thread (``_step_kernels``). CSR input: the
forward and backward passes run over fixed blocks of rows, the weight
gradients over blocks of hidden units. Block boundaries depend on the
shapes only, so the result is the same whatever the number of threads
(see ``_parallel``).
"""

import itertools
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._handoff import POSIX, publish
from ._kernels import _check_rows
from ._parallel import (
    COLUMN_ALIGNMENT,
    ROWS_PER_BLOCK,
    UNITS_PER_BLOCK,
    BlockRunner,
    blas_check,
    blocks,
)
from ._sparse_kernels import output_delta
from ._step_kernels import (
    N_PHASES,
    block_bounds,
    products_match_blocks,
    team_step,
)
from ._swap_kernels import swap_csr_batch

_ALL_ROWS = np.empty(0, dtype=np.intp)
# A counter past any wait (``StepTeam._release``).
_RELEASED = np.iinfo(np.int64).max // 2
_NO_FLAGS = np.empty((0, 0), dtype=np.uint8)
_SWAP = K.CORRUPTION_CODES["swap"]
# Features per block of the decoder product: fewer, wider blocks than the
# hidden units' (each block repacks the whole hidden layer).
FEATURES_PER_BLOCK = 512
# Entries per block of the corruption (about 25 microseconds of masking):
# in the compiled step a block is an atomic claim away from another thread.
CORRUPTION_ENTRIES = 1 << 15
# Noises that keep a CSR batch sparse (``_forward_backward_csr``).
_SPARSE_NOISE = (K.CORRUPTION_CODES["none"], K.CORRUPTION_CODES["masking"],
                 _SWAP)


class Noise(NamedTuple):
    """The corruption of a fit: built at fit time, never stored.

    ``kind`` is a ``_kernels.CORRUPTION_CODES`` code; ``low`` / ``high`` the
    salt-and-pepper values. Swap noise draws donors from the training rows
    ``pool`` (empty: all rows of X); for sparse X it also needs
    ``pool_columns`` (``_swap_kernels.pool_columns``). ``has_missing``: X
    has NaN (missing) entries, checked once per fit.
    """

    kind: int
    level: float
    uncorrupted_weight: float
    low: float
    high: float
    pool: np.ndarray = _ALL_ROWS
    pool_columns: tuple = None
    has_missing: bool = False


def forward_backward(W, W_dec, b_hidden, b_visible, X, rows, seed, noise, ws,
                     updates=None):
    """Loss and gradients of one minibatch, summed over its samples.

    Corrupts the rows ``rows`` of X with the noise of ``seed``, encodes,
    decodes and back-propagates. The loss sum is returned; the gradients
    land in ``ws.grad_encoder`` (with respect to the encoder weights),
    ``ws.grad_decoder`` (decoder weights, in the layout of ``W_dec``),
    ``ws.grad_hidden_bias`` and ``ws.grad_visible_bias``. For tied weights
    (``W_dec is W``) the whole weight gradient, the sum of both, lands in
    ``ws.grad_encoder`` (for dense X one product over twice the rows,
    instead of two products and a sum). No L2 term.

    ``updates``, if given, is an ``_optimizers.RowUpdates`` over ``[W]``
    (tied) or ``[W, W_dec]``, started for this minibatch: each block of
    hidden units of the weight matrices is updated once its gradients are
    complete (when no other block reads its weights), in the thread that
    computed them and while they are in cache.
    """
    noise = Noise(*noise)
    kind = noise.kind
    n = rows.shape[0]
    if sp.issparse(X):
        if kind in _SPARSE_NOISE:
            return _forward_backward_csr(W, W_dec, b_hidden, b_visible, X,
                                         rows, seed, noise, ws, updates)
        # Gaussian and salt-and-pepper noise fill the zeros in: dense rows,
        # in one buffer for the whole fit (the step's team stays bound to
        # it).
        X, rows = ws.dense_rows(X, rows), ws.arange[:n]
    # The compiled step indexes without bounds checks: check what it reads.
    _check_rows("forward_backward", rows, n, X.shape[0])
    if kind == _SWAP:
        _check_rows("forward_backward", noise.pool, noise.pool.shape[0],
                    X.shape[0])
    tied = W_dec is W
    args = (
        (kind, noise.level, noise.uncorrupted_weight, noise.low, noise.high,
         noise.has_missing, noise.pool, ws.group_starts, ws.group_stops,
         ws.no_indicators, ws.flags),
        (W, W_dec, b_hidden, b_visible, tied, ws.activation, ws.loss),
        (ws._hidden, ws._visible, ws.grad_encoder, ws.grad_decoder,
         ws.grad_hidden_bias, ws.grad_visible_bias, ws.column_loss),
        ws.step_bounds(W, n),
        ws.update_args(updates, tied))
    # A team of threads that run the steps without the GIL, for as long as
    # the arguments stay the same arrays (a fit's).
    ws.team(X, args).step(rows, seed)
    # Columns are added in a fixed order: the result does not depend on the
    # number of threads.
    return float(ws.column_loss.sum())


class StepTeam:
    """The threads of a runner, running dense steps in compiled code.

    Each pool thread of the runner runs a compiled loop (a worker of
    ``_step_kernels.team_step``) that waits for a step without the GIL,
    runs its share of it and reports it done; the calling thread leads
    (member 0). The minibatch's rows and seed are passed through
    buffers, every other argument is fixed for the team's life: a fit's
    data, weights, buffers and optimizer state.

    A member that fails (a ``MemoryError`` in compiled code) releases every
    wait of the others before it ends, and the step raises its exception:
    no thread waits for a block that will never be done.
    """

    def __init__(self, runner, X, args, batch_size):
        self.key = _identity(X, args)
        n_threads = team_size(runner)
        self.counters = np.zeros(n_threads, dtype=np.int64)
        self.step_values = np.zeros(2, dtype=np.int64)  # rows, seed
        self.rows = np.zeros(batch_size, dtype=np.intp)
        self.control = np.zeros(2 * N_PHASES, dtype=np.int64)
        self.args = (self.control, X, self.rows, *args)
        self.errors = []
        self.open = True
        for w in range(1, n_threads):
            runner.start_thread(self._work, (w,))
        if n_threads > 1:
            runner.at_exit(self.close)

    def step(self, rows, seed):
        n = rows.shape[0]
        self.rows[:n] = rows
        self.step_values[0], self.step_values[1] = n, seed
        try:
            team_step(0, self.counters, self.step_values, *self.args)
        except BaseException:
            self._release()  # the workers may wait for the leader's blocks
            raise
        if self.errors:
            raise self.errors[0]

    def close(self):
        """Stop the workers (the runner joins them)."""
        if self.open and self.counters.shape[0] > 1:
            self.open = False
            self.step_values[0] = -1
            publish(self.counters, 0, self.counters[0] + 1)

    def _work(self, w):
        """Member ``w``'s loop; on failure, release the others and end."""
        try:
            team_step(w, self.counters, self.step_values, *self.args)
        except BaseException as exc:
            self.errors.append(exc)
            self._release()
            publish(self.counters, w, _RELEASED)  # the leader's last wait

    def _release(self):
        """End every wait for a block of the current step."""
        for phase in range(N_PHASES):
            publish(self.control, N_PHASES + phase, _RELEASED)


def blocks_match_whole(n, n_units, n_features, dtype):
    """Whether the step's products by blocks are bitwise the whole products.

    For a minibatch of ``n`` rows and weights of shape ``(n_units,
    n_features)``, on single-threaded BLAS (``_step_kernels.
    products_match_blocks`` on random data); cached per shape.
    """
    dtype = np.dtype(dtype)

    def check():
        rng = np.random.default_rng(0)
        return products_match_blocks(
            rng.standard_normal((2 * n, n_units)).astype(dtype),
            rng.standard_normal((2 * n, n_features)).astype(dtype),
            rng.standard_normal((n_units, n_features)).astype(dtype),
            block_bounds(n_units, UNITS_PER_BLOCK, COLUMN_ALIGNMENT),
            block_bounds(n_features, FEATURES_PER_BLOCK, COLUMN_ALIGNMENT))

    return blas_check(
        ("dae step", n, n_units, n_features, dtype.str),
        2 * n * (n_units + n_features) + 5 * n_units * n_features, check)


def team_size(runner):
    """Threads of a ``StepTeam`` on ``runner``: its pool threads where the
    runner has them (inside ``with``) and compiled code can sleep
    (``_handoff.wait_until``), else one."""
    return runner.n_threads if runner.parallel and POSIX else 1


def _identity(X, args):
    """What a team is bound to: the arrays (by identity) and the scalars."""
    return tuple(id(a) if isinstance(a, np.ndarray) else a
                 for a in (X, *itertools.chain.from_iterable(args)))


def _forward_backward_csr(W, W_dec, b_hidden, b_visible, X, rows, seed,
                          noise, ws, updates):
    """``forward_backward`` for CSR X: blocks of rows, sparse products."""
    kind, level, uncorrupted_weight = noise[:3]
    has_missing = noise.has_missing
    n = rows.shape[0]
    hidden, delta_hidden, visible, _ = ws.views(n)
    flags = None  # corrupted entries, where the kernels cannot recompute them
    batch = X[rows]
    # The clean targets are read from the CSR batch: no dense copy.
    clean, clean_rows = batch, ws.arange[:n]
    if kind == K.CORRUPTION_CODES["masking"]:
        # Masking keeps the sparsity pattern: encode the sparse batch.
        data = np.empty_like(batch.data)
        K.mask_csr_data(batch.data, batch.indices, batch.indptr,
                        X.shape[1], data, seed, level)
        sparse_batch = (data, batch.indices, batch.indptr)
    elif kind == _SWAP:
        flags = ws.flags[:n] if uncorrupted_weight != 1.0 else None
        sparse_batch = swap_csr_batch(
            X, rows, noise.pool, noise.pool_columns, seed, level,
            _NO_FLAGS if flags is None else flags, has_missing)
    else:  # no noise
        sparse_batch = (batch.data, batch.indices, batch.indptr)
    if has_missing and kind != _SWAP:
        # Stored NaN: fed as 0 (swap noise already did that).
        sparse_batch = (np.where(np.isnan(sparse_batch[0]), 0,
                                 sparse_batch[0]), *sparse_batch[1:])
    if has_missing or flags is not None:
        # The loss of missing entries and swap's emphasis flags need
        # dense targets (the CSR loss kernel handles neither).
        clean = batch.toarray()
    row_blocks = blocks(n, ROWS_PER_BLOCK)
    data, indices, indptr = sparse_batch

    def forward_backward_rows(k):
        r = row_blocks[k]
        H = hidden[r]
        K.csr_matmul_t(data, indices, indptr[r.start:r.stop + 1], W, H)
        K.bias_activate(H, b_hidden, ws.activation)
        delta_out = visible[r]
        np.matmul(H, W_dec, out=delta_out)
        if sp.issparse(clean):
            loss_sum = output_delta(
                delta_out, b_visible, clean, clean_rows[r], seed, r.start,
                kind, level, uncorrupted_weight, ws.loss,
                ws.grad_visible_bias_parts[k])
        else:
            loss_sum = K.output_delta(
                delta_out, b_visible, clean, clean_rows[r], seed,
                r.start, kind, level, uncorrupted_weight, ws.loss,
                ws.grad_visible_bias_parts[k],
                None if flags is None else flags[r], has_missing)
        np.matmul(delta_out, W_dec.T, out=delta_hidden[r])
        K.hidden_delta(delta_hidden[r], H, ws.activation,
                       ws.grad_hidden_bias_parts[k])
        return loss_sum

    def weight_gradients(units):
        np.matmul(hidden[:, units].T, visible, out=ws.grad_decoder[units])
        # O(nnz * n_components) instead of a dense product.
        grad = ws.grad_encoder[units]
        grad[:] = 0.0
        K.csr_t_matmul_add(data, indices, indptr, delta_hidden[:, units],
                           grad)
        if W_dec is W:
            # Tied: the sum in grad_encoder, as the optimizer of reconstruction
            # sampling forms it (the two paths agree bitwise).
            grad += ws.grad_decoder[units]
        if updates is not None:
            for k in range(len(updates.coefs)):
                updates(k, units)

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
        self.unit_blocks = blocks(n_components, UNITS_PER_BLOCK,
                                  COLUMN_ALIGNMENT)
        self._team = None
        self._dense_rows = None
        self._hyper = np.zeros(4)
        # The optimizer arguments of a step without weight updates.
        no_state = np.empty((0, 0), dtype=dtype)
        self._no_update = (False, 0, no_state, no_state, no_state, no_state,
                           self._hyper, 0.0)
        self.corruption_rows = max(1, CORRUPTION_ENTRIES // n_features)
        n_row_blocks = len(blocks(batch_size, ROWS_PER_BLOCK))
        self.grad_hidden_bias_parts = np.empty((n_row_blocks, n_components),
                                               dtype=dtype)
        self.grad_visible_bias_parts = np.empty((n_row_blocks, n_features),
                                                dtype=dtype)
        # The hidden activations over their deltas, and the output deltas
        # over the corrupted input: a tied gradient is one product of the
        # two (``stacked``).
        self._hidden = np.empty((2 * batch_size, n_components), dtype=dtype)
        self._visible = np.empty((2 * batch_size, n_features), dtype=dtype)
        self.column_loss = np.empty(n_features)
        self.grad_encoder = np.empty((n_components, n_features), dtype=dtype)
        self.grad_decoder = np.empty((n_components, n_features), dtype=dtype)
        self.grad_hidden_bias = np.empty(n_components, dtype=dtype)
        self.grad_visible_bias = np.empty(n_features, dtype=dtype)
        self.arange = np.arange(batch_size)
        # Swap noise: the corrupted entries, and one column group per feature.
        self.flags = np.zeros((batch_size, n_features), dtype=np.uint8)
        self.group_starts = np.arange(n_features, dtype=np.int64)
        self.group_stops = self.group_starts + 1
        self.no_indicators = np.full(n_features, -1, dtype=np.int64)

    def update_args(self, updates, tied):
        """The ``update`` argument of ``_step_kernels.dense_step``."""
        if updates is None:
            return self._no_update
        solver, state_a, state_b, hyper = updates.kernel_args(0)[:4]
        self._hyper[:] = hyper  # one array for a team's life
        decoder_a, decoder_b = state_a, state_b
        if not tied:
            _, decoder_a, decoder_b = updates.kernel_args(1)[:3]
        return (True, solver, state_a, state_b, decoder_a, decoder_b,
                self._hyper, float(updates.alpha))

    def dense_rows(self, X, rows):
        """``X[rows]`` of sparse X as dense rows, in the workspace's buffer."""
        if self._dense_rows is None or self._dense_rows.dtype != X.dtype:
            self._dense_rows = np.empty((self._visible.shape[0] // 2,
                                         X.shape[1]), dtype=X.dtype)
        out = self._dense_rows[:rows.shape[0]]
        X[rows].toarray(out=out)
        return self._dense_rows

    def step_bounds(self, W, n):
        """The ``bounds`` of ``_step_kernels.dense_step`` for ``n`` rows.

        A team of several threads shares fixed blocks of hidden units and
        features. One thread makes each product whole instead, where BLAS
        gives the whole products the bits of the blocks (OpenBLAS's AVX-512
        kernels do on these aligned blocks, its AVX2 float32 kernels do
        not): checked once per shape (:func:`blocks_match_whole`), so the
        model stays the same at any thread count, and one thread does not
        pay for the blocks (5-15% of the products, more at large batches).
        """
        n_units, n_features = W.shape
        if team_size(self.runner) > 1 \
                or not blocks_match_whole(n, n_units, n_features, W.dtype):
            return (self.corruption_rows, UNITS_PER_BLOCK, FEATURES_PER_BLOCK)
        return (self.corruption_rows, n_units, n_features)

    def team(self, X, args):
        """The ``StepTeam`` for these arguments (made, or remade, here)."""
        team = self._team
        if team is None or not team.open or team.key != _identity(X, args):
            if team is not None:
                team.close()
            team = self._team = StepTeam(self.runner, X, args,
                                         self._visible.shape[0] // 2)
        return team

    def views(self, n):
        """Hidden activations, their deltas, output deltas and corrupted
        input of a minibatch of ``n`` rows."""
        return (self._hidden[:n], self._hidden[n:2 * n], self._visible[:n],
                self._visible[n:2 * n])


def data_range(X, return_missing=False):
    """Minimum and maximum of X, counting the implicit zeros of sparse X.

    Duplicate entries of a sparse X count as their sum, the value they
    stand for (two stored 0.6 at one position are 1.2). NaN entries
    (missing) are left out; ``return_missing`` also returns whether there
    are any, found without a further pass over X when there are none.
    """
    if sp.issparse(X):
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        data = X.data
        low, high, missing = _range(data) if data.size else (0.0, 0.0, False)
        if X.nnz < X.shape[0] * X.shape[1]:
            low, high = min(low, 0.0), max(high, 0.0)
    else:
        low, high, missing = _range(X)
    return (low, high, missing) if return_missing else (low, high)


def _range(values):
    low, high = float(np.min(values)), float(np.max(values))
    if not (np.isnan(low) or np.isnan(high)):
        return low, high, False
    observed = values[~np.isnan(values)]
    if observed.size == 0:
        raise ValueError(
            "X has no observed (non-NaN) value: there is nothing to learn "
            "from. Pass data with observed entries.")
    return float(observed.min()), float(observed.max()), True
