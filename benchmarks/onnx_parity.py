"""Largest difference between exported ONNX graphs and skdae, per estimator.

Runs the cases of tests/test_onnx.py (every activation, tied and untied
weights, every ``features`` option and 1-3 layers of the marginalized
autoencoder, its reduced variant fitted on dense and sparse input, on the
digits and on random data) and prints, per estimator and dtype, the largest
``|onnxruntime - skdae| / max |skdae|`` (probabilities for the classifier,
whose labels are checked to be identical). Needs the onnx extra.
"""

import itertools
import warnings

import numpy as np
import onnxruntime as ort
import scipy.sparse as sp
import skl2onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skdae.onnx  # noqa: F401 (registers the converters)
from skdae import (
    DenoisingAutoencoder,
    MarginalizedDenoisingAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
)


def run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def cases(X, y, reduced):
    """(name, fitted model, what it computes on X) for the test cases."""
    for act, tied in itertools.product(["sigmoid", "tanh", "relu", "identity"],
                                       [True, False]):
        m = DenoisingAutoencoder(8, activation=act, tied_weights=tied,
                                 max_iter=3, random_state=0).fit(X)
        yield "DenoisingAutoencoder", m, m.transform(X)
    for act in ["sigmoid", ["relu", "tanh"], ["identity", "sigmoid"]]:
        m = StackedDenoisingAutoencoder((10, 6), activation=act,
                                        tied_weights=False, max_iter=3,
                                        random_state=0).fit(X)
        yield "StackedDenoisingAutoencoder", m, m.transform(X)
    for act in ["sigmoid", "tanh", "relu", "identity"]:
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


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    data = {"digits": (X[::3] / 16, y[::3]),
            "random": (rng.normal(size=(150, 12)), rng.randint(3, size=150))}
    worst = {}
    for dtype, name in itertools.product([np.float32, np.float64], data):
        X, y = data[name][0].astype(dtype), data[name][1]
        for label, model, want in cases(X, y, name == "digits"):
            options = ({"zipmap": False} if hasattr(model, "classes_")
                       else None)
            outputs = run(skl2onnx.to_onnx(model, X[:1], options=options), X)
            if hasattr(model, "classes_"):
                assert np.array_equal(outputs[0], model.predict(X))
            got = outputs[-1].astype(np.float64)
            diff = np.abs(got - want).max() / np.abs(want).max()
            key = (label, np.dtype(dtype).name)
            worst[key] = max(worst.get(key, 0.0), diff)
    for (label, dtype), diff in sorted(worst.items()):
        print(f"{label:45} {dtype:8} {diff:.1e}")


if __name__ == "__main__":
    main()
