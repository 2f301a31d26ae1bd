"""The pieces the estimators share: L2 term, divergence guard, alpha."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from skdae import DenoisingAutoencoder
from skdae._base import l2_penalty, restore_if_diverged


def test_l2_penalty_matches_mlp_per_batch_average():
    rng = np.random.RandomState(0)
    weights = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    squares = sum((w ** 2).sum() for w in weights)
    # 10 batches of 20 samples: MLP adds 0.5 * alpha * squares / 20 to each
    # batch's mean loss, so the epoch mean is the same 0.5 * alpha * sq / 20.
    assert_allclose(l2_penalty(0.3, weights, 10, 200), 0.5 * 0.3 * squares / 20)
    assert l2_penalty(0.0, weights, 10, 200) == 0.0


def test_restore_if_diverged():
    class Est:
        n_iter_ = 4
        learning_rate_init = 0.5

    est = Est()
    est._optimizer = object()
    params = [np.ones(3), np.ones(2)]
    snapshot = [p.copy() for p in params]
    restore_if_diverged(est, 1.0, params, snapshot)  # finite: nothing happens
    assert hasattr(est, "_optimizer")
    params[1][0] = np.nan
    with pytest.raises(ValueError, match="epoch 5.*learning_rate_init \\(now 0.5"):
        restore_if_diverged(est, 1.0, params, snapshot)
    assert_array_equal(params[1], snapshot[1])
    assert not hasattr(est, "_optimizer")


def test_alpha_shrinks_the_weights(digits):
    X, _ = digits
    norms = []
    for alpha in (0.0, 10.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dae = DenoisingAutoencoder(n_components=32, alpha=alpha,
                                       learning_rate_init=1e-2, max_iter=30,
                                       random_state=0).fit(X)
        norms.append(np.linalg.norm(dae.components_))
    assert norms[1] < 0.5 * norms[0]
