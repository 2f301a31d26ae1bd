"""The deep network engine: one minibatch forward and backward pass.

One engine for every network trained end to end by backpropagation: the
tabular autoencoder (numeric and categorical columns, missing values, swap
or masking noise), the imputer, the fine-tuning of a stack
(``StackedDenoisingAutoencoder(fine_tune=True)``: one sigmoid or squared-error
group over all features) and the classifier's fine-tuning (one softmax
group). Layers follow scikit-learn's MLP layout: ``coefs[i]`` of shape
(fan_in, fan_out), ``intercepts[i]`` of shape (fan_out,), an activation code
(``_kernels.ACTIVATION_CODES``) per hidden layer; the last layer feeds the
output head.

The head (``Head``) is a list of column groups, each a range of output units
with its loss: ``"squared_error"`` (identity output), ``"sigmoid_cross_entropy"``
(targets in [0, 1]) or ``"softmax"`` (cross-entropy over the group's units,
the target a code). The targets form a matrix with one column per
elementwise output unit and one per softmax group; an optional matrix of the
same shape weighs every target entry (0 where the target is missing).

Corruption (``Corruption``) acts on column groups of the input (a column's
input block and its missing indicator): ``"swap"``, ``"masking"`` or
``"none"``; the emphasis weight ``uncorrupted_weight`` multiplies the loss
of the target entries whose column group was not corrupted.

Matrix products go to BLAS, the elementwise work to Numba kernels
(``_kernels`` for hidden layers, ``_head_kernels`` for corruption and head).
Each minibatch is split into fixed blocks of rows for the forward and
backward pass, the weight gradients into fixed blocks of input units, all on
single-threaded BLAS (``_parallel``): the result is bitwise the same for any
number of threads. A block of dense rows runs as one compiled call that
holds no GIL (``_block_kernels``). Blocks too small to pay for a thread
handoff run in the calling thread (``_MIN_PARALLEL_FLOP``). Inference takes
NumPy's tanh (``bias_activate``), training ``_vecmath.tanh`` (compiled).
Every buffer lives in a ``Workspace`` allocated once per fit; the optimizer
(``_optimizers``) applies the gradients. :func:`train` runs the whole of it
through the epoch loop (``_training.run_epochs``): the estimators call it
with their network, head, targets and noise.

These classes are built at fit time from plain arrays and never stored on an
estimator.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import gen_batches

from . import _block_kernels as BK
from . import _head_kernels as HK
from . import _kernels as K
from ._optimizers import RowUpdates, make_optimizer
from ._parallel import (
    COLUMN_ALIGNMENT,
    ROWS_PER_BLOCK,
    UNITS_PER_BLOCK,
    BlockRunner,
    available_threads,
    blas_check,
    blocks,
)
from ._training import batch_size_for, keep_optimizer_state, run_epochs

_NO_MISSING = np.zeros((1, 1), dtype=bool)

# Rows per chunk when predicting many samples: bounds the temporaries.
_CHUNK_ELEMENTS = 2**22
# Below this many floating-point operations per block, the blocks of a map
# run one after the other in the calling thread: handing a block to a pool
# thread and waiting for it costs tens of microseconds, more than a small
# block's products (the imputer's 64-unit layers at batch 64 spent most of
# a step in the pool's queue). Where a block runs never changes its result.
_MIN_PARALLEL_FLOP = 4e6
# A training step of fewer multiply-adds (batch rows x weights) than this
# runs as one block of rows, on one thread: on letter's imputer (batch 256,
# 128-unit layers, 1e7 multiply-adds) an epoch took 145-162 ms on one thread
# and 571-662 ms on two (the hand-offs cost more than the products), and one
# block of 256 rows ran its products 10% faster than two of 128. It depends
# on the shapes only, so results stay thread-independent.
SERIAL_STEP_WORK = 5e7
# The jitted kernels without their Python shape checks: the engine checks
# its shapes once per call (``_check_shapes``) and sizes its own buffers.
_bias_add_activate = K.bias_activate.kernel
_TANH = K.ACTIVATION_CODES["tanh"]
_IDENTITY = K.ACTIVATION_CODES["identity"]


def bias_activate(A, bias, activation):
    """In place: ``A = activation(A + bias)`` (a 2-D C-contiguous array).

    As ``_kernels.bias_activate``, except that tanh is NumPy's: Numba
    compiles ``np.tanh`` to one libm call per element (~70 ns, measured
    against NumPy's SIMD loop at ~1 ns in float32 and ~6 ns in float64), so
    the bias is added by the kernel and the tanh taken by NumPy.
    """
    if activation == _TANH:
        _bias_add_activate(A, bias, _IDENTITY)
        np.tanh(A, out=A)
    else:
        _bias_add_activate(A, bias, activation)


class Head:
    """The output layer's column groups and their losses.

    Parameters
    ----------
    kinds : list of str
        The loss of each group: "squared_error", "sigmoid_cross_entropy" or
        "softmax".
    widths : list of int
        Output units of each group.
    target_groups : array-like of int, default=None
        For every target entry, the index of the input column group whose
        corruption it reconstructs (-1 for none): the emphasis weights use
        it. By default entry ``t`` belongs to column group ``t`` if there is
        corruption at all.

    Adjacent elementwise groups of the same kind are merged into one (their
    target entries are contiguous), so a head of 784 sigmoid columns costs
    one group.
    """

    def __init__(self, kinds, widths, target_groups=None):
        codes, merged = [], []
        for kind, width in zip(kinds, widths):
            code = HK.HEAD_CODES[kind]
            if code != HK.HEAD_CODES["softmax"] and codes and codes[-1] == code:
                merged[-1] += int(width)
            else:
                codes.append(code)
                merged.append(int(width))
        self.kinds = np.asarray(codes, dtype=np.int64)
        widths = np.asarray(merged, dtype=np.int64)
        self.stops = np.cumsum(widths)
        self.starts = self.stops - widths
        n_targets = np.where(self.kinds == HK.HEAD_CODES["softmax"], 1, widths)
        self.targets = np.cumsum(n_targets) - n_targets
        self.n_outputs = int(self.stops[-1])
        self.n_targets = int(n_targets.sum())
        if target_groups is None:
            target_groups = np.arange(self.n_targets)
        self.target_groups = np.asarray(target_groups, dtype=np.int64)
        if self.target_groups.shape != (self.n_targets,):
            raise ValueError(
                f"target_groups needs {self.n_targets} entries, got "
                f"{self.target_groups.shape}.")
        # As the compiled row block (``_block_kernels``) takes them.
        self.kernel_args = (self.kinds, self.starts, self.stops, self.targets,
                            self.target_groups)


class Corruption:
    """Input noise by column groups.

    Parameters
    ----------
    kind : {"none", "masking", "swap", "gaussian", "salt_and_pepper"}
    level : float
        Probability that a column group is corrupted (the noise's standard
        deviation for "gaussian").
    starts, stops : array-like of int, default=None
        Input range of each column group; by default one group per input.
    indicators : array-like of int, default=None
        Missing-indicator input of each group (-1 for none).
    uncorrupted_weight : float, default=1.0
        Emphasis: loss weight of the targets whose group was not corrupted.
    pool : ndarray of int, default=None
        Rows of the training data that swap noise draws from (the training
        rows, without a validation set); by default all rows.
    input_missing : ndarray of bool of shape (n_samples, n_groups), default=None
        Missing input entries: always fed masked and flagged corrupted.
    low, high : float, default=0.0, 1.0
        The salt-and-pepper values.
    """

    def __init__(self, kind, level, n_inputs, starts=None, stops=None,
                 indicators=None, uncorrupted_weight=1.0, pool=None,
                 input_missing=None, low=0.0, high=1.0):
        self.code = HK.NOISE_CODES[kind]
        self.low, self.high = float(low), float(high)
        self.level = float(level)
        if starts is None:
            starts, stops = np.arange(n_inputs), np.arange(1, n_inputs + 1)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.stops = np.asarray(stops, dtype=np.int64)
        self.indicators = (np.full(self.starts.shape[0], -1, dtype=np.int64)
                           if indicators is None
                           else np.asarray(indicators, dtype=np.int64))
        self.n_groups = self.starts.shape[0]
        self._input_end = max(int(self.stops.max(initial=0)),
                              int(self.indicators.max(initial=-1)) + 1)
        self.uncorrupted_weight = float(uncorrupted_weight)
        # An empty pool means all rows of X.
        self.pool = np.asarray([] if pool is None else pool, dtype=np.intp)
        self._pool_end = int(self.pool.max()) + 1 if self.pool.size else 0
        self.input_missing = input_missing
        self.emphasis = self.code in (
            HK.NOISE_CODES["masking"], HK.NOISE_CODES["swap"],
            HK.NOISE_CODES["salt_and_pepper"]) and (
            self.uncorrupted_weight != 1.0)
        # As the compiled row block (``_block_kernels``) takes them.
        self.kernel_args = (
            self.code, self.level, self.starts, self.stops, self.indicators,
            self.pool, _NO_MISSING if input_missing is None else input_missing,
            input_missing is not None, self.low, self.high, self.emphasis,
            self.uncorrupted_weight)


class Workspace:
    """Minibatch buffers, allocated once per call to fit / partial_fit.

    ``runner`` runs the blocks of a minibatch (serially by default).
    ``rows_per_block`` defaults to the whole batch for a step below
    ``SERIAL_STEP_WORK``, else to half the batch (at least
    ``_parallel.ROWS_PER_BLOCK``): two blocks keep two cores busy, and on
    layers of a few hundred units, products of 64 rows ran ~25% slower per
    epoch than of 128 (``benchmarks/bench_tabular.py``, one thread). It
    depends on the shapes only, so results stay thread-independent.
    """

    def __init__(self, batch_size, coefs, head, n_groups, dense_input,
                 runner=None, rows_per_block=None):
        dtype = coefs[0].dtype
        # Steps below SERIAL_STEP_WORK run in the calling thread, whatever
        # the runner (the estimators then open none).
        self.serial = serial_steps(batch_size, coefs)
        if rows_per_block is None:
            rows_per_block = (batch_size if self.serial
                              else max(ROWS_PER_BLOCK, -(-batch_size // 2)))
        self.rows_per_block = rows_per_block
        self.runner = runner if runner is not None else BlockRunner(1)
        self.inputs = (np.empty((batch_size, coefs[0].shape[0]), dtype=dtype)
                       if dense_input else None)
        self.corrupted = np.zeros((batch_size, max(n_groups, 1)), dtype=np.uint8)
        self.hidden = [np.empty((batch_size, W.shape[1]), dtype=dtype)
                       for W in coefs[:-1]]
        # Gradients with respect to the pre-activations of every layer.
        self.deltas = [np.empty((batch_size, W.shape[1]), dtype=dtype)
                       for W in coefs]
        n_row_blocks = len(blocks(batch_size, rows_per_block))
        self.bias_parts = [np.empty((n_row_blocks, W.shape[1]), dtype=dtype)
                           for W in coefs]
        self.layer_buffers = (tuple(self.hidden), tuple(self.deltas),
                              tuple(self.bias_parts))
        self.grad_coefs = [np.empty_like(W) for W in coefs]
        self.grad_intercepts = [np.empty(W.shape[1], dtype=dtype)
                                for W in coefs]
        # Weight gradients by blocks of input units of each layer.
        self.weight_tasks = [(k, units) for k, W in enumerate(coefs)
                             for units in blocks(W.shape[0], UNITS_PER_BLOCK,
                                                 COLUMN_ALIGNMENT)]
        self.task_table = np.array(
            [(k, u.start, u.stop) for k, u in self.weight_tasks],
            dtype=np.int64).reshape(-1, 3)
        self._row_edges = {}
        self.dtype = dtype
        self.arange = np.arange(batch_size)
        # Work per block of the two maps of a minibatch, in FLOP (per row of
        # the minibatch for a block of weight rows).
        self._row_flop = 4.0 * sum(W.size for W in coefs) * rows_per_block
        self._unit_flop = 2.0 * np.mean(
            [min(W.shape[0], UNITS_PER_BLOCK) * W.shape[1] for W in coefs])
        self._row_blocks = {}
        # What forward_backward checks its arguments against.
        self._shapes = [W.shape for W in coefs]
        self._bias_shapes = [(W.shape[1],) for W in coefs]
        # Stand-ins for absent weights and noise.
        self.no_weights = np.ones((1, 1), dtype=dtype)
        self.no_noise = Corruption("none", 0.0, 0)

    def row_blocks(self, n):
        """The row blocks of a minibatch of ``n`` rows (cached)."""
        found = self._row_blocks.get(n)
        if found is None:
            found = self._row_blocks[n] = blocks(n, self.rows_per_block)
        return found

    def rows_match_whole(self, n):
        """Whether one thread may make the products over all ``n`` rows.

        Where BLAS gives every layer's products over the whole minibatch the
        bits of its blocks of rows (OpenBLAS's AVX-512 kernels do, its AVX2
        float32 kernels do not), a step on one thread makes them whole
        (``_block_kernels.batch_forward_backward``): the same model as the
        blocks at any thread count, without their cost. Checked once per
        shape, on random data.
        """
        edges = self.row_edges(n)
        if edges.shape[0] <= 2:
            return False  # one block: nothing to gain
        shapes, dtype = self._shapes, self.dtype
        widths = [shape[1] for shape in shapes]

        def check():
            rng = np.random.default_rng(0)
            coefs = tuple(rng.standard_normal(shape).astype(dtype)
                          for shape in shapes)
            return BK.rows_match_whole(
                rng.standard_normal((n, shapes[0][0])).astype(dtype), coefs,
                tuple(rng.standard_normal((n, w)).astype(dtype)
                      for w in widths), edges)

        return blas_check(
            ("deep step", n, tuple(shapes), dtype.str, tuple(edges)),
            n * (shapes[0][0] + 3 * sum(widths))
            + sum(a * b for a, b in shapes), check)

    def row_edges(self, n):
        """The boundaries of ``row_blocks(n)``, as an int64 array (cached)."""
        found = self._row_edges.get(n)
        if found is None:
            parts = self.row_blocks(n)
            found = self._row_edges[n] = np.array(
                [0] + [r.stop for r in parts], dtype=np.int64)
        return found

    def map(self, func, items, flop_per_item):
        """``runner.map``, or a plain loop where blocks are too small."""
        if (self.serial or flop_per_item < _MIN_PARALLEL_FLOP
                or len(items) == 1):
            return [func(item) for item in items]
        return self.runner.map(func, items)


_DENSE_NOISE = (HK.NOISE_CODES["gaussian"], HK.NOISE_CODES["salt_and_pepper"])


def forward_backward(coefs, intercepts, activations, head, X, rows, targets,
                     target_weights, noise, seed, ws, after_gradient=None,
                     update_biases=False):
    """Loss and gradients of one minibatch, summed over its samples.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        The layers, in scikit-learn's MLP layout.
    activations : list of int
        Activation code of each hidden layer (``len(coefs) - 1`` of them).
    head : Head
    X : ndarray or CSR matrix of shape (n_samples, n_inputs)
        The (clean) training inputs, in the dtype of ``coefs``; CSR input
        allows one group per feature and masking noise (which keeps the
        sparsity), none, or gaussian and salt-and-pepper noise (densified
        a minibatch at a time: ``ws`` needs ``dense_input=True``).
    rows : ndarray of int
        The minibatch: row indices into X, ``targets`` and
        ``target_weights``.
    targets : ndarray of shape (n_samples, head.n_targets)
        In the dtype of ``coefs`` (category codes as floats); may be CSR.
    target_weights : ndarray of shape (n_samples, head.n_targets) or None
        Loss weight of every target entry (0 where missing); None for 1.
    noise : Corruption or None
    seed : int
        Seed of the minibatch's noise.
    ws : Workspace
    after_gradient : callable, default=None
        ``after_gradient(k, units)`` is called once the gradient rows
        ``units`` of ``coefs[k]`` are complete (all row blocks done): an
        optimizer may update those rows while other blocks are computed. An
        ``_optimizers.RowUpdates`` is applied in the compiled call that
        computes those rows (dense rows of the gradient).
    update_biases : bool, default=False
        Whether ``after_gradient`` (a ``RowUpdates`` with ``bias_indices``)
        also updates the biases, once every gradient is complete: the whole
        training step. A step that runs on one thread, on dense X and
        targets, is then one compiled call (``_block_kernels.whole_step``),
        with the same result.

    Returns
    -------
    loss : float
        The weighted loss summed over the minibatch. The gradients (no L2
        term) land in ``ws.grad_coefs`` and ``ws.grad_intercepts``.
    """
    n = rows.shape[0]
    if noise is None:
        noise = ws.no_noise
    _check_shapes(coefs, intercepts, head, X, targets, target_weights, noise,
                  ws, n)
    missing = noise.input_missing
    has_missing = missing is not None
    sparse_batch = None
    source, source_rows = X, rows
    if sp.issparse(X) and noise.code in _DENSE_NOISE and not has_missing:
        # Noise that fills the zeros: a dense minibatch, drawn as for dense X
        # (the draws depend on a row's place in the minibatch only).
        if ws.inputs is None:
            raise ValueError("Gaussian and salt-and-pepper noise on sparse X "
                             "need a Workspace with dense_input=True.")
        source, source_rows = X[rows].toarray(), ws.arange[:n]
    elif sp.issparse(X):
        if noise.code not in (HK.NOISE_CODES["none"],
                              HK.NOISE_CODES["masking"]) or has_missing:
            raise ValueError("Sparse input allows masking, gaussian and "
                             "salt_and_pepper noise only, and no missing "
                             "entries.")
        batch = X[rows]
        data = batch.data
        if noise.code == HK.NOISE_CODES["masking"]:
            data = np.empty_like(batch.data)
        sparse_batch = (batch.data, data, batch.indices, batch.indptr)
    if sp.issparse(targets):
        T, target_rows = targets[rows].toarray(), ws.arange[:n]
        TW = (target_weights[rows] if target_weights is not None
              else ws.no_weights)
    else:
        T, target_rows = targets, rows
        TW = target_weights if target_weights is not None else ws.no_weights
    has_weights = target_weights is not None
    row_blocks = ws.row_blocks(n)
    coefs_t, intercepts_t = tuple(coefs), tuple(intercepts)
    acts = np.asarray(activations, dtype=np.int64)
    hidden_t, deltas_t, parts_t = ws.layer_buffers
    if (update_biases and not sp.issparse(X) and not sp.issparse(targets)
            and (ws.serial or not ws.runner.parallel)):
        return float(BK.whole_step(
            X, rows, seed, noise.kernel_args, ws.inputs, ws.corrupted,
            coefs_t, intercepts_t, acts, hidden_t, deltas_t, parts_t, T,
            target_rows, TW, has_weights, head.kernel_args,
            ws.row_edges(n), ws.task_table, tuple(ws.grad_coefs),
            tuple(ws.grad_intercepts), after_gradient.step_args(),
            ws.rows_match_whole(n)))

    def forward_backward_rows(b):
        # Dense input: the whole block in one compiled call without the GIL.
        r = row_blocks[b]
        return BK.dense_rows_forward_backward(
            source, source_rows, r.start, r.stop, b, seed, noise.kernel_args,
            ws.inputs, ws.corrupted, coefs_t, intercepts_t, acts, hidden_t,
            deltas_t, parts_t, T, target_rows, TW, has_weights,
            head.kernel_args)

    def csr_rows(b):
        # CSR input: the first product from the (masked) sparse block, then
        # the rest of the block compiled as for dense input.
        r = row_blocks[b]
        clean, data, indices, indptr = sparse_batch
        ptr = indptr[r.start:r.stop + 1]
        if noise.code == HK.NOISE_CODES["masking"]:
            HK.mask_csr_groups(clean, indices, ptr, data, ws.corrupted[r], seed,
                               r.start, noise.level)
        K.csr_matmul_t(data, indices, ptr, coefs[0].T, ws.hidden[0][r])
        return BK.layers_forward_backward(
            r.start, r.stop, b, noise.kernel_args, ws.corrupted, coefs_t,
            intercepts_t, acts, hidden_t, deltas_t, parts_t, T, target_rows,
            TW, has_weights, head.kernel_args)

    def weight_gradients(task):
        k, units = task
        if k == 0 and sparse_batch is not None:
            # O(nnz * fan_out), into the transposed view of the gradient.
            _, data, indices, indptr = sparse_batch
            G = ws.grad_coefs[0]
            G[...] = 0.0
            K.csr_t_matmul_add(data, indices, indptr, ws.deltas[0][:n], G.T)
            units = slice(0, G.shape[0])
        else:
            below = ws.inputs if k == 0 else ws.hidden[k - 1]
            if compiled_update is not None:
                # Product and update in one compiled call.
                BK.weight_gradient_step(
                    below, ws.deltas[k], n, units.start, units.stop,
                    ws.grad_coefs[k], coefs[k], *compiled_update(k))
                return
            np.matmul(below[:n, units].T, ws.deltas[k][:n],
                      out=ws.grad_coefs[k][units])
        if after_gradient is not None:
            after_gradient(k, units)

    losses = ws.map(forward_backward_rows if sparse_batch is None else
                    csr_rows, range(len(row_blocks)),
                    ws._row_flop)
    tasks = ws.weight_tasks
    compiled_update = getattr(after_gradient, "kernel_args", None)
    if sparse_batch is not None:
        tasks = [(0, None)] + [t for t in tasks if t[0] > 0]
    # Bias gradients first (block sums in a fixed order), so that they are
    # complete when ``after_gradient`` sees a layer.
    n_blocks = len(row_blocks)
    for parts, grad in zip(ws.bias_parts, ws.grad_intercepts):
        np.add.reduce(parts[:n_blocks], axis=0, out=grad)
    ws.map(weight_gradients, tasks, n * ws._unit_flop)
    if update_biases:
        after_gradient.update_biases(intercepts, ws.grad_intercepts)
    return float(sum(losses))


def train(estimator, coefs, intercepts, activations, head, X, targets,
          indices, *, n_epochs, incremental, target_weights=None, noise=None,
          validation_score=None, tag=None, batch_size=None):
    """Train the network in place: ``n_epochs`` epochs of ``run_epochs``.

    The minibatch step of every estimator trained end to end: one
    :func:`forward_backward`, each block of weight rows updated by the
    optimizer as soon as its gradient is complete (while other blocks are
    computed), the biases after the minibatch.

    Parameters
    ----------
    estimator : estimator
        What ``run_epochs`` and ``make_optimizer`` read and update (the
        solver settings, ``alpha``, ``batch_size``, ``_random_state``, the
        training state); its ``_optimizer_state`` is continued if
        ``incremental`` and replaced by the new state at the end.
    coefs, intercepts, activations, head, X, targets, target_weights, noise
        As in :func:`forward_backward`; ``coefs`` and ``intercepts`` are
        updated in place (C-contiguous, writeable arrays).
    indices : ndarray of int
        The training rows of X.
    n_epochs : int
        Maximum number of epochs of this call.
    incremental : bool
        Whether this is a ``partial_fit`` call: the optimizer state is
        continued and no ``ConvergenceWarning`` is raised.
    validation_score, tag
        As in ``run_epochs``.
    batch_size : int, default=None
        Rows per minibatch; by default ``_training.batch_size_for``.

    Returns
    -------
    converged : bool
        Whether the stopping rule ended training.
    """
    params = [p for pair in zip(coefs, intercepts) for p in pair]
    l2_flags = [True, False] * len(coefs)
    optimizer = make_optimizer(
        estimator, params,
        getattr(estimator, "_optimizer_state", None) if incremental else None)
    alpha = estimator.alpha
    dense_input = not sp.issparse(X) or (noise is not None
                                         and noise.code in _DENSE_NOISE)
    if batch_size is None:
        batch_size = batch_size_for(estimator, indices.shape[0])
    # Blocks on single-threaded BLAS (``_parallel``): the same result for any
    # number of threads. Overflow is not warned about: divergence is detected
    # (non-finite loss or weights) and reported as an error by run_epochs.
    with BlockRunner(training_threads(batch_size, coefs)) as runner, \
            np.errstate(over="ignore", invalid="ignore"):
        ws = Workspace(batch_size, coefs, head,
                       noise.n_groups if noise is not None else 0, dense_input,
                       runner)

        updates = RowUpdates(optimizer, coefs, ws.grad_coefs,
                             range(0, 2 * len(coefs), 2), alpha,
                             range(1, 2 * len(coefs), 2))

        def step(rows, seed):
            updates.start(rows.shape[0])
            return forward_backward(
                coefs, intercepts, activations, head, X, rows, targets,
                target_weights, noise, 0 if seed is None else seed, ws,
                updates, update_biases=True)

        converged = run_epochs(
            estimator, step, params, l2_flags, indices, n_epochs=n_epochs,
            batch_size=batch_size, seeded=noise is not None,
            validation_score=validation_score, tag=tag, warn=not incremental)
    keep_optimizer_state(estimator, optimizer, incremental)
    return converged


def serial_steps(batch_size, coefs):
    """Whether steps of this shape run as one block on one thread."""
    return batch_size * sum(W.size for W in coefs) < SERIAL_STEP_WORK


def training_threads(batch_size, coefs):
    """The threads of the training steps of this shape."""
    return 1 if serial_steps(batch_size, coefs) else available_threads()


def _check_shapes(coefs, intercepts, head, X, targets, target_weights, noise,
                  ws, n_rows):
    """O(1) checks that keep the kernels (no bounds checks) in bounds."""
    dtype = coefs[0].dtype
    if len(coefs) < 2:
        raise ValueError("The engine needs at least one hidden layer.")
    if ([W.shape for W in coefs] != ws._shapes
            or [b.shape for b in intercepts] != ws._bias_shapes):
        raise ValueError("The coefs or intercepts do not fit the Workspace.")
    if n_rows > ws.arange.shape[0]:
        raise ValueError(f"A minibatch of {n_rows} rows exceeds the "
                         f"Workspace's {ws.arange.shape[0]}.")
    n = X.shape[0]
    for name, a, width in (("X", X, coefs[0].shape[0]),
                           ("targets", targets, head.n_targets),
                           ("target_weights", target_weights, head.n_targets)):
        if a is None:
            continue
        if a.dtype != dtype or a.shape != (n, width):
            raise ValueError(
                f"{name} must be of dtype {dtype} and shape {(n, width)}, got "
                f"{a.dtype} and {a.shape}.")
    if coefs[-1].shape[1] != head.n_outputs:
        raise ValueError("The last layer's width differs from the head's.")
    if noise._pool_end > n or noise._input_end > X.shape[1]:
        raise ValueError("The noise's pool rows or column groups lie beyond X.")
    missing = noise.input_missing
    if missing is not None and missing.shape != (n, noise.n_groups):
        raise ValueError(
            f"input_missing must be of shape {(n, noise.n_groups)}, got "
            f"{missing.shape}.")


# --------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------
def _chunks(X, coefs):
    widest = max(X.shape[1], *(W.shape[1] for W in coefs))
    return gen_batches(X.shape[0], max(1, _CHUNK_ELEMENTS // widest))


def _layer(H, W, b, activation):
    A = H @ W
    A = np.ascontiguousarray(A.toarray() if sp.issparse(A) else A)
    if activation is not None:
        K._check_bias_activate(A, b, activation)
        bias_activate(A, b, activation)
    return A


def hidden_layers(coefs, intercepts, activations, X, layers):
    """Activations of the hidden ``layers`` (indices), side by side.

    Used by ``transform``: ``layers=[len(coefs) // 2 - 1]`` is the code of
    a mirrored autoencoder, ``range(len(coefs) // 2)`` its whole encoder.
    """
    layers = list(layers)
    depth = max(layers) + 1
    widths = [coefs[k].shape[1] for k in layers]
    out = np.empty((X.shape[0], sum(widths)), dtype=coefs[0].dtype)
    offsets = np.cumsum([0] + widths)
    for batch in _chunks(X, coefs[:depth]):
        H = X[batch]
        for k in range(depth):
            H = _layer(H, coefs[k], intercepts[k], activations[k])
            if k in layers:
                i = layers.index(k)
                out[batch, offsets[i]:offsets[i + 1]] = H
    return out


def _outputs(coefs, intercepts, activations, X, batch, start=0):
    H = X[batch]
    for k in range(start, len(coefs) - 1):
        H = _layer(H, coefs[k], intercepts[k], activations[k])
    return _layer(H, coefs[-1], None, None)


def predict_head(coefs, intercepts, activations, head, X, log=False, start=0):
    """The head's output for X: identity, sigmoid or softmax by group.

    With ``start=k``, X holds the activations of hidden layer ``k - 1`` (the
    input of ``coefs[k]``): ``inverse_transform`` decodes a code that way.
    """
    if X.shape[1] != coefs[start].shape[0]:
        raise ValueError(
            f"Expected {coefs[start].shape[0]} columns (the input of layer "
            f"{start}), got {X.shape[1]}.")
    out = np.empty((X.shape[0], head.n_outputs), dtype=coefs[0].dtype)
    for batch in _chunks(X, coefs[start:]):
        A = _outputs(coefs, intercepts, activations, X, batch, start)
        HK.head_output(A, intercepts[-1], head.kinds, head.starts, head.stops,
                       log)
        out[batch] = A
    return out


def row_losses(coefs, intercepts, activations, head, X, targets,
               target_weights=None):
    """Weighted head loss of every row of X (no noise, no emphasis).

    ``targets`` (and X) may be CSR matrices.
    """
    out = np.empty(X.shape[0])
    for batch in _chunks(X, coefs):
        A = _outputs(coefs, intercepts, activations, X, batch)
        T = targets[batch]
        T = np.ascontiguousarray(T.toarray() if sp.issparse(T) else T,
                                 dtype=A.dtype)
        TW = (np.ascontiguousarray(target_weights[batch], dtype=A.dtype)
              if target_weights is not None else np.ones((1, 1), A.dtype))
        HK.head_row_losses(A, intercepts[-1], T, TW,
                           target_weights is not None, head.kinds, head.starts,
                           head.stops, head.targets, out[batch])
    return out
