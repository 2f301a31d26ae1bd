"""The compiled dense minibatch step of ``DenoisingAutoencoder``.

Its weight updates against the optimizers' Python updates of the same
gradients, alone and with a team of threads (``_minibatch.StepTeam``), and
the team's threads, which must end with the fit.
"""

import copy
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skdae import DenoisingAutoencoder, _minibatch
from skdae import _kernels as K
from skdae._blas import gemm
from skdae._handoff import publish
from skdae._minibatch import Noise, Workspace
from skdae._optimizers import make_optimizer
from skdae._parallel import (
    COLUMN_ALIGNMENT,
    UNITS_PER_BLOCK,
    BlockRunner,
    available_threads,
    blocks,
)
from skdae._step_kernels import block_bounds, products_match_blocks

# 300 hidden units: two blocks of units per phase; 600 features: two blocks
# of features.
N_FEATURES, N_COMPONENTS, BATCH = 600, 300, 64


def _model(solver, tied, dtype):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, N_FEATURES)).astype(dtype)
    X[X < 0.3] = 0.0
    dae = DenoisingAutoencoder(
        N_COMPONENTS, solver=solver, tied_weights=tied, alpha=1e-3,
        uncorrupted_weight=0.5, batch_size=BATCH, max_iter=1, random_state=0)
    dae.partial_fit(X)
    params, l2_flags = dae._params()
    dae._optimizer = make_optimizer(dae, params)
    noise = Noise(K.CORRUPTION_CODES["masking"], 0.3, 0.5,
                  *dae._data_low_high)
    return dae, X, noise


def _workspace(dae, X, runner):
    return Workspace(BATCH, N_FEATURES, N_COMPONENTS, X.dtype,
                     K.ACTIVATION_CODES[dae.activation],
                     K.LOSS_CODES[dae.loss_], runner)


def _python_step(dae, X, rows, seed, noise, ws):
    """Gradients from the step without updates, then Python updates."""
    params, l2_flags = dae._params()
    loss = dae._forward_backward(X, rows, seed, noise, ws)
    if dae.decoder_components_ is dae.components_:
        grads = [ws.grad_encoder, ws.grad_hidden_bias, ws.grad_visible_bias]
    else:
        grads = [ws.grad_encoder, ws.grad_decoder, ws.grad_hidden_bias,
                 ws.grad_visible_bias]
    dae._optimizer.start_step()
    for k, (param, grad) in enumerate(zip(params, grads)):
        dae._optimizer.update(k, param, (grad,), rows.shape[0], l2_flags[k],
                              dae.alpha)
    return loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_compiled_updates_match_the_optimizers_python_updates(
        solver, tied, dtype, n_threads):
    dae, X, noise = _model(solver, tied, dtype)
    reference = copy.deepcopy(dae)
    if tied:
        reference.decoder_components_ = reference.components_
    start = dae.components_.copy()
    rng = np.random.RandomState(1)
    # The last minibatch is smaller: the team's steps change size.
    minibatches = [rng.permutation(200)[:n] for n in (BATCH, BATCH, 40)]
    with BlockRunner(n_threads) as runner:
        ws = _workspace(dae, X, runner)
        params, l2_flags = dae._params()
        losses = [dae._train_batch(X, rows, 7 + s, noise, ws, params,
                                   l2_flags)
                  for s, rows in enumerate(minibatches)]
    with BlockRunner(1) as runner:  # single-threaded BLAS, as in a fit
        ws = _workspace(reference, X, runner)
        expected = [_python_step(reference, X, rows, 7 + s, noise, ws)
                    for s, rows in enumerate(minibatches)]
    assert losses == expected
    assert not np.array_equal(dae.components_, start)
    for name in ("components_", "decoder_components_", "intercept_hidden_",
                 "intercept_visible_"):
        np.testing.assert_array_equal(getattr(dae, name),
                                      getattr(reference, name), err_msg=name)


@pytest.mark.parametrize("align", [1, 16])
@pytest.mark.parametrize("n,per_block", [(0, 64), (1, 64), (64, 64), (65, 64),
                                         (128, 167), (500, 256), (784, 512),
                                         (1000, 3), (40, 8), (95, 32)])
def test_compiled_blocks_are_the_python_blocks(n, per_block, align):
    # The compiled step splits its phases as ``_parallel.blocks`` does (the
    # CSR path and the docs rely on the same boundaries).
    expected = blocks(n, per_block, align)
    edges = block_bounds(n, per_block, align)
    assert [slice(a, b) for a, b in zip(edges[:-1], edges[1:])] == expected


def test_aligned_blocks():
    # Inner boundaries on multiples of the alignment where blocks are wide
    # enough, near the equal split, and never an empty block.
    assert blocks(500, 256, 16) == [slice(0, 256), slice(256, 500)]
    assert blocks(784, 512, 16) == [slice(0, 400), slice(400, 784)]
    assert blocks(40, 8, 16) == blocks(40, 8)  # blocks too narrow to move
    for n in range(1, 400):
        for per_block in (1, 5, 33, 64, 256):
            plain, aligned = blocks(n, per_block), blocks(n, per_block, 16)
            assert len(aligned) == len(plain)
            assert aligned[0].start == 0 and aligned[-1].stop == n
            for a, b, p in zip(aligned, aligned[1:], plain):
                assert a.stop == b.start > a.start
                assert abs(a.stop - p.stop) <= 8
                assert a.stop % 16 == 0 or aligned == plain


def _team_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith("skdae-team")]


def test_the_team_threads_end_with_the_fit(digits):
    X = digits[0][:300]
    before = _team_threads()
    with BlockRunner(2) as runner:
        dae, X64, noise = _model("sgd", True, np.float64)
        ws = _workspace(dae, X64, runner)
        params, l2_flags = dae._params()
        dae._train_batch(X64, np.arange(BATCH), 3, noise, ws, params,
                         l2_flags)
        assert len(_team_threads()) == len(before) + 1
        # Other arrays (another X): a new team, and the old one stops.
        dae._train_batch(X64.copy(), np.arange(BATCH), 3, noise, ws, params,
                         l2_flags)
    assert _team_threads() == before
    # A whole fit, whatever the threads available, leaves none behind.
    DenoisingAutoencoder(n_components=300, max_iter=2, random_state=0).fit(X)
    assert _team_threads() == before


def _within(seconds, func):
    """``func()``'s exception (or None), failing the test if it hangs."""
    outcome = []

    def target():
        try:
            func()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"hung for {seconds} s"
    return outcome[0]


def _two_thread_fit(digits):
    if available_threads() < 2:
        pytest.skip("needs two threads")
    X = digits[0][:300]
    dae = DenoisingAutoencoder(n_components=300, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae.fit(X)
    return dae, X


@pytest.mark.parametrize("who", ["worker", "leader"])
def test_a_failing_member_ends_the_step_with_its_error(monkeypatch, digits,
                                                       who):
    # A MemoryError inside a member's compiled step (the only error it can
    # raise: shapes are checked before) must reach the caller, not leave
    # the other members waiting for its blocks forever.
    dae, X = _two_thread_fit(digits)
    before = copy.deepcopy(dae)
    threads = _team_threads()
    real, calls = _minibatch.team_step, []

    def failing(w, counters, step_values, control, *rest):
        if who == "worker" and w > 0:
            raise MemoryError("test: a worker's allocation failed")
        if who == "leader" and w == 0 and len(calls) == 1:
            # The second step: the leader takes the first block of the
            # corruption, lets the workers in, and fails.
            control[:] = 0
            publish(control, 0, 1)
            publish(counters, 0, counters[0] + 1)
            raise MemoryError("test: the leader's allocation failed")
        calls.append(w)
        return real(w, counters, step_values, control, *rest)

    monkeypatch.setattr(_minibatch, "team_step", failing)
    error = _within(120, lambda: dae.partial_fit(X))
    assert isinstance(error, MemoryError) and "test:" in str(error)
    # The fit's transaction put the model back; no thread is left.
    np.testing.assert_array_equal(dae.components_, before.components_)
    assert dae.n_iter_ == before.n_iter_
    assert _team_threads() == threads
    monkeypatch.undo()
    dae.partial_fit(X)  # and the next fit works


def _edges(n, per_block):
    return np.array([0] + [p.stop for p in blocks(n, per_block,
                                                  COLUMN_ALIGNMENT)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 40, BATCH])
def test_the_whole_products_check_agrees_with_each_product(dtype, n):
    """``products_match_blocks`` is True exactly when each of the step's
    products, made from Python through the same ``gemm``, has the bits of
    its blocks (the encoder, backward and gradients by blocks of units, the
    decoder by blocks of features)."""
    rng = np.random.default_rng(1)
    k, d = N_COMPONENTS, N_FEATURES
    SH = rng.standard_normal((2 * n, k)).astype(dtype)
    SV = rng.standard_normal((2 * n, d)).astype(dtype)
    W = rng.standard_normal((k, d)).astype(dtype)
    units = _edges(k, UNITS_PER_BLOCK)
    features = _edges(d, _minibatch.FEATURES_PER_BLOCK)
    assert len(units) == len(features) == 3  # two blocks each
    products = [(SV[n:], W.T, units, "columns"), (SV[:n], W.T, units,
                                                   "columns"),
                (SH[:n], W, features, "columns"), (SH.T, SV, units, "rows"),
                (SH[:n].T, SV[:n], units, "rows"),
                (SH[n:].T, SV[n:], units, "rows")]
    agree = []
    with BlockRunner(1):  # single-threaded BLAS
        verdict = products_match_blocks(SH, SV, W, units, features)
        for A, B, edges, axis in products:
            whole = np.empty((A.shape[0], B.shape[1]), dtype=dtype)
            gemm(A, B, whole)
            split = np.full_like(whole, np.nan)
            for s, e in zip(edges[:-1], edges[1:]):
                if axis == "columns":
                    gemm(A, B[:, s:e], split[:, s:e])
                else:
                    gemm(A[s:e], B, split[s:e])
            assert not np.isnan(split).any()
            agree.append(np.array_equal(whole, split))
    assert verdict == all(agree)
    # Values that give NaN anywhere never count as a match.
    W[0, 0] = np.nan
    with BlockRunner(1):
        assert not products_match_blocks(SH, SV, W, units, features)


def test_one_thread_makes_whole_products_only_where_they_match(monkeypatch):
    ws_args = (BATCH, N_FEATURES, N_COMPONENTS, np.float32,
               K.ACTIVATION_CODES["sigmoid"], K.LOSS_CODES["cross_entropy"])
    W = np.zeros((N_COMPONENTS, N_FEATURES), dtype=np.float32)
    blocked = (_minibatch.CORRUPTION_ENTRIES // N_FEATURES, UNITS_PER_BLOCK,
               _minibatch.FEATURES_PER_BLOCK)
    whole = (blocked[0], N_COMPONENTS, N_FEATURES)
    checks = []
    for match in (True, False):
        monkeypatch.setattr(_minibatch, "blocks_match_whole",
                            lambda *a, match=match: checks.append(a) or match)
        with BlockRunner(1) as runner:
            ws = Workspace(*ws_args, runner)
            assert ws.step_bounds(W, BATCH) == (whole if match else blocked)
        with BlockRunner(2) as runner:
            ws = Workspace(*ws_args, runner)
            assert ws.step_bounds(W, BATCH) == blocked
    assert checks[0] == (BATCH, N_COMPONENTS, N_FEATURES, np.float32)
    # The check is made once per shape.
    monkeypatch.undo()
    from skdae._parallel import _checks
    key = ("dae step", 7, 3, 5, "<f4")
    _checks.pop(key, None)
    first = _minibatch.blocks_match_whole(7, 3, 5, np.float32)
    assert _checks[key] is first


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_models_are_the_same_whether_one_thread_makes_whole_products(
        monkeypatch, digits, dtype):
    X = np.tile(digits[0][:200], (1, 10)).astype(dtype)  # 640 features

    def fit():
        model = DenoisingAutoencoder(N_COMPONENTS, max_iter=2, batch_size=48,
                                     random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X).components_

    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        checked = fit()  # whole products where the check allows them
    with threadpool_limits(2):
        two = fit()
    monkeypatch.setattr(_minibatch, "blocks_match_whole", lambda *a: False)
    with threadpool_limits(1):
        blocked = fit()
    np.testing.assert_array_equal(checked, two)
    np.testing.assert_array_equal(checked, blocked)


def test_steps_too_large_to_check_keep_the_blocks():
    # Full-batch training of wide data: the check's arrays would cost more
    # than the blocks do.
    from skdae._parallel import CHECK_ELEMENTS, _checks
    n = CHECK_ELEMENTS // (2 * (N_COMPONENTS + N_FEATURES)) + 1
    assert not _minibatch.blocks_match_whole(n, N_COMPONENTS, N_FEATURES,
                                             np.float32)
    assert ("dae step", n, N_COMPONENTS, N_FEATURES, "<f4") not in _checks
