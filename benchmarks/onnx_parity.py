"""Largest difference between exported ONNX graphs and skdae, per estimator.

Runs the cases of tests/test_onnx.py (every activation, tied and untied
weights, every ``features`` option and 1-3 layers of the marginalized
autoencoder, its reduced variant fitted on dense and sparse input, on the
digits and on random data; the tabular autoencoder and the imputer on the
digits, wine and random data with 10% of the entries missing, every
activation, ``features`` "all" and "last", with and without
``add_indicator``) and prints, per estimator and dtype, the largest
``|onnxruntime - skdae| / max |skdae|`` (probabilities for the classifier,
whose labels are checked to be identical; per column for the imputer,
whose columns keep their units, and whose observed entries are checked to
pass through exactly). Needs the onnx extra.
"""

import itertools
import warnings

import numpy as np
import onnxruntime as ort
import scipy.sparse as sp
import skl2onnx
from sklearn.datasets import load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning

import skdae.onnx  # noqa: F401 (registers the converters)
from skdae import (
    DenoisingAutoencoder,
    DenoisingAutoencoderImputer,
    MarginalizedDenoisingAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
    TabularDenoisingAutoencoder,
)

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]


def run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def cases(X, y, reduced):
    """(name, fitted model, what it computes on X) for the test cases."""
    for act, tied in itertools.product(ACTIVATIONS, [True, False]):
        m = DenoisingAutoencoder(8, activation=act, tied_weights=tied,
                                 max_iter=3, random_state=0).fit(X)
        yield "DenoisingAutoencoder", m, m.transform(X)
    for act in ["sigmoid", ["relu", "tanh"], ["identity", "sigmoid"]]:
        m = StackedDenoisingAutoencoder((10, 6), activation=act,
                                        tied_weights=False, max_iter=3,
                                        random_state=0).fit(X)
        yield "StackedDenoisingAutoencoder", m, m.transform(X)
    for act in ACTIVATIONS:
        m = StackedDenoisingAutoencoderClassifier(
            (10, 6), activation=act, pretrain_max_iter=2, max_iter=10,
            random_state=0).fit(X, y)
        yield "StackedDenoisingAutoencoderClassifier", m, m.predict_proba(X)
    for n, features, act in itertools.product(
            [1, 2, 3], ["all", "layers", "last"], ["tanh", "relu", "identity"]):
        m = MarginalizedDenoisingAutoencoder(n, activation=act,
                                             features=features).fit(X)
        yield "MarginalizedDenoisingAutoencoder", m, m.transform(X)
    if reduced:  # the digits: non-negative, 64 features
        for features, sparse in itertools.product(["all", "layers", "last"],
                                                  [False, True]):
            X_fit = sp.csr_matrix(X) if sparse else X
            m = MarginalizedDenoisingAutoencoder(
                2, n_components=20, features=features,
                random_state=0).fit(X_fit)
            want = m.transform(X_fit)
            yield ("MarginalizedDenoisingAutoencoder (reduced)", m,
                   want.toarray() if sp.issparse(want) else want)


def tabular_cases(X):
    """The same for the tabular network, on X with missing entries."""
    for act, features in itertools.product(ACTIVATIONS, ["all", "last"]):
        m = TabularDenoisingAutoencoder((16, 8), features=features,
                                        activation=act, max_iter=3,
                                        random_state=0).fit(X)
        yield "TabularDenoisingAutoencoder", m, m.transform(X)
    for act, indicator in itertools.product(ACTIVATIONS, [False, True]):
        m = DenoisingAutoencoderImputer(
            hidden_layer_sizes=(16, 16), activation=act,
            add_indicator=indicator, max_iter=3, random_state=0).fit(X)
        yield "DenoisingAutoencoderImputer", m, m.transform(X)


def relative_error(model, got, want, X):
    if isinstance(model, DenoisingAutoencoderImputer):
        observed = ~np.isnan(X[:, model._kept()])
        assert np.array_equal(got[:, :observed.shape[1]][observed],
                              X[:, model._kept()][observed])
        scale = np.maximum(np.abs(want).max(axis=0), np.finfo(float).tiny)
        return float(np.max(np.abs(got - want) / scale))
    return float(np.abs(got - want).max() / np.abs(want).max())


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    data = {"digits": (X[::3] / 16, y[::3]),
            "random": (rng.normal(size=(150, 12)), rng.randint(3, size=150))}
    tables = {name: X.copy() for name, X in [
        ("digits", X[::3]), ("wine", load_wine(return_X_y=True)[0]),
        ("random", rng.normal(size=(150, 12)))]}
    for X in tables.values():
        X[rng.uniform(size=X.shape) < 0.1] = np.nan
    worst = {}
    for dtype in [np.float32, np.float64]:
        runs = [(X.astype(dtype), cases(X.astype(dtype), y, name == "digits"))
                for name, (X, y) in data.items()]
        runs += [(X.astype(dtype), tabular_cases(X.astype(dtype)))
                 for X in tables.values()]
        for X, models in runs:
            for label, model, want in models:
                options = ({"zipmap": False} if hasattr(model, "classes_")
                           else None)
                outputs = run(skl2onnx.to_onnx(model, X[:1], options=options),
                              X)
                if hasattr(model, "classes_"):
                    assert np.array_equal(outputs[0], model.predict(X))
                got = outputs[-1].astype(np.float64)
                diff = relative_error(model, got, want, X)
                key = (label, np.dtype(dtype).name)
                worst[key] = max(worst.get(key, 0.0), diff)
    for (label, dtype), diff in sorted(worst.items()):
        print(f"{label:45} {dtype:8} {diff:.1e}")


if __name__ == "__main__":
    main()
