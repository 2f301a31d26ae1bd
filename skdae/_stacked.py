"""Stacked denoising autoencoders: greedy layer-wise feature learning."""

import sys
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from ._autoencoder import DenoisingAutoencoder
from ._base import (
    SOLVER_PARAMETER_CONSTRAINTS,
    IntInterval,
    check_hidden_layer_sizes,
)
from ._fine_tuning import deep_network, fine_tune, forget_fine_tuning
from ._network import row_losses
from ._parallel import inference_rows_per_block, map_row_blocks
from ._repr import DocumentationLinkMixin
from ._training import (
    check_structure,
    pickled_state,
    record_structure,
    transaction,
    unpickled_state,
    validation_split,
)

# Settings that may differ between layers: a scalar or one value per layer.
PER_LAYER_PARAMS = ("corruption", "corruption_level", "uncorrupted_weight",
                    "activation", "loss")

def _per_layer(estimator, name, n_layers):
    """The value of parameter ``name`` for each of ``n_layers`` layers.

    Also used by ``skdae.onnx`` to read a fitted model's per-layer settings.
    """
    value = getattr(estimator, name)
    if isinstance(value, str) or np.ndim(value) == 0:
        return [value] * n_layers
    values = list(value)
    if len(values) != n_layers:
        raise ValueError(
            f"{type(estimator).__name__}.{name} has {len(values)} values for "
            f"{n_layers} hidden layers. Give one value for all layers or "
            "exactly one per layer (as many as in hidden_layer_sizes)."
        )
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _encode_through(layers, X):
    """The top code of ``layers`` on X, by fixed blocks of rows.

    On single-threaded BLAS (``_parallel.map_row_blocks``): the codes are
    the same whatever the number of threads, those a layer is trained on as
    those ``transform`` returns. The layers' own encoders, not their
    ``transform``: arrays in and out whatever sklearn's transform_output.
    """
    if sp.issparse(X):
        X = X.tocsr()

    def encode(rows):
        H = X[rows]
        for layer in layers:
            H = layer._encode(H)
        return H

    width = max(layer.n_components_ for layer in layers)
    out = np.empty((X.shape[0], layers[-1].n_components_), dtype=X.dtype)
    return map_row_blocks(encode, X.shape[0], inference_rows_per_block(width),
                          out)


def _layer_params(estimator, sizes, shared):
    """Keyword arguments of the :class:`DenoisingAutoencoder` of each layer.

    ``shared`` maps DenoisingAutoencoder parameters to the values all layers
    take; the per-layer settings come from :data:`PER_LAYER_PARAMS`.
    """
    per_layer = {name: _per_layer(estimator, name, len(sizes))
                 for name in PER_LAYER_PARAMS}
    return [
        dict(shared, n_components=size,
             **{name: values[k] for name, values in per_layer.items()})
        for k, size in enumerate(sizes)
    ]


class StackedDenoisingAutoencoder(ClassNamePrefixFeaturesOutMixin,
                                  TransformerMixin, DocumentationLinkMixin,
                                  BaseEstimator):
    """Stacked denoising autoencoder: deep features learned greedily, layer by layer.

    The first layer is a :class:`DenoisingAutoencoder` trained on X; each
    following layer is a :class:`DenoisingAutoencoder` trained on the clean
    (uncorrupted) codes of the layer below, as in Vincent et al. (2010).
    :meth:`transform` returns the code of the top layer and
    :meth:`inverse_transform` decodes it back through the whole stack.

    With ``fine_tune=True`` the greedy pretraining is followed by
    unsupervised fine-tuning of the whole deep autoencoder (Hinton &
    Salakhutdinov, 2006; Vincent et al., 2010, section 7): the encoders of
    all layers, then their decoders from the top down, form one network
    trained end to end by backpropagation to reconstruct the clean input
    from its corrupted version (the first layer's noise and loss), for up to
    ``fine_tune_max_iter`` epochs. The layers then hold the fine-tuned
    weights (see ``autoencoders_``).

    Per-layer settings (``corruption``, ``corruption_level``,
    ``uncorrupted_weight``, ``activation``, ``loss``) take one value for all
    layers or a sequence with one value per layer. With sigmoid hidden units
    the codes lie in [0, 1], so ``loss="auto"`` chooses the cross-entropy for
    every layer above the first.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers,), default=(500, 500)
        Number of hidden units of each layer, from the bottom (input) layer
        to the top layer.

    corruption : {"masking", "gaussian", "salt_and_pepper", "swap"} or list, \
            default="masking"
        Noise applied to the input of each layer during its training; see
        :class:`DenoisingAutoencoder`.

    corruption_level : float or array-like of shape (n_layers,), default=0.3
        Fraction of components corrupted (masking, salt_and_pepper) or
        standard deviation of the noise (gaussian), for each layer.

    uncorrupted_weight : float or array-like of shape (n_layers,), default=1.0
        Weight in the loss of the components that were not corrupted (the
        "emphasis" of Vincent et al., 2010), for each layer.

    activation : {"sigmoid", "tanh", "relu", "identity"} or list, \
            default="sigmoid"
        Activation of the hidden units of each layer.

    loss : {"auto", "cross_entropy", "squared_error"} or list, default="auto"
        Reconstruction loss of each layer. "auto" chooses the cross-entropy
        when the input of the layer lies in [0, 1] and the squared error
        otherwise.

    tied_weights : bool, default=True
        Whether each decoder uses the transposed encoder weights in the
        greedy pretraining. Fine-tuning unties them: the fine-tuned layers
        keep separate decoder weights (and ``tied_weights=False``).

    solver : {"adam", "sgd"}, default="adam"
        Optimizer of each layer.

    learning_rate_init : float, default=1e-3
        Learning rate of each layer.

    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" means ``min(200, n_samples)``.

    max_iter : int, default=200
        Maximum number of epochs of each layer in the greedy pretraining of
        :meth:`fit` (as :class:`DenoisingAutoencoder`'s: each layer stops
        earlier when its loss per feature no longer improves by ``tol``).

    fine_tune : bool, default=False
        Whether :meth:`fit` fine-tunes the whole deep autoencoder end to end
        after the greedy pretraining, and :meth:`partial_fit` runs
        fine-tuning epochs. The fine-tuning corrupts the input with the
        first layer's ``corruption``, ``corruption_level`` and
        ``uncorrupted_weight`` and minimises the first layer's
        reconstruction loss (``loss_`` of ``autoencoders_[0]``), with the
        solver settings of the layers (``solver``, ``learning_rate_init``,
        ``batch_size``, ``alpha``...). It usually lowers the reconstruction
        error of the whole stack, most for deeper stacks; see the
        :ref:`User Guide <user_guide>`.

    fine_tune_max_iter : int, default=50
        Maximum number of fine-tuning epochs of :meth:`fit` (the counterpart
        of the classifier's ``max_iter``; ``max_iter`` here stays the
        per-layer budget of the pretraining, the classifier's
        ``pretrain_max_iter``). Only with ``fine_tune=True``.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights.

    early_stopping : bool, default=False
        Whether each layer stops on the reconstruction loss of a held-out
        ``validation_fraction`` of its training data; see
        :class:`DenoisingAutoencoder`. With ``fine_tune=True``, a
        ``validation_fraction`` of X is also set aside before pretraining
        (no phase trains on it) and fine-tuning stops when the score of the
        whole stack on it (:meth:`score`) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the best weights. Ignored by
        the fine-tuning epochs of :meth:`partial_fit`.

    validation_fraction : float, default=0.1
        Fraction of the training data set aside when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` after
        which the training of a layer stops.

    tol : float, default=1e-4
        Minimum improvement that counts (see ``n_iter_no_change``).

    shuffle : bool, default=True
        Whether to shuffle the samples at every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds every layer (each layer gets its own seed drawn from it). Pass
        an int for reproducible results. See :term:`Glossary <random_state>`.

    verbose : int, default=0
        Whether to print a line when each layer starts; the progress lines
        of each layer (see :class:`DenoisingAutoencoder`) are tagged
        ``[StackedDenoisingAutoencoder layer k/n_layers]``, those of the
        fine-tuning ``[StackedDenoisingAutoencoder fine-tuning]``.

    warm_start : bool, default=False
        Whether :meth:`fit` continues from the fitted layers instead of
        building new ones: with ``fine_tune=True`` it continues fine-tuning
        (``fine_tune_max_iter`` more epochs, no new pretraining, the same
        validation rows; a greedily fitted stack is fine-tuned from its
        layers), else every layer continues its greedy training (``max_iter``
        more epochs, on the codes of the layer below after its update).
        ``hidden_layer_sizes`` and each layer's structural settings cannot
        change (``ValueError``).

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
    autoencoders_ : list of DenoisingAutoencoder
        The fitted layers, from the bottom to the top; layer ``k + 1`` was
        trained on ``autoencoders_[k].transform`` of the codes below. After
        fine-tuning, each layer holds its part of the fine-tuned network:
        ``components_`` and ``intercept_hidden_`` its encoder,
        ``decoder_components_`` and ``intercept_visible_`` its decoder
        (untied, ``tied_weights=False``), so that :meth:`transform`,
        :meth:`inverse_transform`, :meth:`score_samples`, the layers' own
        methods and the ONNX export all use the fine-tuned weights; the
        layers' ``loss_curve_`` and ``n_iter_`` remain those of the
        pretraining.

    n_layers_ : int
        Number of layers.

    n_iter_ : int
        Number of epochs run: the layers' (``autoencoders_[k].n_iter_``)
        plus the fine-tuning's (``fine_tune_n_iter_``).

    fine_tune_n_iter_ : int
        Number of fine-tuning epochs run. Defined only after fine-tuning
        (like the other ``fine_tune_*`` attributes, removed when a later
        greedy training changes the layers).

    fine_tune_loss_curve_ : list of float
        Mean training loss of each fine-tuning epoch: the reconstruction
        loss of the corrupted samples through the whole stack, summed over
        features (weighted by emphasis), plus the L2 penalty.

    fine_tune_best_loss_ : float
        Lowest value in ``fine_tune_loss_curve_``.

    fine_tune_validation_scores_ : list of float or None
        :meth:`score` of the validation rows after each fine-tuning epoch
        when ``early_stopping=True``, else None.

    fine_tune_best_validation_score_ : float or None
        Best value in ``fine_tune_validation_scores_``, else None.

    n_components_ : int
        Width of the top code, the number of features of :meth:`transform`.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    DenoisingAutoencoder : One layer of the stack.
    StackedDenoisingAutoencoderClassifier : The stack fine-tuned with a softmax
        output layer for classification.
    sklearn.neural_network.BernoulliRBM : The building block of deep belief
        networks, the other greedy layer-wise pretraining.

    References
    ----------
    .. [1] P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting
       and composing robust features with denoising autoencoders", Proceedings
       of the 25th International Conference on Machine Learning (ICML), 2008.

    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked denoising autoencoders: learning useful representations in a
       deep network with a local denoising criterion", Journal of Machine
       Learning Research, 11, 3371-3408, 2010.

    .. [3] G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality
       of data with neural networks", Science, 313(5786), 504-507, 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from skdae import StackedDenoisingAutoencoder
    >>> X = np.random.RandomState(0).uniform(size=(100, 16))
    >>> sda = StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4),
    ...                                   corruption_level=[0.3, 0.1],
    ...                                   max_iter=20, random_state=0)
    >>> sda.fit(X)
    StackedDenoisingAutoencoder(corruption_level=[0.3, 0.1],
                                hidden_layer_sizes=(8, 4), max_iter=20,
                                random_state=0)
    >>> [ae.loss_ for ae in sda.autoencoders_]
    ['cross_entropy', 'cross_entropy']
    >>> sda.transform(X).shape
    (100, 4)
    >>> sda.inverse_transform(sda.transform(X)).shape
    (100, 16)
    >>> tuned = StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4),
    ...                                     max_iter=20, fine_tune=True,
    ...                                     fine_tune_max_iter=20,
    ...                                     random_state=0).fit(X)
    >>> tuned.fine_tune_n_iter_
    20
    >>> bool(tuned.score(X) > sda.score(X))
    True
    """

    _parameter_constraints: dict = {
        **SOLVER_PARAMETER_CONSTRAINTS,
        "hidden_layer_sizes": ["array-like", IntInterval(1, None,
                                                         closed="left")],
        "corruption": [StrOptions({"masking", "gaussian", "salt_and_pepper",
                                   "swap"}),
                       list, tuple],
        "corruption_level": [Interval(Real, 0, None, closed="left"),
                             "array-like"],
        "uncorrupted_weight": [Interval(Real, 0, 1, closed="both"),
                               "array-like"],
        "activation": [StrOptions({"sigmoid", "tanh", "relu", "identity"}),
                       list, tuple],
        "loss": [StrOptions({"auto", "cross_entropy", "squared_error"}),
                 list, tuple],
        "tied_weights": ["boolean"],
        "fine_tune": ["boolean"],
        "fine_tune_max_iter": [IntInterval(1, None, closed="left")],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(500, 500),
        *,
        corruption="masking",
        corruption_level=0.3,
        uncorrupted_weight=1.0,
        activation="sigmoid",
        loss="auto",
        tied_weights=True,
        solver="adam",
        learning_rate_init=1e-3,
        batch_size="auto",
        max_iter=200,
        fine_tune=False,
        fine_tune_max_iter=50,
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
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.uncorrupted_weight = uncorrupted_weight
        self.activation = activation
        self.loss = loss
        self.tied_weights = tied_weights
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.fine_tune = fine_tune
        self.fine_tune_max_iter = fine_tune_max_iter
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
    def fit(self, X, y=None):
        """Train the layers greedily, each on the clean codes of the one below.

        With ``fine_tune=True``, then fine-tune the whole deep autoencoder
        end to end. With ``warm_start=True`` on a fitted stack, continue
        instead (see ``warm_start``).

        ``fit`` is all or nothing: if it raises or is interrupted
        (``KeyboardInterrupt``) in any layer or in fine-tuning, the
        estimator is left exactly as it was before the call (all its
        previous layers, or unfitted); the new layers are committed
        together.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. NaN entries are missing values of the first
            layer (see :meth:`DenoisingAutoencoder.fit`).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with transaction(self):
            self._fit(X, incremental=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Run one epoch over X: of every layer, or of fine-tuning.

        With ``fine_tune=False``, one epoch of every layer, from the bottom
        layer up: each layer continues from its current weights and trains
        on the clean codes of the layer below after that layer's update; the
        first call initialises the layers. With ``fine_tune=True``, one epoch
        of fine-tuning of the whole stack; the first call on an unfitted
        stack first pretrains it greedily as :meth:`fit` does (``max_iter``
        epochs per layer), as the classifier's ``partial_fit`` does.

        Later calls pass the current settings on to the layers: per-layer
        noise and solver settings are followed (a new ``solver`` starts a
        fresh optimizer state), while ``hidden_layer_sizes``, ``activation``,
        ``loss`` and tying untied weights cannot change (``ValueError``).
        Like :meth:`fit`, ``partial_fit`` is all or nothing. What a saved
        model keeps of the optimizer states: see
        :meth:`DenoisingAutoencoder.partial_fit`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with transaction(self):
            self._fit(X, incremental=True)
        return self

    def transform(self, X):
        """Encode X through every layer: the top-layer code of the clean input.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[-1])
            The top-layer codes, in the dtype of X (float32 or float64).
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32],
                          ensure_all_finite=self._finite_policy, reset=False)
        return _encode_through(self.autoencoders_, X)

    def inverse_transform(self, X):
        """Decode top-layer codes back to the input space, through every layer.

        ``inverse_transform(transform(X))`` is the reconstruction of X by the
        whole stack.

        Parameters
        ----------
        X : array-like of shape (n_samples, hidden_layer_sizes[-1])
            Top-layer codes, as returned by :meth:`transform`.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
            The reconstruction.
        """
        check_is_fitted(self)
        H = check_array(X, accept_sparse=["csr", "csc"],
                        dtype=[np.float64, np.float32])
        if H.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {H.shape[1]} columns, but {type(self).__name__} decodes "
                f"top-layer codes of width {self.n_components_}. Pass the "
                "output of transform() to inverse_transform()."
            )
        for layer in reversed(self.autoencoders_):
            H = layer.inverse_transform(H)
        return H

    def score_samples(self, X):
        """Minus the reconstruction loss of each clean sample, through the stack.

        The first layer's loss (cross-entropy or squared error, summed over
        features) between X and ``inverse_transform(transform(X))``. Higher
        means better reconstructed: an anomaly score where low values flag
        outliers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Minus the per-sample reconstruction loss.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32],
                          ensure_all_finite=self._finite_policy, reset=False)
        if sp.issparse(X):
            X = X.tocsr()
        network = deep_network(self.autoencoders_, X.dtype)
        missing = np.isnan(X.data if sp.issparse(X) else X)
        weights = None
        if missing.any():
            # Missing entries are encoded as 0 and carry no loss, as in the
            # layers' own score_samples.
            X = X.toarray() if sp.issparse(X) else X
            missing = np.isnan(X)
            X = np.where(missing, 0, X)
            weights = ~missing

        def losses(rows):
            return row_losses(*network, X[rows], X[rows], target_weights=(
                None if weights is None else weights[rows]))

        width = max(X.shape[1], *(W.shape[1] for W in network[0]))
        return -map_row_blocks(losses, X.shape[0],
                               inference_rows_per_block(width),
                               np.empty(X.shape[0]))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`: minus the mean reconstruction loss.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Minus the mean per-sample reconstruction loss of the whole stack;
            higher is better.
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def n_layers_(self):
        """Number of layers of the fitted stack."""
        return len(self.autoencoders_)

    @property
    def n_iter_(self):
        """Number of epochs run: the layers' plus the fine-tuning's."""
        return (sum(layer.n_iter_ for layer in self.autoencoders_)
                + getattr(self, "fine_tune_n_iter_", 0))

    @property
    def n_components_(self):
        """Width of the top-layer code."""
        return self.autoencoders_[-1].n_components_

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # NaN: missing entries of the first layer (DenoisingAutoencoder);
        # the end-to-end fine-tuning takes complete data only.
        tags.input_tags.allow_nan = not self.fine_tune
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _finite_policy(self):
        # NaN are missing entries of the greedy layers; the end-to-end
        # fine-tuning takes complete data only.
        return True if self.fine_tune else "allow-nan"

    def __getstate__(self):
        return pickled_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(unpickled_state(state))

    # ------------------------------------------------------------------
    # Greedy pretraining
    # ------------------------------------------------------------------
    def _fit(self, X, incremental):
        """Body of fit / partial_fit, inside a ``transaction``."""
        warm = hasattr(self, "autoencoders_") and (incremental
                                                  or self.warm_start)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan", reset=not warm)
        if sp.issparse(X):
            X = X.tocsr()
        if warm:
            self._update_layers()
        else:
            for name in ("_validation_seed", "_untied_by_fine_tuning"):
                self.__dict__.pop(name, None)
            forget_fine_tuning(self)
            self._random_state = rng = check_random_state(self.random_state)
            self.autoencoders_ = self._make_layers(rng)
        indices, val_indices = np.arange(X.shape[0]), None
        if self.fine_tune and self.early_stopping and not incremental:
            indices, val_indices = validation_split(self, indices)
        if not (warm and self.fine_tune):
            # Greedy training; a fine-tuning partial_fit pretrains in full.
            X_train = X[indices] if val_indices is not None else X
            self._train_layers(X_train, incremental and not self.fine_tune)
            if warm:
                forget_fine_tuning(self)
        if self.fine_tune:
            fine_tune(self, X, indices, val_indices, incremental)

    def _layer_settings(self):
        """Layer widths, and the parameters of each layer's autoencoder."""
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        shared = {
            name: getattr(self, name)
            for name in ("tied_weights", "solver", "learning_rate_init",
                         "batch_size", "max_iter", "alpha", "early_stopping",
                         "validation_fraction", "n_iter_no_change", "tol",
                         "shuffle", "verbose", "warm_start", "momentum",
                         "nesterovs_momentum", "beta_1", "beta_2", "epsilon")
        }
        # Fine-tuned layers stay untied.
        shared["tied_weights"] &= not getattr(self, "_untied_by_fine_tuning",
                                              False)
        return sizes, _layer_params(self, sizes, shared)

    def _update_layers(self):
        """Pass the current settings to the fitted layers, or refuse them.

        Every layer is checked before any trains: a change of a structural
        setting raises a ValueError naming it.
        """
        sizes, layer_params = self._layer_settings()
        check_structure(self, {"hidden_layer_sizes": sizes},
                        how="fit a new estimator")
        n_layers = len(sizes)
        for k, (layer, params) in enumerate(zip(self.autoencoders_,
                                                layer_params)):
            layer.set_params(**params)
            layer._validate_params()
            layer._check_noise_params()
            check_structure(layer, layer._structure_now(),
                            how="fit a new estimator",
                            owner=f"{type(self).__name__} (layer {k + 1}/"
                                  f"{n_layers})")

    def _make_layers(self, rng):
        """Unfitted, validated layers, each with its own seed from ``rng``."""
        sizes, layer_params = self._layer_settings()
        record_structure(self, {"hidden_layer_sizes": sizes})
        layers = []
        for params in layer_params:
            params["random_state"] = rng.randint(np.iinfo(np.int32).max)
            layer = DenoisingAutoencoder(**params)
            # Per-layer values are checked against the layer's own constraints
            # (nested validation is skipped inside fit).
            layer._validate_params()
            layers.append(layer)
        return layers

    def _train_layers(self, X, incremental):
        """Fit (or partially fit) each layer on the clean codes below it."""
        codes = X
        n_layers = len(self.autoencoders_)
        for k, layer in enumerate(self.autoencoders_):
            self._print_layer(k, codes.shape[1])
            # Inside this estimator's transaction: no transaction per layer.
            layer._fit(codes, incremental,
                       tag=f"{type(self).__name__} layer {k + 1}/{n_layers}")
            if k + 1 < n_layers:
                codes = _encode_through([layer], codes)

    def _print_layer(self, k, n_inputs):
        if self.verbose:
            layer = self.autoencoders_[k]
            print(f"[{type(self).__name__}] Layer {k + 1}/"
                  f"{len(self.autoencoders_)}: {n_inputs} -> "
                  f"{layer.n_components} units, corruption="
                  f"{layer.corruption}({layer.corruption_level})")
            sys.stdout.flush()
