"""It really learns: behaviour on scikit-learn's digits, scaled to [0, 1]."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from skdae import DenoisingAutoencoder


def fit(X, **params):
    params = {"n_components": 256, "learning_rate_init": 3e-3,
              "max_iter": 100, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DenoisingAutoencoder(**params).fit(X)


def mask(X, fraction, seed):
    keep = np.random.RandomState(seed).uniform(size=X.shape) >= fraction
    return X * keep


@pytest.fixture(scope="module")
def split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_features_classify_at_least_as_well_as_raw_pixels(digits):
    X, y = digits
    clf = LogisticRegression(max_iter=5000)
    dae = DenoisingAutoencoder(n_components=256, learning_rate_init=3e-3,
                               max_iter=30, random_state=0)
    # lbfgs on these small problems gains nothing from BLAS threads, and
    # spinning threads slow it down badly on a busy machine.
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raw = cross_val_score(clf, X, y, cv=5).mean()
        features = cross_val_score(make_pipeline(dae, clf), X, y, cv=5).mean()
    assert features >= raw


def test_reconstruction_removes_masking_noise(split):
    X_train, X_test, _, _ = split
    masked = mask(X_test, 0.3, seed=1)
    mse_masked = np.mean((masked - X_test) ** 2)

    def ratio(model):
        reconstructed = model.inverse_transform(model.transform(masked))
        return np.mean((reconstructed - X_test) ** 2) / mse_masked

    denoising = ratio(fit(X_train, corruption_level=0.3))
    plain = ratio(fit(X_train, corruption_level=0.0))
    # A NumPy DAE reaches ~0.4; an autoencoder that never saw corruption
    # mostly copies its input, zeros included (~0.9).
    assert denoising < 0.5
    assert plain > denoising + 0.2


@pytest.mark.parametrize("corruption,level", [("gaussian", 0.3),
                                              ("salt_and_pepper", 0.3)])
def test_reconstruction_removes_other_noise(split, corruption, level):
    X_train, X_test, _, _ = split
    model = fit(X_train, n_components=64, corruption=corruption,
                corruption_level=level)
    rng = np.random.RandomState(2)
    if corruption == "gaussian":
        noisy = X_test + rng.normal(scale=level, size=X_test.shape)
    else:
        hit = rng.uniform(size=X_test.shape) < level
        noisy = np.where(hit, (rng.uniform(size=X_test.shape) < 0.5) * 1.0,
                         X_test)
    reconstructed = model.inverse_transform(model.transform(noisy))
    assert (np.mean((reconstructed - X_test) ** 2)
            < 0.6 * np.mean((noisy - X_test) ** 2))


def test_emphasis_still_denoises(split):
    X_train, X_test, _, _ = split
    masked = mask(X_test, 0.3, seed=3)
    model = fit(X_train, n_components=64, uncorrupted_weight=0.5)
    reconstructed = model.inverse_transform(model.transform(masked))
    assert (np.mean((reconstructed - X_test) ** 2)
            < 0.5 * np.mean((masked - X_test) ** 2))


def test_codes_separate_the_classes(split):
    """Codes of one digit lie closer to each other than to other digits."""
    X_train, X_test, y_train, y_test = split
    H = fit(X_train, n_components=64).transform(X_test)
    centroids = np.array([H[y_test == c].mean(axis=0) for c in range(10)])
    distances = ((H[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    nearest_centroid_accuracy = np.mean(distances.argmin(axis=1) == y_test)
    assert nearest_centroid_accuracy > 0.85


def test_score_samples_flags_outliers(split):
    X_train, X_test, _, _ = split
    model = fit(X_train, n_components=64)
    rng = np.random.RandomState(4)
    outliers = rng.uniform(size=(50, X_test.shape[1]))
    scores = model.score_samples(np.vstack([X_test, outliers]))
    is_outlier = np.r_[np.zeros(len(X_test)), np.ones(50)]
    assert roc_auc_score(is_outlier, -scores) > 0.95


@pytest.mark.parametrize("solver,lr", [("sgd", 0.05), ("adam", 3e-3)])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_every_activation_and_solver_learns(split, solver, lr, activation):
    X_train, X_test, _, _ = split
    model = fit(X_train, n_components=64, solver=solver, activation=activation,
                learning_rate_init=lr, max_iter=30)
    assert model.loss_curve_[-1] < 0.75 * model.loss_curve_[0]
    assert model.score(X_test) > -30  # cross-entropy of a useless model: ~43
