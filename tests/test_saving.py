"""Saved models: pickle, joblib and skops, for every public estimator.

Issue 14, items 3 and 4: a skops file lists only public skdae types, a
model saved after ``fit`` is about the size of its weights, and what
``partial_fit`` resumes after loading.
"""

import inspect
import io
import pickle

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, clone

import skdae

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")

PUBLIC_ESTIMATORS = sorted(
    name for name in skdae.__all__
    if inspect.isclass(getattr(skdae, name))
    and issubclass(getattr(skdae, name), BaseEstimator))

# Small settings of every public estimator, with 64-unit layers on the 64
# digits pixels so that the weights dominate what is saved.
SETTINGS = {
    "DenoisingAutoencoder": {"n_components": 64, "max_iter": 2},
    "StackedDenoisingAutoencoder": {"hidden_layer_sizes": (64, 32),
                                    "max_iter": 2},
    "StackedDenoisingAutoencoderClassifier": {
        "hidden_layer_sizes": (64, 32), "max_iter": 2,
        "pretrain_max_iter": 1},
    "MarginalizedDenoisingAutoencoder": {"n_layers": 2},
    "TabularDenoisingAutoencoder": {"hidden_layer_sizes": (64, 64),
                                    "max_iter": 2},
    "DenoisingAutoencoderImputer": {"hidden_layer_sizes": (64, 64),
                                    "max_iter": 2},
}


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def make(name):
    if name not in SETTINGS:
        pytest.fail(f"{name} is public: give it small settings in SETTINGS "
                    "of tests/test_saving.py")
    cls = getattr(skdae, name)
    params = dict(SETTINGS[name])
    if "random_state" in cls().get_params():
        params["random_state"] = 0
    return cls(**params)


def supervised(est):
    return est.__sklearn_tags__().target_tags.required


def fit(est, X, y, method="fit"):
    if supervised(est):
        kwargs = ({"classes": np.unique(y)} if method == "partial_fit"
                  and not hasattr(est, "classes_") else {})
        return getattr(est, method)(X, y, **kwargs)
    return getattr(est, method)(X)


def output(est, X):
    """What the model computes: probabilities or codes."""
    return (est.predict_proba(X) if hasattr(est, "predict_proba")
            else est.transform(X))


def weight_bytes(est):
    """Bytes of the distinct arrays among the public fitted attributes.

    Attributes ending in "_" (``coefs_``, ``components_``, ...), through
    lists, tuples, dicts (the imputer's ``networks_``) and the estimators
    they hold (a stack's layers).
    """
    arrays = {}

    def collect(value):
        if isinstance(value, np.ndarray):
            arrays[id(value)] = value.nbytes
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)
        elif isinstance(value, dict):
            for v in value.values():
                collect(v)
        elif isinstance(value, BaseEstimator):
            for k, v in vars(value).items():
                if k.endswith("_") and not k.startswith("_"):
                    collect(v)

    collect(est)
    return sum(arrays.values())


def test_every_public_estimator_is_covered():
    assert set(SETTINGS) == set(PUBLIC_ESTIMATORS)


@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_public_classes_are_saved_under_their_public_name(data, name):
    X, y = data
    cls = getattr(skdae, name)
    assert cls.__module__ == "skdae"
    est = fit(make(name), X, y)
    saved = pickle.dumps(est)
    assert b"skdae._" not in saved  # no private module named in the file
    assert_array_equal(output(pickle.loads(saved), X), output(est, X))
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    assert_array_equal(output(joblib.load(buffer), X), output(est, X))
    assert clone(est).get_params() == est.get_params()
    # Methods keep their source (the class's is not found through "skdae").
    assert "def fit(self" in inspect.getsource(cls.fit)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_skops_round_trip_trusts_public_types_only(data, name, method):
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    if not hasattr(getattr(skdae, name), method):
        pytest.skip(f"{name} has no {method}")
    X, y = data
    est = fit(make(name), X, y, method)
    dumped = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert f"skdae.{name}" in untrusted
    assert all(t.startswith("skdae.") and t[len("skdae."):] in skdae.__all__
               for t in untrusted), untrusted
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.loads(dumped)
    loaded = sio.loads(dumped, trusted=untrusted)
    assert_array_equal(output(loaded, X), output(est, X))


@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_files_naming_the_private_modules_still_load(data, name, monkeypatch):
    # As written before the classes were named by their public path.
    X, y = data
    cls = getattr(skdae, name)
    private = inspect.getmodule(cls.fit).__name__
    assert private.startswith("skdae._")
    est = fit(make(name), X, y)
    monkeypatch.setattr(cls, "__module__", private)
    saved = pickle.dumps(est)
    assert private.encode() in saved
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    dumped = sio.dumps(est)
    monkeypatch.undo()
    assert_array_equal(output(pickle.loads(saved), X), output(est, X))
    untrusted = sio.get_untrusted_types(data=dumped)
    assert f"{private}.{name}" in untrusted
    loaded = sio.loads(dumped, trusted=untrusted)
    assert type(loaded) is cls
    assert_array_equal(output(loaded, X), output(est, X))


def n_estimators(est):
    """The estimator and those its public fitted attributes hold."""
    inner = [v for k, v in vars(est).items() if k.endswith("_")]
    inner = [e for v in inner for e in (v if isinstance(v, list) else [v])
             if isinstance(e, BaseEstimator)]
    return 1 + sum(n_estimators(e) for e in inner)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_model_saved_after_fit_is_about_its_weights(data, name, dtype):
    X, y = data
    est = fit(make(name), X.astype(dtype), y)
    size, weights = len(pickle.dumps(est)), weight_bytes(est)
    # Besides the weights, a fixed part per estimator (a stack's layers
    # count): the random generator's state (2.7 kB), the parameters, the
    # loss curve; no optimizer state, no training statistics.
    # A table's column statistics (means, scales, categories of every
    # column) are part of the model as much as its weights.
    columns = len(pickle.dumps(getattr(est, "_columns", None)))
    # The imputer's averaged networks count as estimators (their arrays'
    # headers and dicts).
    parts = n_estimators(est) + len(getattr(est, "networks_", [None])) - 1
    assert size - weights - columns < 4_000 * parts, (
        size, weights, columns)
    if dtype == np.float64:  # weights of 34 kB and more
        assert weights > 30_000
        assert size < 1.2 * weights, (size, weights)


@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_what_partial_fit_resumes_after_loading(data, name):
    if not hasattr(getattr(skdae, name), "partial_fit"):
        pytest.skip(f"{name} has no partial_fit")
    X, y = data
    # After fit: the minibatch estimators continue from the saved weights
    # with a new optimizer state; the closed-form one cannot add rows.
    est = fit(make(name), X, y)
    loaded = pickle.loads(pickle.dumps(est))
    if name == "MarginalizedDenoisingAutoencoder":
        with pytest.raises(ValueError, match="saved after fit"):
            loaded.partial_fit(X)
        assert_array_equal(output(loaded, X), output(est, X))
    else:
        n_iter = loaded.n_iter_
        fit(loaded, X, y, "partial_fit")
        assert loaded.n_iter_ > n_iter

    # After partial_fit: the file keeps the training state (optimizer
    # moments, scatter statistics), so training continues exactly as it
    # would have without saving.
    est = fit(make(name), X, y, "partial_fit")
    saved = pickle.dumps(est)
    assert len(saved) > 1.5 * weight_bytes(est)
    loaded = pickle.loads(saved)
    fit(est, X[::2], y[::2], "partial_fit")
    fit(loaded, X[::2], y[::2], "partial_fit")
    assert_array_equal(output(loaded, X), output(est, X))


@pytest.mark.parametrize("name", [name for name in PUBLIC_ESTIMATORS
                                  if "warm_start" in make(name).get_params()])
def test_warm_start_after_loading_trains_as_in_memory(data, name):
    X, y = data
    est = fit(make(name).set_params(warm_start=True), X, y)
    loaded = pickle.loads(pickle.dumps(est))
    fit(est, X[::2], y[::2])
    fit(loaded, X[::2], y[::2])
    assert_array_equal(output(loaded, X), output(est, X))
