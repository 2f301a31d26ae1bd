"""scikit-learn's estimator checks over every public estimator of skdae."""

import inspect

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import skdae

# The checks train many times on tiny data: the stacks' default widths
# (two layers of 500 units) would only make them slow. Every other setting
# stays at its default.
_SMALL = {
    "StackedDenoisingAutoencoder": {"hidden_layer_sizes": (16, 8)},
    "StackedDenoisingAutoencoderClassifier": {"hidden_layer_sizes": (16, 8)},
    "TabularDenoisingAutoencoder": {"hidden_layer_sizes": (16, 8)},
    # On the checks' 10-30 rows there is no validation set (early stopping
    # needs 10 validation rows): 20 epochs instead of all 300 keep it fast.
    "DenoisingAutoencoderImputer": {"hidden_layer_sizes": (16, 8),
                                    "max_iter": 20},
}


# Other configurations that take a different code path.
_VARIANTS = [
    skdae.StackedDenoisingAutoencoderClassifier(hidden_layer_sizes=(16,),
                                                pretrain=False),
    # Two layers and the reduced (subset) variant of the first one.
    skdae.MarginalizedDenoisingAutoencoder(n_layers=2, n_components=1,
                                           random_state=0),
    skdae.StackedDenoisingAutoencoder(hidden_layer_sizes=(16, 8),
                                      fine_tune=True, fine_tune_max_iter=10),
    skdae.TabularDenoisingAutoencoder(hidden_layer_sizes=(16,),
                                      corruption="masking", features="last",
                                      early_stopping=True,
                                      validation_fraction=0.3),
    # Categorical-free variants of the imputer's other code paths.
    skdae.DenoisingAutoencoderImputer(hidden_layer_sizes=(16,), max_iter=20,
                                      add_indicator=True, sample_posterior=True,
                                      keep_empty_features=True),
]


def _public_estimators():
    for name in skdae.__all__:
        obj = getattr(skdae, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            yield obj(**_SMALL.get(name, {}))


def test_every_public_estimator_is_checked():
    checked = {type(est).__name__ for est in _public_estimators()}
    assert checked == {"DenoisingAutoencoder", "DenoisingAutoencoderImputer",
                       "StackedDenoisingAutoencoder",
                       "StackedDenoisingAutoencoderClassifier",
                       "MarginalizedDenoisingAutoencoder",
                       "TabularDenoisingAutoencoder"}


@parametrize_with_checks(list(_public_estimators()) + _VARIANTS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
