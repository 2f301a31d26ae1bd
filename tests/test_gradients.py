"""Analytic minibatch gradients against central finite differences."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from skdae import DenoisingAutoencoder
from skdae import _kernels as K
from skdae._minibatch import Workspace, data_range

COMBINATIONS = list(itertools.product(
    ["cross_entropy", "squared_error"],
    ["sigmoid", "tanh", "relu", "identity"],
    [True, False],          # tied weights
    [1.0, 0.3],             # uncorrupted weight (emphasis)
))


def make_model(loss, activation, tied, weight, corruption="masking",
               n_samples=7, n_features=6, n_components=4, sparse=False):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(n_samples, n_features))
    if sparse:
        X[X < 0.4] = 0.0
        X = sp.csr_matrix(X)
    dae = DenoisingAutoencoder(
        n_components=n_components, corruption=corruption,
        corruption_level=0.4, uncorrupted_weight=weight, activation=activation,
        loss=loss, tied_weights=tied, random_state=0)
    value_range = data_range(X)
    loss_ = dae._resolve_loss(value_range)
    dae._check_data_range(value_range, loss_)
    dae._initialize(X, loss_)
    dae._track_data_range(value_range)
    # Non-zero biases so their gradients are exercised away from 0.
    dae.intercept_hidden_[:] = rng.normal(scale=0.5, size=n_components)
    dae.intercept_visible_[:] = rng.normal(scale=0.5, size=n_features)
    code = "none" if dae.corruption_level == 0 else corruption
    noise = (K.CORRUPTION_CODES[code], dae.corruption_level, weight,
             *dae._data_low_high)
    ws = Workspace(n_samples, n_features, n_components, X.dtype,
                    K.ACTIVATION_CODES[activation], K.LOSS_CODES[dae.loss_])
    return dae, X, noise, ws


def loss_at(dae, X, rows, noise, ws, seed=11):
    return dae._forward_backward(X, rows, seed, noise, ws)


@pytest.mark.parametrize("loss,activation,tied,weight", COMBINATIONS)
def test_gradients_match_finite_differences(loss, activation, tied, weight):
    dae, X, noise, ws = make_model(loss, activation, tied, weight)
    rows = np.array([3, 0, 6, 2, 5])
    loss_at(dae, X, rows, noise, ws)
    analytic = {
        "intercept_hidden_": ws.grad_hidden_bias.copy(),
        "intercept_visible_": ws.grad_visible_bias.copy(),
    }
    if tied:
        analytic["components_"] = ws.grad_encoder.copy()  # the sum
    else:
        analytic["components_"] = ws.grad_encoder.copy()
        analytic["decoder_components_"] = ws.grad_decoder.copy()

    eps = 1e-6
    for name, grad in analytic.items():
        param = getattr(dae, name)
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + eps
            plus = loss_at(dae, X, rows, noise, ws)
            param[idx] = saved - eps
            minus = loss_at(dae, X, rows, noise, ws)
            param[idx] = saved
            numeric[idx] = (plus - minus) / (2 * eps)
        assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("corruption", ["masking", "gaussian",
                                        "salt_and_pepper"])
def test_sparse_and_dense_batches_give_the_same_gradients(corruption):
    weight = 1.0 if corruption == "gaussian" else 0.5
    sparse = make_model("cross_entropy", "sigmoid", True, weight, corruption,
                        sparse=True)
    dae, X, noise, ws = sparse
    rows = np.array([4, 1, 2])
    loss_sparse = loss_at(dae, X, rows, noise, ws)
    # Tied weights: the whole weight gradient is in grad_encoder.
    grads_sparse = [g.copy() for g in (ws.grad_encoder, ws.grad_hidden_bias,
                                       ws.grad_visible_bias)]
    loss_dense = loss_at(dae, X.toarray(), rows, noise, ws)
    grads_dense = (ws.grad_encoder, ws.grad_hidden_bias, ws.grad_visible_bias)
    assert_allclose(loss_sparse, loss_dense, rtol=1e-12)
    for gs, gd in zip(grads_sparse, grads_dense):
        assert_allclose(gs, gd, rtol=1e-10, atol=1e-12)


def test_emphasis_zero_ignores_uncorrupted_components():
    """With uncorrupted_weight=0 only the corrupted components carry loss."""
    dae, X, noise, ws = make_model("squared_error", "sigmoid", True, 0.0)
    rows = np.arange(7)
    loss_full = loss_at(dae, X, rows, noise, ws)
    X_changed = X.copy()
    corrupted = K.uniform_block(11, 7, X.shape[1]) < dae.corruption_level
    # Changing the targets of uncorrupted components only changes the input
    # through the encoder, never the loss terms, which all weigh 0 there...
    # so compare against the explicit weighted sum instead.
    H = dae.transform(np.where(corrupted, 0.0, X_changed))
    Z = H @ dae.components_ + dae.intercept_visible_
    expected = 0.5 * (((Z - X) ** 2) * corrupted).sum()
    assert_allclose(loss_full, expected, rtol=1e-10)
