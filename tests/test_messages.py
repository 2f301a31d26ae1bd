"""What a user sees first: parameter validation and input messages.

Issue 9, item 9: enough digits in the cross-entropy range message, booleans
rejected for integer parameters, unchecked NaN / infinity reported as bad
input rather than divergence.
"""

import inspect
import re
import warnings
from numbers import Integral

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import Interval, InvalidParameterError

import skdae
from skdae import DenoisingAutoencoder

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")

_SMALL = {"hidden_layer_sizes": (4,), "max_iter": 2}


def _estimators():
    for name in skdae.__all__:
        cls = getattr(skdae, name)
        if inspect.isclass(cls) and issubclass(cls, BaseEstimator):
            params = cls().get_params()
            yield cls(**{k: v for k, v in _SMALL.items() if k in params})


def _integer_parameters():
    for est in _estimators():
        for name, constraints in est._parameter_constraints.items():
            if any(isinstance(c, Interval) and c.type is Integral
                   for c in constraints):
                yield est, name


def _xy():
    rng = np.random.RandomState(0)
    return rng.uniform(size=(40, 6)), np.arange(40) % 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_range_message_prints_enough_digits(dtype):
    X = np.full((10, 3), 0.5, dtype=dtype)
    X[0, 0] = 1.0000001
    with pytest.raises(ValueError, match="cross-entropy") as info:
        DenoisingAutoencoder(loss="cross_entropy", max_iter=1).fit(X)
    ranges_over = str(info.value).split("ranges over ")[1]
    assert ranges_over.startswith("[0.5, 1.0000001")


@pytest.mark.parametrize(
    "est, name", list(_integer_parameters()),
    ids=lambda v: v if isinstance(v, str) else type(v).__name__)
@pytest.mark.parametrize("value", [True, np.bool_(False)])
def test_integer_parameters_reject_booleans(est, name, value):
    X, y = _xy()
    with pytest.raises(InvalidParameterError, match=name):
        clone(est).set_params(**{name: value}).fit(X, y)


def test_every_estimator_has_integer_parameters_checked():
    # The mechanism covers every estimator (none is left out of the test).
    owners = {type(est).__name__ for est, _ in _integer_parameters()}
    assert owners == {type(est).__name__ for est in _estimators()}


@pytest.mark.parametrize("cls", [skdae.StackedDenoisingAutoencoder,
                                 skdae.StackedDenoisingAutoencoderClassifier])
def test_layer_sizes_reject_booleans(cls):
    X, y = _xy()
    with pytest.raises(InvalidParameterError, match="hidden_layer_sizes"):
        cls(hidden_layer_sizes=(True, 3), max_iter=2).fit(X, y)


@pytest.mark.parametrize(
    "est", list(_estimators()) + [skdae.StackedDenoisingAutoencoderClassifier(
        hidden_layer_sizes=(4,), pretrain=False, max_iter=2)],
    ids=lambda est: type(est).__name__)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_unchecked_non_finite_input_is_reported_as_input(est, value):
    X, y = _xy()
    X[3, 2] = value
    if np.isnan(value) and est.__sklearn_tags__().input_tags.allow_nan:
        pytest.skip("NaN is a valid (missing) entry here")
    with sklearn.config_context(assume_finite=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError) as info:
            est.fit(X, y)
    message = str(info.value)
    assert "diverged" not in message
    # The tables check infinity themselves, whatever assume_finite says.
    assert re.search("assume_finite|contains infinity", message), message
    assert re.search("impute|replace it", message), message


# --------------------------------------------------------------------------
# Item 15: the defaults converge on typical data, without warning noise
# --------------------------------------------------------------------------
def test_defaults_converge_on_digits_without_warning(digits):
    from sklearn.exceptions import ConvergenceWarning
    X = digits[0][:1437]  # one fold of the README quick start
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # Every default but the width (256 converges too, slower to test).
        dae = DenoisingAutoencoder(n_components=64, random_state=0).fit(X)
    assert dae.n_iter_ < dae.max_iter  # stopped by the rule, not the budget


@pytest.mark.parametrize("loss_terms, stops", [(1, False), (64, True)])
def test_tol_applies_to_the_loss_per_term(loss_terms, stops):
    from sklearn.utils import check_random_state

    from skdae._training import reset_training_state, run_epochs
    est = DenoisingAutoencoder(tol=1e-4, n_iter_no_change=3, shuffle=False)
    est._random_state = check_random_state(0)
    reset_training_state(est)
    params = [np.zeros(1)]
    rows = np.arange(10)

    def step(batch_rows, seed):
        # A loss summed over ``loss_terms`` terms that improves by 1e-3 an
        # epoch: more than tol in total, less than tol per term when 64.
        return batch_rows.shape[0] * (10.0 - 1e-3 * est.n_iter_)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = run_epochs(est, step, params, [False], rows, n_epochs=20,
                               batch_size=10, loss_terms=loss_terms)
    assert converged == stops
    assert est.n_iter_ == (5 if stops else 20)
