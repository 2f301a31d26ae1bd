"""Deep denoising autoencoders for tables: the shared base and the transformer.

``_BaseTabularNetwork`` holds everything a tabular network estimator does
with a table, so that the transformer here and the imputer share it:

- the columns (``_columns.fit_columns`` / ``encode`` / ``decode``: kinds,
  standardisation, categories, missing entries), stored as the plain dict
  ``_columns``;
- the network (``coefs_`` / ``intercepts_`` in scikit-learn MLP's layout, a
  mirrored encoder and decoder), its initialisation and its structure checks;
- the training (``_network.forward_backward`` under ``_training.run_epochs``,
  inside a ``_training.transaction``), with swap or masking noise by column
  and a loss on the observed entries only;
- inference: hidden features, head outputs, per-row losses, decoding back to
  a table.

A subclass says which hidden layers it builds (``_encoder_sizes``) and adds
its public methods; everything is computed in float32.
"""

from numbers import Real

import narwhals as nw
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from . import _columns as C
from . import _kernels as K
from ._base import (
    SOLVER_PARAMETER_CONSTRAINTS,
    IntInterval,
    check_hidden_layer_sizes,
)
from ._network import (
    Corruption,
    Head,
    hidden_layers,
    predict_head,
    row_losses,
    train,
)
from ._parallel import (
    inference_rows_per_block,
    map_row_blocks,
)
from ._repr import DocumentationLinkMixin
from ._training import (
    batch_size_for,
    check_structure,
    pickled_state,
    record_structure,
    reset_training_state,
    transaction,
    unpickled_state,
    validation_split,
)

# The dtype of the weights and of the computation.
DTYPE = np.float32


def auto_width(n_inputs):
    """Width of each hidden layer for ``hidden_layer_sizes="auto"``.

    Twice the number of model inputs (one per numeric column, one per
    category, one missing indicator per column), at least 64 and at most
    1024, rounded up to a multiple of 32.
    """
    width = int(np.clip(2 * n_inputs, 64, 1024))
    return -(-width // 32) * 32


class _BaseTabularNetwork(BaseEstimator):
    """Columns, network, training and decoding of a tabular network.

    Subclasses define ``_encoder_sizes(n_inputs)`` and the parameters read
    here: ``categorical_features``, ``corruption``, ``corruption_level``,
    ``uncorrupted_weight``, ``activation``, ``warm_start`` and the solver
    parameters (``_base.SOLVER_PARAMETER_CONSTRAINTS``).
    """

    _parameter_constraints: dict = {
        **SOLVER_PARAMETER_CONSTRAINTS,
        "categorical_features": ["array-like", StrOptions({"from_dtype"}),
                                 None],
        "corruption": [StrOptions({"swap", "masking"})],
        "corruption_level": [Interval(Real, 0, 1, closed="left")],
        "uncorrupted_weight": [Interval(Real, 0, 1, closed="both")],
        "activation": [StrOptions({"relu", "tanh", "sigmoid", "identity"})],
        "warm_start": ["boolean"],
    }

    # ------------------------------------------------------------------
    # Fit
    # ------------------------------------------------------------------
    def _fit(self, X, incremental):
        """Body of fit / partial_fit: returns the encoded table.

        Everything is validated before the model is initialised or trained;
        the caller runs it inside a ``transaction``.
        """
        if self.uncorrupted_weight == 0 and self.corruption_level == 0:
            raise ValueError(
                "uncorrupted_weight=0 with corruption_level=0 gives every "
                "entry weight 0: nothing would be learned. Raise "
                "corruption_level or uncorrupted_weight.")
        fitted = hasattr(self, "coefs_")
        warm = fitted and (incremental or self.warm_start)
        X = self._validate_table(X, reset=not warm)
        if warm:
            check_structure(self, self._structure_now(self._columns),
                            how=("fit a new estimator" if incremental else
                                 "set warm_start=False"))
            state = self._columns
        else:
            state = C.fit_columns(X, self.categorical_features,
                                  add_indicator=True)
        encoded = C.encode(X, state, dtype=DTYPE)
        if not warm:
            self._initialize(state)
        self._train(*encoded, incremental)
        return encoded

    def _categorical_spec(self):
        spec = self.categorical_features
        if spec is None or isinstance(spec, str):
            return spec
        return np.asarray(spec).tolist()

    def _structure_now(self, state):
        """What the current parameters would build (``check_structure``)."""
        return {"hidden_layer_sizes": self._encoder_sizes(state["n_inputs"]),
                "activation": self.activation,
                "categorical_features": self._categorical_spec()}

    def _initialize(self, state, rng=None):
        """New weights for the columns ``state``, and a fresh training state.

        ``rng`` (default: a fresh one from ``random_state``) draws the
        weights and is kept for training; a subclass passes another to
        train a further network on the same columns.
        """
        # Kept for partial_fit: later calls continue the same random stream.
        self._random_state = rng = (check_random_state(self.random_state)
                                    if rng is None else rng)
        self.__dict__.pop("_validation_seed", None)
        self.__dict__.pop("_optimizer_state", None)
        self._columns = state
        encoder = self._encoder_sizes(state["n_inputs"])
        if any(int(w) < 1 for w in encoder):
            raise ValueError(
                f"hidden_layer_sizes must hold positive integers, got "
                f"{self.hidden_layer_sizes!r}.")
        sizes = [state["n_inputs"], *encoder, *encoder[-2::-1],
                 state["n_outputs"]]
        # scikit-learn MLP's Glorot uniform initialisation.
        factor = 2.0 if self.activation == "sigmoid" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out))
                               .astype(DTYPE))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out)
                                    .astype(DTYPE))
        reset_training_state(self)
        record_structure(self, self._structure_now(state))

    def _encoder_sizes(self, n_inputs):
        """The encoder's widths as a tuple of ints (subclasses may adapt)."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, str):
            return (auto_width(n_inputs),) * 3
        return tuple(check_hidden_layer_sizes(sizes))

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------
    def _head(self):
        kinds, widths, _, _, _ = C.column_groups(self._columns)
        return Head(kinds, widths)

    def _activation_codes(self):
        return [K.ACTIVATION_CODES[self.activation]] * (len(self.coefs_) - 1)

    def _train(self, inputs, targets, missing, incremental, tag=None):
        """Run ``max_iter`` epochs (fit) or one epoch (partial_fit).

        ``tag`` labels the progress lines (default: the class name).
        """
        targets = targets.astype(DTYPE)
        weights = (~missing).astype(DTYPE) if missing.any() else None
        head = self._head()
        _, _, starts, stops, indicators = C.column_groups(self._columns)
        coefs, intercepts = self.coefs_, self.intercepts_
        acts = self._activation_codes()
        indices = np.arange(inputs.shape[0])
        validation_score = None
        validating = self._validates(inputs.shape[0]) and not incremental
        if validating:
            indices, val = validation_split(self, indices)
            val_inputs, val_targets, val_weights = self._validation_rows(
                inputs[val], targets[val],
                None if weights is None else weights[val])

            def validation_score():
                return -float(np.mean(row_losses(
                    coefs, intercepts, acts, head, val_inputs, val_targets,
                    val_weights)))

        kind = "none" if self.corruption_level == 0 else self.corruption
        noise = Corruption(
            kind, self.corruption_level, inputs.shape[1], starts, stops,
            indicators, uncorrupted_weight=self.uncorrupted_weight,
            pool=indices if validating else None,
            input_missing=missing if missing.any() else None)
        train(self, coefs, intercepts, acts, head, inputs, targets, indices,
              n_epochs=1 if incremental else self.max_iter,
              incremental=incremental, target_weights=weights, noise=noise,
              validation_score=validation_score, tag=tag,
              batch_size=self._batch_size_for(indices.shape[0]))

    def _batch_size_for(self, n_train):
        """The minibatch size for ``n_train`` rows (subclasses may adapt)."""
        return batch_size_for(self, n_train)

    def _validates(self, n_samples):
        """Whether fit sets rows aside for early stopping (subclasses adapt)."""
        return self.early_stopping

    def _validation_rows(self, inputs, targets, weights):
        """The validation rows as scored: by default clean, every observed
        entry weighing 1 (a subclass may corrupt them once, e.g. to score
        imputation)."""
        return inputs, targets, weights

    # ------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------
    def _encoded(self, X):
        """``encode`` of a table with the fitted columns (checked first)."""
        check_is_fitted(self)
        X = self._validate_table(X, reset=False)
        return C.encode(X, self._columns, dtype=DTYPE)

    def _validate_table(self, X, reset):
        """``validate_data`` for the column names and count only.

        A DataFrame keeps its columns' dtypes (``_columns`` reads them); an
        array-like becomes a 2-D array of its own dtype; sparse input is
        refused by ``_columns`` with a message that says what to do.
        """
        if not sp.issparse(X) and not nw.dependencies.is_into_dataframe(X):
            X = check_array(X, dtype=None, ensure_all_finite=False)
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    @property
    def hidden_layer_sizes_(self):
        """The encoder's widths (resolves ``hidden_layer_sizes="auto"``)."""
        return tuple(W.shape[1] for W in self.coefs_[:self._n_encoder_layers])

    @property
    def _n_encoder_layers(self):
        return len(self.coefs_) // 2

    def _features(self, inputs, which="all"):
        """Activations of the encoder's layers: all of them, or the code."""
        depth = self._n_encoder_layers
        layers = range(depth) if which == "all" else [depth - 1]
        width = sum(self.coefs_[k].shape[1] for k in layers)
        return self._by_blocks(
            lambda block, _: hidden_layers(self.coefs_, self.intercepts_,
                                           self._activation_codes(), block,
                                           layers), inputs, (width,))

    def _outputs(self, X, start=0):
        """Head outputs (standardised numerics, category probabilities)."""
        head = self._head()
        return self._by_blocks(
            lambda block, _: predict_head(self.coefs_, self.intercepts_,
                                          self._activation_codes(), head,
                                          block, start=start),
            X, (head.n_outputs,))

    def _row_losses(self, inputs, targets, missing):
        """Loss of each clean row over its observed entries."""
        targets = targets.astype(DTYPE)
        weights = (~missing).astype(DTYPE)
        head = self._head()
        return self._by_blocks(
            lambda block, rows: row_losses(
                self.coefs_, self.intercepts_, self._activation_codes(), head,
                block, targets[rows], weights[rows]), inputs, (), np.float64)

    def _by_blocks(self, func, X, shape, dtype=DTYPE):
        """``func(X[rows], rows)`` over fixed blocks of rows, each on
        single-threaded BLAS: the same result whatever the number of threads.
        """
        width = max(X.shape[1], *(W.shape[1] for W in self.coefs_))
        out = np.empty((X.shape[0], *shape), dtype=dtype)
        return map_row_blocks(lambda rows: func(X[rows], rows), X.shape[0],
                              inference_rows_per_block(width), out)

    # ------------------------------------------------------------------
    # Fitted column attributes (views of the column state)
    # ------------------------------------------------------------------
    @property
    def is_categorical_(self):
        """Boolean mask of the columns treated as categorical."""
        return self._columns["is_categorical"]

    @property
    def categories_(self):
        """Sorted categories of each categorical column, in column order."""
        return self._columns["categories"]

    @property
    def mean_(self):
        """Mean of the observed values of each numeric column (NaN if not)."""
        return np.where(self.is_categorical_, np.nan, self._columns["mean"])

    @property
    def scale_(self):
        """Standard deviation of each numeric column (NaN if categorical)."""
        return np.where(self.is_categorical_, np.nan, self._columns["scale"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags

    def __getstate__(self):
        return pickled_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(unpickled_state(state))


class TabularDenoisingAutoencoder(TransformerMixin, DocumentationLinkMixin,
                                  _BaseTabularNetwork):
    """Deep denoising autoencoder for tables: features from raw DataFrames.

    Takes a pandas or polars DataFrame (or an array) with numeric and
    categorical columns and missing values, with no preprocessing: numeric
    columns are standardised internally, categorical ones one-hot encoded,
    and a missing entry is fed as corrupted and carries no loss. Each
    training row is corrupted by column (swap noise by default: a corrupted
    entry takes the same column's value in another random training row), and
    a deep encoder with a mirrored decoder learns, end to end, to
    reconstruct the clean row: squared error on the standardised numeric
    columns, softmax cross-entropy on each categorical column. The hidden
    activations are features for a downstream model (M. Jahrer's Porto Seguro
    recipe).

    Computation is in float32, as in PyTorch by default.

    Read more in the :ref:`User Guide <tabular>`.

    Parameters
    ----------
    hidden_layer_sizes : "auto" or array-like of int, default="auto"
        Widths of the encoder's layers; the decoder mirrors them (without the
        last), so ``(256, 128)`` builds inputs-256-128-256-outputs. "auto"
        means three layers of ``clip(2 * n_inputs, 64, 1024)`` units (rounded
        up to a multiple of 32), where ``n_inputs`` counts one input per
        numeric column, one per category and one missing indicator per
        column.

    features : {"all", "last"}, default="all"
        What :meth:`transform` returns: the activations of every encoder
        layer side by side ("all", Jahrer's recipe) or of the last one only
        (the code).

    categorical_features : array-like of {bool, int, str}, "from_dtype" or \
            None, default="from_dtype"
        Columns treated as categorical, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`: a boolean
        mask, integer indices, column names, or None (all numeric).
        "from_dtype" treats the category, enum, string, object and boolean
        columns of a DataFrame as categorical (a NumPy array is then all
        numeric).

    corruption : {"swap", "masking"}, default="swap"
        Noise applied by column to every training minibatch:

        - "swap": a corrupted entry takes the value of the same column in
          another random training row (a categorical column as a whole);
        - "masking": a corrupted entry becomes missing.

    corruption_level : float, default=0.15
        Probability that an entry is corrupted, in [0, 1).

    uncorrupted_weight : float, default=1.0
        Weight in the loss of the entries that were not corrupted (corrupted
        ones weigh 1): the emphasis of Vincent et al. (2010).

    activation : {"relu", "tanh", "sigmoid", "identity"}, default="relu"
        Activation of every hidden layer.

    solver : {"adam", "sgd"}, default="adam"
        Optimizer: Adam, or stochastic gradient descent with momentum.

    learning_rate_init : float, default=1e-3
        Learning rate.

    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" means ``min(200, n_samples)``.

    max_iter : int, default=100
        Maximum number of epochs of :meth:`fit`.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights.

    early_stopping : bool, default=False
        Whether to set aside ``validation_fraction`` of the rows and stop when
        the validation score (minus the mean reconstruction loss of the clean
        rows) has not improved by ``tol`` for ``n_iter_no_change`` epochs; the
        best weights are kept. Swap noise then draws from the training rows
        only. Ignored by :meth:`partial_fit`.

    validation_fraction : float, default=0.1
        Fraction of the rows set aside when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` after which :meth:`fit`
        stops.

    tol : float, default=1e-4
        Minimum improvement that counts.

    shuffle : bool, default=True
        Whether to shuffle the rows at every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the validation split and the
        noise. An int gives the same model whatever the number of threads.

    verbose : int, default=0
        1 prints a line per epoch; 2 also progress inside long epochs.

    warm_start : bool, default=False
        Whether :meth:`fit` continues from the previous weights (and column
        encoding) instead of starting anew. ``hidden_layer_sizes``,
        ``activation`` and ``categorical_features`` cannot change then.

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
    coefs_ : list of ndarray
        Weights of every layer, ``coefs_[i]`` of shape (fan_in, fan_out):
        the encoder, the mirrored decoder, then the output layer; float32.

    intercepts_ : list of ndarray
        Biases of every layer, ``intercepts_[i]`` of shape (fan_out,).

    hidden_layer_sizes_ : tuple of int
        The encoder's widths (resolves "auto").

    is_categorical_ : ndarray of shape (`n_features_in_`,), dtype=bool
        Which columns are categorical.

    categories_ : list of ndarray
        Sorted categories seen in fit of each categorical column, in column
        order (as :class:`~sklearn.preprocessing.OneHotEncoder`); other
        values are missing at transform time.

    mean_ : ndarray of shape (`n_features_in_`,)
        Mean of the observed values of each numeric column (NaN for
        categorical columns).

    scale_ : ndarray of shape (`n_features_in_`,)
        Standard deviation of the observed values of each numeric column
        (1 if constant; NaN for categorical columns).

    loss_curve_ : list of float
        Mean training loss (corrupted rows, observed entries, summed over
        columns) of each epoch, plus the L2 penalty.

    best_loss_ : float
        Lowest value in ``loss_curve_``.

    validation_scores_ : list of float or None
        Validation score after each epoch with ``early_stopping=True``.

    best_validation_score_ : float or None
        Best value in ``validation_scores_``.

    n_iter_ : int
        Epochs run since the weights were initialised.

    t_ : int
        Training rows seen since the weights were initialised.

    n_features_in_ : int
        Number of columns seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen during :term:`fit`, if they are all strings.

    See Also
    --------
    DenoisingAutoencoder : One layer, for numeric (or sparse) data.
    StackedDenoisingAutoencoder : Greedy layer-wise stacks.
    sklearn.ensemble.HistGradientBoostingClassifier : Native categorical
        and missing-value support, the convention followed here.

    References
    ----------
    .. [1] M. Jahrer, "Porto Seguro's Safe Driver Prediction, 1st place
       solution", Kaggle, 2017.

    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked denoising autoencoders: learning useful representations in a
       deep network with a local denoising criterion", Journal of Machine
       Learning Research, 11, 3371-3408, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skdae import TabularDenoisingAutoencoder
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame({"size": rng.normal(size=200),
    ...                   "colour": rng.choice(["red", "blue"], size=200)})
    >>> X.loc[::7, "size"] = np.nan
    >>> dae = TabularDenoisingAutoencoder(hidden_layer_sizes=(32, 8),
    ...                                   max_iter=5, random_state=0)
    >>> dae.fit_transform(X).shape
    (200, 40)
    >>> dae.inverse_transform(dae.transform(X)).columns.tolist()
    ['size', 'colour']
    """

    _parameter_constraints: dict = {
        **_BaseTabularNetwork._parameter_constraints,
        "hidden_layer_sizes": ["array-like", IntInterval(1, None,
                                                         closed="left"),
                               StrOptions({"auto"})],
        "features": [StrOptions({"all", "last"})],
    }

    def __init__(
        self,
        hidden_layer_sizes="auto",
        *,
        features="all",
        categorical_features="from_dtype",
        corruption="swap",
        corruption_level=0.15,
        uncorrupted_weight=1.0,
        activation="relu",
        solver="adam",
        learning_rate_init=1e-3,
        batch_size="auto",
        max_iter=100,
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
        self.features = features
        self.categorical_features = categorical_features
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.uncorrupted_weight = uncorrupted_weight
        self.activation = activation
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the autoencoder to a table, corrupting it afresh every minibatch.

        ``fit`` is all or nothing: if it raises or is interrupted, the
        estimator is left exactly as it was before the call.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            The table. Missing values (NaN, None, ``pd.NA``, polars null)
            are allowed anywhere. Sparse input is not supported.

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
        """Run one epoch over X, continuing from the current weights.

        The first call learns the column encoding from this X (categories
        first seen later are missing); later calls continue the weights and
        the optimizer state. ``early_stopping`` is ignored.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            A block of rows of the table.

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
        """Hidden features of the clean (uncorrupted) rows of X.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            A table with the columns seen in fit. Missing values and unseen
            categories are fed as missing.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out), float32
            The activations of every encoder layer (``features="all"``) or of
            the last one (``features="last"``).
        """
        inputs, _, _ = self._encoded(X)
        return self._features(inputs, self.features)

    def inverse_transform(self, X):
        """Decode features back to a table with the fitted columns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_out)
            The output of :meth:`transform` (with ``features="all"`` or
            "last": only the code, the last encoder layer, is used).

        Returns
        -------
        X_original : DataFrame or ndarray of shape (n_samples, `n_features_in_`)
            A DataFrame of the library fitted on (pandas or polars) with the
            fitted columns and dtypes, categorical columns as their most
            probable category; else an array (float64 if every column is
            numeric, else object).
        """
        check_is_fitted(self)
        H = check_array(X, dtype=DTYPE)
        code = self.coefs_[self._n_encoder_layers - 1].shape[1]
        if H.shape[1] == sum(self.hidden_layer_sizes_):
            H = np.ascontiguousarray(H[:, H.shape[1] - code:])
        elif H.shape[1] != code:
            raise ValueError(
                f"X has {H.shape[1]} columns, but {type(self).__name__} "
                f"decodes the output of transform: {code} columns (the code) "
                f"or {sum(self.hidden_layer_sizes_)} (every encoder layer).")
        outputs = self._outputs(H, start=self._n_encoder_layers)
        return C.decode(outputs, self._columns)

    def score_samples(self, X):
        """Minus the reconstruction loss of each row over its observed entries.

        Higher means better reconstructed, i.e. more typical of the training
        data: an anomaly score for tables.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            The rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Minus the squared error (halved, standardised units) of the
            numeric columns plus the cross-entropy of the categorical ones.
        """
        return -self._row_losses(*self._encoded(X))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            The rows to score.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Minus the mean reconstruction loss; higher is better.
        """
        return float(np.mean(self.score_samples(X)))

    def get_feature_names_out(self, input_features=None):
        """Names of the features of :meth:`transform`.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in fit.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``"<class name>_layer<k>_<unit>"`` for each unit of each encoder
            layer returned.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        prefix = type(self).__name__.lower()
        depth = self._n_encoder_layers
        layers = range(depth) if self.features == "all" else [depth - 1]
        return np.asarray([f"{prefix}_layer{k}_{u}" for k in layers
                           for u in range(self.coefs_[k].shape[1])],
                          dtype=object)

    @property
    def _n_features_out(self):
        depth = self._n_encoder_layers
        if self.features == "all":
            return sum(self.hidden_layer_sizes_)
        return self.coefs_[depth - 1].shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
