"""Pieces shared by skdae's estimators.

The minibatch solvers of all estimators take scikit-learn MLP's parameters,
validated by the same constraints; they train in ``_training.run_epochs``.
"""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)


class IntInterval(Interval):
    """``Interval(Integral, left, right, closed=...)`` that rejects booleans.

    ``bool`` is an ``Integral`` in Python, so scikit-learn's ``Interval``
    lets ``n_components=True`` through, to fail later in numpy. Every integer
    parameter of skdae's estimators uses this constraint instead, so that
    parameter validation raises its usual ``InvalidParameterError``.
    """

    def __init__(self, left, right, *, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)


# Constraints of the solver parameters every estimator shares.
SOLVER_PARAMETER_CONSTRAINTS = {
    "solver": [StrOptions({"adam", "sgd"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [
        IntInterval(1, None, closed="left"),
        StrOptions({"auto"}),
    ],
    "max_iter": [IntInterval(1, None, closed="left")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [IntInterval(1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
}


def non_finite_input_error(owner, allow_nan=False):
    """The error for NaN / infinity that ``validate_data`` did not check.

    Under ``sklearn.set_config(assume_finite=True)`` ``validate_data`` skips
    its check for non-finite values; training on them would then be reported
    as divergence. ``owner`` names the estimator in the message.
    """
    what = "infinity" if allow_nan else "NaN or infinity"
    return ValueError(
        f"Input X of {owner} contains {what} (the check was skipped by "
        "sklearn.set_config(assume_finite=True)). Remove or impute these "
        "values first, or set assume_finite=False to have them reported "
        "where they are.")


def check_finite_if_assumed(X, owner):
    """Raise :func:`non_finite_input_error` for non-finite X, if unchecked.

    Call it after ``validate_data`` on training data: it costs one pass over
    X only when ``assume_finite=True`` made ``validate_data`` skip its own.
    """
    if not get_config()["assume_finite"]:
        return
    data = X.data if sp.issparse(X) else X
    if not np.isfinite(data).all():
        raise non_finite_input_error(owner)


def check_hidden_layer_sizes(hidden_layer_sizes):
    """Validated layer widths as a list of ints."""
    sizes = np.atleast_1d(np.asarray(hidden_layer_sizes))
    # np.asarray turns (True, 4) into [1, 4]: look at the items themselves.
    items = (hidden_layer_sizes if np.ndim(hidden_layer_sizes) == 1
             else [hidden_layer_sizes])
    if (sizes.ndim != 1 or sizes.size == 0
            or any(isinstance(s, (bool, np.bool_)) for s in items)
            or not np.issubdtype(sizes.dtype, np.integer)
            or np.any(sizes < 1)):
        raise InvalidParameterError(
            "hidden_layer_sizes must be a positive int or a non-empty sequence "
            f"of positive ints (one width per layer), got {hidden_layer_sizes!r}."
        )
    return [int(s) for s in sizes]
