"""The pieces the estimators share: L2 term, alpha."""

import warnings

import numpy as np
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from skdae import DenoisingAutoencoder
from skdae._training import l2_penalty


def test_l2_penalty_matches_mlp_per_batch_average():
    rng = np.random.RandomState(0)
    weights = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    squares = sum((w ** 2).sum() for w in weights)
    # 10 batches of 20 samples: MLP adds 0.5 * alpha * squares / 20 to each
    # batch's mean loss, so the epoch mean is the same 0.5 * alpha * sq / 20.
    assert_allclose(l2_penalty(0.3, weights, 10, 200), 0.5 * 0.3 * squares / 20)
    assert l2_penalty(0.0, weights, 10, 200) == 0.0


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
