"""Fine-tuning a stack of denoising autoencoders as one deep autoencoder.

``StackedDenoisingAutoencoder(fine_tune=True)`` (Hinton & Salakhutdinov,
2006; Vincent et al., 2010, section 7): the encoders of the layers, then their
decoders from the top down, form one network in MLP layout
(:func:`deep_network`), trained end to end on the deep network engine
(``_network.train``, hence ``_training.run_epochs``) with the first layer's
noise and loss. The trained weights go back into the layers
(:func:`store_network`), which keeps every public attribute and method of the
stack and of its layers truthful. The training state of the fine-tuning lives
in the stack's ``fine_tune_*`` attributes (:data:`FINE_TUNING_STATE`).
"""

import sys

import numpy as np

from . import _kernels as K
from ._minibatch import data_range
from ._network import Corruption, Head, row_losses, train
from ._training import reset_training_state

# A layer's reconstruction in the deep autoencoder: its decoder's output
# activation (for the layers above the first) and head loss (the first).
_DECODER_ACTIVATIONS = {"cross_entropy": "sigmoid", "squared_error": "identity"}
_HEAD_LOSSES = {"cross_entropy": "sigmoid_cross_entropy",
                "squared_error": "squared_error"}

# The attributes of ``run_epochs`` -> where the stack keeps those of its
# fine-tuning, apart from the layers' own ``n_iter_``.
FINE_TUNING_STATE = {
    "n_iter_": "fine_tune_n_iter_",
    "loss_curve_": "fine_tune_loss_curve_",
    "best_loss_": "fine_tune_best_loss_",
    "validation_scores_": "fine_tune_validation_scores_",
    "best_validation_score_": "fine_tune_best_validation_score_",
    "t_": "_fine_tune_t",
    "_no_improvement_count": "_fine_tune_no_improvement_count",
}


def deep_network(layers, dtype, copy=False):
    """The deep autoencoder of the fitted ``layers``, for ``_network``.

    Encoders from the bottom up, then decoders from the top down (each
    decoder's output activation: sigmoid for a cross-entropy layer, else the
    identity), topped by the first layer's loss as the head: the function
    ``inverse_transform(transform(X))`` of the stack. Returns ``coefs``,
    ``intercepts``, ``activations`` and ``head`` in ``dtype``; ``copy=True``
    gives C-contiguous copies to train.
    """
    weights = ([ae.components_.T for ae in layers]
               + [ae.decoder_components_ for ae in reversed(layers)])
    biases = ([ae.intercept_hidden_ for ae in layers]
              + [ae.intercept_visible_ for ae in reversed(layers)])
    if copy:
        coefs = [np.array(W, dtype=dtype, order="C") for W in weights]
        intercepts = [np.array(b, dtype=dtype) for b in biases]
    else:
        coefs = [W.astype(dtype, copy=False) for W in weights]
        intercepts = [b.astype(dtype, copy=False) for b in biases]
    names = ([ae.activation for ae in layers]
             + [_DECODER_ACTIVATIONS[ae.loss_] for ae in layers[:0:-1]])
    activations = [K.ACTIVATION_CODES[name] for name in names]
    first = layers[0]
    head = Head([_HEAD_LOSSES[first.loss_]], [first.n_features_in_])
    return coefs, intercepts, activations, head


def fine_tune(stack, X, indices, val_indices, incremental):
    """Fine-tuning epochs (``fine_tune_max_iter``, or one) of a fitted stack.

    Trains on the rows ``indices`` of X and, if ``val_indices`` is given,
    stops early on the stack's score of those rows. Runs inside the stack's
    ``transaction``.
    """
    layers = stack.autoencoders_
    first = layers[0]
    *value_range, missing = data_range(X, return_missing=True)
    if missing or not np.isfinite(value_range).all():
        raise ValueError(
            "fine_tune=True needs X without missing values (NaN) or "
            "infinity: impute them first (e.g. with skdae."
            "DenoisingAutoencoderImputer or sklearn.impute.SimpleImputer), "
            "or set fine_tune=False, whose greedy layers take NaN as missing "
            "entries.")
    first._check_data_range(value_range, first.loss_)
    first._track_data_range(value_range)
    dtype = first.components_.dtype
    X = X.astype(dtype, copy=False)
    coefs, intercepts, activations, head = deep_network(layers, dtype,
                                                        copy=True)
    # The first layer's noise, drawn as that layer draws it.
    kind = "none" if first.corruption_level == 0 else first.corruption
    noise = Corruption(kind, first.corruption_level, X.shape[1],
                       uncorrupted_weight=first.uncorrupted_weight,
                       low=first._data_low_high[0],
                       high=first._data_low_high[1])
    view = _FineTuningView(stack)
    if not hasattr(stack, "fine_tune_n_iter_"):
        reset_training_state(view)
        stack.__dict__.pop("_optimizer_state", None)
    validation_score = None
    if val_indices is not None:
        X_val = X[val_indices]

        def validation_score():
            return -float(np.mean(row_losses(
                coefs, intercepts, activations, head, X_val, X_val)))

    name = type(stack).__name__
    if stack.verbose:
        widths = " -> ".join(str(W.shape[0]) for W in coefs)
        print(f"[{name}] Fine-tuning: {widths} -> {coefs[-1].shape[1]} "
              f"units, corruption={kind}({first.corruption_level}), "
              f"loss={first.loss_}")
        sys.stdout.flush()
    train(view, coefs, intercepts, activations, head, X, X, indices,
          n_epochs=1 if incremental else stack.fine_tune_max_iter,
          incremental=incremental, noise=noise,
          validation_score=validation_score, tag=f"{name} fine-tuning")
    store_network(stack, coefs, intercepts)


def store_network(stack, coefs, intercepts):
    """The fine-tuned weights into the stack's layers, which become untied."""
    top = 2 * len(stack.autoencoders_) - 1
    for k, layer in enumerate(stack.autoencoders_):
        layer.components_ = np.ascontiguousarray(coefs[k].T)
        layer.intercept_hidden_ = intercepts[k]
        layer.decoder_components_ = coefs[top - k]
        layer.intercept_visible_ = intercepts[top - k]
        layer.tied_weights = False
        layer._structure["tied_weights"] = False
        # Its greedy optimizer state was for other (tied) weights.
        layer.__dict__.pop("_optimizer_state", None)
    stack._untied_by_fine_tuning = True


def forget_fine_tuning(stack):
    """Remove the fine-tuning state: the layers are new or changed since."""
    for name in FINE_TUNING_STATE.values():
        stack.__dict__.pop(name, None)
    stack.__dict__.pop("_optimizer_state", None)


class _FineTuningView:
    """The stack as the training loop sees it during fine-tuning.

    ``run_epochs`` and the optimizer read the stack's settings and random
    state through it, and keep their training state in the stack's
    ``fine_tune_*`` attributes (:data:`FINE_TUNING_STATE`). Built for one
    call, never stored.
    """

    def __init__(self, stack):
        object.__setattr__(self, "_stack", stack)

    def __getattr__(self, name):
        return getattr(self._stack, FINE_TUNING_STATE.get(name, name))

    def __setattr__(self, name, value):
        setattr(self._stack, FINE_TUNING_STATE.get(name, name), value)
