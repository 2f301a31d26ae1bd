"""Each Numba kernel against a plain NumPy reference, for float32 and float64."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from skdae import _kernels as K

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_ref(seed, shape):
    """splitmix64 of (seed, counter) written with NumPy's wrapping uint64."""
    counters = np.arange(np.prod(shape), dtype=np.uint64).reshape(shape)
    with np.errstate(over="ignore"):
        z = _mix64(np.uint64(seed) + (counters + np.uint64(1))
                   * np.uint64(0x9E3779B97F4A7C15))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def normal_ref(seed, shape):
    u1 = 1.0 - uniform_ref(seed, shape)
    u2 = uniform_ref(np.uint64(seed) ^ np.uint64(0xD1B54A32D192ED03), shape)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def stream2_ref(seed, shape):
    return uniform_ref(np.uint64(seed) ^ np.uint64(0xD1B54A32D192ED03), shape)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
    "identity": lambda a: a,
}


def test_uniform_matches_reference_and_is_uniform():
    u = K.uniform_block(12345, 300, 200)
    assert_array_equal(u, uniform_ref(12345, (300, 200)))
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005
    # Deciles hold ~10% each; neighbouring counters are uncorrelated.
    hist = np.histogram(u, bins=10, range=(0, 1))[0] / u.size
    assert_allclose(hist, 0.1, atol=0.005)
    flat = u.ravel()
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
    assert not np.array_equal(u, K.uniform_block(12346, 300, 200))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("corruption", ["none", "masking", "gaussian",
                                        "salt_and_pepper"])
def test_gather_corrupt(dtype, corruption):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(50, 30)).astype(dtype)
    rows = rng.permutation(50)[:20]
    out = np.full((25, 30), np.nan, dtype=dtype)
    seed, level, low, high = 987, 0.3, -1.0, 2.0
    K.gather_corrupt(X, rows, out, seed, 0, K.CORRUPTION_CODES[corruption],
                     level, low, high)
    clean = X[rows]
    u = uniform_ref(seed, clean.shape)
    if corruption == "none":
        expected = clean
    elif corruption == "masking":
        expected = np.where(u < level, 0.0, clean)
    elif corruption == "gaussian":
        expected = clean + level * normal_ref(seed, clean.shape)
    else:
        salt = np.where(stream2_ref(seed, clean.shape) < 0.5, low, high)
        expected = np.where(u < level, salt, clean)
    assert_allclose(out[:20], expected.astype(dtype), rtol=RTOL[dtype],
                    atol=1e-6)
    assert np.isnan(out[20:]).all()  # rows past the batch are left alone


@pytest.mark.parametrize("corruption", ["masking", "gaussian",
                                        "salt_and_pepper"])
def test_noise_does_not_depend_on_the_block_split(corruption):
    X = np.random.RandomState(8).uniform(size=(30, 7))
    rows = np.arange(30)[::-1].copy()
    whole = np.empty_like(X)
    code = K.CORRUPTION_CODES[corruption]
    K.gather_corrupt(X, rows, whole, 9, 0, code, 0.4, 0.0, 1.0)
    blocks = np.empty_like(X)
    for start, stop in [(0, 11), (11, 12), (12, 30)]:
        K.gather_corrupt(X, rows[start:stop], blocks[start:stop], 9, start,
                         code, 0.4, 0.0, 1.0)
    assert_array_equal(blocks, whole)


def test_corruption_statistics():
    X = np.full((400, 250), 0.5)
    out = np.empty_like(X)
    rows = np.arange(400)
    K.gather_corrupt(X, rows, out, 1, 0, K.CORRUPTION_CODES["masking"], 0.3,
                     0, 1)
    assert abs((out == 0).mean() - 0.3) < 0.01
    K.gather_corrupt(X, rows, out, 2, 0, K.CORRUPTION_CODES["gaussian"], 0.2,
                     0, 1)
    noise = out - X
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.2) < 0.005
    K.gather_corrupt(X, rows, out, 3, 0, K.CORRUPTION_CODES["salt_and_pepper"],
                     0.4, 0.0, 1.0)
    assert abs((out == 0).mean() - 0.2) < 0.01
    assert abs((out == 1).mean() - 0.2) < 0.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_csr_data_matches_dense_masking(dtype):
    rng = np.random.RandomState(1)
    X = sp.random(40, 60, density=0.2, format="csr", random_state=rng,
                  dtype=dtype)
    out = np.empty_like(X.data)
    K.mask_csr_data(X.data, X.indices, X.indptr, 60, out, 55, 0.4)
    masked = sp.csr_matrix((out, X.indices, X.indptr), shape=X.shape)
    dense = np.empty((40, 60), dtype=dtype)
    K.gather_corrupt(X.toarray(), np.arange(40), dense, 55, 0,
                     K.CORRUPTION_CODES["masking"], 0.4, 0.0, 1.0)
    assert_array_equal(masked.toarray(), dense)
    assert_array_equal(X.toarray() != 0, X.toarray() != 0)  # X untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_bias_activate_and_hidden_delta(dtype, activation):
    rng = np.random.RandomState(2)
    A = rng.normal(scale=3, size=(17, 9)).astype(dtype)
    b = rng.normal(size=9).astype(dtype)
    H = A.copy()
    code = K.ACTIVATION_CODES[activation]
    K.bias_activate(H, b, code)
    expected = ACTIVATIONS[activation](A.astype(np.float64) + b)
    assert_allclose(H, expected, rtol=RTOL[dtype], atol=1e-6)

    dH = rng.normal(size=H.shape).astype(dtype)
    g = dH.copy()
    grad_bias = np.full(9, np.nan, dtype=dtype)
    K.hidden_delta(g, H, code, grad_bias)
    # Derivative by central differences of the activation itself.
    a = A.astype(np.float64) + b
    eps = 1e-6
    f = ACTIVATIONS[activation]
    deriv = (f(a + eps) - f(a - eps)) / (2 * eps)
    expected = dH * deriv
    assert_allclose(g, expected, rtol=1e-4, atol=1e-4)
    assert_allclose(grad_bias, g.sum(axis=0), rtol=1e-4, atol=1e-5)


def loss_ref(a, x, loss):
    if loss == "cross_entropy":
        z = sigmoid(a)
        return -(x * np.log(z) + (1 - x) * np.log(1 - z)), z
    return 0.5 * (a - x) ** 2, a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
@pytest.mark.parametrize("corruption,weight", [
    ("none", 1.0), ("masking", 1.0), ("masking", 0.25),
    ("salt_and_pepper", 0.0), ("gaussian", 1.0)])
# 150 rows: the loss sums are flushed every 64 rows (cross-entropy: the log
# of a product of 64 factors), twice in full and once in part.
@pytest.mark.parametrize("n_rows", [10, 150])
def test_output_delta(dtype, loss, corruption, weight, n_rows):
    rng = np.random.RandomState(3)
    X = rng.uniform(size=(3 * n_rows, 12)).astype(dtype)
    rows = rng.permutation(3 * n_rows)[:n_rows]
    A = rng.normal(scale=2, size=(n_rows, 12)).astype(dtype)
    b = rng.normal(size=12).astype(dtype)
    seed, level = 42, 0.35
    delta = A.copy()
    grad_bias = np.empty(12, dtype=dtype)
    total = K.output_delta(delta, b, X, rows, seed, 0,
                           K.CORRUPTION_CODES[corruption], level, weight,
                           K.LOSS_CODES[loss], grad_bias)
    a = A.astype(np.float64) + b
    x = X[rows].astype(np.float64)
    elementwise, z = loss_ref(a, x, loss)
    w = np.ones_like(a)
    if corruption in ("masking", "salt_and_pepper"):
        w = np.where(uniform_ref(seed, a.shape) < level, 1.0, weight)
    assert_allclose(total, (w * elementwise).sum(), rtol=1e-5)
    assert_allclose(delta, w * (z - x), rtol=RTOL[dtype] * 10, atol=1e-6)
    assert_allclose(grad_bias, delta.sum(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [0.25, 1.0])
def test_output_delta_with_missing_targets(dtype, weight):
    # Weights 0 (missing), 1 (masked) and ``weight`` in one block: the
    # cross-entropy keeps a product of factors for each nonzero weight.
    rng = np.random.RandomState(4)
    X = rng.uniform(size=(200, 12)).astype(dtype)
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    rows = rng.permutation(200)[:150]
    A = rng.normal(scale=3, size=(150, 12)).astype(dtype)
    b = rng.normal(size=12).astype(dtype)
    # Logits of 0 in one observed column: factors of 2, whose product over
    # 150 rows would overflow float32 (2**150) without a flush every 64 rows.
    A[:, 0] = -b[0]
    X[:, 0] = 0.5
    seed, level = 7, 0.3
    delta = A.copy()
    grad_bias = np.empty(12, dtype=dtype)
    total = K.output_delta(delta, b, X, rows, seed, 0,
                           K.CORRUPTION_CODES["masking"], level, weight,
                           K.LOSS_CODES["cross_entropy"], grad_bias, None,
                           True)
    a = A.astype(np.float64) + b
    x = X[rows].astype(np.float64)
    missing = np.isnan(x)
    x = np.where(missing, 0.0, x)
    elementwise, z = loss_ref(a, x, "cross_entropy")
    w = np.where(uniform_ref(seed, a.shape) < level, 1.0, weight)
    w[missing] = 0.0
    assert_allclose(total, (w * elementwise).sum(), rtol=1e-5)
    assert_allclose(delta, w * (z - x), rtol=RTOL[dtype] * 10, atol=1e-6)
    assert np.all(delta[missing] == 0)


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_row_losses_and_bias_output(loss):
    rng = np.random.RandomState(4)
    X = rng.uniform(size=(8, 6))
    A = rng.normal(size=(8, 6))
    b = rng.normal(size=6)
    out = np.empty(8)
    K.row_losses(A, b, X, K.LOSS_CODES[loss], out)
    elementwise, z = loss_ref(A + b, X, loss)
    assert_allclose(out, elementwise.sum(axis=1), rtol=1e-12)
    Z = A.copy()
    K.bias_output(Z, b, K.LOSS_CODES[loss])
    assert_allclose(Z, z, rtol=1e-12)


def test_cross_entropy_is_finite_for_saturated_logits():
    A = np.array([[-800.0, 800.0, 0.0]])
    X = np.array([[1.0, 0.0, 0.5]])
    out = np.empty(1)
    K.row_losses(A, np.zeros(3), X, K.LOSS_CODES["cross_entropy"], out)
    assert_allclose(out, [800.0 + 800.0 + np.log(2.0)])
    delta = A.copy()
    K.output_delta(delta, np.zeros(3), X, np.arange(1), 0, 0, 0, 0.0, 1.0,
                   K.LOSS_CODES["cross_entropy"], np.empty(3))
    assert_allclose(delta, [[-1.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_grad2", [False, True])
def test_adam_update(dtype, use_grad2):
    rng = np.random.RandomState(5)
    p, g, g2, m, v = (rng.normal(size=(4, 7)).astype(dtype) for _ in range(5))
    v = np.abs(v)
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    scale, l2, step, b1, b2, eps = 0.25, 0.01, 1e-2, 0.9, 0.999, 1e-8
    K.adam_update(p, g, g2, use_grad2, m, v, scale, l2, step, b1, b2, eps)
    grad = ((g + g2) if use_grad2 else g) * scale + l2 * p0
    m_ref = b1 * m0 + (1 - b1) * grad
    v_ref = b2 * v0 + (1 - b2) * grad**2
    assert_allclose(m, m_ref, rtol=RTOL[dtype], atol=1e-7)
    assert_allclose(v, v_ref, rtol=RTOL[dtype], atol=1e-7)
    assert_allclose(p, p0 - step * m_ref / (np.sqrt(v_ref) + eps),
                    rtol=RTOL[dtype], atol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update(nesterov):
    rng = np.random.RandomState(6)
    p, g, g2, vel = (rng.normal(size=(3, 5)) for _ in range(4))
    p0, vel0 = p.copy(), vel.copy()
    lr, mom, scale, l2 = 0.1, 0.9, 0.5, 0.02
    K.sgd_update(p, g, g2, True, vel, scale, l2, lr, mom, nesterov)
    grad = (g + g2) * scale + l2 * p0
    vel_ref = mom * vel0 - lr * grad
    update = mom * vel_ref - lr * grad if nesterov else vel_ref
    assert_allclose(vel, vel_ref, rtol=1e-12)
    assert_allclose(p, p0 + update, rtol=1e-12)


def test_kernels_accept_readonly_input():
    X = np.random.RandomState(7).uniform(size=(10, 4))
    X.setflags(write=False)
    out = np.empty((5, 4))
    K.gather_corrupt(X, np.arange(5), out, 1, 0, 1, 0.5, 0.0, 1.0)
    assert np.isin(out, np.concatenate([[0.0], X[:5].ravel()])).all()
