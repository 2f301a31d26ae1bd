"""Reconstruction sampling (Dauphin et al., 2011) and the exact sparse path."""

import copy
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from skdae import DenoisingAutoencoder
from skdae import _kernels as K
from skdae._kernels import adam_update, sgd_update
from skdae._minibatch import Workspace, data_range, forward_backward
from skdae._sampling import SampledWorkspace, forward_backward_sampled
from skdae._sparse_kernels import (
    adam_update_columns,
    sample_columns,
    sgd_update_columns,
)

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")


def sparse_data(n_samples=60, n_features=40, density=0.1, seed=0,
                dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = sp.random(n_samples, n_features, density=density, random_state=rng,
                  format="csr", dtype=dtype)
    X.data[:] = rng.uniform(0.1, 1, size=X.nnz)
    return X


def model(X, **params):
    """An initialised DAE with non-zero biases, and its noise tuple."""
    rng = np.random.RandomState(1)
    dae = DenoisingAutoencoder(n_components=5, random_state=0, **params)
    value_range = data_range(X)
    loss = dae._resolve_loss(value_range)
    dae._initialize(X, loss)
    dae._track_data_range(value_range)
    dae.intercept_hidden_[:] = rng.normal(scale=0.5, size=5)
    dae.intercept_visible_[:] = rng.normal(scale=0.5, size=X.shape[1])
    code = "none" if dae.corruption_level == 0 else dae.corruption
    noise = (K.CORRUPTION_CODES[code], dae.corruption_level,
             dae.uncorrupted_weight, *dae._data_low_high)
    return dae, noise


def exact_pass(dae, X, rows, seed, noise):
    ws = Workspace(len(rows), X.shape[1], 5, X.dtype,
                   K.ACTIVATION_CODES[dae.activation], K.LOSS_CODES[dae.loss_])
    loss = forward_backward(dae.components_, dae.decoder_components_,
                            dae.intercept_hidden_, dae.intercept_visible_, X,
                            rows, seed, noise, ws)
    # Tied weights: grad_encoder holds the sum of both gradients.
    g_dec = (np.zeros_like(ws.grad_decoder) if dae.tied_weights
             else ws.grad_decoder)
    return np.concatenate([[loss], ws.grad_encoder.ravel(), g_dec.ravel(),
                           ws.grad_hidden_bias, ws.grad_visible_bias])


def sampled_pass(dae, X, rows, seed, noise, columns, importance, local, ws):
    """The sampled loss and gradients, scattered into full-width arrays."""
    loss = forward_backward_sampled(
        dae.components_, dae.decoder_components_, dae.intercept_hidden_,
        dae.intercept_visible_, X[rows], seed, noise, columns, importance, local,
        ws)
    g_enc = np.zeros_like(dae.components_)
    g_dec = np.zeros_like(dae.components_)
    g_vis = np.zeros_like(dae.intercept_visible_)
    g_enc[:, columns] = ws.grad_encoder
    g_dec[:, columns] = ws.grad_decoder
    if dae.tied_weights:  # as exact_pass: the sum of both
        g_enc, g_dec = g_enc + g_dec, np.zeros_like(g_dec)
    g_vis[columns] = ws.grad_visible_bias
    return np.concatenate([[loss], g_enc.ravel(), g_dec.ravel(),
                           ws.grad_hidden_bias, g_vis])


# ---------------------------------------------------------------------------
# Unbiasedness and the k = all case
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    dict(loss="cross_entropy", uncorrupted_weight=0.5),
    dict(loss="squared_error", activation="tanh", tied_weights=False),
])
def test_sampled_loss_and_gradients_are_unbiased(params):
    X = sparse_data(n_features=30, density=0.08)
    dae, noise = model(X, **params)
    rows = np.array([3, 17, 5, 40, 22, 9, 31, 58])
    seed = 12345  # one fixed corruption; only the column draw varies
    exact = exact_pass(dae, X, rows, seed, noise)
    ws = SampledWorkspace(len(rows), 5, X.dtype,
                          K.ACTIVATION_CODES[dae.activation],
                          K.LOSS_CODES[dae.loss_])
    indices = X[rows].indices
    n_other = X.shape[1] - np.unique(indices).size
    assert n_other > 10  # the draw does leave columns out
    draws = np.array([
        sampled_pass(dae, X, rows, seed, noise,
                     *sample_columns(indices, X.shape[1], 4, s, X.dtype), ws)
        for s in range(1500)])
    mean = draws.mean(axis=0)
    stderr = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    # The sampled values do vary: the check below is not trivially exact.
    varying = stderr > 1e-9 * np.abs(exact).max()
    assert varying.sum() > 20
    # Every component within 4.5 standard errors (a false alarm has a
    # probability of about 1e-5 per component), rounding aside.
    tolerance = 4.5 * stderr + 1e-9 * np.abs(exact).max()
    assert np.all(np.abs(mean - exact) <= tolerance), \
        np.max(np.abs(mean - exact) / (stderr + 1e-300))
    # The standardised errors have about unit variance: the standard error
    # is the right yardstick, not a loose one.
    z = (mean - exact)[varying] / stderr[varying]
    assert 0.5 < np.mean(z ** 2) < 1.6


def test_sample_columns_draws_uniformly_without_replacement():
    indices = np.array([7, 2, 2, 11, 0])
    counts = np.zeros(15)
    for s in range(6000):
        columns, importance, local = sample_columns(indices, 15, 3, s,
                                                    np.float64)
        assert np.all(np.diff(columns) > 0)
        assert_array_equal(columns[local], indices)
        assert set(columns[importance == 1]) == {0, 2, 7, 11}
        drawn = columns[importance != 1]
        assert drawn.size == 3
        assert np.all(importance[importance != 1] == 11 / 3)
        counts[drawn] += 1
    present = [0, 2, 7, 11]
    assert np.all(counts[present] == 0)
    freq = np.delete(counts, present) / 6000
    # Each of the 11 others with probability 3/11 (binomial error ~0.006).
    assert np.all(np.abs(freq - 3 / 11) < 0.03)
    # More than the others: all of them, weight 1.
    columns, importance, local = sample_columns(indices, 15, 100, 0,
                                                np.float32)
    assert_array_equal(columns, np.arange(15))
    assert_array_equal(local, indices)
    assert importance.dtype == np.float32 and np.all(importance == 1)


@pytest.mark.parametrize("params", [
    dict(),
    dict(tied_weights=False, uncorrupted_weight=0.5),
    dict(solver="sgd", alpha=1e-3, learning_rate_init=0.05),
    dict(loss="squared_error", corruption_level=0.0, tied_weights=False,
         solver="sgd", nesterovs_momentum=False, alpha=1e-2),
])
def test_sampling_every_column_is_bitwise_the_exact_path(params):
    X = sparse_data()
    fit = dict(n_components=8, batch_size=16, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # One start (sampling initialises the visible biases its own way),
        # then a warm start of each path from it.
        start = DenoisingAutoencoder(reconstruction_sampling=X.shape[1],
                                     max_iter=1, **fit).fit(X)
        exact, sampled = (copy.deepcopy(start).set_params(
            reconstruction_sampling=k, warm_start=True, max_iter=3).fit(X)
            for k in (None, X.shape[1]))
    for name in ("components_", "decoder_components_", "intercept_hidden_",
                 "intercept_visible_"):
        assert_array_equal(getattr(sampled, name), getattr(exact, name))
    assert sampled.loss_curve_ == exact.loss_curve_
    assert not np.array_equal(sampled.components_, start.components_)


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_sampling_starts_the_visible_biases_at_the_feature_means(loss):
    X = sparse_data(n_samples=40).toarray()
    X[:, 3] = 0  # a feature never present: clipped
    X = sp.csr_matrix(X)
    dae = DenoisingAutoencoder(4, reconstruction_sampling=5, loss=loss)
    dae._initialize(X, loss)
    mean = X.toarray().mean(axis=0)
    if loss == "cross_entropy":
        p = np.clip(mean, 1 / 80, 1 - 1 / 80)
        expected = np.log(p) - np.log1p(-p)
        assert expected[3] == pytest.approx(np.log(1 / 79))
    else:
        expected = mean
    np.testing.assert_allclose(dae.intercept_visible_, expected, rtol=1e-10,
                               atol=1e-12)
    dae.set_params(reconstruction_sampling=None)._initialize(X, loss)
    assert not dae.intercept_visible_.any()  # today's initialisation


def test_sampling_few_columns_trains_a_different_but_close_model():
    X = sparse_data()
    fit = dict(n_components=8, max_iter=3, batch_size=16, random_state=0)
    exact = DenoisingAutoencoder(**fit).fit(X)
    sampled = DenoisingAutoencoder(reconstruction_sampling=5, **fit).fit(X)
    diff = np.abs(sampled.components_ - exact.components_)
    assert 0 < diff.max() < 0.05
    assert np.isfinite(sampled.loss_curve_).all()


# ---------------------------------------------------------------------------
# Kernels against plain NumPy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_grad2", [True, False])
def test_column_updates_equal_dense_updates_on_those_columns(dtype,
                                                             use_grad2):
    rng = np.random.RandomState(0)
    param = rng.normal(size=(3, 10)).astype(dtype)
    columns = np.array([1, 4, 5, 9])
    weights = np.array([1, 2.5, 1, 4], dtype=dtype)
    g1, g2 = (rng.normal(size=(3, 4)).astype(dtype) for _ in range(2))
    m, v, vel = (rng.uniform(size=(3, 10)).astype(dtype) for _ in range(3))
    # Reference: the dense kernels on each column alone (with its weighted
    # L2 term), written back; the other columns stay as they were.
    adam_ref = [a.copy() for a in (param, m, v)]
    sgd_ref = [a.copy() for a in (param, vel)]
    for c, j in enumerate(columns):
        p, mm, vv = (np.ascontiguousarray(a[:, [j]]) for a in adam_ref)
        adam_update(p, g1[:, [c]], g2[:, [c]], use_grad2, mm, vv, 0.1,
                    0.01 * weights[c], 1e-2, 0.9, 0.999, 1e-8)
        for a, new in zip(adam_ref, (p, mm, vv)):
            a[:, j] = new[:, 0]
        p, ve = (np.ascontiguousarray(a[:, [j]]) for a in sgd_ref)
        sgd_update(p, g1[:, [c]], g2[:, [c]], use_grad2, ve, 0.1,
                   0.01 * weights[c], 1e-2, 0.9, True)
        for a, new in zip(sgd_ref, (p, ve)):
            a[:, j] = new[:, 0]
    adam = [a.copy() for a in (param, m, v)]
    adam_update_columns(adam[0], g1, g2, use_grad2, adam[1], adam[2], columns,
                        weights, 0.1, 0.01, 1e-2, 0.9, 0.999, 1e-8)
    sgd = [a.copy() for a in (param, vel)]
    sgd_update_columns(sgd[0], g1, g2, use_grad2, sgd[1], columns, weights,
                       0.1, 0.01, 1e-2, 0.9, True)
    for got, want in zip(adam + sgd, adam_ref + sgd_ref):
        # Rounding only: the L2 weight is multiplied in a different order.
        np.testing.assert_allclose(got, want, rtol=1e-6)
    untouched = np.setdiff1d(np.arange(10), columns)
    for got, before in zip(adam + sgd, [param, m, v, param, vel]):
        assert_array_equal(got[:, untouched], before[:, untouched])
    pa, ma, va = adam
    with pytest.raises(ValueError, match="out of range"):
        adam_update_columns(pa, g1, g2, use_grad2, ma, va,
                            np.array([1, 4, 5, 10]), weights, 0.1, 0.01,
                            1e-2, 0.9, 0.999, 1e-8)


# ---------------------------------------------------------------------------
# Memory: nothing as wide as a dense batch of n_features
# ---------------------------------------------------------------------------
def _traced_peak(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_exact_sparse_pass_makes_no_dense_copy_of_the_batch():
    X = sparse_data(n_samples=50, n_features=20000, density=0.001)
    dae, noise = model(X)
    rows = np.arange(50)
    ws = Workspace(50, X.shape[1], 5, X.dtype,
                   K.ACTIVATION_CODES[dae.activation], K.LOSS_CODES[dae.loss_])
    args = (dae.components_, dae.decoder_components_, dae.intercept_hidden_,
            dae.intercept_visible_, X, rows, 7, noise, ws)
    forward_backward(*args)  # compiled
    # A dense copy of the batch would be 50 x 20000 x 8 bytes = 8 MB; the
    # scratch rows of the loss kernel are 20000 x 8 bytes each.
    assert _traced_peak(lambda: forward_backward(*args)) < 1.5 * 2**20


def test_sampled_fit_memory_does_not_grow_with_n_features():
    d = 100000
    X = sparse_data(n_samples=100, n_features=d, density=1e-4,
                    dtype=np.float32)
    peaks = {}
    for k in (50, None):
        dae = DenoisingAutoencoder(4, reconstruction_sampling=k,
                                   batch_size=50, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dae.fit(X[:50])  # compiled
            peaks[k] = _traced_peak(lambda: dae.fit(X))
    # Weights, visible biases and Adam's two moments: 3 x (4 + 1) x d
    # float32; the initialisation draws the weights in float64 first.
    state = 3 * 5 * d * 4 + 4 * d * 8
    dense_batch = 50 * d * 4  # one decoder output of the exact path
    assert peaks[50] < state + 2**21, (peaks, state)
    assert peaks[None] > state + dense_batch, (peaks, state)


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------
def test_dense_input_and_other_noise_are_refused():
    X = sparse_data()
    dae = DenoisingAutoencoder(4, reconstruction_sampling=3, max_iter=1)
    with pytest.raises(ValueError, match="X is dense.*csr_matrix"):
        dae.fit(X.toarray())
    assert not hasattr(dae, "components_")
    with pytest.raises(ValueError, match="needs masking noise"):
        dae.set_params(corruption="gaussian").fit(X)
    with pytest.raises(InvalidParameterError):
        dae.set_params(reconstruction_sampling=0).fit(X)
    # Gaussian noise without corruption is no noise: accepted.
    dae.set_params(reconstruction_sampling=3, corruption_level=0.0).fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sampled_fit_is_reproducible_and_thread_count_free(dtype):
    # Several blocks of rows (64) and of hidden units (256) per minibatch.
    X = sparse_data(n_samples=400, n_features=300, density=0.05, dtype=dtype)
    fit = dict(n_components=300, batch_size=150, max_iter=2,
               reconstruction_sampling=20)
    models = []
    for n_threads in (1, 2, 2):
        with threadpool_limits(n_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(DenoisingAutoencoder(random_state=0, **fit).fit(X))
    other = DenoisingAutoencoder(random_state=1, **fit).fit(X)
    assert models[0].components_.dtype == dtype
    for m in models[1:]:
        assert_array_equal(m.components_, models[0].components_)
        assert_array_equal(m.intercept_visible_, models[0].intercept_visible_)
    assert not np.array_equal(other.components_, models[0].components_)


def test_pickle_and_partial_fit_with_sampling():
    X = sparse_data()
    dae = DenoisingAutoencoder(6, reconstruction_sampling=5, max_iter=2,
                               random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae.fit(X)
    dae.partial_fit(X)
    restored = pickle.loads(pickle.dumps(dae))
    assert_array_equal(restored.transform(X), dae.transform(X))
    assert restored.decoder_components_ is restored.components_
    restored.partial_fit(X)
    dae.partial_fit(X)
    assert_array_equal(restored.components_, dae.components_)
    # Sampling may be switched off between calls: it changes no structure.
    dae.set_params(reconstruction_sampling=None).partial_fit(X)
    assert dae.n_iter_ == 5


def test_sampled_features_still_help_a_linear_classifier(digits):
    # Binarised digits as CSR (about half the pixels are zero).
    X, y = digits
    X = sp.csr_matrix((X > 0.3).astype(np.float64))
    train, test = np.arange(1200), np.arange(1200, X.shape[0])
    # A narrow code, so that learned features beat random ones clearly.
    fit = dict(n_components=16, max_iter=10, learning_rate_init=1e-2,
               batch_size=50, random_state=0)

    def accuracy(F):
        clf = LogisticRegression(max_iter=2000).fit(F[train], y[train])
        return clf.score(F[test], y[test])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = DenoisingAutoencoder(**fit).fit(X[train])
        sampled = DenoisingAutoencoder(reconstruction_sampling=4,
                                       **fit).fit(X[train])
    untrained = DenoisingAutoencoder(**fit)
    untrained._initialize(X[train], "cross_entropy")
    scores = {"exact": accuracy(exact.transform(X)),
              "sampled": accuracy(sampled.transform(X)),
              "untrained": accuracy(untrained.transform(X))}
    assert scores["sampled"] > scores["untrained"] + 0.08, scores
    assert scores["sampled"] > scores["exact"] - 0.04, scores
