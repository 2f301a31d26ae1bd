"""Pieces shared by skdae's estimators.

The minibatch solvers of all estimators take scikit-learn MLP's parameters,
validated by the same constraints; they train in ``_training.run_epochs``.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

# Constraints of the solver parameters every estimator shares.
SOLVER_PARAMETER_CONSTRAINTS = {
    "solver": [StrOptions({"adam", "sgd"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [
        Interval(Integral, 1, None, closed="left"),
        StrOptions({"auto"}),
    ],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
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
