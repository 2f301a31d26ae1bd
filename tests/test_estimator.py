"""Behaviour of DenoisingAutoencoder as a scikit-learn estimator."""

import pickle
import re
import warnings
from contextlib import contextmanager

import joblib
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from skdae import DenoisingAutoencoder


def quiet(**params):
    """A small model that runs all its epochs without warnings."""
    params.setdefault("n_components", 8)
    params.setdefault("max_iter", 5)
    params.setdefault("random_state", 0)
    params.setdefault("n_iter_no_change", 1000)
    return DenoisingAutoencoder(**params)


def fit_quiet(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


# ---------------------------------------------------------------------------
# dtypes, input kinds, mutation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_in_float32_out(X_small, dtype):
    dae = fit_quiet(quiet(), X_small.astype(dtype))
    assert dae.components_.dtype == dtype
    assert dae.transform(X_small.astype(dtype)).dtype == dtype
    assert dae.inverse_transform(dae.transform(X_small)).dtype == np.float64


def test_integer_input_trains_in_float64():
    X = np.random.RandomState(0).randint(0, 5, size=(40, 6))
    dae = fit_quiet(quiet(), X)
    assert dae.components_.dtype == np.float64
    assert dae.loss_ == "squared_error"


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_input_is_not_mutated(X_small, fmt):
    X = X_small.copy()
    X[X < 0.3] = 0
    X = X if fmt == "dense" else sp.csr_matrix(X).asformat(fmt)
    before = X.copy()
    dae = fit_quiet(quiet(corruption_level=0.5), X)
    dae.partial_fit(X)
    dae.transform(X)
    dae.score_samples(X)
    if fmt == "dense":
        assert_array_equal(X, before)
    else:
        assert_array_equal(X.toarray(), before.toarray())
        assert_array_equal(X.data, before.data)


@pytest.mark.parametrize("corruption", ["masking", "gaussian",
                                        "salt_and_pepper"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(X_small, corruption, fmt):
    X = X_small.copy()
    X[X < 0.5] = 0
    dense = fit_quiet(quiet(corruption=corruption), X)
    sparse = fit_quiet(quiet(corruption=corruption),
                       sp.csr_matrix(X).asformat(fmt))
    assert_allclose(sparse.components_, dense.components_, rtol=1e-7,
                    atol=1e-9)
    assert_allclose(sparse.transform(sp.csr_matrix(X)), dense.transform(X),
                    rtol=1e-7, atol=1e-9)
    assert_allclose(sparse.score_samples(sp.csc_matrix(X)),
                    dense.score_samples(X), rtol=1e-7)


def test_readonly_memmap_input(X_small, tmp_path):
    path = tmp_path / "X.joblib"
    joblib.dump(X_small, path)
    X_mm = joblib.load(path, mmap_mode="r")
    assert not X_mm.flags.writeable
    from_mm = fit_quiet(quiet(), X_mm)
    from_array = fit_quiet(quiet(), X_small)
    assert_array_equal(from_mm.components_, from_array.components_)
    assert_array_equal(from_mm.transform(X_mm), from_array.transform(X_small))


def test_fortran_ordered_input(X_small):
    a = fit_quiet(quiet(), np.asfortranarray(X_small))
    b = fit_quiet(quiet(), X_small)
    assert_array_equal(a.components_, b.components_)


# ---------------------------------------------------------------------------
# Reproducibility, pickling, cloning
# ---------------------------------------------------------------------------
def test_same_random_state_same_model(X_small):
    a = fit_quiet(quiet(), X_small)
    b = fit_quiet(quiet(), X_small)
    c = fit_quiet(quiet(random_state=1), X_small)
    assert_array_equal(a.components_, b.components_)
    assert_array_equal(a.transform(X_small), b.transform(X_small))
    assert not np.allclose(a.components_, c.components_)


@contextmanager
def numba_threads(n):
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("limit", [threadpool_limits, numba_threads])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_the_model(dtype, limit):
    # Several blocks of rows (64) and of hidden units (256) per minibatch.
    X = np.random.RandomState(0).uniform(size=(1500, 300)).astype(dtype)
    X[X < 0.5] = 0
    models = []
    for n_threads in (1, 2):
        with limit(min(n_threads, numba.config.NUMBA_NUM_THREADS)):
            models.append(fit_quiet(
                quiet(n_components=600, batch_size=250, max_iter=2), X))
            models.append(fit_quiet(
                quiet(n_components=600, batch_size=250, max_iter=2),
                sp.csr_matrix(X)))
    assert_array_equal(models[0].components_, models[2].components_)
    assert_array_equal(models[1].components_, models[3].components_)


def test_pickle_round_trip(X_small):
    dae = fit_quiet(quiet(), X_small)
    restored = pickle.loads(pickle.dumps(dae))
    assert_array_equal(restored.transform(X_small), dae.transform(X_small))
    assert_array_equal(restored.score_samples(X_small),
                       dae.score_samples(X_small))
    # Tied weights stay one array, so training continues correctly.
    assert restored.decoder_components_ is restored.components_
    # Saved after fit: without the optimizer state, resumed fresh.
    assert "_optimizer_state" not in pickle.loads(pickle.dumps(dae)).__dict__
    restored.partial_fit(X_small)
    dae._optimizer_state = None
    dae.partial_fit(X_small)
    assert_array_equal(restored.components_, dae.components_)
    # Saved after partial_fit: with it.
    restored = pickle.loads(pickle.dumps(dae))
    restored.partial_fit(X_small)
    dae.partial_fit(X_small)
    assert_array_equal(restored.components_, dae.components_)


def test_clone_is_unfitted(X_small):
    dae = fit_quiet(quiet(), X_small)
    cloned = clone(dae)
    assert cloned.get_params() == dae.get_params()
    with pytest.raises(NotFittedError):
        cloned.transform(X_small)


# ---------------------------------------------------------------------------
# fit / partial_fit / warm_start
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_epochs_equal_fit(X_small, solver):
    fitted = fit_quiet(quiet(solver=solver, max_iter=4), X_small)
    incremental = quiet(solver=solver)
    for _ in range(4):
        incremental.partial_fit(X_small)
    assert_array_equal(incremental.components_, fitted.components_)
    assert_allclose(incremental.loss_curve_, fitted.loss_curve_)
    assert incremental.n_iter_ == fitted.n_iter_ == 4
    assert incremental.t_ == fitted.t_ == 4 * X_small.shape[0]


def test_partial_fit_first_call_decides_the_loss(X_small):
    dae = quiet()
    dae.partial_fit(X_small)
    assert dae.loss_ == "cross_entropy"
    with pytest.raises(ValueError, match="MinMaxScaler"):
        dae.partial_fit(X_small * 3)
    dae.partial_fit(X_small)  # still usable after the error


def test_warm_start_continues_training(X_small):
    dae = fit_quiet(quiet(warm_start=True), X_small)
    first_curve = list(dae.loss_curve_)
    components = dae.components_.copy()
    fit_quiet(dae, X_small)
    assert dae.n_iter_ == 2 * len(first_curve)
    assert dae.loss_curve_[:len(first_curve)] == first_curve
    assert not np.array_equal(dae.components_, components)
    cold = fit_quiet(quiet(), X_small)
    assert dae.loss_curve_[-1] < cold.loss_curve_[-1]


def test_untied_weights_have_their_own_decoder(X_small):
    dae = fit_quiet(quiet(tied_weights=False), X_small)
    assert dae.decoder_components_ is not dae.components_
    assert dae.decoder_components_.shape == dae.components_.shape
    tied = fit_quiet(quiet(), X_small)
    assert tied.decoder_components_ is tied.components_


def test_loss_auto_follows_the_data_range(X_small):
    assert fit_quiet(quiet(), X_small).loss_ == "cross_entropy"
    assert fit_quiet(quiet(), X_small - 0.5).loss_ == "squared_error"
    assert fit_quiet(quiet(), X_small * 2).loss_ == "squared_error"
    explicit = fit_quiet(quiet(loss="squared_error"), X_small)
    assert explicit.loss_ == "squared_error"


def test_training_reduces_the_loss(digits):
    X, _ = digits
    dae = fit_quiet(quiet(n_components=32, max_iter=20), X)
    assert dae.loss_curve_[-1] < 0.6 * dae.loss_curve_[0]
    assert dae.best_loss_ == min(dae.loss_curve_)


# ---------------------------------------------------------------------------
# Progress, convergence, early stopping
# ---------------------------------------------------------------------------
def test_verbose_prints_one_line_per_epoch(X_small, capsys):
    fit_quiet(quiet(verbose=1, max_iter=3), X_small)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    pattern = (r"\[DenoisingAutoencoder\] epoch (\d+)/3, "
               r"loss = \d+\.\d+, time = \d+\.\d+s, elapsed = \d+\.\ds, "
               r"remaining ~ \d+\.\ds")
    for epoch, line in enumerate(lines, 1):
        match = re.fullmatch(pattern, line)
        assert match, line
        assert int(match.group(1)) == epoch


def test_verbose_shows_validation_loss(digits, capsys):
    X, _ = digits
    fit_quiet(quiet(verbose=1, max_iter=2, early_stopping=True), X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert all(re.search(r"validation score = -\d+\.\d+", line)
               for line in lines)


def test_convergence_warning_when_max_iter_ends_training(X_small):
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        DenoisingAutoencoder(n_components=4, max_iter=3,
                             random_state=0).fit(X_small)


def test_no_warning_when_converged(X_small):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        dae = DenoisingAutoencoder(n_components=4, max_iter=50, tol=1e3,
                                   n_iter_no_change=2, random_state=0)
        dae.fit(X_small)
    # As in MLP: the first epoch sets best_loss_, then training stops once
    # more than n_iter_no_change epochs in a row failed to improve by tol.
    assert dae.n_iter_ == 2 + 2


def test_early_stopping_keeps_the_best_validation_weights(digits):
    X, _ = digits
    dae = DenoisingAutoencoder(n_components=16, max_iter=200,
                               early_stopping=True, n_iter_no_change=3,
                               tol=0.05, learning_rate_init=0.01,
                               random_state=0)
    dae.fit(X)
    assert dae.n_iter_ < 200
    assert len(dae.validation_scores_) == dae.n_iter_
    assert dae.best_validation_score_ == max(dae.validation_scores_)


def test_early_stopping_restores_the_best_epoch(digits):
    """The returned model is the best-validated one, not the last one."""
    X, _ = digits
    # A large step size makes the validation loss turn up after a while.
    params = dict(n_components=64, early_stopping=True, n_iter_no_change=2,
                  tol=0.0, learning_rate_init=0.1, corruption_level=0.0,
                  validation_fraction=0.2, random_state=0)
    stopped = DenoisingAutoencoder(max_iter=100, **params).fit(X)
    best_epoch = int(np.argmax(stopped.validation_scores_)) + 1
    assert best_epoch < stopped.n_iter_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rerun = DenoisingAutoencoder(max_iter=best_epoch, **params).fit(X)
    assert_array_equal(stopped.components_, rerun.components_)


def test_early_stopping_rejects_tiny_validation_sets(X_small):
    with pytest.raises(ValueError, match="validation set is too small"):
        quiet(early_stopping=True).fit(X_small[:10])


# ---------------------------------------------------------------------------
# transform / inverse_transform / scores / feature names / pandas
# ---------------------------------------------------------------------------
def test_transform_is_deterministic_and_bounded(X_small):
    dae = fit_quiet(quiet(), X_small)
    H = dae.transform(X_small)
    assert_array_equal(H, dae.transform(X_small))
    assert H.shape == (60, 8) and (H > 0).all() and (H < 1).all()
    Z = dae.inverse_transform(H)
    assert Z.shape == X_small.shape and (Z > 0).all() and (Z < 1).all()
    expected = 1 / (1 + np.exp(-(H @ dae.components_ + dae.intercept_visible_)))
    assert_allclose(Z, expected, rtol=1e-10)


def test_score_samples_and_score(X_small):
    dae = fit_quiet(quiet(loss="squared_error", max_iter=30), X_small)
    Z = dae.inverse_transform(dae.transform(X_small))
    expected = -0.5 * ((Z - X_small) ** 2).sum(axis=1)
    assert_allclose(dae.score_samples(X_small), expected, rtol=1e-10)
    assert dae.score(X_small) == pytest.approx(expected.mean())


def test_feature_names_out(X_small):
    dae = fit_quiet(quiet(n_components=3), X_small)
    assert list(dae.get_feature_names_out()) == [
        "denoisingautoencoder0", "denoisingautoencoder1",
        "denoisingautoencoder2"]


def test_pandas_output(X_small):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X_small, columns=[f"f{i}" for i in range(12)])
    dae = quiet(n_components=3).set_output(transform="pandas")
    out = fit_quiet(dae, df).transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["denoisingautoencoder0",
                                 "denoisingautoencoder1",
                                 "denoisingautoencoder2"]
    assert list(dae.feature_names_in_) == list(df.columns)
    assert_allclose(out.to_numpy(), dae.transform(X_small))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_non_finite_input_is_rejected(X_small, bad):
    # NaN is a missing entry (tests/test_swap_missing.py); infinity is not.
    X = X_small.copy()
    X[3, 4] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        quiet().fit(X)
    dae = fit_quiet(quiet(), X_small)
    with pytest.raises(ValueError, match="NaN|infinity"):
        dae.transform(X)


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="0 sample"):
        quiet().fit(np.empty((0, 5)))


def test_wrong_feature_count(X_small):
    dae = fit_quiet(quiet(), X_small)
    with pytest.raises(ValueError, match="12 features"):
        dae.transform(X_small[:, :5])
    with pytest.raises(ValueError, match="12 features"):
        dae.partial_fit(X_small[:, :5])


def test_wrong_code_width_in_inverse_transform(X_small):
    dae = fit_quiet(quiet(), X_small)
    with pytest.raises(ValueError, match="n_components=8.*transform"):
        dae.inverse_transform(np.zeros((2, 5)))


@pytest.mark.parametrize("params", [
    {"n_components": 0}, {"corruption": "dropout"}, {"corruption_level": -0.1},
    {"uncorrupted_weight": 1.5}, {"activation": "softmax"}, {"loss": "mse"},
    {"solver": "lbfgs"}, {"batch_size": 0}, {"learning_rate_init": 0},
    {"validation_fraction": 1.0},
])
def test_invalid_parameters(X_small, params):
    with pytest.raises(ValueError, match=list(params)[0]):
        DenoisingAutoencoder(**params).fit(X_small)


@pytest.mark.parametrize("corruption", ["masking", "salt_and_pepper"])
def test_corruption_fraction_must_be_below_one(X_small, corruption):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        quiet(corruption=corruption, corruption_level=1.0).fit(X_small)
    # Gaussian noise takes any standard deviation.
    fit_quiet(quiet(corruption="gaussian", corruption_level=1.5), X_small)


def test_emphasis_needs_a_fractional_corruption(X_small):
    with pytest.raises(ValueError, match="uncorrupted_weight"):
        quiet(corruption="gaussian", uncorrupted_weight=0.5).fit(X_small)
    with pytest.raises(ValueError, match="nothing would be learned"):
        quiet(corruption_level=0, uncorrupted_weight=0).fit(X_small)


def test_cross_entropy_needs_unit_range(X_small):
    with pytest.raises(ValueError,
                       match="MinMaxScaler.*loss='squared_error'"):
        quiet(loss="cross_entropy").fit(X_small * 2)
    # Scores of out-of-range data are fine (test data after a scaler).
    dae = fit_quiet(quiet(loss="cross_entropy"), X_small)
    assert np.isfinite(dae.score_samples(X_small * 1.1)).all()


def test_divergence_raises_and_keeps_finite_weights():
    X = np.random.RandomState(0).normal(scale=1e3, size=(100, 10))
    dae = quiet(solver="sgd", learning_rate_init=1e3, activation="identity",
                max_iter=20)
    with pytest.raises(ValueError, match="diverged.*learning_rate_init"):
        dae.fit(X)
    # Left as before the call: unfitted, no weights at all (let alone NaN).
    with pytest.raises(NotFittedError):
        dae.transform(X)


# ---------------------------------------------------------------------------
# Pipelines and model selection
# ---------------------------------------------------------------------------
def _larger_than_a_megabyte(digits):
    X, y = digits
    rng = np.random.RandomState(0)
    X_big = np.vstack([X, np.clip(X + rng.normal(scale=0.05, size=X.shape),
                                  0, 1)])
    assert X_big.nbytes > 1e6  # joblib memory-maps it for the workers
    return X_big, np.concatenate([y, y])


def test_grid_search_pipeline_in_parallel(digits):
    X, y = _larger_than_a_megabyte(digits)
    pipe = Pipeline([
        ("scale", MinMaxScaler()),
        ("dae", DenoisingAutoencoder(n_components=32, max_iter=5,
                                     random_state=0)),
        ("clf", LogisticRegression(max_iter=300)),
    ])
    search = GridSearchCV(pipe, {"dae__corruption_level": [0.0, 0.3]}, cv=2,
                          n_jobs=2, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_params_["dae__corruption_level"] in (0.0, 0.3)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.score(X, y) > 0.8


def test_bare_autoencoder_in_grid_search_on_memmapped_data(digits):
    X, _ = _larger_than_a_megabyte(digits)
    search = GridSearchCV(
        DenoisingAutoencoder(n_components=16, max_iter=3, random_state=0),
        {"corruption": ["masking", "gaussian"]}, cv=2, n_jobs=2,
        error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores < 0).all()


def test_concurrent_fits_keep_single_threaded_blas_until_the_last_ends():
    """Fits on threads of one process must not undo each other's BLAS limit."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"]

    before = blas_threads()
    X = np.random.RandomState(0).uniform(size=(400, 30))
    reference = fit_quiet(quiet(max_iter=3), X).components_
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: fit_quiet(quiet(max_iter=3), X),
                               range(8)))
    for model in models:
        assert_array_equal(model.components_, reference)
    assert blas_threads() == before
