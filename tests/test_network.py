"""The deep network engine (_network, _head_kernels) against NumPy references."""

import numpy as np
import pytest
import scipy.sparse as sp

from skdae import _block_kernels as BK
from skdae import _head_kernels as HK
from skdae import _kernels as K
from skdae import _network
from skdae._network import (
    Corruption,
    Head,
    Workspace,
    forward_backward,
    hidden_layers,
    predict_head,
    row_losses,
)
from skdae._parallel import BlockRunner

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
# Noise that needs a dense minibatch also for CSR input.
_DENSE_NOISE = (HK.NOISE_CODES["gaussian"], HK.NOISE_CODES["salt_and_pepper"])


def _uniforms(seed, n_rows, n_cols, stream2=False):
    s = np.uint64(seed) ^ K._STREAM2 if stream2 else np.uint64(seed)
    return K.uniform_block(s, n_rows, n_cols)


# --------------------------------------------------------------------------
# A mixed table: 2 numeric columns, categoricals of 3 and 2 categories, and
# one missing indicator per column.
# --------------------------------------------------------------------------
def _mixed_problem(n=40, dtype=np.float64, seed=0, missing_rate=0.2):
    rng = np.random.RandomState(seed)
    num = rng.normal(size=(n, 2))
    cats = [rng.randint(3, size=n), rng.randint(2, size=n)]
    missing = rng.uniform(size=(n, 4)) < missing_rate
    widths = [1, 1, 3, 2]
    starts = np.cumsum([0] + widths)[:-1]
    stops = starts + widths
    X = np.zeros((n, 7 + 4))
    X[:, 0:2] = num
    X[np.arange(n), 2 + cats[0]] = 1
    X[np.arange(n), 5 + cats[1]] = 1
    for c in range(4):
        X[missing[:, c], starts[c]:stops[c]] = 0.0
    X[:, 7:] = missing
    targets = np.column_stack([num, cats[0], cats[1]]).astype(float)
    targets[missing] = 0.0
    weights = (~missing).astype(float)
    weights[~missing] *= rng.uniform(0.5, 2.0, size=(~missing).sum())
    head = Head(["squared_error", "squared_error", "softmax", "softmax"],
                widths)
    return (X.astype(dtype), targets.astype(dtype), weights.astype(dtype),
            missing, head, starts, stops, 7 + np.arange(4))


def _init(sizes, dtype, seed=0):
    rng = np.random.RandomState(seed)
    coefs = [rng.normal(scale=0.5, size=(a, b)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.normal(scale=0.1, size=b).astype(dtype)
                  for b in sizes[1:]]
    return coefs, intercepts


def _act(a, kind):
    return {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh,
            "relu": lambda a: np.maximum(a, 0), "identity": lambda a: a}[kind](a)


def _ref_corrupt(X, rows, seed, kind, level, starts, stops, indicators, pool,
                 missing):
    """Plain NumPy corruption by column groups (the kernel's draws)."""
    out = X[rows].copy()
    n_groups = len(starts)
    u = _uniforms(seed, len(rows), n_groups)
    u2 = _uniforms(seed, len(rows), n_groups, stream2=True)
    flags = np.zeros((len(rows), n_groups), dtype=np.uint8)
    for i, r in enumerate(rows):
        for c in range(n_groups):
            if missing is not None and missing[r, c]:
                flags[i, c] = 1
                continue
            if kind == "none" or u[i, c] >= level:
                continue
            flags[i, c] = 1
            cols = list(range(starts[c], stops[c]))
            if indicators[c] >= 0:
                cols.append(indicators[c])
            if kind == "masking":
                out[i, cols] = 0.0
                if indicators[c] >= 0:
                    out[i, indicators[c]] = 1.0
            else:
                k = int(u2[i, c] * len(pool))
                src = pool[k]
                if src == r and len(pool) > 1:
                    src = pool[(k + 1) % len(pool)]
                out[i, cols] = X[src, cols]
    return out, flags


def _ref_loss(coefs, intercepts, acts, head, inputs, T, TW, flags,
              uncorrupted_weight, target_groups):
    """Plain NumPy forward pass and weighted head loss."""
    H = inputs.astype(np.float64)
    for k, (W, b) in enumerate(zip(coefs, intercepts)):
        H = H @ W + b
        if k < len(coefs) - 1:
            H = _act(H, acts[k])
    total = 0.0
    for kind, a0, b0, t0 in zip(head.kinds, head.starts, head.stops,
                                head.targets):
        A = H[:, a0:b0]
        if kind == HK.HEAD_CODES["softmax"]:
            w = TW[:, t0] * np.where(flags[:, target_groups[t0]] == 1, 1.0,
                                     uncorrupted_weight)
            lse = A.max(1) + np.log(np.exp(A - A.max(1, keepdims=True)).sum(1))
            y = T[:, t0].astype(int)
            total += np.sum(w * (lse - A[np.arange(len(A)), y]))
        else:
            t = np.arange(t0, t0 + b0 - a0)
            w = TW[:, t] * np.where(flags[:, target_groups[t]] == 1, 1.0,
                                    uncorrupted_weight)
            x = T[:, t]
            if kind == HK.HEAD_CODES["squared_error"]:
                total += np.sum(w * 0.5 * (A - x) ** 2)
            else:
                total += np.sum(w * (np.logaddexp(0, A) - x * A))
    return total


def _engine(coefs, intercepts, acts, head, X, rows, T, TW, noise, seed,
            n_threads=1):
    codes = [K.ACTIVATION_CODES[a] for a in acts]
    with BlockRunner(n_threads) as runner:
        ws = Workspace(len(rows), coefs, head,
                       noise.n_groups if noise is not None else 0,
                       not sp.issparse(X) or (noise is not None and noise.code
                                              in _DENSE_NOISE), runner)
        loss = forward_backward(coefs, intercepts, codes, head, X, rows, T, TW,
                                noise, seed, ws)
    return loss, ws


# --------------------------------------------------------------------------
# Corruption kernels
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["masking", "swap", "none"])
def test_gather_corrupt_groups_matches_reference(kind):
    X, _, _, missing, _, starts, stops, ind = _mixed_problem(n=50)
    rows = np.arange(3, 45)
    pool = np.arange(50)
    out = np.empty((len(rows), X.shape[1]))
    flags = np.empty((len(rows), 4), dtype=np.uint8)
    # The whole batch in two blocks, as the engine runs it.
    for r in (slice(0, 20), slice(20, len(rows))):
        HK.gather_corrupt_groups(X, rows[r], out[r], flags[r], 7, r.start,
                                 HK.NOISE_CODES[kind], 0.4, starts, stops, ind,
                                 pool, missing, True)
    ref, ref_flags = _ref_corrupt(X, rows, 7, kind, 0.4, starts, stops, ind,
                                  pool, missing)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(flags, ref_flags)


def test_swap_noise_statistics():
    """Fraction ~ level; values from the same column of other rows; whole groups."""
    rng = np.random.RandomState(0)
    n, level = 400, 0.15
    cats = rng.randint(4, size=n)
    X = np.column_stack([rng.normal(size=(n, 3)), np.eye(4)[cats]])
    starts, stops = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 7])
    pool = np.arange(n)
    rows = np.arange(n)
    out = np.empty_like(X)
    flags = np.empty((n, 4), dtype=np.uint8)
    HK.gather_corrupt_groups(X, rows, out, flags, 123, 0, HK.NOISE_CODES["swap"],
                             level, starts, stops, np.full(4, -1), pool,
                             np.zeros((1, 1), dtype=bool), False)
    frac = flags.mean()
    assert abs(frac - level) < 3 * np.sqrt(level * (1 - level) / flags.size)
    changed = (out != X)
    for c in range(3):
        f = flags[:, c] == 1
        # Every swapped-in value is a value of the same column in another row.
        for i in np.flatnonzero(f):
            src = np.flatnonzero(X[:, c] == out[i, c])
            assert src.size and i not in src
        assert not changed[~f, c].any()
    # The categorical block moves as a whole: always a valid one-hot row.
    np.testing.assert_array_equal(out[:, 3:].sum(1), 1.0)
    assert not changed[flags[:, 3] == 0, 3:].any()
    # Sources are spread over the training rows, not the batch only.
    pool_small = np.arange(200, 400)
    HK.gather_corrupt_groups(X, rows[:50], out[:50], flags[:50], 5, 0,
                             HK.NOISE_CODES["swap"], 1.0, starts, stops,
                             np.full(4, -1), pool_small,
                             np.zeros((1, 1), dtype=bool), False)
    src = [np.flatnonzero(X[:, 0] == v)[0] for v in out[:50, 0]]
    assert min(src) >= 200 and len(set(src)) > 35


def test_mask_csr_groups_matches_dense_masking():
    rng = np.random.RandomState(1)
    D = rng.uniform(size=(30, 9)) * (rng.uniform(size=(30, 9)) < 0.4)
    S = sp.csr_matrix(D)
    out = np.empty_like(S.data)
    flags = np.empty((30, 9), dtype=np.uint8)
    HK.mask_csr_groups(S.data, S.indices, S.indptr[10:21], out, flags[10:20],
                       3, 10, 0.3)
    HK.mask_csr_groups(S.data, S.indices, S.indptr[:11], out, flags[:10], 3, 0,
                       0.3)
    HK.mask_csr_groups(S.data, S.indices, S.indptr[20:], out, flags[20:], 3, 20,
                       0.3)
    dense = np.empty_like(D)
    dense_flags = np.empty_like(flags)
    HK.gather_corrupt_groups(D, np.arange(30), dense, dense_flags, 3, 0,
                             HK.NOISE_CODES["masking"], 0.3, np.arange(9),
                             np.arange(1, 10), np.full(9, -1), np.arange(0),
                             np.zeros((1, 1), dtype=bool), False)
    masked = sp.csr_matrix((out, S.indices, S.indptr), shape=S.shape)
    np.testing.assert_array_equal(masked.toarray(), dense)
    np.testing.assert_array_equal(flags, dense_flags)


# --------------------------------------------------------------------------
# Head kernels
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_head_delta_matches_reference(dtype):
    rng = np.random.RandomState(2)
    n = 70
    head = Head(["squared_error", "sigmoid_cross_entropy", "softmax",
                 "sigmoid_cross_entropy", "softmax"], [2, 3, 4, 1, 3])
    T = np.column_stack([rng.normal(size=(n, 2)), rng.uniform(size=(n, 3)),
                         rng.randint(4, size=n), rng.uniform(size=n),
                         rng.randint(3, size=n)]).astype(dtype)
    TW = (rng.uniform(size=T.shape) * (rng.uniform(size=T.shape) > 0.2)
          ).astype(dtype)
    A = rng.normal(scale=3, size=(n, head.n_outputs)).astype(dtype)
    bias = rng.normal(size=head.n_outputs).astype(dtype)
    flags = (rng.uniform(size=(n, head.n_targets)) < 0.5).astype(np.uint8)
    rows = np.arange(n)
    grad_bias = np.empty(head.n_outputs, dtype=dtype)
    delta = A.copy()
    loss = HK.head_delta(delta, bias, T, rows, TW, True, flags, True, 0.3,
                         head.kinds, head.starts, head.stops, head.targets,
                         head.target_groups, grad_bias)
    H = A.astype(np.float64) + bias
    ref = _ref_loss([np.eye(head.n_outputs)], [np.zeros(head.n_outputs)], [],
                    head, H, T, TW, flags, 0.3, head.target_groups)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loss, ref, rtol=rtol)
    # Gradient: finite differences of the reference in the logits.
    eps = 1e-6
    for i, u in [(0, 0), (3, 2), (5, 6), (7, 9), (11, 12), (13, 11)]:
        Hp, Hm = H.copy(), H.copy()
        Hp[i, u] += eps
        Hm[i, u] -= eps
        fd = (_ref_loss([np.eye(head.n_outputs)], [np.zeros(head.n_outputs)],
                        [], head, Hp, T, TW, flags, 0.3, head.target_groups)
              - _ref_loss([np.eye(head.n_outputs)], [np.zeros(head.n_outputs)],
                          [], head, Hm, T, TW, flags, 0.3,
                          head.target_groups)) / (2 * eps)
        np.testing.assert_allclose(delta[i, u], fd, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(grad_bias, delta.astype(np.float64).sum(0),
                               rtol=rtol, atol=1e-5)
    # A target with weight 0 gets no gradient.
    assert np.all(delta[TW[:, 5] == 0, 5:9] == 0)


def test_head_output_and_row_losses():
    rng = np.random.RandomState(3)
    head = Head(["squared_error", "softmax", "sigmoid_cross_entropy"], [2, 3, 2])
    A = rng.normal(size=(10, 7))
    bias = rng.normal(size=7)
    out = A.copy()
    HK.head_output(out, bias, head.kinds, head.starts, head.stops, False)
    Z = A + bias
    np.testing.assert_allclose(out[:, :2], Z[:, :2])
    p = np.exp(Z[:, 2:5]) / np.exp(Z[:, 2:5]).sum(1, keepdims=True)
    np.testing.assert_allclose(out[:, 2:5], p, rtol=1e-12)
    np.testing.assert_allclose(out[:, 5:], 1 / (1 + np.exp(-Z[:, 5:])))
    log_out = A.copy()
    HK.head_output(log_out, bias, head.kinds, head.starts, head.stops, True)
    np.testing.assert_allclose(log_out[:, 2:5], np.log(p), rtol=1e-12)
    T = np.column_stack([rng.normal(size=(10, 2)), rng.randint(3, size=10),
                         rng.uniform(size=(10, 2))])
    TW = rng.uniform(size=T.shape)
    losses = np.empty(10)
    HK.head_row_losses(A, bias, T, TW, True, head.kinds, head.starts,
                       head.stops, head.targets, losses)
    for i in range(10):
        ref = _ref_loss([np.eye(7)], [bias], [], head, A[i:i + 1], T[i:i + 1],
                        TW[i:i + 1], np.ones((1, 5), np.uint8), 1.0,
                        head.target_groups)
        np.testing.assert_allclose(losses[i], ref, rtol=1e-12)


def test_head_merges_adjacent_elementwise_groups():
    head = Head(["sigmoid_cross_entropy"] * 5 + ["softmax", "softmax"],
                [1] * 5 + [2, 3])
    np.testing.assert_array_equal(head.kinds, [1, 2, 2])
    np.testing.assert_array_equal(head.starts, [0, 5, 7])
    np.testing.assert_array_equal(head.targets, [0, 5, 6])
    assert head.n_targets == 7 and head.n_outputs == 10


# --------------------------------------------------------------------------
# The deep pass: loss against NumPy, gradients against finite differences
# --------------------------------------------------------------------------
def _mixed_setup(depth, activation, noise_kind="swap"):
    X, T, TW, missing, head, starts, stops, ind = _mixed_problem()
    sizes = [X.shape[1]] + {1: [5], 2: [6, 5], 3: [6, 4, 6]}[depth] + [
        head.n_outputs]
    coefs, intercepts = _init(sizes, np.float64)
    acts = [activation] * (len(coefs) - 1)
    noise = Corruption(noise_kind, 0.3, X.shape[1], starts, stops, ind,
                       uncorrupted_weight=0.4, pool=np.arange(5, 40),
                       input_missing=missing)
    return X, T, TW, missing, head, coefs, intercepts, acts, noise


def _assert_finite_differences(params, grads, f, rtol, atol, n=4, eps=1e-6):
    """Central differences of ``f()`` at ``n`` random entries of each param."""
    rng = np.random.RandomState(0)
    for P, G in zip(params, grads):
        for idx in [tuple(rng.randint(s) for s in P.shape) for _ in range(n)]:
            old = P[idx]
            P[idx] = old + eps
            up = f()
            P[idx] = old - eps
            down = f()
            P[idx] = old
            np.testing.assert_allclose(G[idx], (up - down) / (2 * eps),
                                       rtol=rtol, atol=atol)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_finite_differences(depth, activation):
    X, T, TW, missing, head, coefs, intercepts, acts, noise = _mixed_setup(
        depth, activation)
    rows = np.arange(2, 38)[::-1].copy()
    seed = 11
    loss, ws = _engine(coefs, intercepts, acts, head, X, rows, T, TW, noise,
                       seed)
    inputs, flags = _ref_corrupt(X, rows, seed, "swap", 0.3, noise.starts,
                                 noise.stops, noise.indicators, noise.pool,
                                 missing)
    ref = _ref_loss(coefs, intercepts, acts, head, inputs, T[rows], TW[rows],
                    flags, 0.4, head.target_groups)
    np.testing.assert_allclose(loss, ref, rtol=1e-10)

    def f():
        return _ref_loss(coefs, intercepts, acts, head, inputs, T[rows],
                         TW[rows], flags, 0.4, head.target_groups)

    _assert_finite_differences(coefs + intercepts,
                               ws.grad_coefs + ws.grad_intercepts, f,
                               rtol=1e-4, atol=1e-6)


def test_sigmoid_group_with_masking_on_csr_matches_dense():
    """The stack's fine-tuning: one sigmoid group, masking, sparse == dense."""
    rng = np.random.RandomState(4)
    D = rng.uniform(size=(50, 12)) * (rng.uniform(size=(50, 12)) < 0.5)
    head = Head(["sigmoid_cross_entropy"], [12])
    coefs, intercepts = _init([12, 5, 3, 5, 12], np.float64)
    acts = ["sigmoid", "tanh", "relu"]
    rows = rng.permutation(50)[:40]
    noise = Corruption("masking", 0.3, 12, uncorrupted_weight=0.5)
    dense_loss, dense_ws = _engine(coefs, intercepts, acts, head, D, rows, D,
                                   None, noise, 9)
    S = sp.csr_matrix(D)
    sparse_loss, sparse_ws = _engine(coefs, intercepts, acts, head, S, rows, S,
                                     None, noise, 9)
    np.testing.assert_allclose(sparse_loss, dense_loss, rtol=1e-12)
    for a, b in zip(sparse_ws.grad_coefs + sparse_ws.grad_intercepts,
                    dense_ws.grad_coefs + dense_ws.grad_intercepts):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    inputs, flags = _ref_corrupt(D, rows, 9, "masking", 0.3, noise.starts,
                                 noise.stops, noise.indicators, None, None)
    ref = _ref_loss(coefs, intercepts, acts, head, inputs, D[rows],
                    np.ones_like(D[rows]), flags, 0.5, head.target_groups)
    np.testing.assert_allclose(dense_loss, ref, rtol=1e-10)


@pytest.mark.parametrize("kind", ["gaussian", "salt_and_pepper"])
def test_noise_that_fills_zeros_on_csr_matches_dense(kind):
    """CSR input, gaussian or salt-and-pepper noise: dense minibatches."""
    rng = np.random.RandomState(9)
    D = rng.uniform(size=(50, 12)) * (rng.uniform(size=(50, 12)) < 0.5)
    head = Head(["squared_error"], [12])
    coefs, intercepts = _init([12, 5, 12], np.float64)
    rows = rng.permutation(50)[:40]
    noise = Corruption(kind, 0.3, 12, low=-1.0, high=2.0,
                       uncorrupted_weight=0.5 if kind != "gaussian" else 1.0)
    dense = _engine(coefs, intercepts, ["tanh"], head, D, rows, D, None,
                    noise, 4)
    sparse = _engine(coefs, intercepts, ["tanh"], head, sp.csr_matrix(D), rows,
                     sp.csr_matrix(D), None, noise, 4)
    assert sparse[0] == dense[0]
    for a, b in zip(sparse[1].grad_coefs + sparse[1].grad_intercepts,
                    dense[1].grad_coefs + dense[1].grad_intercepts):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # The noise did act, and sparse input takes no missing entries.
    clean = _engine(coefs, intercepts, ["tanh"], head, D, rows, D, None,
                    None, 4)
    assert clean[0] != dense[0]
    missing = Corruption(kind, 0.3, 12, input_missing=np.zeros((50, 12),
                                                               dtype=bool))
    with pytest.raises(ValueError, match="no missing entries"):
        _engine(coefs, intercepts, ["tanh"], head, sp.csr_matrix(D), rows, D,
                None, missing, 4)


def test_softmax_classifier_head_gradients():
    """The classifier's fine-tuning: one softmax group, no noise, dense or CSR."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(80, 7)) * (rng.uniform(size=(80, 7)) < 0.6)
    y = rng.randint(4, size=80)
    coefs, intercepts = _init([7, 6, 5, 4], np.float64)
    acts = ["tanh", "relu"]
    rows = rng.permutation(80)[:70]
    head = Head(["softmax"], [4])
    T = y[:, None].astype(float)
    loss, ws = _engine(coefs, intercepts, acts, head, X, rows, T, None,
                       Corruption("none", 0.0, 7), 0)
    ones = np.ones((70, 1))

    def f():
        return _ref_loss(coefs, intercepts, acts, head, X[rows], T[rows],
                         ones, np.ones((70, 1), np.uint8), 1.0,
                         head.target_groups)

    np.testing.assert_allclose(loss, f(), rtol=1e-12)
    _assert_finite_differences(coefs + intercepts,
                               ws.grad_coefs + ws.grad_intercepts, f,
                               rtol=1e-5, atol=1e-8)
    # noise=None is no noise; CSR input gives the same loss and gradients.
    sparse_loss, sparse_ws = _engine(coefs, intercepts, acts, head,
                                     sp.csr_matrix(X), rows, T, None, None, 0)
    np.testing.assert_allclose(sparse_loss, loss, rtol=1e-12)
    for a, b in zip(sparse_ws.grad_coefs + sparse_ws.grad_intercepts,
                    ws.grad_coefs + ws.grad_intercepts):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# Determinism, float32, inference
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_thread_counts(dtype, monkeypatch):
    # Every block through the pool, however small (by default small blocks
    # run in the calling thread, which must not change the result either),
    # and the step in blocks of rows: a step this small would otherwise run
    # as one block in the calling thread (SERIAL_STEP_WORK).
    default_min_flop = _network._MIN_PARALLEL_FLOP
    monkeypatch.setattr(_network, "SERIAL_STEP_WORK", 0.0)
    monkeypatch.setattr(_network, "_MIN_PARALLEL_FLOP", 0.0)
    rng = np.random.RandomState(6)
    n = 300
    X, T, TW, missing, head, starts, stops, ind = _mixed_problem(n=n,
                                                                 dtype=dtype)
    coefs, intercepts = _init([X.shape[1], 300, 8, 300, head.n_outputs], dtype)
    acts = ["relu", "tanh", "sigmoid"]
    noise = Corruption("swap", 0.2, X.shape[1], starts, stops, ind,
                       uncorrupted_weight=0.5, input_missing=missing)
    rows = rng.permutation(n)[:200]
    results = []
    for n_threads in (1, 2, 2):
        if len(results) == 2:  # the default: small blocks in this thread
            monkeypatch.setattr(_network, "_MIN_PARALLEL_FLOP",
                                default_min_flop)
        loss, ws = _engine(coefs, intercepts, acts, head, X, rows, T, TW,
                           noise, 3, n_threads)
        assert len(ws.row_blocks(200)) == 2
        results.append((loss, [g.copy() for g in ws.grad_coefs
                               + ws.grad_intercepts]))
    for other in results[1:]:
        assert results[0][0] == other[0]
        for a, b in zip(results[0][1], other[1]):
            np.testing.assert_array_equal(a, b)
    assert all(g.dtype == dtype for g in results[0][1])


def test_float32_close_to_float64():
    X, T, TW, missing, head, coefs, intercepts, acts, noise = _mixed_setup(
        2, "tanh")
    rows = np.arange(40)
    loss64, ws64 = _engine(coefs, intercepts, acts, head, X, rows, T, TW,
                           noise, 1)
    c32 = [c.astype(np.float32) for c in coefs]
    i32 = [b.astype(np.float32) for b in intercepts]
    loss32, ws32 = _engine(c32, i32, acts, head, X.astype(np.float32), rows,
                           T.astype(np.float32), TW.astype(np.float32), noise,
                           1)
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    for a, b in zip(ws32.grad_coefs, ws64.grad_coefs):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_inference_helpers_match_reference():
    X, T, TW, missing, head, coefs, intercepts, acts, noise = _mixed_setup(
        3, "sigmoid")
    codes = [K.ACTIVATION_CODES[a] for a in acts]
    H1 = _act(X @ coefs[0] + intercepts[0], "sigmoid")
    H2 = _act(H1 @ coefs[1] + intercepts[1], "sigmoid")
    feats = hidden_layers(coefs, intercepts, codes, X, [0, 1])
    np.testing.assert_allclose(feats, np.hstack([H1, H2]), rtol=1e-12)
    H3 = _act(H2 @ coefs[2] + intercepts[2], "sigmoid")
    Z = H3 @ coefs[3] + intercepts[3]
    out = predict_head(coefs, intercepts, codes, head, X)
    np.testing.assert_allclose(out[:, :2], Z[:, :2], rtol=1e-12)
    p = np.exp(Z[:, 2:5])
    np.testing.assert_allclose(out[:, 2:5], p / p.sum(1, keepdims=True),
                               rtol=1e-12)
    # Decoding from the code (the input of layer 2) gives the same output.
    np.testing.assert_allclose(
        predict_head(coefs, intercepts, codes, head, H2, start=2), out,
        rtol=1e-12)
    with pytest.raises(ValueError, match="Expected 4 columns"):
        predict_head(coefs, intercepts, codes, head, H1, start=2)
    losses = row_losses(coefs, intercepts, codes, head, X, T, TW)
    ones = np.ones((1, 4), np.uint8)
    ref = [_ref_loss(coefs, intercepts, acts, head, X[i:i + 1], T[i:i + 1],
                     TW[i:i + 1], ones, 1.0, head.target_groups)
           for i in range(X.shape[0])]
    np.testing.assert_allclose(losses, ref, rtol=1e-10)


def test_swap_without_pool_draws_from_all_rows_and_checks_bounds():
    X, T, TW, missing, head, coefs, intercepts, acts, noise = _mixed_setup(
        2, "relu")
    whole = Corruption("swap", 0.3, X.shape[1], noise.starts, noise.stops,
                       noise.indicators, input_missing=missing)
    explicit = Corruption("swap", 0.3, X.shape[1], noise.starts, noise.stops,
                          noise.indicators, pool=np.arange(X.shape[0]),
                          input_missing=missing)
    rows = np.arange(30)
    a, ws_a = _engine(coefs, intercepts, acts, head, X, rows, T, TW, whole, 4)
    b, ws_b = _engine(coefs, intercepts, acts, head, X, rows, T, TW, explicit,
                      4)
    assert a == b
    np.testing.assert_array_equal(ws_a.grad_coefs[0], ws_b.grad_coefs[0])
    too_far = Corruption("swap", 0.3, X.shape[1], noise.starts, noise.stops,
                         noise.indicators, pool=np.arange(X.shape[0] + 1))
    with pytest.raises(ValueError, match="beyond X"):
        _engine(coefs, intercepts, acts, head, X, rows, T, TW, too_far, 4)
    with pytest.raises(ValueError, match="targets must be of dtype float64"):
        _engine(coefs, intercepts, acts, head, X, rows, T.astype(np.float32),
                TW, whole, 4)


def test_engine_leaves_inputs_unchanged_and_reports_gradient_blocks():
    X, T, TW, missing, head, coefs, intercepts, acts, noise = _mixed_setup(
        3, "tanh")
    copies = [a.copy() for a in (X, T, TW, missing)]
    codes = [K.ACTIVATION_CODES[a] for a in acts]
    seen = []
    ws = Workspace(40, coefs, head, noise.n_groups, True)
    forward_backward(coefs, intercepts, codes, head, X, np.arange(40), T, TW,
                     noise, 2, ws, after_gradient=lambda k, u: seen.append(
                         (k, u.start, u.stop)))
    for a, b in zip((X, T, TW, missing), copies):
        np.testing.assert_array_equal(a, b)
    assert sorted(seen) == [(k, 0, W.shape[0]) for k, W in enumerate(coefs)]


def test_engine_learns_a_real_table_through_columns():
    """_columns + _network on iris: a masked column is predicted from the rest."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    from skdae._columns import column_groups, encode, fit_columns
    from skdae._optimizers import AdamOptimizer

    iris = load_iris(as_frame=True)
    X = iris.data.copy()
    X["species"] = pd.Categorical(iris.target_names[iris.target])
    state = fit_columns(X, add_indicator=True)
    inputs, targets, missing = encode(X, state)
    n_cols = len(state["dtypes"])
    kinds, widths, starts, stops, indicators = column_groups(state)
    assert kinds == ["squared_error"] * 4 + ["softmax"]
    head = Head(kinds, widths)
    noise = Corruption("masking", 0.25, inputs.shape[1], starts, stops,
                       indicators, input_missing=missing)
    coefs, intercepts = _init([inputs.shape[1], 32, 32, head.n_outputs],
                              np.float64)
    for W in coefs:
        W *= 0.5
    codes = [K.ACTIVATION_CODES["relu"]] * 2
    params = coefs + intercepts
    opt = AdamOptimizer(params, 0.01)
    ws = Workspace(30, coefs, head, n_cols, True)
    rng = np.random.RandomState(0)
    for epoch in range(150):
        perm = rng.permutation(150)
        for b in range(5):
            rows = perm[30 * b:30 * (b + 1)]
            forward_backward(coefs, intercepts, codes, head, inputs, rows,
                             targets, (~missing).astype(float), noise,
                             int(rng.randint(2**31)), ws)
            opt.update_params(params, [(g,) for g in ws.grad_coefs
                                       + ws.grad_intercepts], 30,
                              [True] * 3 + [False] * 3, 1e-4)
    # Hide the species (all-zero one-hot, indicator on) and predict it.
    j = n_cols - 1
    hidden = inputs.copy()
    hidden[:, state["input_start"][j]:state["input_stop"][j]] = 0.0
    hidden[:, state["indicator"][j]] = 1.0
    out = predict_head(coefs, intercepts, codes, head, hidden)
    pred = np.argmax(out[:, state["output_start"][j]:], axis=1)
    assert np.mean(pred == targets[:, j]) > 0.85
    # Hide petal length: better than its mean (R^2 > 0.5).
    j = 2
    hidden = inputs.copy()
    hidden[:, j] = 0.0
    hidden[:, state["indicator"][j]] = 1.0
    out = predict_head(coefs, intercepts, codes, head, hidden)
    r2 = 1 - np.mean((out[:, j] - targets[:, j]) ** 2) / np.var(targets[:, j])
    assert r2 > 0.5


def test_csr_input_bitwise_identical_across_thread_counts():
    rng = np.random.RandomState(7)
    D = (rng.uniform(size=(300, 40)) * (rng.uniform(size=(300, 40)) < 0.2)
         ).astype(np.float32)
    S = sp.csr_matrix(D)
    head = Head(["sigmoid_cross_entropy"], [40])
    coefs, intercepts = _init([40, 16, 40], np.float32)
    noise = Corruption("masking", 0.3, 40, uncorrupted_weight=0.5)
    rows = rng.permutation(300)[:256]
    runs = [_engine(coefs, intercepts, ["sigmoid"], head, S, rows, S, None,
                    noise, 5, n_threads) for n_threads in (1, 2)]
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1].grad_coefs + runs[0][1].grad_intercepts,
                    runs[1][1].grad_coefs + runs[1][1].grad_intercepts):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["masking", "gaussian", "salt_and_pepper"])
def test_one_group_per_feature_draws_what_the_dae_kernel_draws(kind):
    """Per-feature groups reproduce _kernels.gather_corrupt exactly."""
    rng = np.random.RandomState(8)
    X = rng.uniform(size=(40, 9))
    rows = rng.permutation(40)[:25]
    out = np.empty((25, 9))
    flags = np.empty((25, 9), dtype=np.uint8)
    ref = np.empty((25, 9))
    for r in (slice(0, 10), slice(10, 25)):
        HK.gather_corrupt_groups(X, rows[r], out[r], flags[r], 21, r.start,
                                 HK.NOISE_CODES[kind], 0.3, np.arange(9),
                                 np.arange(1, 10), np.full(9, -1),
                                 np.arange(0), np.zeros((1, 1), dtype=bool),
                                 False, -1.0, 2.0)
        K.gather_corrupt(X, rows[r], ref[r], 21, r.start,
                         K.CORRUPTION_CODES[kind], 0.3, -1.0, 2.0)
    np.testing.assert_array_equal(out, ref)
    if kind != "gaussian":
        np.testing.assert_array_equal(flags, out != X[rows])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_weight_updates_match_the_optimizers_python_updates(solver,
                                                                     dtype):
    """RowUpdates (product + update compiled) == after_gradient in Python.

    600 inputs: layer 0's gradient runs in three blocks of input units, two
    of them non-contiguous column ranges of the minibatch.
    """
    from skdae._optimizers import AdamOptimizer, RowUpdates, SGDOptimizer

    rng = np.random.RandomState(3)
    X = rng.uniform(size=(200, 600)).astype(dtype)
    head = Head(["sigmoid_cross_entropy"], [600])
    noise = Corruption("masking", 0.3, 600, uncorrupted_weight=0.5)
    minibatches = [rng.permutation(200)[:64] for _ in range(3)]
    start = _init([600, 24, 600], dtype, seed=1)[0]
    trained = []
    for compiled in (True, False):
        coefs, intercepts = _init([600, 24, 600], dtype, seed=1)
        params = coefs + intercepts
        optimizer = (AdamOptimizer(params, 1e-2) if solver == "adam"
                     else SGDOptimizer(params, 0.1, 0.9, True))
        ws = Workspace(64, coefs, head, noise.n_groups, True)
        assert len(ws.weight_tasks) == 4  # 3 blocks of layer 0 + layer 1
        updates = RowUpdates(optimizer, coefs, ws.grad_coefs, range(2), 1e-3)
        # A plain callable has no kernel_args: the updates run in Python.
        after = updates if compiled else (lambda k, units: updates(k, units))
        for step, rows in enumerate(minibatches):
            updates.start(64)
            forward_backward(coefs, intercepts, [K.ACTIVATION_CODES["sigmoid"]],
                             head, X, rows, X, None, noise, step, ws, after)
        trained.append(coefs)
    for a, b, initial in zip(*trained, start):
        assert not np.array_equal(a, initial)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("products", ["checked", "by blocks"])
@pytest.mark.parametrize("rows_per_block", [None, 16, 24])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_compiled_step_is_bitwise_the_python_driven_step(
        monkeypatch, dtype, solver, rows_per_block, products):
    """``_block_kernels.whole_step`` (one call) == the Python driver.

    A mixed table with missing inputs, weighted targets, swap noise with
    emphasis and two layers of 300 inputs (two blocks of weight rows), in one
    and in several blocks of rows (16: three blocks of a 40-row minibatch;
    24: two, unequal); the driver runs each block, sums the bias parts,
    updates the weight rows in compiled calls and the biases in Python.
    The compiled step makes its products over the whole minibatch where
    the check allows ("checked"), or by blocks of rows.
    """
    if products == "by blocks":
        monkeypatch.setattr(Workspace, "rows_match_whole", lambda self, n: False)
    from skdae._optimizers import AdamOptimizer, RowUpdates, SGDOptimizer

    X, T, TW, missing, head, starts, stops, ind = _mixed_problem(
        n=120, dtype=dtype, seed=4)
    noise = Corruption("swap", 0.3, X.shape[1], starts, stops, ind,
                       uncorrupted_weight=0.4, input_missing=missing)
    sizes = [X.shape[1], 300, 12, 300, head.n_outputs]
    acts = [K.ACTIVATION_CODES[a] for a in ("relu", "tanh", "sigmoid")]
    rng = np.random.RandomState(5)
    minibatches = [rng.permutation(120)[:40] for _ in range(4)]
    trained = []
    for whole in (True, False):
        coefs, intercepts = _init(sizes, dtype, seed=2)
        params = [p for pair in zip(coefs, intercepts) for p in pair]
        optimizer = (AdamOptimizer(params, 1e-2) if solver == "adam"
                     else SGDOptimizer(params, 0.05, 0.9, True))
        ws = Workspace(40, coefs, head, noise.n_groups, True,
                       rows_per_block=rows_per_block)
        # Layers 1 and 3 have 300 inputs: two blocks of weight rows each.
        assert len(ws.weight_tasks) == 6
        updates = RowUpdates(optimizer, coefs, ws.grad_coefs,
                             range(0, 8, 2), 1e-3, range(1, 8, 2))
        calls = []
        real = BK.whole_step
        BK.whole_step = lambda *a: calls.append(1) or real(*a)
        losses = []
        try:
            for step, rows in enumerate(minibatches):
                updates.start(40)
                losses.append(forward_backward(
                    coefs, intercepts, acts, head, X, rows, T, TW, noise,
                    step, ws, updates, update_biases=whole))
                if not whole:
                    updates.update_biases(intercepts, ws.grad_intercepts)
        finally:
            BK.whole_step = real
        assert len(calls) == (len(minibatches) if whole else 0)
        trained.append((losses, params))
    (losses_whole, whole_params), (losses_driver, driver_params) = trained
    assert losses_whole == losses_driver
    start = [p for pair in zip(*_init(sizes, dtype, seed=2)) for p in pair]
    for a, b, initial in zip(whole_params, driver_params, start, strict=True):
        assert not np.array_equal(a, initial)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,rows_per_block", [(40, 16), (40, 24), (256, 128)])
def test_the_check_of_products_over_all_rows_agrees_with_each_product(
        dtype, n, rows_per_block):
    """``rows_match_whole`` is True exactly when each layer's forward and
    backward product, made through the engine's ``np.dot`` from a compiled
    function, has the bits of its blocks of rows."""
    import numba

    @numba.njit
    def dot(A, B, out):
        np.dot(A, B, out)

    rng = np.random.default_rng(3)
    sizes = [11, 300, 12, 300, 7]
    coefs = [rng.standard_normal(s).astype(dtype)
             for s in zip(sizes[:-1], sizes[1:])]
    head = Head(["squared_error"], [7])
    ws = Workspace(n, coefs, head, 0, True, rows_per_block=rows_per_block)
    edges = ws.row_edges(n)
    assert edges.shape[0] > 2
    agree = []
    with BlockRunner(1):  # single-threaded BLAS
        for k, W in enumerate(coefs):
            products = [(rng.standard_normal((n, W.shape[0])).astype(dtype),
                         W)]
            if k:
                products.append(
                    (rng.standard_normal((n, W.shape[1])).astype(dtype), W.T))
            for A, B in products:
                whole = np.empty((n, B.shape[1]), dtype=dtype)
                dot(A, B, whole)
                split = np.full_like(whole, np.nan)
                for s, e in zip(edges[:-1], edges[1:]):
                    dot(A[s:e], B, split[s:e])
                agree.append(np.array_equal(whole, split))
    assert ws.rows_match_whole(n) == all(agree)
    # One block of rows: nothing to check, the blocks are the whole.
    single = Workspace(n, coefs, head, 0, True, rows_per_block=n)
    assert not single.rows_match_whole(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_over_all_rows_keep_each_block_s_noise_head_and_biases(
        monkeypatch, dtype):
    """The step with its products over the whole minibatch against the
    same step by blocks of rows, on integer data and weights, where every
    product is exact in any order: whatever BLAS does, the two must agree,
    so the blocks' noise, head loss and bias sums are shown to be kept."""
    from skdae._optimizers import RowUpdates, SGDOptimizer

    rng = np.random.RandomState(6)
    n, n_columns = 40, 5
    X = rng.randint(-3, 4, size=(120, n_columns)).astype(dtype)
    head = Head(["squared_error"] * n_columns, [1] * n_columns)
    noise = Corruption("swap", 0.4, n_columns, uncorrupted_weight=0.5)
    sizes = [n_columns, 300, 8, 300, n_columns]
    acts = [K.ACTIVATION_CODES[a] for a in ("relu", "identity", "relu")]
    rows = rng.permutation(120)[:n]
    results = []
    for whole in (True, False):
        monkeypatch.setattr(Workspace, "rows_match_whole",
                            lambda self, m, whole=whole: whole)
        # Weights in {-1, 0, 1}, mostly 0: every value of the step stays an
        # integer below 2**24, exact in float32.
        coefs = [(np.random.RandomState(k).randint(-1, 2, size=s) *
                  (np.random.RandomState(k + 9).uniform(size=s) < 0.1)
                  ).astype(dtype)
                 for k, s in enumerate(zip(sizes[:-1], sizes[1:]))]
        intercepts = [np.zeros(s, dtype=dtype) for s in sizes[1:]]
        params = [p for pair in zip(coefs, intercepts) for p in pair]
        ws = Workspace(n, coefs, head, noise.n_groups, True, rows_per_block=16)
        updates = RowUpdates(SGDOptimizer(params, 2.0**-10, 0.0, False),
                             coefs, ws.grad_coefs, range(0, 8, 2), 0.0,
                             range(1, 8, 2))
        updates.start(n)
        loss = forward_backward(coefs, intercepts, acts, head, X, rows, X,
                                None, noise, 3, ws, updates,
                                update_biases=True)
        results.append((loss, [g.copy() for g in ws.grad_coefs],
                        [g.copy() for g in ws.grad_intercepts], params))
    (loss_a, gc_a, gi_a, p_a), (loss_b, gc_b, gi_b, p_b) = results
    assert loss_a == loss_b and loss_a > 0
    for a, b in zip(gc_a + gi_a + p_a, gc_b + gi_b + p_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(g != 0) for g in gi_a)
    for g in gc_a + gi_a:  # halves (emphasis 0.5 times integers): exact
        assert np.abs(g).max() < 2**22 and np.array_equal(2 * g, np.round(2 * g))
