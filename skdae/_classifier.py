"""The stacked denoising autoencoder fine-tuned as a classifier (SdA)."""

import time
import warnings
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _kernels as K
from ._base import (
    SOLVER_PARAMETER_CONSTRAINTS,
    IntInterval,
    check_finite_if_assumed,
    check_hidden_layer_sizes,
)
from ._network import Head, predict_head, train
from ._parallel import inference_rows_per_block, map_row_blocks
from ._repr import DocumentationLinkMixin
from ._stacked import StackedDenoisingAutoencoder, _per_layer
from ._training import (
    check_structure,
    pickled_state,
    record_structure,
    reset_training_state,
    transaction,
    unpickled_state,
    validation_split,
)

# Parameters passed unchanged to the StackedDenoisingAutoencoder of pretraining.
_STACK_PARAMS = ("hidden_layer_sizes", "corruption", "corruption_level",
                 "uncorrupted_weight", "activation", "solver", "batch_size",
                 "n_iter_no_change", "tol", "shuffle", "verbose", "momentum",
                 "nesterovs_momentum", "beta_1", "beta_2", "epsilon")


class StackedDenoisingAutoencoderClassifier(ClassifierMixin, DocumentationLinkMixin,
                                            BaseEstimator):
    """Stacked denoising autoencoder classifier: pretrained, then fine-tuned.

    The SdA of Vincent et al. (2010). Training has two phases:

    1. unsupervised greedy pretraining: a :class:`StackedDenoisingAutoencoder`
       learns the hidden layers, each as a denoising autoencoder of the clean
       codes of the layer below (``pretrain_max_iter`` epochs per layer);
    2. supervised fine-tuning: the encoders of all layers, topped by a softmax
       output layer, form a multi-layer perceptron whose weights start from
       the pretrained ones and are all trained by backpropagation of the
       cross-entropy loss (``max_iter`` epochs), on clean input.

    With ``pretrain=False`` the same network is fine-tuned from random
    weights (the initialisation of the autoencoders), a plain multi-layer
    perceptron: the baseline that pretraining improves upon.

    Training runs on Numba-compiled kernels for the elementwise work and BLAS
    for the matrix products, in float32 for float32 input and in float64
    otherwise.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers,), default=(500, 500)
        Number of units of each hidden layer, from the input up.

    pretrain : bool, default=True
        Whether to initialise the hidden layers by greedy denoising
        autoencoder pretraining. If False, they start from random weights.

    corruption : {"masking", "gaussian", "salt_and_pepper"} or list, \
            default="masking"
        Noise of the pretraining of each layer; see
        :class:`DenoisingAutoencoder`. Fine-tuning sees clean input.

    corruption_level : float or array-like of shape (n_layers,), default=0.25
        Fraction of components corrupted (masking, salt_and_pepper) or
        standard deviation of the noise (gaussian) in the pretraining of each
        layer.

    uncorrupted_weight : float or array-like of shape (n_layers,), default=1.0
        Weight in the pretraining loss of the components that were not
        corrupted (the "emphasis" of Vincent et al., 2010), for each layer.

    activation : {"sigmoid", "tanh", "relu", "identity"} or list, \
            default="sigmoid"
        Activation of the units of each hidden layer.

    pretrain_max_iter : int, default=15
        Maximum number of pretraining epochs of each layer.

    pretrain_learning_rate_init : float, default=1e-3
        Learning rate of the pretraining.

    solver : {"adam", "sgd"}, default="adam"
        Optimizer of both phases.

    learning_rate_init : float, default=1e-3
        Learning rate of the fine-tuning.

    batch_size : int or "auto", default="auto"
        Minibatch size of both phases; "auto" means ``min(200, n_samples)``.

    max_iter : int, default=200
        Maximum number of fine-tuning epochs.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights during fine-tuning.

    early_stopping : bool, default=False
        Whether to set aside ``validation_fraction`` of the training data
        (stratified, before pretraining, so that neither phase sees it) and
        stop fine-tuning when the validation accuracy has not improved by at
        least ``tol`` for ``n_iter_no_change`` epochs; the weights of the best
        epoch are kept. Ignored by :meth:`partial_fit`.

    validation_fraction : float, default=0.1
        Fraction of the training data set aside when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` (in the
        training loss, or the validation accuracy with early stopping) after
        which a phase stops.

    tol : float, default=1e-4
        Minimum improvement that counts (see ``n_iter_no_change``).

    shuffle : bool, default=True
        Whether to shuffle the samples at every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the pretraining, the weight
        initialisation and the shuffling. Pass an int for reproducible
        results. See :term:`Glossary <random_state>`.

    verbose : int, default=0
        Progress output: a line per pretrained layer and per epoch of each
        phase (``epoch k/max_iter``, the loss, elapsed and an estimate of
        the remaining time); 2 also prints progress inside epochs that take
        longer than two seconds.

    warm_start : bool, default=False
        Whether :meth:`fit` continues fine-tuning from the weights of the
        previous fit (no new pretraining, a new optimizer state).

    momentum : float, default=0.9
        Momentum of the "sgd" solver.

    nesterovs_momentum : bool, default=True
        Whether the "sgd" solver uses Nesterov's momentum.

    beta_1 : float, default=0.9
        Decay rate of Adam's first moment estimates.

    beta_2 : float, default=0.999
        Decay rate of Adam's second moment estimates.

    epsilon : float, default=1e-8
        Adam's numerical stability constant.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (fan_in, fan_out) holds the weights of layer
        ``i + 1`` (the last is the softmax output layer), as in
        :class:`~sklearn.neural_network.MLPClassifier`.

    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (fan_out,) holds the biases of layer
        ``i + 1``.

    stack_ : StackedDenoisingAutoencoder or None
        The pretrained stack, before fine-tuning (its weights are copied into
        ``coefs_``); None when ``pretrain=False``.

    pretrain_time_ : float
        Seconds spent in pretraining (0 when ``pretrain=False``).

    loss_ : float
        Mean training loss (cross-entropy plus L2 penalty) of the last epoch.

    loss_curve_ : list of float
        Mean training loss of each fine-tuning epoch.

    best_loss_ : float
        Lowest value in ``loss_curve_``.

    validation_scores_ : list of float or None
        Accuracy on the validation set after each epoch when
        ``early_stopping=True``, else None.

    best_validation_score_ : float or None
        Best value in ``validation_scores_``, else None.

    n_iter_ : int
        Number of fine-tuning epochs run.

    t_ : int
        Number of training samples seen in fine-tuning.

    n_layers_ : int
        Number of layers, counting the input and the output layer.

    n_outputs_ : int
        Number of output units (the number of classes).

    out_activation_ : str
        Activation of the output layer, "softmax".

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    StackedDenoisingAutoencoder : The pretraining alone, as a transformer.
    DenoisingAutoencoder : One layer of the stack.
    sklearn.neural_network.MLPClassifier : The same network trained from
        random weights, with more solvers and activations.

    References
    ----------
    .. [1] P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting
       and composing robust features with denoising autoencoders", Proceedings
       of the 25th International Conference on Machine Learning (ICML), 2008.

    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked denoising autoencoders: learning useful representations in a
       deep network with a local denoising criterion", Journal of Machine
       Learning Research, 11, 3371-3408, 2010.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdae import StackedDenoisingAutoencoderClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> clf = StackedDenoisingAutoencoderClassifier(
    ...     hidden_layer_sizes=(64, 32), pretrain_max_iter=5, max_iter=20,
    ...     learning_rate_init=1e-2, random_state=0)
    >>> clf.fit(X[:1500], y[:1500])
    StackedDenoisingAutoencoderClassifier(hidden_layer_sizes=(64, 32),
                                          learning_rate_init=0.01, max_iter=20,
                                          pretrain_max_iter=5, random_state=0)
    >>> clf.predict(X[1500:1503])
    array([1, 7, 4])
    >>> clf.predict_proba(X[1500:1503]).shape
    (3, 10)
    >>> clf.score(X[1500:], y[1500:]) > 0.85
    True
    """

    _parameter_constraints: dict = {
        **SOLVER_PARAMETER_CONSTRAINTS,
        "hidden_layer_sizes": ["array-like", IntInterval(1, None,
                                                         closed="left")],
        "pretrain": ["boolean"],
        "corruption": [StrOptions({"masking", "gaussian", "salt_and_pepper"}),
                       list, tuple],
        "corruption_level": [Interval(Real, 0, None, closed="left"),
                             "array-like"],
        "uncorrupted_weight": [Interval(Real, 0, 1, closed="both"),
                               "array-like"],
        "activation": [StrOptions({"sigmoid", "tanh", "relu", "identity"}),
                       list, tuple],
        "pretrain_max_iter": [IntInterval(1, None, closed="left")],
        "pretrain_learning_rate_init": [Interval(Real, 0, None,
                                                 closed="neither")],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(500, 500),
        *,
        pretrain=True,
        corruption="masking",
        corruption_level=0.25,
        uncorrupted_weight=1.0,
        activation="sigmoid",
        pretrain_max_iter=15,
        pretrain_learning_rate_init=1e-3,
        solver="adam",
        learning_rate_init=1e-3,
        batch_size="auto",
        max_iter=200,
        alpha=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.pretrain = pretrain
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.uncorrupted_weight = uncorrupted_weight
        self.activation = activation
        self.pretrain_max_iter = pretrain_max_iter
        self.pretrain_learning_rate_init = pretrain_learning_rate_init
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain the hidden layers, then fine-tune the whole network.

        ``fit`` is all or nothing: if it raises (invalid data or parameters,
        divergence) or is interrupted (``KeyboardInterrupt``), in pretraining
        or fine-tuning, the estimator is left exactly as it was before the
        call (``classes_`` included), unfitted if it was.

        With ``warm_start=True`` on a fitted model, fine-tuning continues
        from the current weights (no new pretraining, a fresh optimizer state,
        the same validation split); ``hidden_layer_sizes`` and ``activation``
        cannot change and raise a ``ValueError``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with transaction(self):
            self._fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Run one fine-tuning epoch over (X, y).

        The first call needs ``classes``; it initialises the network (with
        ``pretrain=True``, by a full greedy pretraining on this X) before its
        fine-tuning epoch. Later calls continue the weights and the optimizer
        state, following the current solver settings (a learning-rate
        schedule can be set with :meth:`set_params` between calls; a new
        ``solver`` starts a fresh optimizer state). ``hidden_layer_sizes`` and
        ``activation`` cannot change. ``early_stopping`` is ignored.

        A model saved (pickled) after :meth:`fit` leaves out the optimizer
        state (the Adam moments or SGD velocities): it is about the size of
        its weights, and ``partial_fit`` after loading it continues the
        weights, ``n_iter_``, ``t_`` and the random stream with a fresh
        optimizer state. A model saved after ``partial_fit`` keeps it. Like
        :meth:`fit`, ``partial_fit`` is all or nothing.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Class labels.

        classes : array-like of shape (n_classes,), default=None
            All the classes that can appear in y. Required in the first call,
            ignored in later ones.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with transaction(self):
            self._partial_fit(X, y, classes)
        return self

    def predict(self, X):
        """Predict the class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted class labels.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_proba(self, X):
        """Probability of each class: the softmax output of the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Class probabilities, in the order of ``classes_``.
        """
        return self._predict_output(X, log=False)

    def predict_log_proba(self, X):
        """Log of the probability of each class, computed from the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log class probabilities, in the order of ``classes_``; finite
            where ``np.log(predict_proba(X))`` could underflow.
        """
        return self._predict_output(X, log=True)

    @property
    def n_layers_(self):
        """Number of layers, counting the input and the output layer."""
        return len(self.coefs_) + 1

    @property
    def n_outputs_(self):
        """Number of output units."""
        return self.coefs_[-1].shape[1]

    @property
    def out_activation_(self):
        """Activation of the output layer."""
        return "softmax"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        return pickled_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(unpickled_state(state))

    # ------------------------------------------------------------------
    # Validation and initialisation
    # ------------------------------------------------------------------
    def _fit(self, X, y):
        """Body of fit, inside a ``transaction``: validate, then train."""
        warm = self.warm_start and hasattr(self, "coefs_")
        X, y = self._validate_training_data(X, y, reset=not warm)
        if warm:
            check_structure(self, self._structure_now(),
                            how="set warm_start=False")
            y_codes = self._encode_labels(y)
        else:
            classes, y_codes = np.unique(y, return_inverse=True)
            self._check_n_classes(classes)
            self._structure_now()  # validates the per-layer settings
            self.classes_ = classes
            self.__dict__.pop("_validation_seed", None)
        self._random_state = check_random_state(self.random_state)
        indices = np.arange(X.shape[0])
        val_indices = None
        if self.early_stopping:
            can_stratify = _can_stratify(y_codes, self.validation_fraction)
            indices, val_indices = validation_split(
                self, indices, y_codes if can_stratify else None)
        if not warm:
            self._initialize(X, indices)
        self._finetune(X, y_codes, indices, val_indices, incremental=False)

    def _partial_fit(self, X, y, classes):
        """Body of partial_fit, inside a ``transaction``."""
        first_call = _check_partial_fit_first_call(self, classes)
        X, y = self._validate_training_data(X, y, reset=first_call)
        if first_call:
            self._check_n_classes(self.classes_)
        else:
            check_structure(self, self._structure_now(),
                            how="fit a new estimator")
        y_codes = self._encode_labels(y)
        if first_call:
            self._random_state = check_random_state(self.random_state)
            self._initialize(X, np.arange(X.shape[0]))
        self._finetune(X, y_codes, np.arange(X.shape[0]), None,
                       incremental=True)

    def _structure_now(self):
        """What the current parameters would build (see ``check_structure``)."""
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        return {"hidden_layer_sizes": sizes,
                "activation": _per_layer(self, "activation", len(sizes))}

    def _validate_training_data(self, X, y, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             dtype=[np.float64, np.float32], reset=reset)
        check_classification_targets(y)
        check_finite_if_assumed(X, type(self).__name__)
        if sp.issparse(X):
            X = X.tocsr()
        if not reset and X.dtype != self.coefs_[0].dtype:
            # Continue training in the dtype the weights were created in.
            X = X.astype(self.coefs_[0].dtype)
        return X, y

    def _check_n_classes(self, classes):
        if classes.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, "
                f"but y has only 1 class: {classes[0]!r}. Pass data "
                "from two or more classes."
            )

    def _encode_labels(self, y):
        """Indices of the labels ``y`` in ``classes_``."""
        codes = np.searchsorted(self.classes_, y)
        codes = np.minimum(codes, self.classes_.shape[0] - 1)
        unknown = self.classes_[codes] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels {np.unique(y[unknown])!r} that are not in "
                f"classes_ {self.classes_!r}. Pass every class to the first "
                "partial_fit through `classes`, or refit without warm_start."
            )
        return codes

    def _stack(self, seed):
        """The unfitted StackedDenoisingAutoencoder of the pretraining."""
        params = {name: getattr(self, name) for name in _STACK_PARAMS}
        return StackedDenoisingAutoencoder(
            **params, loss="auto", max_iter=self.pretrain_max_iter,
            learning_rate_init=self.pretrain_learning_rate_init,
            random_state=seed)

    def _initialize(self, X, train_indices):
        """Pretrained (or random) hidden layers and a random softmax layer."""
        rng = self._random_state
        seed = rng.randint(np.iinfo(np.int32).max)
        stack = self._stack(seed)
        dtype = X.dtype
        start = time.perf_counter()
        if self.pretrain:
            if self.verbose:
                print(f"[{type(self).__name__}] Pretraining")
            held_out = train_indices.shape[0] < X.shape[0]
            X_train = X[train_indices] if held_out else X
            with warnings.catch_warnings():
                # A fixed budget of epochs per layer, as in the paper.
                warnings.simplefilter("ignore", ConvergenceWarning)
                stack.fit(X_train)
            self.stack_ = stack
            self.coefs_ = [np.ascontiguousarray(ae.components_.T)
                           for ae in stack.autoencoders_]
            self.intercepts_ = [ae.intercept_hidden_.copy()
                                for ae in stack.autoencoders_]
            layers = stack.autoencoders_
        else:
            self.stack_ = None
            init_rng = np.random.RandomState(seed)
            layers = stack._make_layers(init_rng)
            self.coefs_, self.intercepts_ = [], []
            fan_in = X.shape[1]
            for layer in layers:
                # The initialisation of DenoisingAutoencoder.
                fan_out = layer.n_components
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                if layer.activation == "sigmoid":
                    bound *= 4.0
                W = init_rng.uniform(-bound, bound, (fan_out, fan_in))
                self.coefs_.append(np.ascontiguousarray(W.T, dtype=dtype))
                self.intercepts_.append(np.zeros(fan_out, dtype=dtype))
                fan_in = fan_out
        self.pretrain_time_ = (time.perf_counter() - start if self.pretrain
                               else 0.0)
        self._activations = [K.ACTIVATION_CODES[layer.activation]
                             for layer in layers]
        fan_in = self.coefs_[-1].shape[1]
        n_classes = self.classes_.shape[0]
        bound = np.sqrt(6.0 / (fan_in + n_classes))
        self.coefs_.append(rng.uniform(-bound, bound, (fan_in, n_classes))
                           .astype(dtype))
        self.intercepts_.append(np.zeros(n_classes, dtype=dtype))
        reset_training_state(self)
        self.__dict__.pop("_optimizer_state", None)
        record_structure(self, self._structure_now())

    # ------------------------------------------------------------------
    # Fine-tuning
    # ------------------------------------------------------------------
    def _finetune(self, X, y, indices, val_indices, incremental):
        """Run ``max_iter`` epochs (fit) or one epoch (partial_fit).

        The network (the encoders topped by the softmax layer) trains on the
        deep network engine (``_network``): one softmax group whose target
        is the class index, clean input.
        """
        validation_score = None
        if val_indices is not None:
            def validation_score():
                predicted = np.argmax(self._output(X[val_indices], log=True),
                                      axis=1)
                return float(np.mean(predicted == y[val_indices]))

        train(self, self.coefs_, self.intercepts_, self._activations,
              self._head(), X, y[:, None].astype(X.dtype), indices,
              n_epochs=1 if incremental else self.max_iter,
              incremental=incremental, validation_score=validation_score,
              tag=f"{type(self).__name__} fine-tuning")
        self.loss_ = self.loss_curve_[-1]

    def _head(self):
        return Head(["softmax"], [self.classes_.shape[0]])

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------
    def _predict_output(self, X, log):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32], reset=False)
        if sp.issparse(X):
            X = X.tocsr()
        return self._output(X, log)

    def _output(self, X, log):
        """Softmax output (or its log) in the dtype of the weights."""
        X = X.astype(self.coefs_[0].dtype, copy=False)
        head = self._head()

        def output(rows):
            return predict_head(self.coefs_, self.intercepts_,
                                self._activations, head, X[rows], log=log)

        # By fixed blocks of rows on single-threaded BLAS: the same
        # probabilities whatever the number of threads.
        width = max(X.shape[1], *(W.shape[1] for W in self.coefs_))
        out = np.empty((X.shape[0], head.n_outputs), dtype=X.dtype)
        return map_row_blocks(output, X.shape[0],
                              inference_rows_per_block(width), out)


def _can_stratify(y_codes, validation_fraction):
    """Whether a stratified split is possible (every class twice or more)."""
    counts = np.bincount(y_codes)
    n_val = int(np.ceil(validation_fraction * y_codes.shape[0]))
    return counts.min() >= 2 and n_val >= counts.shape[0]
