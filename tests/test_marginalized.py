"""MarginalizedDenoisingAutoencoder: the closed form against plain NumPy."""

import pickle
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

import skdae._marginalized as marginalized_module
from skdae import MarginalizedDenoisingAutoencoder as MSDA


# ----------------------------------------------------------------------
# Plain NumPy references, written per sample from the definition
# ----------------------------------------------------------------------
def expected_loss_and_gradient(X, T, W, p, alpha):
    """``sum_i E||t_i - W [m * x_i, 1]||^2 + alpha ||W[:, :-1]||^2``.

    ``m_j ~ Bernoulli(1 - p)``; ``T`` holds the clean targets. Per sample,
    ``E[x~] = q * xbar`` and ``E[x~ x~^T] = (q xbar)(q xbar)^T`` off the
    diagonal and ``q * xbar^2`` on it.
    """
    n, d = X.shape
    q = np.r_[np.full(d, 1.0 - p), 1.0]
    loss, grad = 0.0, np.zeros_like(W)
    for x, t in zip(X, T):
        xbar = np.r_[x, 1.0]
        mean = q * xbar
        second = np.outer(mean, mean)
        np.fill_diagonal(second, q * xbar ** 2)
        loss += t @ t - 2 * t @ W @ mean + np.trace(W @ second @ W.T)
        grad += -2 * np.outer(t, mean) + 2 * W @ second
    loss += alpha * np.sum(W[:, :-1] ** 2)
    grad[:, :-1] += 2 * alpha * W[:, :-1]
    return loss, grad


def full_weights(est, layer=0):
    return np.c_[est.coefs_[layer], est.intercepts_[layer]].astype(np.float64)


def reference_reduced(X, targets, subsets, p, alpha):
    """The paper's reduced layer from dense X: one solve per subset, mean."""
    n, d = X.shape
    coef, intercept = np.zeros((len(targets), d)), np.zeros(len(targets))
    for g in subsets:
        Xg = np.c_[X[:, g], np.ones(n)]
        q = np.r_[np.full(len(g), 1 - p), 1.0]
        Q = Xg.T @ Xg * np.outer(q, q)
        np.fill_diagonal(Q, np.diag(Xg.T @ Xg) * q)
        Q[np.arange(len(g)), np.arange(len(g))] += alpha
        P = X[:, targets].T @ Xg * q
        W = np.linalg.solve(Q, P.T).T
        coef[:, g] = W[:, :-1] / len(subsets)
        intercept += W[:, -1] / len(subsets)
    return coef, intercept


@pytest.fixture
def X_counts():
    """Sparse non-negative counts with very unequal feature frequencies."""
    rng = np.random.RandomState(0)
    freq = 1.0 / np.arange(1, 41) ** 1.1
    return sp.csr_matrix(rng.poisson(3 * freq, size=(80, 40)).astype(float))


# ----------------------------------------------------------------------
# The closed form is the minimiser of the marginalised loss
# ----------------------------------------------------------------------
@pytest.mark.parametrize("p, alpha", [(0.5, 1e-5), (0.2, 3.0), (0.0, 0.1)])
def test_gradient_of_expected_loss_vanishes(X_small, p, alpha):
    est = MSDA(corruption_level=p, alpha=alpha, activation="identity")
    est.fit(X_small)
    W = full_weights(est)
    loss, grad = expected_loss_and_gradient(X_small, X_small, W, p, alpha)
    _, grad_scale = expected_loss_and_gradient(X_small, X_small,
                                               np.zeros_like(W), p, alpha)
    assert np.abs(grad).max() < 1e-8 * np.abs(grad_scale).max()
    # And it is a minimum: any step away raises the loss.
    rng = np.random.RandomState(1)
    for _ in range(3):
        step = 1e-2 * rng.normal(size=W.shape)
        assert expected_loss_and_gradient(X_small, X_small, W + step, p,
                                          alpha)[0] > loss


def test_monte_carlo_converges_to_the_expected_loss(X_small):
    p, n_draws = 0.4, 4000
    est = MSDA(corruption_level=p, alpha=0.0).fit(X_small)
    rng = np.random.RandomState(0)
    for W in (full_weights(est), full_weights(est) + 0.05):
        expected, _ = expected_loss_and_gradient(X_small, X_small, W, p, 0.0)
        losses = np.empty(n_draws)
        for k in range(n_draws):
            kept = rng.uniform(size=X_small.shape) >= p
            R = (X_small * kept) @ W[:, :-1].T + W[:, -1]
            losses[k] = np.sum((X_small - R) ** 2)
        error = losses.std() / np.sqrt(n_draws)
        assert abs(losses.mean() - expected) < 4 * error
        assert error < 0.01 * expected  # the test has power


def test_gradient_vanishes_in_every_subset_of_the_reduced_layer(X_counts):
    X = X_counts.toarray()
    est = MSDA(n_components=12, corruption_level=0.3, alpha=0.5,
               random_state=0).fit(X_counts)
    targets = est.reconstructed_features_
    assert len(est.feature_subsets_) == 4
    for g in est.feature_subsets_:
        coef, intercept = reference_reduced(X, targets, [g], 0.3, 0.5)
        W = np.c_[coef[:, g], intercept]
        _, grad = expected_loss_and_gradient(X[:, g], X[:, targets], W,
                                             0.3, 0.5)
        assert np.abs(grad).max() < 1e-8 * np.abs(X).sum()


def test_reduced_matches_the_dense_reference(X_counts):
    X = X_counts.toarray()
    est = MSDA(n_components=12, corruption_level=0.3, alpha=0.5,
               activation="identity", random_state=0).fit(X_counts)
    subsets = est.feature_subsets_
    # A partition of the features into subsets of about r.
    assert_array_equal(np.sort(np.concatenate(subsets)), np.arange(40))
    assert all(len(g) == 10 for g in subsets)
    # The targets are the 12 most often non-zero features.
    counts = (X != 0).sum(axis=0)
    assert counts[est.reconstructed_features_].min() >= np.sort(counts)[-12]
    coef, intercept = reference_reduced(X, est.reconstructed_features_,
                                        subsets, 0.3, 0.5)
    assert_allclose(est.coefs_[0], coef, rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercepts_[0], intercept, rtol=1e-9, atol=1e-12)
    # The output is the mean of the subsets' reconstructions.
    assert_allclose(est.transform(X_counts[:5]).toarray()[:, 40:],
                    X[:5] @ coef.T + intercept, rtol=1e-9, atol=1e-12)


def test_reduced_picks_highest_variance_features_of_signed_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 10)) * np.arange(1, 11)
    est = MSDA(n_components=3, random_state=0).fit(X)
    assert_array_equal(est.reconstructed_features_, [7, 8, 9])


def test_reduced_with_every_feature_is_the_full_layer(X_small):
    full = MSDA(n_layers=2).fit(X_small)
    reduced = MSDA(n_layers=2, n_components=12, random_state=0).fit(X_small)
    assert len(reduced.feature_subsets_) == 1
    for k in range(2):
        assert_allclose(reduced.coefs_[k], full.coefs_[k], rtol=1e-9)
        assert_allclose(reduced.intercepts_[k], full.intercepts_[k],
                        rtol=1e-9, atol=1e-12)


def test_reduced_never_holds_a_d_by_d_matrix():
    d, r = 4000, 100
    rng = np.random.RandomState(0)
    X = sp.random(300, d, density=0.01, format="csr", random_state=rng)
    tracemalloc.start()
    est = MSDA(n_layers=2, n_components=r, random_state=0).fit(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    arrays = [a for stats in est._statistics
              for a in [stats["cross"], *stats["scatter"]] if a is not None]
    assert max(a.size for a in arrays) <= d * r
    # A d x d float64 matrix would be 128 MB; d r float64 is 3.2 MB.
    assert peak < 10 * d * r * 8


# ----------------------------------------------------------------------
# Input kinds
# ----------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"n_layers": 2},
                                    {"n_layers": 2, "n_components": 9,
                                     "random_state": 0}])
def test_sparse_equals_dense(X_counts, params):
    dense = MSDA(**params).fit(X_counts.toarray())
    sparse = MSDA(**params).fit(X_counts)
    for a, b in zip(dense.coefs_ + dense.intercepts_,
                    sparse.coefs_ + sparse.intercepts_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    out = sparse.transform(X_counts)
    assert sp.issparse(out) and out.format == "csr"
    assert_allclose(out.toarray(), dense.transform(X_counts.toarray()),
                    rtol=1e-9, atol=1e-12)
    sparse.set_params(features="layers")
    assert isinstance(sparse.transform(X_counts), np.ndarray)


def test_float32_is_preserved_and_close_to_float64(digits):
    X = digits[0]
    est64 = MSDA(n_layers=2).fit(X)
    est32 = MSDA(n_layers=2).fit(X.astype(np.float32))
    assert all(c.dtype == np.float32 for c in est32.coefs_ + est32.intercepts_)
    out = est32.transform(X.astype(np.float32))
    assert out.dtype == np.float32
    assert_allclose(out, est64.transform(X), atol=1e-4)
    # A float32 input's scatter is summed in float64: the same weights up to
    # float32 rounding of the weights themselves.
    assert_allclose(est32.coefs_[0], est64.coefs_[0], rtol=1e-5, atol=1e-6)


def test_partial_fit_over_chunks_equals_fit(digits):
    X = digits[0]
    chunks = np.array_split(X, 5)
    whole = MSDA(n_layers=2).fit(X)
    parts = MSDA(n_layers=2)
    for chunk in chunks:
        parts.partial_fit(chunk)
    assert parts.n_samples_seen_ == len(X)
    assert_allclose(parts.coefs_[0], whole.coefs_[0], rtol=1e-9, atol=1e-12)
    assert_allclose(parts.intercepts_[0], whole.intercepts_[0], rtol=1e-9,
                    atol=1e-12)
    # Layer 2 saw each chunk through the first layer as it was then: close
    # to, not equal to, the batch fit (measured: 3% of the codes' size).
    parts.set_params(features="last")
    whole.set_params(features="last")
    difference = np.abs(parts.transform(X) - whole.transform(X)).mean()
    assert difference < 0.1 * np.abs(whole.transform(X)).mean()
    # One chunk is a fit, every layer.
    single = MSDA(n_layers=2).partial_fit(X)
    assert_allclose(single.coefs_[1], whole.coefs_[1], rtol=1e-9, atol=1e-12)


def test_partial_fit_of_the_reduced_variant(X_counts):
    whole = MSDA(n_components=9, random_state=0).fit(X_counts)
    parts = MSDA(n_components=9, random_state=0)
    for rows in np.array_split(np.arange(80), 4):
        parts.partial_fit(X_counts[rows])
    # The targets are chosen on the first chunk, then kept.
    first = MSDA(n_components=9, random_state=0).fit(X_counts[:20])
    assert_array_equal(parts.reconstructed_features_,
                       first.reconstructed_features_)
    if np.array_equal(parts.reconstructed_features_,
                      whole.reconstructed_features_):
        assert_allclose(parts.coefs_[0], whole.coefs_[0], rtol=1e-9)
    ref, _ = reference_reduced(X_counts.toarray(), parts.reconstructed_features_,
                               parts.feature_subsets_, 0.5, 1e-5)
    assert_allclose(parts.coefs_[0], ref, rtol=1e-8, atol=1e-10)


def test_dask_incremental(digits):
    pytest.importorskip("dask_ml")
    import dask
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X = digits[0]
    with dask.config.set(scheduler="synchronous"):
        inc = Incremental(MSDA(), scoring=None).fit(da.from_array(X, chunks=(400, 64)))
    assert_allclose(inc.estimator_.coefs_[0], MSDA().fit(X).coefs_[0],
                    rtol=1e-9, atol=1e-12)


def test_score_is_minus_the_clean_reconstruction_loss(X_counts):
    est = MSDA(n_components=9, random_state=0).fit(X_counts)
    X = X_counts.toarray()
    T = X[:, est.reconstructed_features_]
    R = X @ est.coefs_[0].T + est.intercepts_[0]
    assert_allclose(est.score_samples(X_counts), -((T - R) ** 2).sum(axis=1))
    assert_allclose(est.score(X), -((T - R) ** 2).sum(axis=1).mean())


def test_input_is_not_mutated(X_counts):
    X = X_counts.toarray()
    X_before, S_before = X.copy(), X_counts.copy()
    est = MSDA(n_layers=2).fit(X)
    est.transform(X)
    MSDA(n_components=5, random_state=0).fit(X_counts).transform(X_counts)
    assert_array_equal(X, X_before)
    assert_array_equal(X_counts.toarray(), S_before.toarray())


def test_alpha_zero_with_a_dead_feature_is_finite(X_small):
    X = X_small.copy()
    X[:, 3] = 0.0
    est = MSDA(alpha=0.0, n_layers=2).fit(X)
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    W = full_weights(est)
    _, grad = expected_loss_and_gradient(X, X, W, 0.5, 0.0)
    assert np.abs(grad).max() < 1e-8 * np.abs(X).sum()


# ----------------------------------------------------------------------
# Transactional fits
# ----------------------------------------------------------------------
def _state(est):
    return pickle.dumps(sorted((k, v) for k, v in vars(est).items()
                               if k.endswith("_") or k == "_statistics"))


def test_failed_partial_fit_leaves_the_model_unchanged(X_small, monkeypatch):
    est = MSDA(n_layers=3).partial_fit(X_small)
    before = _state(est)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X_small[:, :5])
    calls = []
    real = marginalized_module.solve_layer

    def fail_on_the_third_layer(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(marginalized_module, "solve_layer",
                        fail_on_the_third_layer)
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X_small)
    assert _state(est) == before
    assert est.n_samples_seen_ == len(X_small)


def test_failed_fit_leaves_the_model_unchanged(X_small, monkeypatch):
    est = MSDA(n_layers=2).fit(X_small)
    before = _state(est)
    bad = X_small[:, :5].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    assert _state(est) == before

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(marginalized_module, "solve_layer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X_small[:, :5])
    assert _state(est) == before
    assert est.n_features_in_ == 12


def test_changing_the_shape_between_partial_fits_is_an_error(X_small):
    est = MSDA(n_layers=2).partial_fit(X_small)
    est.set_params(n_layers=3)
    with pytest.raises(ValueError, match="Call fit"):
        est.partial_fit(X_small)
    est.fit(X_small)  # fit starts again
    assert len(est.coefs_) == 3


def test_n_components_larger_than_the_input_is_an_error(X_small):
    with pytest.raises(ValueError, match="at most the number of features"):
        MSDA(n_components=13).fit(X_small)


# ----------------------------------------------------------------------
# Outputs and the scikit-learn ecosystem
# ----------------------------------------------------------------------
@pytest.mark.parametrize("features, width", [("all", 12 + 24), ("layers", 24),
                                             ("last", 12)])
def test_features_and_their_names(X_small, features, width):
    est = MSDA(n_layers=2, features=features).fit(X_small)
    out = est.transform(X_small)
    names = est.get_feature_names_out()
    assert out.shape == (60, width) and len(names) == width
    assert names[-1] == "marginalizeddenoisingautoencoder_layer2_11"
    if features == "all":
        assert_array_equal(out[:, :12], X_small)
        assert names[0] == "x0"
    codes = est._encode(X_small, est.coefs_, est.intercepts_)
    assert_allclose(out[:, -12:], codes[-1])
    assert_allclose(codes[0], np.tanh(X_small @ est.coefs_[0].T
                                      + est.intercepts_[0]))


@pytest.mark.parametrize("activation, func", [
    ("tanh", np.tanh), ("relu", lambda a: np.maximum(a, 0)),
    ("identity", lambda a: a)])
def test_activation_between_layers(X_small, activation, func):
    est = MSDA(n_layers=2, activation=activation, features="layers")
    out = est.fit(X_small).transform(X_small)
    H1 = func(X_small @ est.coefs_[0].T + est.intercepts_[0])
    H2 = func(H1 @ est.coefs_[1].T + est.intercepts_[1])
    assert_allclose(out, np.hstack([H1, H2]), rtol=1e-10, atol=1e-12)
    # The second layer is fitted on the first layer's output.
    assert_allclose(est.coefs_[1], MSDA().fit(H1).coefs_[0], rtol=1e-8,
                    atol=1e-12)


def test_same_model_whatever_the_thread_count():
    # Enough rows for several chunks of the scatter product.
    X = np.random.RandomState(0).uniform(size=(5000, 30))
    with threadpool_limits(1, user_api="blas"):
        one = MSDA(n_layers=2).fit(X)
    with threadpool_limits(2, user_api="blas"):
        two = MSDA(n_layers=2).fit(X)
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        assert_array_equal(a, b)


def test_skops_round_trip(X_counts):
    sio = pytest.importorskip("skops.io")
    est = MSDA(n_layers=2, n_components=9, random_state=0).fit(X_counts)
    dumped = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert all(t.startswith("skdae.") for t in untrusted), untrusted
    restored = sio.loads(dumped, trusted=untrusted)
    assert_array_equal(restored.transform(X_counts).toarray(),
                       est.transform(X_counts).toarray())
    # Saved after fit: without the statistics partial_fit adds to.
    with pytest.raises(ValueError, match="saved after fit"):
        restored.partial_fit(X_counts)
    est = MSDA(n_layers=2, n_components=9, random_state=0).partial_fit(X_counts)
    restored = sio.loads(sio.dumps(est), trusted=untrusted)
    restored.partial_fit(X_counts)  # the statistics came along
    assert restored.n_samples_seen_ == 2 * X_counts.shape[0]


def test_pickle_clone_pipeline_and_grid_search(digits):
    X, y = digits
    est = MSDA(n_layers=2).fit(X)
    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(restored.transform(X), est.transform(X))
    assert not hasattr(clone(est), "coefs_")
    pipe = make_pipeline(MSDA(), RidgeClassifier())
    search = GridSearchCV(pipe, {"marginalizeddenoisingautoencoder__"
                                 "corruption_level": [0.1, 0.5]}, cv=2)
    search.fit(X[:600], y[:600])
    assert search.best_score_ > 0.85


def test_features_lift_a_linear_classifier_on_masked_digits(digits):
    # Trained on clean digits, tested on digits with 30% of the pixels
    # masked: the denoising layers' codes carry the classifier across the
    # corruption. (On clean test digits the lift is within a point.)
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, random_state=0, stratify=y)
    X_test = X_test * (np.random.RandomState(0).uniform(size=X_test.shape)
                       >= 0.3)
    clf = RidgeClassifier()
    raw = clf.fit(X_train, y_train).score(X_test, y_test)
    msda = MSDA(n_layers=2, features="layers").fit(X_train)
    lifted = clf.fit(msda.transform(X_train), y_train).score(
        msda.transform(X_test), y_test)
    # Measured over four splits: 0.669 +- 0.015 raw, 0.829 +- 0.002 mSDA.
    assert lifted > raw + 0.08
