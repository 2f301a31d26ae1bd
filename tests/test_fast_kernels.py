"""Correctness of the vectorizable math and the sparse product kernels."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from skdae import _kernels as K
from skdae._vecmath import exp_nonpositive, log1p_unit, tanh

DTYPES = [np.float32, np.float64]


@numba.njit(error_model="numpy")
def _exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive(x[i])


@numba.njit(error_model="numpy")
def _log1p_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = log1p_unit(x[i])


@numba.njit(error_model="numpy")
def _tanh_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


def _ulp_error(actual, desired, dtype):
    return np.abs(actual - desired) / (np.abs(desired) * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_accuracy(dtype):
    x = -np.random.RandomState(0).exponential(10, 100_000).astype(dtype)
    x[:4] = [0, -1e-30, -np.log(2), -80]
    out = np.empty_like(x)
    _exp_loop(x, out)
    assert out.dtype == dtype
    desired = np.exp(x.astype(np.longdouble))
    # exp_nonpositive clamps its argument where the result leaves the normal
    # range (error < 1e-37 absolute there).
    normal = desired > 2 * np.finfo(dtype).tiny
    assert _ulp_error(out[normal], desired[normal], dtype).max() < 2
    assert out[0] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_extremes(dtype):
    x = np.array([-1e4, -np.inf, np.nan, -np.finfo(dtype).max], dtype=dtype)
    out = np.empty_like(x)
    _exp_loop(x, out)
    # Below the normal range the result is clamped to a tiny positive value.
    assert np.all((out[[0, 1, 3]] >= 0) & (out[[0, 1, 3]] < 1e-37))
    assert np.isnan(out[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_unit_accuracy(dtype):
    x = np.random.RandomState(0).uniform(size=100_000).astype(dtype)
    x[:3] = [0, 1, 1e-30]
    out = np.empty_like(x)
    _log1p_loop(x, out)
    desired = np.log1p(x.astype(np.longdouble))
    positive = desired > 0
    assert _ulp_error(out[positive], desired[positive], dtype).max() < 2
    assert out[0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_accuracy(dtype):
    rng = np.random.RandomState(0)
    x = np.concatenate([rng.standard_normal(50_000) * 3,
                        np.geomspace(1e-30, 30, 20_000)])
    x = np.concatenate([x, -x, [0.0, 0.625, 1e4, np.inf]]).astype(dtype)
    out = np.empty_like(x)
    _tanh_loop(x, out)
    assert out.dtype == dtype
    desired = np.tanh(x.astype(np.longdouble))
    assert _ulp_error(out[:-4], desired[:-4], dtype).max() < 2
    assert out[-4] == 0 and np.all(out[-2:] == 1)
    nan = np.array([np.nan], dtype=dtype)
    _tanh_loop(nan, nan)
    assert np.isnan(nan[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_logits_stay_finite(dtype):
    # Huge decoder logits: sigmoid saturates, the cross-entropy stays finite.
    A = np.array([[1e30, -1e30, 88.0, -88.0, 0.0]], dtype=dtype)
    X = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]], dtype=dtype)
    grad_bias = np.empty(5, dtype=dtype)
    total = K.output_delta(A, np.zeros(5, dtype), X, np.array([0]), 1, 0, 0, 0.0,
                           1.0, K.LOSS_CODES["cross_entropy"], grad_bias)
    assert np.isfinite(total) and np.all(np.isfinite(A))
    assert_allclose(A[0], [1, -1, 0, 0, 0], atol=1e-6)
    H = np.array([[1e30, -1e30, 0.0]], dtype=dtype)
    K.bias_activate(H, np.zeros(3, dtype), K.ACTIVATION_CODES["sigmoid"])
    assert_allclose(H[0], [1, 0, 0.5], atol=1e-37)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_out", [1, 4, 7])
def test_csr_products_match_dense(dtype, n_out):
    rng = np.random.RandomState(0)
    S = sp.random(9, 30, density=0.2, format="csr", dtype=dtype, random_state=rng)
    W = rng.randn(n_out, 30).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    out = np.empty((9, n_out), dtype)
    K.csr_matmul_t(S.data, S.indices, S.indptr, W, out)
    assert_allclose(out, S.toarray() @ W.T, rtol=rtol, atol=rtol)
    # A block of rows through a slice of indptr.
    K.csr_matmul_t(S.data, S.indices, S.indptr[3:7], W, out[:3])
    assert_allclose(out[:3], S[3:6].toarray() @ W.T, rtol=rtol, atol=rtol)

    D = rng.randn(9, n_out).astype(dtype)
    G = rng.randn(n_out, 30).astype(dtype)
    expected = G + D.T @ S.toarray()
    K.csr_t_matmul_add(S.data, S.indices, S.indptr, D, G)
    assert_allclose(G, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_optimizer_row_block_updates_equal_whole_update(solver):
    from skdae._optimizers import AdamOptimizer, SGDOptimizer

    rng = np.random.RandomState(0)
    W, b = rng.randn(10, 6).astype(np.float32), rng.randn(6).astype(np.float32)
    grads = [(rng.randn(10, 6).astype(np.float32),
              rng.randn(10, 6).astype(np.float32)),
             (rng.randn(6).astype(np.float32),)]
    cls = SGDOptimizer if solver == "sgd" else AdamOptimizer
    whole_params, block_params = [W.copy(), b.copy()], [W.copy(), b.copy()]
    whole, blocked = cls(whole_params), cls(block_params)
    for _ in range(3):
        whole.update_params(whole_params, grads, 4, [True, False], 0.1)
        blocked.start_step()
        for rows in (slice(0, 3), slice(3, 10)):
            blocked.update(0, block_params[0], grads[0], 4, True, 0.1, rows)
        blocked.update(1, block_params[1], grads[1], 4, False, 0.1)
    for p, q in zip(whole_params, block_params):
        np.testing.assert_array_equal(p, q)
