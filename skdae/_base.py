"""Pieces shared by skdae's estimators.

The minibatch solvers of all estimators take scikit-learn MLP's parameters,
validated by the same constraints, and stop by MLP's rule.
"""

from numbers import Integral, Real

import numpy as np
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


def update_no_improvement(estimator, early_stopping, params):
    """MLP's stopping rule, applied after an epoch; True means stop.

    Counts the epochs in a row in which the training loss (or, with early
    stopping, the validation score) did not improve by at least ``tol``, and
    keeps a copy of ``params`` at the best validation score in
    ``estimator._best_params``.
    """
    est = estimator
    last_loss = est.loss_curve_[-1]
    if early_stopping:
        score = est.validation_scores_[-1]
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_params = [p.copy() for p in params]
    elif last_loss > est.best_loss_ - est.tol:
        est._no_improvement_count += 1
    else:
        est._no_improvement_count = 0
    est.best_loss_ = min(est.best_loss_, last_loss)
    if est._no_improvement_count > est.n_iter_no_change:
        est._no_improvement_count = 0
        if est.verbose:
            what = "Validation score" if early_stopping else "Training loss"
            print(f"{what} did not improve more than tol={est.tol} for "
                  f"{est.n_iter_no_change} consecutive epochs. Stopping.")
        return True
    return False


def restore_if_diverged(estimator, loss_sum, params, snapshot, phase="Training"):
    """After an epoch: if it diverged, restore ``snapshot`` and raise.

    A loss or a weight that is not finite means the epoch diverged. The
    parameters are set back to the copies taken before it and the optimizer
    state (which may hold NaN too) is dropped, so the estimator never keeps
    NaN weights.
    """
    if np.isfinite(loss_sum) and all(np.isfinite(p).all() for p in params):
        return
    for p, saved in zip(params, snapshot):
        p[...] = saved
    estimator.__dict__.pop("_optimizer", None)
    raise ValueError(
        f"{phase} diverged in epoch {estimator.n_iter_ + 1}: the loss became "
        "infinite or NaN. The weights were restored to their last finite "
        f"values. Lower learning_rate_init (now {estimator.learning_rate_init}"
        "), standardise X (e.g. with StandardScaler) or lower alpha."
    )


def l2_penalty(alpha, weights, n_batches, n_samples):
    """The L2 term of an epoch's mean loss, as scikit-learn's MLP adds it.

    MLP adds ``0.5 * alpha * ||W||^2 / batch_size`` to every minibatch loss;
    averaged over an epoch that is ``n_batches / n_samples`` times the sum.
    """
    if not alpha:
        return 0.0
    squares = sum(float(np.dot(w.ravel(), w.ravel())) for w in weights)
    return 0.5 * alpha * squares * n_batches / n_samples
