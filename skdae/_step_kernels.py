"""The dense minibatch step of a denoising autoencoder, compiled whole.

``_minibatch.forward_backward`` splits a step into four phases, each over
fixed blocks whose boundaries depend on the shapes only: the corruption
(blocks of rows), the encoder product with its activation (blocks of
hidden units), the decoder product with the loss and its gradient (blocks
of features), and the backward product with the weight gradients and the
optimizer's update (blocks of hidden units). Driven from Python, each phase
was a hand-off to the pool's threads, and each block a few calls that took
the GIL back in between: on two threads of these virtual machines, where a
GIL hand-off costs a futex wake-up of 30-100 microseconds, that was a
tenth of the step.

Here every thread of the step calls :func:`dense_step` once, without the
GIL (through :func:`team_step`). The threads take the blocks of a phase
from an atomic counter, and a
thread that runs out waits until every block of the phase is *done* (not
until every thread has arrived): a thread that starts late, or not at all,
finds the early phases finished and joins in where the others are. Which
thread computes a block never changes its arithmetic, so the result is the
same for any number of threads.

The products are BLAS calls on strided views (``_blas.gemm``); the
elementwise work is the kernels of ``_kernels``, column range by column
range, exactly as the Python driver of the sparse path calls them.
"""

import numba
import numpy as np

from ._blas import gemm
from ._block_kernels import optimizer_step
from ._handoff import claim, publish, wait_until
from ._head_kernels import NOISE_CODES, gather_corrupt_groups
from ._kernels import (
    CORRUPTION_CODES,
    _bias_activate_columns,
    _hidden_delta_columns,
    _output_delta_columns,
    gather_corrupt,
)
from ._parallel import COLUMN_ALIGNMENT
from ._swap_kernels import zero_missing

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# The step and its phases are inlined into ``team_step`` by Numba itself:
# compiled once, as part of it, instead of on their own and again inlined
# by LLVM (seconds of compilation each).
_phase = numba.njit(cache=True, nogil=True, error_model="numpy",
                    inline="always")

_gather_corrupt = gather_corrupt.kernel
_zero_missing = zero_missing.kernel
_SWAP = CORRUPTION_CODES["swap"]
_GROUP_SWAP = NOISE_CODES["swap"]

# The phases, in order; ``control[p]`` counts the blocks of phase p taken,
# ``control[N_PHASES + p]`` those done.
CORRUPT, ENCODE, DECODE, BACKWARD = 0, 1, 2, 3
N_PHASES = 4
_NO_MISSING = np.empty((0, 0), dtype=np.bool_)


@_phase
def dense_step(control, X, rows, seed, noise, weights, buffers, bounds,
               update):
    """One thread's share of a minibatch step (see the module docstring).

    Parameters
    ----------
    control : ndarray of int64, shape (2 * N_PHASES,)
        The step's block counters, zero on entry of the first thread.
    X : ndarray of shape (n_samples, n_features)
        The clean inputs; ``rows`` are the minibatch's rows of X.
    seed : int
        The minibatch's noise seed.
    noise : tuple
        ``(kind, level, uncorrupted_weight, low, high, has_missing, pool,
        group_starts, group_stops, no_indicators, flags)``: the
        ``_kernels`` corruption code and its parameters, and what swap noise
        needs (``_head_kernels.gather_corrupt_groups``; ``flags`` has a row
        per row of the largest minibatch).
    weights : tuple
        ``(W, W_dec, b_hidden, b_visible, tied, activation, loss)``.
    buffers : tuple
        ``(hidden, visible, grad_encoder, grad_decoder, grad_hidden_bias,
        grad_visible_bias, column_loss)`` of ``_minibatch.Workspace``
        (written): ``hidden`` holds the activations over their deltas,
        ``visible`` the output deltas over the corrupted inputs, each
        with twice the rows of the largest minibatch.
    bounds : tuple
        ``(rows per corruption block, hidden units per block, features
        per block)``: the blocks are those of ``_parallel.blocks``, those
        of columns aligned to ``COLUMN_ALIGNMENT``.
    update : tuple
        ``(apply, solver, state_a, state_b, decoder_state_a,
        decoder_state_b, hyper, alpha)``: whether to update the weights
        once a block of hidden units has its gradients, and the optimizer's
        arguments (``_block_kernels.optimizer_step``; the L2 term is
        ``alpha / n``, as ``_optimizers.RowUpdates`` makes it).
    """
    n = rows.shape[0]
    n_units, n_features = weights[0].shape
    for phase in range(N_PHASES):
        if phase == CORRUPT:
            edges = block_bounds(n, bounds[0], 1)
        elif phase == DECODE:
            edges = block_bounds(n_features, bounds[2], COLUMN_ALIGNMENT)
        else:
            edges = block_bounds(n_units, bounds[1], COLUMN_ALIGNMENT)
        n_blocks = edges.shape[0] - 1
        while True:
            b = claim(control, phase)
            if b >= n_blocks:
                break
            start, stop = edges[b], edges[b + 1]
            if phase == CORRUPT:
                _corrupt(X, rows, seed, noise, buffers[1][n:2 * n], start,
                         stop)
            elif phase == ENCODE:
                _encode(n, weights, buffers, start, stop)
            elif phase == DECODE:
                _decode(X, rows, seed, noise, weights, buffers, start, stop)
            else:
                _backward(n, weights, buffers, update, start, stop)
            claim(control, N_PHASES + phase)
        wait_until(control, N_PHASES + phase, n_blocks)


@_jit
def block_bounds(n, per_block, align):
    """The boundaries of ``_parallel.blocks(n, per_block, align)``."""
    n_blocks = max(1, -(-n // per_block))
    if n < 2 * align * n_blocks:
        align = 1
    edges = np.empty(n_blocks + 1, dtype=np.int64)
    for k in range(n_blocks):
        edges[k] = (n * k // n_blocks + align // 2) // align * align
    edges[n_blocks] = n
    return edges


# ---------------------------------------------------------------------------
# A team of threads for a whole fit: ``team[0]`` is the generation (step)
# the leader published, ``team[w]`` the last one member ``w`` finished, and
# ``step[0], step[1]`` the step's number of rows (-1: stop) and seed. The
# other members never touch the GIL: a step costs no hand-off through
# Python. A team of one (one thread) is the leader alone.
# ---------------------------------------------------------------------------
@_jit
def team_step(w, team, step, control, X, rows, noise, weights, buffers,
              bounds, update):
    """Member ``w`` of a team: the leader's step (0), or a worker's loop.

    The leader (the calling thread) publishes the step whose rows are
    ``rows[:step[0]]``, takes part and waits for the workers; a worker runs
    each published step until told to stop. Other arguments as in
    :func:`dense_step`, which every member runs.
    """
    # One call of dense_step (which Numba inlines): the leader makes one
    # pass of the loop, a worker one per step.
    generation = team[0] if w == 0 else 0
    while True:
        generation += 1
        if w == 0:
            control[:] = 0
            publish(team, 0, generation)  # release: workers see the above
        else:
            wait_until(team, 0, generation, True)  # between steps: idle
        n = step[0]
        if n >= 0:
            dense_step(control, X, rows[:n], step[1], noise, weights,
                       buffers, bounds, update)
        if w == 0:
            for v in range(1, team.shape[0]):
                wait_until(team, v, generation)
            return
        publish(team, w, generation)
        if n < 0:
            return


@_phase
def _corrupt(X, rows, seed, noise, corrupted, start, stop):
    (kind, level, _, low, high, has_missing, pool, group_starts, group_stops,
     no_indicators, flags) = noise
    out = corrupted[start:stop]
    if kind == _SWAP:
        # The deep engine's swap noise, one column group per feature.
        gather_corrupt_groups(X, rows[start:stop], out, flags[start:stop],
                              seed, start, _GROUP_SWAP, level, group_starts,
                              group_stops, no_indicators, pool, _NO_MISSING,
                              False)
    else:
        _gather_corrupt(X, rows[start:stop], out, seed, start, kind, level,
                        low, high)
    if has_missing:
        _zero_missing(out, X, rows[start:stop])


@_phase
def _encode(n, weights, buffers, start, stop):
    W, b_hidden, activation = weights[0], weights[2], weights[5]
    hidden, corrupted = buffers[0][:n], buffers[1][n:2 * n]
    gemm(corrupted, W[start:stop].T, hidden[:, start:stop])
    _bias_activate_columns(hidden, b_hidden, activation, start, stop)


@_phase
def _decode(X, rows, seed, noise, weights, buffers, start, stop):
    kind, level, uncorrupted_weight, has_missing = (noise[0], noise[1],
                                                    noise[2], noise[5])
    W_dec, b_visible, loss = weights[1], weights[3], weights[6]
    n = rows.shape[0]
    hidden, delta_out = buffers[0][:n], buffers[1][:n]
    grad_visible_bias, column_loss = buffers[5], buffers[6]
    gemm(hidden, W_dec[:, start:stop], delta_out[:, start:stop])
    _output_delta_columns(delta_out, b_visible, X, rows, seed, 0, kind, level,
                          uncorrupted_weight, loss, grad_visible_bias,
                          column_loss, None, has_missing, start, stop)


@_phase
def _backward(n, weights, buffers, update, start, stop):
    W, W_dec, tied, activation = weights[0], weights[1], weights[4], weights[5]
    grad_encoder, grad_decoder, grad_hidden_bias = buffers[2:5]
    stacked_hidden, stacked_visible = buffers[0][:2 * n], buffers[1][:2 * n]
    hidden, delta_hidden = stacked_hidden[:n], stacked_hidden[n:]
    delta_out, corrupted = stacked_visible[:n], stacked_visible[n:]
    gemm(delta_out, W_dec[start:stop].T, delta_hidden[:, start:stop])
    _hidden_delta_columns(delta_hidden, hidden, activation, grad_hidden_bias,
                          start, stop)
    if tied:
        # [H; dH]^T [dV; X~]: both gradients in one product.
        gemm(stacked_hidden[:, start:stop].T, stacked_visible,
             grad_encoder[start:stop])
    else:
        gemm(hidden[:, start:stop].T, delta_out, grad_decoder[start:stop])
        gemm(delta_hidden[:, start:stop].T, corrupted,
             grad_encoder[start:stop])
    (apply, solver, state_a, state_b, decoder_state_a, decoder_state_b, hyper,
     alpha) = update
    if apply:
        scale = 1.0 / n
        l2 = alpha * scale
        # The block's weights are read by no other block from here on.
        optimizer_step(W[start:stop], grad_encoder[start:stop], solver,
                       state_a[start:stop], state_b[start:stop], hyper, scale,
                       l2)
        if not tied:
            optimizer_step(W_dec[start:stop], grad_decoder[start:stop],
                           solver, decoder_state_a[start:stop],
                           decoder_state_b[start:stop], hyper, scale, l2)


@_jit
def products_match_blocks(stacked_hidden, stacked_visible, W, units, features):
    """Whether BLAS gives the step's products by blocks the bits of whole ones.

    The products of a dense step (encoder, decoder, backward, the tied
    gradient over the stacked rows and the untied ones over half of them),
    each made whole and by the blocks of columns ``units`` / ``features``
    (boundaries), on the step's layouts. A GEMM's sequence of operations
    does not depend on the values, so one check per shape stands for all
    data.
    """
    n = stacked_hidden.shape[0] // 2
    n_units, n_features = W.shape
    hidden, delta_hidden = stacked_hidden[:n], stacked_hidden[n:]
    delta_out, corrupted = stacked_visible[:n], stacked_visible[n:]
    dtype = W.dtype
    by_units = [(corrupted, W, n_units), (delta_out, W, n_units)]
    for A, B, width in by_units:
        whole = np.empty((n, width), dtype=dtype)
        split = np.empty((n, width), dtype=dtype)
        gemm(A, B.T, whole)
        for b in range(units.shape[0] - 1):
            gemm(A, B[units[b]:units[b + 1]].T,
                 split[:, units[b]:units[b + 1]])
        if not np.array_equal(whole, split):
            return False
    whole = np.empty((n, n_features), dtype=dtype)
    split = np.empty((n, n_features), dtype=dtype)
    gemm(hidden, W, whole)
    for b in range(features.shape[0] - 1):
        gemm(hidden, W[:, features[b]:features[b + 1]],
             split[:, features[b]:features[b + 1]])
    if not np.array_equal(whole, split):
        return False
    for H, V in ((stacked_hidden, stacked_visible), (hidden, delta_out),
                 (delta_hidden, corrupted)):
        whole = np.empty((n_units, n_features), dtype=dtype)
        split = np.empty((n_units, n_features), dtype=dtype)
        gemm(H.T, V, whole)
        for b in range(units.shape[0] - 1):
            gemm(H[:, units[b]:units[b + 1]].T, V,
                 split[units[b]:units[b + 1]])
        if not np.array_equal(whole, split):
            return False
    return True
