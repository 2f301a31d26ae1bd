"""The forward and backward pass of one block of rows, compiled whole.

The deep network engine (``_network.forward_backward``) splits a minibatch
into fixed blocks of rows, which the ``BlockRunner`` hands to its threads.
Driving a block from Python costs a dozen kernel calls and matrix products,
each of which takes the GIL back for a few microseconds: on two threads the
GIL changed hands that many times per block, at 30-100 microseconds a time on
these virtual machines. Here the whole block (the corruption of its rows,
every layer's product and activation, the head's loss and gradient, and the
backward products) is one Numba function that holds no GIL, and the matrix
products are BLAS calls made from compiled code (``np.dot`` with ``out``,
which Numba sends to the ``?gemm`` of SciPy's BLAS).

The weight gradients are computed by blocks of input units, and each block
is updated by the optimizer in the same call, while it is still in cache
(``weight_gradient_step``).

A step that runs on one thread (a small network, or one thread available)
is one call, :func:`whole_step`: its row blocks, the bias-gradient sums,
the weight gradients with their updates and the biases' updates, in the
order and with the arithmetic of the Python driver. On the imputer's small
networks the driver's dozen calls per step (each unboxing tuples of
arrays) were a fifth of the step.

The layers arrive as tuples of arrays (Numba's homogeneous tuples, indexed
at run time), so one compiled version serves every network of a given depth
and dtype. The arithmetic is that of the Python driver, kernel for kernel.
"""

import numba
import numpy as np

from ._blas import gemm
from ._head_kernels import gather_corrupt_groups, head_delta
from ._kernels import (
    _bias_activate_columns,
    _hidden_delta_columns,
    adam_update,
    sgd_update,
)
from ._optimizers import ADAM as _ADAM

_adam = adam_update.kernel
_sgd = sgd_update.kernel

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def dense_rows_forward_backward(X, rows, start, stop, block, seed, noise,
                                inputs, corrupted, coefs, intercepts,
                                activations, hidden, deltas, bias_parts, T,
                                target_rows, TW, has_weights, head):
    """Loss summed over the minibatch rows ``start:stop``; gradients in place.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_inputs)
        The clean (dense) inputs; ``rows`` are the minibatch's rows of X.
    start, stop : int
        The block's rows, as places in the minibatch.
    block : int
        The block's index: its row of each ``bias_parts`` array.
    seed : int
        The minibatch's noise seed.
    noise : tuple
        ``(kind, level, starts, stops, indicators, pool, input_missing,
        has_missing, low, high, emphasis, uncorrupted_weight)`` as
        ``_head_kernels.gather_corrupt_groups`` and ``head_delta`` take them.
    inputs, corrupted : ndarray
        The minibatch's corrupted inputs and corruption flags (written).
    coefs, intercepts : tuple of ndarray
        The layers (``len(coefs) >= 2``).
    activations : ndarray of int64
        The activation code of each hidden layer.
    hidden, deltas, bias_parts : tuple of ndarray
        The workspace's activations, pre-activation gradients and per-block
        bias-gradient parts (written).
    T, target_rows, TW, has_weights
        The targets, the minibatch's rows of them and their weights.
    head : tuple
        ``(kinds, starts, stops, targets, target_groups)`` of the head.
    """
    (kind, level, starts, stops, indicators, pool, input_missing,
     has_missing, low, high, _, _) = noise
    below = inputs[start:stop]
    gather_corrupt_groups(X, rows[start:stop], below, corrupted[start:stop],
                          seed, start, kind, level, starts, stops, indicators,
                          pool, input_missing, has_missing, low, high)
    np.dot(below, coefs[0], hidden[0][start:stop])
    return layers_forward_backward(start, stop, block, noise, corrupted, coefs,
                                   intercepts, activations, hidden, deltas,
                                   bias_parts, T, target_rows, TW, has_weights,
                                   head)


@_jit
def layers_forward_backward(start, stop, block, noise, corrupted, coefs,
                            intercepts, activations, hidden, deltas,
                            bias_parts, T, target_rows, TW, has_weights, head):
    """The rest of the block, from the first layer's products on.

    On entry ``hidden[0][start:stop]`` holds the block's corrupted inputs
    times ``coefs[0]`` (dense or sparse: ``_network`` makes it for CSR
    input); arguments as in ``dense_rows_forward_backward``.
    """
    emphasis, uncorrupted_weight = noise[10], noise[11]
    kinds, head_starts, head_stops, head_targets, target_groups = head
    n_layers = len(coefs)
    for k in range(n_layers - 1):
        H = hidden[k][start:stop]
        _bias_activate_columns(H, intercepts[k], activations[k], 0, H.shape[1])
        if k + 1 < n_layers - 1:
            np.dot(H, coefs[k + 1], hidden[k + 1][start:stop])
        else:
            np.dot(H, coefs[k + 1], deltas[n_layers - 1][start:stop])
    delta = deltas[n_layers - 1][start:stop]
    loss_sum = head_delta(delta, intercepts[n_layers - 1], T,
                          target_rows[start:stop], TW, has_weights,
                          corrupted[start:stop], emphasis, uncorrupted_weight,
                          kinds, head_starts, head_stops, head_targets,
                          target_groups, bias_parts[n_layers - 1][block])
    for k in range(n_layers - 1, 0, -1):
        delta_below = deltas[k - 1][start:stop]
        np.dot(delta, coefs[k].T, delta_below)
        _hidden_delta_columns(delta_below, hidden[k - 1][start:stop],
                              activations[k - 1], bias_parts[k - 1][block], 0,
                              delta_below.shape[1])
        delta = delta_below
    return loss_sum


@_jit
def weight_gradient_step(below, delta, n, start, stop, grad, param, solver,
                         state_a, state_b, hyper, scale, l2):
    """Rows ``start:stop`` of a weight gradient, and their optimizer update.

    ``grad[start:stop] = below[:n, start:stop].T @ delta[:n]``, then
    ``param[start:stop]`` takes one step of the solver
    (:func:`optimizer_step`).
    """
    g = grad[start:stop]
    # A block of columns is read in place (``_blas.gemm``), not copied.
    gemm(below[:n, start:stop].T, delta[:n], g)
    optimizer_step(param[start:stop], g, solver, state_a[start:stop],
                   state_b[start:stop], hyper, scale, l2)


@_jit
def optimizer_step(param, grad, solver, state_a, state_b, hyper, scale, l2):
    """One step of the solver on ``param`` (rows of a weight matrix).

    0: Adam, with the moments ``state_a``, ``state_b`` and ``hyper =
    (learning rate, beta_1, beta_2, epsilon)``; 1: SGD, with the velocities
    ``state_a`` and ``hyper = (learning rate, momentum, nesterov, 0)``:
    the kernels ``_optimizers`` applies from Python, on the same rows.
    """
    if solver == _ADAM:
        _adam(param, grad, grad, False, state_a, state_b, scale, l2,
              hyper[0], hyper[1], hyper[2], hyper[3])
    else:
        _sgd(param, grad, grad, False, state_a, scale, l2, hyper[0],
             hyper[1], hyper[2] != 0.0)


@_jit
def whole_step(X, rows, seed, noise, inputs, corrupted, coefs, intercepts,
               activations, hidden, deltas, bias_parts, T, target_rows, TW,
               has_weights, head, row_edges, tasks, grad_coefs,
               grad_intercepts, update, whole_batch):
    """A whole minibatch step on one thread; returns its loss sum.

    Every block of rows (:func:`dense_rows_forward_backward`, the arguments
    up to ``head`` as there), the bias gradients summed over the blocks in
    order (as ``np.add.reduce`` over ``bias_parts``), each block of weight
    rows of ``tasks`` (rows ``(layer, start, stop)``) with its gradient and
    update (:func:`weight_gradient_step`), then the biases' updates.

    ``row_edges`` are the row blocks' boundaries; ``update`` is ``(solver,
    coef_a, coef_b, bias_a, bias_b, hyper, scale, l2)``: the optimizer's
    state arrays of every weight matrix and bias (biases' as (1, n)
    arrays), as ``optimizer_step`` takes them; no L2 term on the biases.
    With ``whole_batch``, the blocks' products are made over the whole
    minibatch (:func:`batch_forward_backward`): only where BLAS gives them
    the same bits (``rows_match_whole``).
    """
    solver, coef_a, coef_b, bias_a, bias_b, hyper, scale, l2 = update
    n_blocks = row_edges.shape[0] - 1
    loss_sum = 0.0
    if whole_batch:
        loss_sum = batch_forward_backward(
            X, rows, row_edges, seed, noise, inputs, corrupted, coefs,
            intercepts, activations, hidden, deltas, bias_parts, T,
            target_rows, TW, has_weights, head)
    else:
        for b in range(n_blocks):
            loss_sum += dense_rows_forward_backward(
                X, rows, row_edges[b], row_edges[b + 1], b, seed, noise,
                inputs, corrupted, coefs, intercepts, activations, hidden,
                deltas, bias_parts, T, target_rows, TW, has_weights, head)
    for k in range(len(coefs)):
        g, parts = grad_intercepts[k], bias_parts[k]
        g[:] = parts[0]
        for b in range(1, n_blocks):
            g += parts[b]
    n = rows.shape[0]
    for t in range(tasks.shape[0]):
        k, start, stop = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        below = inputs if k == 0 else hidden[k - 1]
        weight_gradient_step(below, deltas[k], n, start, stop, grad_coefs[k],
                             coefs[k], solver, coef_a[k], coef_b[k], hyper,
                             scale, l2)
    for k in range(len(intercepts)):
        width = intercepts[k].shape[0]
        optimizer_step(intercepts[k].reshape((1, width)),
                       grad_intercepts[k].reshape((1, width)), solver,
                       bias_a[k], bias_b[k], hyper, scale, 0.0)
    return loss_sum


@_jit
def batch_forward_backward(X, rows, row_edges, seed, noise, inputs,
                           corrupted, coefs, intercepts, activations, hidden,
                           deltas, bias_parts, T, target_rows, TW, has_weights,
                           head):
    """The blocks of rows ``row_edges`` with their products over all rows.

    Every product of a layer is one BLAS call over the whole minibatch;
    the noise, the head and the activations' gradients (with their bias
    sums) run block by block, as in :func:`dense_rows_forward_backward`.
    The result is that of the blocks where BLAS gives a product of all rows
    the bits of its blocks of rows (``rows_match_whole``).
    """
    (kind, level, starts, stops, indicators, pool, input_missing,
     has_missing, low, high, emphasis, uncorrupted_weight) = noise
    kinds, head_starts, head_stops, head_targets, target_groups = head
    n, n_blocks, n_layers = rows.shape[0], row_edges.shape[0] - 1, len(coefs)
    for b in range(n_blocks):
        s, e = row_edges[b], row_edges[b + 1]
        gather_corrupt_groups(X, rows[s:e], inputs[s:e], corrupted[s:e], seed,
                              s, kind, level, starts, stops, indicators, pool,
                              input_missing, has_missing, low, high)
    np.dot(inputs[:n], coefs[0], hidden[0][:n])
    for k in range(n_layers - 1):
        H = hidden[k][:n]
        _bias_activate_columns(H, intercepts[k], activations[k], 0, H.shape[1])
        if k + 1 < n_layers - 1:
            np.dot(H, coefs[k + 1], hidden[k + 1][:n])
        else:
            np.dot(H, coefs[k + 1], deltas[n_layers - 1][:n])
    loss_sum = 0.0
    for b in range(n_blocks):
        s, e = row_edges[b], row_edges[b + 1]
        loss_sum += head_delta(
            deltas[n_layers - 1][s:e], intercepts[n_layers - 1], T,
            target_rows[s:e], TW, has_weights, corrupted[s:e], emphasis,
            uncorrupted_weight, kinds, head_starts, head_stops, head_targets,
            target_groups, bias_parts[n_layers - 1][b])
    for k in range(n_layers - 1, 0, -1):
        below = deltas[k - 1][:n]
        np.dot(deltas[k][:n], coefs[k].T, below)
        for b in range(n_blocks):
            s, e = row_edges[b], row_edges[b + 1]
            _hidden_delta_columns(below[s:e], hidden[k - 1][s:e],
                                  activations[k - 1], bias_parts[k - 1][b], 0,
                                  below.shape[1])
    return loss_sum


@_jit
def rows_match_whole(inputs, coefs, deltas, row_edges):
    """Whether each layer's products by blocks of rows are bitwise whole.

    The forward product of every layer (``inputs`` then activations of
    each width: ``deltas[k]`` stands for both) and the backward product of
    every layer but the first, made by the blocks ``row_edges`` and over
    all rows, as :func:`batch_forward_backward` and
    :func:`dense_rows_forward_backward` make them. A GEMM's operations do
    not depend on the values: one check per shape stands for all data.
    """
    n = row_edges[-1]
    for k in range(len(coefs)):
        W = coefs[k]
        A = inputs[:n] if k == 0 else deltas[k - 1][:n]
        whole = np.empty((n, W.shape[1]), dtype=W.dtype)
        split = np.empty((n, W.shape[1]), dtype=W.dtype)
        np.dot(A, W, whole)
        for b in range(row_edges.shape[0] - 1):
            s, e = row_edges[b], row_edges[b + 1]
            np.dot(A[s:e], W, split[s:e])
        if not np.array_equal(whole, split):
            return False
        if k == 0:
            continue
        D = deltas[k][:n]
        whole = np.empty((n, W.shape[0]), dtype=W.dtype)
        split = np.empty((n, W.shape[0]), dtype=W.dtype)
        np.dot(D, W.T, whole)
        for b in range(row_edges.shape[0] - 1):
            s, e = row_edges[b], row_edges[b + 1]
            np.dot(D[s:e], W.T, split[s:e])
        if not np.array_equal(whole, split):
            return False
    return True
