"""scikit-learn's estimator checks over every public estimator of skdae."""

import inspect

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import skdae


def _public_estimators():
    for name in skdae.__all__:
        obj = getattr(skdae, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            yield obj()


@parametrize_with_checks(list(_public_estimators()))
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
