"""The training loop and the fit transaction every minibatch estimator shares.

An estimator trains through three pieces, none of which knows what it trains:

- :func:`transaction`: a context manager around the whole of ``fit`` /
  ``partial_fit``. Training works on private copies of the fitted state; if
  anything raises (a validation error, divergence, ``KeyboardInterrupt``),
  the estimator is put back exactly as it was before the call.
- :func:`check_structure` / :func:`record_structure`: what the fitted state
  was built with (widths, activations, losses...) is stored at
  initialisation; a warm start or ``partial_fit`` refuses a change of any of
  it with a ``ValueError`` naming the parameter, before training starts.
- :func:`run_epochs`: the epoch loop (scikit-learn MLP's ``_fit_stochastic``):
  shuffling, one seed per minibatch, the L2 term of the loss,
  ``loss_curve_`` / ``n_iter_`` / ``t_``, MLP's stopping rule, early
  stopping with the best weights kept, divergence detection, the
  ``ConvergenceWarning`` and the progress display. The estimator supplies a
  minibatch step and its parameter arrays.

Helpers around them: :func:`reset_training_state` (the attributes
``run_epochs`` maintains, for a new model), :func:`validation_split` (the
early-stopping split, the same on warm starts), :func:`batch_size_for`,
:func:`l2_penalty`, and :func:`keep_optimizer_state` / :func:`pickled_state`
/ :func:`unpickled_state` (what a saved model keeps). A typical ``fit``::

    with transaction(self):
        X = validate_data(self, X, reset=not warm)   # everything checked first
        if warm:
            check_structure(self, {"n_units": self.n_units, ...})
        else:
            ...  # new arrays, then reset_training_state(self) and
            record_structure(self, {"n_units": self.n_units, ...})
        optimizer = make_optimizer(self, params, previous_state_or_None)
        run_epochs(self, step, params, l2_flags, np.arange(n_samples),
                   n_epochs=self.max_iter, batch_size=batch_size_for(self, n))
        keep_optimizer_state(self, optimizer, incremental=False)
"""

import copy
import math
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import gen_batches

from ._parallel import check_cancelled

# An epoch whose mean loss exceeds this many times the loss the call started
# from (that of its first minibatches) diverged, even if every value is
# still finite. Relative to the start, not to the lowest loss: on tiny data
# a noisy loss that fell far below its start may swing by more than 10x
# without diverging.
DIVERGENCE_FACTOR = 10.0
# Rows whose loss, at the start of a call, is the reference of that check.
_REFERENCE_ROWS = 100

# With verbose >= 2, seconds between progress lines inside an epoch.
_PROGRESS_SECONDS = 2.0


# --------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------
@contextmanager
def transaction(estimator):
    """Run a ``fit`` / ``partial_fit`` body all or nothing.

    On entry every fitted attribute (anything in ``__dict__`` that is not a
    constructor parameter) is replaced by a deep copy, so training never
    writes into the arrays of the previous fit: they may be read-only or
    memory-mapped (``joblib.load(..., mmap_mode="r")``), and they are intact
    if the body raises. On any exception, ``KeyboardInterrupt`` included, the
    original attributes are put back (an estimator that was unfitted is
    unfitted again) and the exception propagates. On success the new state
    stays: it is committed at once, never half.
    """
    saved = estimator.__dict__.copy()
    params = set(estimator._get_param_names())
    fitted = {k: v for k, v in saved.items() if k not in params}
    estimator.__dict__.update(_copy_state(fitted, {}))
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def _copy_state(value, memo):
    """Deep copy, copying estimators by their ``__dict__``.

    ``copy.deepcopy`` would go through ``__getstate__`` (:func:`pickled_state`),
    which would copy the random state through a tuple.
    """
    if isinstance(value, BaseEstimator):
        if id(value) not in memo:
            new = memo[id(value)] = object.__new__(type(value))
            new.__dict__.update(_copy_state(value.__dict__, memo))
        return memo[id(value)]
    if isinstance(value, dict):
        return {k: _copy_state(v, memo) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_copy_state(v, memo) for v in value)
    return copy.deepcopy(value, memo)


def keep_optimizer_state(estimator, optimizer, incremental):
    """Store ``optimizer.state`` as ``_optimizer_state``, marked for pickles.

    The optimizer moments (Adam) or velocities (SGD) are as large as the
    weights (twice for Adam). After ``fit`` they stay in memory (a later
    ``partial_fit`` continues them) but are left out of pickles, so a saved
    model is about the size of its weights; after ``partial_fit`` they are
    pickled too, so that streaming training (``dask_ml`` ``Incremental``
    pickles the model between blocks) continues them.
    """
    estimator._optimizer_state = dict(optimizer.state, pickled=incremental)


def pickled_state(state):
    """``__getstate__`` helper: what a fitted model saves.

    Leaves out the optimizer state of a ``fit`` (see
    :func:`keep_optimizer_state`), and saves the random state as its
    ``get_state()`` tuple, half the size of a pickled ``RandomState`` (see
    :func:`unpickled_state`).
    """
    state = dict(state)
    if not state.get("_optimizer_state", {}).get("pickled", True):
        del state["_optimizer_state"]
    rng = state.get("_random_state")
    if isinstance(rng, np.random.RandomState):
        state["_random_state"] = rng.get_state()
    return state


def unpickled_state(state):
    """``__setstate__`` helper: the inverse of :func:`pickled_state`."""
    state = dict(state)
    if isinstance(state.get("_random_state"), tuple):
        rng = np.random.RandomState()
        rng.set_state(state["_random_state"])
        state["_random_state"] = rng
    return state


# --------------------------------------------------------------------------
# Structural state
# --------------------------------------------------------------------------
def record_structure(estimator, structure):
    """Store what the fitted state is built with (plain values only)."""
    estimator._structure = dict(structure)


def check_structure(estimator, structure, how="set warm_start=False or fit "
                    "a new estimator", owner=None):
    """Refuse a change of the structure recorded by :func:`record_structure`.

    ``structure`` maps names (parameter names, so that the message names
    what the user set) to the value the current parameters would build. A
    difference means the fitted arrays cannot be continued: raise a
    ``ValueError`` that says which parameter changed and what to do;
    ``owner`` names the model in it (the class name of ``estimator`` by
    default).
    """
    owner = owner or type(estimator).__name__
    stored = getattr(estimator, "_structure", {})
    for name, value in structure.items():
        if name in stored and stored[name] != value:
            raise ValueError(
                f"{name} changed from {stored[name]!r} to {value!r} since the "
                f"last fit of this {owner}, whose fitted "
                f"weights were built for {name}={stored[name]!r} and cannot "
                f"continue training with the new value. Set {name} back to "
                f"{stored[name]!r}, or {how}."
            )


# --------------------------------------------------------------------------
# The epoch loop
# --------------------------------------------------------------------------
def reset_training_state(estimator):
    """The attributes of :func:`run_epochs`, for a freshly initialised model."""
    estimator.n_iter_ = 0
    estimator.t_ = 0
    estimator.loss_curve_ = []
    estimator.best_loss_ = np.inf
    estimator.validation_scores_ = None
    estimator.best_validation_score_ = None
    estimator._no_improvement_count = 0


def validation_seed(estimator):
    """The seed of the early-stopping split: ``_validation_seed``, drawn
    from ``estimator._random_state`` and kept if there is none yet."""
    seed = getattr(estimator, "_validation_seed", None)
    if seed is None:
        seed = int(estimator._random_state.randint(np.iinfo(np.int32).max))
        estimator._validation_seed = seed
    return seed


def validation_split(estimator, indices, stratify=None):
    """Training and validation rows for early stopping; the same on warm starts.

    The split is drawn from a seed taken once from ``estimator._random_state``
    and kept (``_validation_seed``), so a warm start on the same data
    validates on the same rows, never on rows it trained on before. A fresh
    fit removes ``_validation_seed`` before it splits.
    """
    # Imported here, for early stopping only: sklearn.model_selection (and
    # sklearn.metrics, which it imports) was a third of what importing the
    # DenoisingAutoencoder added to scikit-learn's and Numba's imports.
    from sklearn.model_selection import train_test_split

    seed = validation_seed(estimator)
    train, val = train_test_split(
        indices, test_size=estimator.validation_fraction, random_state=seed,
        stratify=stratify)
    if val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase "
            "'validation_fraction' or the size of your dataset.")
    return train, val


def run_epochs(estimator, step, params, l2_flags, train_indices, *, n_epochs,
               batch_size, seeded=True, validation_score=None, tag=None,
               warn=True, loss_terms=1):
    """Train for up to ``n_epochs`` epochs; return whether training converged.

    Parameters
    ----------
    estimator : estimator
        Supplies ``_random_state`` (a ``RandomState``, advanced here: one
        permutation per epoch if ``shuffle``, then one seed per minibatch if
        ``seeded``), ``shuffle``, ``alpha``, ``tol``, ``n_iter_no_change``,
        ``verbose`` and ``learning_rate_init`` (named in messages), and the
        state of :func:`reset_training_state`, which is updated here:
        ``n_iter_``, ``t_``, ``loss_curve_``, ``best_loss_``,
        ``validation_scores_``, ``best_validation_score_`` and
        ``_no_improvement_count``.
    step : callable
        ``step(rows, seed) -> float``: one minibatch on the training rows
        ``rows`` (an int array) with the noise seed ``seed`` (an int, or
        None if not ``seeded``): computes the loss summed over the rows,
        without the L2 term, and applies the gradient step to ``params``.
    params : list of ndarray
        The arrays ``step`` updates in place; used for the L2 term, the
        divergence check and the copy of the best weights.
    l2_flags : list of bool
        Whether the L2 penalty ``alpha`` applies to each of ``params``.
    train_indices : ndarray of int
        Rows of the training data the epochs run over.
    n_epochs : int
        Maximum number of epochs of this call.
    batch_size : int
        Rows per minibatch.
    seeded : bool, default=True
        Whether to draw a seed per minibatch.
    validation_score : callable, default=None
        ``validation_score() -> float`` (higher is better), called after each
        epoch. If given, the stopping rule watches it instead of the training
        loss (early stopping) and the weights of its best epoch are restored
        at the end; a warm start continues from them with the best score so
        far. If None, ``validation_scores_`` and ``best_validation_score_``
        are set to None.
    tag : str, default=None
        Label of the progress lines and messages (the estimator's class
        name by default).
    warn : bool, default=True
        Whether to warn (``ConvergenceWarning``) when ``n_epochs`` ran out
        before the stopping rule fired.
    loss_terms : int, default=1
        Number of terms the per-sample loss sums (the features of an
        autoencoder's reconstruction). The stopping rule applies ``tol`` to
        the loss (and validation score) divided by it, as MLP's ``tol``
        applies to a loss averaged over its outputs: an absolute ``tol`` on a
        sum over 784 features would be 784 times stricter than on one.

    Returns
    -------
    converged : bool
        Whether the stopping rule ended training.

    Raises
    ------
    ValueError
        If training diverged: a non-finite loss or weight, or an epoch loss
        over ``DIVERGENCE_FACTOR`` (10) times the loss the call started from
        (that of its first 100 rows). The parameters may then hold the
        diverged values: callers run inside a :func:`transaction`, which
        restores the state before the call.
    """
    est = estimator
    tag = tag or type(est).__name__
    rng = est._random_state
    verbose = est.verbose
    early_stopping = validation_score is not None
    if early_stopping:
        if est.validation_scores_ is None:
            est.validation_scores_ = []
            est.best_validation_score_ = -np.inf
        # A previous call ended on its best weights (restored at its end).
        best_params = ([p.copy() for p in params]
                       if est.validation_scores_ else None)
    else:
        est.validation_scores_ = None
        est.best_validation_score_ = None
    n_train = train_indices.shape[0]
    batches = list(gen_batches(n_train, batch_size))
    # The loss per sample of the model as the call starts (its first rows).
    ref_sum, ref_rows, reference = 0.0, 0, None
    lowest = None  # the lowest loss of the call, for the divergence check
    converged = False
    start = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        epoch_start = time.perf_counter()
        order = rng.permutation(train_indices) if est.shuffle else train_indices
        seeds = (rng.randint(0, np.iinfo(np.int64).max, size=len(batches),
                             dtype=np.int64) if seeded
                 else [None] * len(batches))
        total = 0.0
        last_print = epoch_start
        for b, (batch, seed) in enumerate(zip(batches, seeds)):
            rows = order[batch]
            check_cancelled()  # another network of the fit failed
            loss_sum = step(rows, seed)
            if reference is None:
                ref_sum += loss_sum
                ref_rows += rows.shape[0]
                if ref_rows >= min(_REFERENCE_ROWS, n_train):
                    reference = lowest = ref_sum / ref_rows
            total += loss_sum
            if not math.isfinite(total):
                break
            if verbose >= 2 and time.perf_counter() - last_print > \
                    _PROGRESS_SECONDS:
                last_print = time.perf_counter()
                _print_line(f"[{tag}] epoch {epoch}/{n_epochs}: minibatch "
                            f"{b + 1}/{len(batches)}, loss = "
                            f"{total / (batch.stop - batches[0].start):.4f}")
        penalty = l2_penalty(est.alpha,
                             [p for p, flag in zip(params, l2_flags) if flag],
                             len(batches), n_train)
        epoch_loss = total / n_train + penalty
        _check_divergence(est, tag, epoch_loss, lowest, params, reference)
        lowest = min(lowest, epoch_loss)
        est.n_iter_ += 1
        est.t_ += n_train
        est.loss_curve_.append(epoch_loss)
        message = (f"[{tag}] epoch {epoch}/{n_epochs}, loss = "
                   f"{epoch_loss:.4f}")
        if early_stopping:
            score = float(validation_score())
            est.validation_scores_.append(score)
            message += f", validation score = {score:.4f}"
            if score > est.best_validation_score_:
                best_params = [p.copy() for p in params]
        if verbose:
            now = time.perf_counter()
            remaining = (now - start) / epoch * (n_epochs - epoch)
            _print_line(f"{message}, time = {now - epoch_start:.2f}s, "
                        f"elapsed = {now - start:.1f}s, remaining ~ "
                        f"{remaining:.1f}s")
        if _no_improvement(est, early_stopping, est.tol * loss_terms):
            converged = True
            break
    if early_stopping and best_params is not None:
        for p, best in zip(params, best_params):
            p[...] = best
    if warn and not converged:
        warnings.warn(
            f"{tag}: max_iter={n_epochs} epochs ended before training "
            f"converged (no improvement of tol={est.tol} for "
            f"n_iter_no_change={est.n_iter_no_change} epochs). Increase "
            "max_iter, or tol.",
            ConvergenceWarning,
        )
    return converged


def _check_divergence(est, tag, epoch_loss, lowest, params, reference):
    """Raise if an epoch diverged (see :func:`run_epochs`)."""
    if not math.isfinite(epoch_loss) or not all(
            np.isfinite(p).all() for p in params):
        what = "became infinite or NaN"
    elif epoch_loss > DIVERGENCE_FACTOR * max(lowest, reference):
        what = f"rose from {lowest:.6g} to {epoch_loss:.6g}"
    else:
        return
    raise ValueError(
        f"{tag}: training diverged in epoch {est.n_iter_ + 1}: the loss "
        f"{what}. The estimator was left as it was before this call. Lower "
        f"learning_rate_init (now {est.learning_rate_init}), standardise X "
        "(e.g. with StandardScaler) or lower alpha."
    )


def _no_improvement(est, early_stopping, tol):
    """MLP's stopping rule, applied after an epoch; True means stop.

    Counts the epochs in a row in which the training loss (or, with early
    stopping, the validation score) did not improve by at least ``tol``
    (``est.tol`` scaled by :func:`run_epochs`' ``loss_terms``).
    """
    last_loss = est.loss_curve_[-1]
    if early_stopping:
        score = est.validation_scores_[-1]
        if score < est.best_validation_score_ + tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        est.best_validation_score_ = max(est.best_validation_score_, score)
    elif last_loss > est.best_loss_ - tol:
        est._no_improvement_count += 1
    else:
        est._no_improvement_count = 0
    est.best_loss_ = min(est.best_loss_, last_loss)
    if est._no_improvement_count > est.n_iter_no_change:
        est._no_improvement_count = 0
        if est.verbose:
            what = "Validation score" if early_stopping else "Training loss"
            _print_line(f"{what} did not improve more than tol={est.tol} "
                        f"for {est.n_iter_no_change} consecutive epochs. "
                        "Stopping.")
        return True
    return False


def _print_line(line):
    """Print a progress line in one write: the networks of an imputer train
    in several threads at once, and ``print`` writes the newline apart."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def l2_penalty(alpha, weights, n_batches, n_samples):
    """The L2 term of an epoch's mean loss, as scikit-learn's MLP adds it.

    MLP adds ``0.5 * alpha * ||W||^2 / batch_size`` to every minibatch loss;
    averaged over an epoch that is ``n_batches / n_samples`` times the sum.
    """
    if not alpha:
        return 0.0
    squares = sum(float(np.dot(w.ravel(), w.ravel())) for w in weights)
    return 0.5 * alpha * squares * n_batches / n_samples


def batch_size_for(estimator, n_train):
    """The minibatch size: ``batch_size``, "auto" meaning ``min(200, n)``."""
    if estimator.batch_size == "auto":
        return min(200, n_train)
    return min(estimator.batch_size, n_train)
