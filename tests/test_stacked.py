"""Tests of StackedDenoisingAutoencoder."""

import io
import pickle
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from skdae import DenoisingAutoencoder, StackedDenoisingAutoencoder

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


def _small(**params):
    defaults = dict(hidden_layer_sizes=(12, 6), max_iter=5, random_state=0)
    defaults.update(params)
    return StackedDenoisingAutoencoder(**defaults)


def test_layers_are_denoising_autoencoders_on_codes_below(digits):
    X, _ = digits
    sda = _small(hidden_layer_sizes=(20, 10, 5)).fit(X)
    assert sda.n_layers_ == 3
    assert all(isinstance(ae, DenoisingAutoencoder) for ae in sda.autoencoders_)
    assert [ae.n_components_ for ae in sda.autoencoders_] == [20, 10, 5]
    assert [ae.n_features_in_ for ae in sda.autoencoders_] == [64, 20, 10]
    assert sda.n_components_ == 5
    assert sda.n_iter_ == 15

    # The same result as training the layers one by one by hand.
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=3)
    codes = X
    for k, (width, seed) in enumerate(zip((20, 10, 5), seeds)):
        ae = DenoisingAutoencoder(width, max_iter=5, random_state=seed)
        ae.fit(codes)
        assert_allclose(ae.components_, sda.autoencoders_[k].components_)
        codes = ae.transform(codes)
    assert_allclose(codes, sda.transform(X))


def test_loss_auto_is_cross_entropy_above_a_sigmoid_layer():
    X = np.random.RandomState(0).normal(size=(60, 8))  # not in [0, 1]
    sda = _small().fit(X)
    assert [ae.loss_ for ae in sda.autoencoders_] == ["squared_error",
                                                      "cross_entropy"]
    sda = _small(activation="tanh").fit(X)
    assert [ae.loss_ for ae in sda.autoencoders_] == ["squared_error"] * 2


def test_per_layer_parameters(digits):
    X, _ = digits
    sda = _small(corruption=["masking", "gaussian"],
                 corruption_level=np.array([0.4, 0.1]),
                 uncorrupted_weight=(0.5, 1.0),
                 activation=["sigmoid", "tanh"],
                 loss=["cross_entropy", "auto"]).fit(X)
    first, second = sda.autoencoders_
    assert (first.corruption, second.corruption) == ("masking", "gaussian")
    assert (first.corruption_level, second.corruption_level) == (0.4, 0.1)
    assert (first.uncorrupted_weight, second.uncorrupted_weight) == (0.5, 1.0)
    assert (first.activation, second.activation) == ("sigmoid", "tanh")
    assert (first.loss_, second.loss_) == ("cross_entropy", "cross_entropy")

    sda = _small(corruption_level=0.2, activation="relu").fit(X)
    assert all(ae.corruption_level == 0.2 and ae.activation == "relu"
               for ae in sda.autoencoders_)


@pytest.mark.parametrize("params, message", [
    (dict(corruption_level=[0.1, 0.2, 0.3]), "corruption_level has 3 values"),
    (dict(activation=["tanh"]), "activation has 1 values"),
    (dict(hidden_layer_sizes=[]), "hidden_layer_sizes must be"),
    (dict(hidden_layer_sizes=[4, 0]), "hidden_layer_sizes must be"),
    (dict(hidden_layer_sizes=[4.5]), "hidden_layer_sizes must be"),
    (dict(corruption_level=[0.1, 1.5]), "corruption_level=1.5 corrupts"),
])
def test_bad_per_layer_parameters_say_what_to_do(digits, params, message):
    X, _ = digits
    with pytest.raises(ValueError, match=message):
        _small(**params).fit(X)


def test_bad_per_layer_value_is_rejected(digits):
    X, _ = digits
    with pytest.raises(InvalidParameterError, match="activation"):
        _small(activation=["sigmoid", "softsign"]).fit(X)
    with pytest.raises(InvalidParameterError, match="corruption_level"):
        _small(corruption_level=[0.1, -0.2]).fit(X)


def test_transform_and_inverse_transform(digits):
    X, _ = digits
    sda = _small().fit(X)
    H = sda.transform(X)
    assert H.shape == (X.shape[0], 6)
    assert np.all((H >= 0) & (H <= 1))
    Z = sda.inverse_transform(H)
    assert Z.shape == X.shape
    assert np.all(np.isfinite(Z))
    # Decoding is the composition of the layers' decoders.
    expected = sda.autoencoders_[0].inverse_transform(
        sda.autoencoders_[1].inverse_transform(H))
    assert_allclose(Z, expected)
    with pytest.raises(ValueError, match="Pass the output of transform"):
        sda.inverse_transform(X)


def test_reconstruction_beats_the_mean(digits):
    X, _ = digits
    sda = _small(hidden_layer_sizes=(48, 32), max_iter=40,
                 corruption_level=0.1, learning_rate_init=1e-2).fit(X)
    error = np.mean((sda.inverse_transform(sda.transform(X)) - X) ** 2)
    baseline = np.mean((X - X.mean(axis=0)) ** 2)
    assert error < 0.7 * baseline


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(digits, dtype):
    X, _ = digits
    sda = _small().fit(X.astype(dtype))
    assert sda.transform(X.astype(dtype)).dtype == dtype
    assert sda.inverse_transform(sda.transform(X.astype(dtype))).dtype == dtype


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(digits, fmt):
    X, _ = digits
    X_sparse = sp.csr_matrix(X).asformat(fmt)
    dense = _small().fit(X)
    sparse = _small().fit(X_sparse)
    assert_allclose(sparse.transform(X_sparse), dense.transform(X), rtol=1e-5,
                    atol=1e-7)


def test_input_not_mutated(digits):
    X, _ = digits
    X_copy = X.copy()
    sda = _small(corruption=["salt_and_pepper", "gaussian"]).fit(X)
    sda.partial_fit(X)
    sda.transform(X)
    assert_array_equal(X, X_copy)


def test_random_state_reproducibility(digits):
    X, _ = digits
    a = _small(random_state=3).fit(X).transform(X)
    b = _small(random_state=3).fit(X).transform(X)
    c = _small(random_state=4).fit(X).transform(X)
    assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_same_layers_whatever_the_number_of_threads():
    X = np.random.RandomState(0).uniform(size=(300, 200))
    models = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads, user_api="blas"):
            models.append(_small(hidden_layer_sizes=(150, 20)).fit(X))
    for first, second in zip(*(m.autoencoders_ for m in models)):
        assert_array_equal(first.components_, second.components_)


def test_partial_fit_runs_one_epoch_per_layer(digits):
    X, _ = digits
    sda = _small(random_state=1)
    sda.partial_fit(X)
    assert [ae.n_iter_ for ae in sda.autoencoders_] == [1, 1]
    # One call is one epoch of fit, layer after layer.
    fitted = _small(random_state=1, max_iter=1).fit(X)
    assert_allclose(sda.transform(X), fitted.transform(X))
    sda.partial_fit(X)
    assert [ae.n_iter_ for ae in sda.autoencoders_] == [2, 2]
    with pytest.raises(ValueError, match="features"):
        sda.partial_fit(X[:, :10])


def test_verbose_reports_layers_and_epochs(digits):
    X, _ = digits
    out = io.StringIO()
    with redirect_stdout(out):
        _small(max_iter=2, verbose=1).fit(X)
    text = out.getvalue()
    assert re.search(r"Layer 1/2: 64 -> 12 units, corruption=masking\(0.3\)",
                     text)
    assert re.search(r"Layer 2/2: 12 -> 6 units", text)
    for k in (1, 2):
        assert len(re.findall(
            rf"\[StackedDenoisingAutoencoder layer {k}/2\] epoch \d+/2, "
            r"loss = \d+\.\d+", text)) == 2


def test_pickle_clone_and_feature_names(digits):
    X, _ = digits
    sda = _small().fit(X)
    restored = pickle.loads(pickle.dumps(sda))
    assert_array_equal(restored.transform(X), sda.transform(X))
    cloned = clone(sda)
    assert not hasattr(cloned, "autoencoders_")
    assert cloned.get_params() == sda.get_params()
    assert list(sda.get_feature_names_out()) == [
        f"stackeddenoisingautoencoder{i}" for i in range(6)]


def test_pipeline_and_grid_search(digits):
    X, y = digits
    pipe = make_pipeline(
        StackedDenoisingAutoencoder((64, 32), max_iter=20, corruption_level=0.2,
                                    learning_rate_init=3e-3, random_state=0),
        LogisticRegression(max_iter=500))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.7
    search = GridSearchCV(
        pipe, {"stackeddenoisingautoencoder__corruption_level": [0.1, [0.2, 0.0]]},
        cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.6
