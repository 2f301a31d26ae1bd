"""The denoising-autoencoder imputer.

``DenoisingAutoencoderImputer`` is the tabular network of ``_tabular``
(columns, initialisation, training, decoding: ``_BaseTabularNetwork``)
trained as MIDA-style imputers are (Gondara & Wang, 2018): masking noise on
the observed entries, a missing-indicator input per column, a loss on the
observed entries with emphasis on the masked ones, and early stopping on
masked entries of held-out rows. What is imputer-specific lives here: the
``missing_values`` convention, observed entries passed through untouched,
empty and constant columns, ``add_indicator`` and ``sample_posterior``.
"""

from numbers import Integral

import narwhals as nw
import numpy as np
import scipy.sparse as sp
from sklearn.base import TransformerMixin, _fit_context
from sklearn.impute import MissingIndicator
from sklearn.utils import check_array, check_random_state
from sklearn.utils._mask import _get_mask
from sklearn.utils._param_validation import (
    Interval,
    MissingValues,
    StrOptions,
)
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import _columns as C
from ._base import IntInterval
from ._network import predict_head
from ._parallel import available_threads, run_jobs
from ._repr import DocumentationLinkMixin
from ._tabular import DTYPE, _BaseTabularNetwork, auto_width
from ._training import transaction, validation_seed, validation_split

# Early stopping needs at least this many validation rows; with fewer, fit
# runs max_iter epochs (scikit-learn's checks fit on 10-30 rows).
MIN_VALIDATION_ROWS = 10
# Masked validation entries scored by early stopping (by repeating the
# validation rows under different maskings, at most this many times).
MIN_SCORED_ENTRIES = 2000
MAX_VALIDATION_COPIES = 20
# hidden_layer_sizes="auto": at least this wide (letter, 16 columns of 20000
# rows, imputed better at 128 units than at 64), and at most MAX_AUTO_WIDTH:
# on Fashion-MNIST (784 columns, 3500 training rows, 20% missing), five
# networks of 256 units imputed better than five of 1024 (test RMSE 0.497
# against 0.508) in a sixth of the time (191 s against 1102 s), and one of
# 256 better than one of 512 (0.547 against 0.552, 79 s against 165 s).
MIN_AUTO_WIDTH = 128
MAX_AUTO_WIDTH = 256
# batch_size="auto": about this many minibatches per epoch, each of 64 to
# MAX_AUTO_BATCH rows (small tables get enough steps per epoch, large ones
# fewer, larger and cheaper steps).
AUTO_BATCH_STEPS = 50
MAX_AUTO_BATCH = 256
# n_networks="auto": about this many rows divided by the number of rows,
# between 1 and MAX_AUTO_NETWORKS networks (averaging networks trained from
# different seeds helps most where the data are few).
AUTO_ENSEMBLE_ROWS = 20000
MAX_AUTO_NETWORKS = 5
# sample_posterior's noise: held-out errors averaged in this many bins of
# the fraction of a row's other entries seen, each bin pulled towards the
# column's average error by this many entries.
N_NOISE_BINS = 5
NOISE_PRIOR = 5
# ... estimated on the validation rows repeated to about this many rows.
NOISE_ROWS = 10000


def _masked(inputs, state, mask):
    """A copy of ``inputs`` with the entries ``mask`` (rows x columns) missing.

    A masked column's input block is zeroed and its indicator set, as
    ``_columns.encode`` feeds a missing entry.
    """
    out = inputs.copy()
    _, _, starts, stops, indicators = C.column_groups(state)
    for j in range(mask.shape[1]):
        rows = np.flatnonzero(mask[:, j])
        out[rows, starts[j]:stops[j]] = 0.0
        if indicators[j] >= 0:
            out[rows, indicators[j]] = 1.0
    return out


def _as_missing(X, missing_values):
    """X with the entries equal to ``missing_values`` made native missing.

    NaN (and None, ``pd.NA``, NaT, polars null) are always missing; another
    placeholder becomes NaN in numeric columns and None in the others.
    """
    if missing_values is None or C._is_missing_scalar(missing_values):
        return X
    if nw.dependencies.is_into_dataframe(X):
        frame = nw.from_native(X, eager_only=True)
        pandas = nw.get_native_namespace(frame).__name__ == "pandas"
        if pandas:
            X = X.copy()
        columns = []
        for name in frame.columns:
            try:
                hit = (frame[name] == missing_values).fill_null(False)
            except Exception:  # not comparable: no placeholder in it
                continue
            if not (isinstance(hit, nw.Series) and hit.any()):
                continue
            if pandas:  # NumPy integers become float with NaN, as in sklearn
                X[name] = X[name].mask(nw.to_native(hit).to_numpy(bool))
            else:
                columns.append(nw.when(nw.col(name) == missing_values).then(
                    None).otherwise(nw.col(name)).alias(name))
        if columns:
            X = nw.to_native(frame.with_columns(columns))
        return X
    X = check_array(X, dtype=None, ensure_all_finite=False)
    mask = _get_mask(X, missing_values)
    if X.dtype.kind in "biuf":
        X = X.astype(np.float64)
        X[mask] = np.nan
    else:
        X = X.astype(object)
        X[mask] = None
    return X


class DenoisingAutoencoderImputer(TransformerMixin, DocumentationLinkMixin,
                                  _BaseTabularNetwork):
    """Imputation of missing values by a denoising autoencoder.

    A deep autoencoder learns to fill in entries it did not see: at every
    minibatch a fraction ``corruption_level`` of the observed entries of
    each row is masked (fed as missing), and the network reconstructs the
    row from the rest and from one missing indicator per column. The loss
    counts the observed entries only (squared error on standardised numeric
    columns, cross-entropy on each categorical column), the masked ones
    weighing more (``uncorrupted_weight`` < 1). ``transform`` feeds each row
    with its missing entries masked and replaces them by the network's
    output, clipped to the range of the column's values seen in fit;
    observed entries pass through unchanged, bit for bit. Several networks
    trained from different seeds (``n_networks``; five on small tables) are
    averaged.

    Numeric columns are standardised internally, categorical ones
    (``categorical_features``, as in :class:`TabularDenoisingAutoencoder`)
    one-hot encoded; a categorical entry is imputed with its most probable
    category. Computation is in float32.

    Read more in the :ref:`User Guide <impute>`.

    Parameters
    ----------
    missing_values : int, float, str, np.nan, None or pandas.NA, \
            default=np.nan
        The placeholder for the missing values. NaN, None, ``pd.NA``, NaT
        and polars nulls are always treated as missing as well.

    hidden_layer_sizes : "auto" or array-like of int, default="auto"
        Widths of the encoder's layers; the decoder mirrors them (without
        the last). "auto" builds two encoder layers of twice the number of
        model inputs (at least 128, at most 256, a multiple of 32): with
        one input per numeric column and category plus one indicator per
        column, about four times the number of numeric columns. Wider
        layers imputed no better on wide data (Fashion-MNIST's 784 columns)
        and cost several times more.

    categorical_features : "from_dtype", array-like of {bool, int, str} or \
            None, default="from_dtype"
        Which columns are categorical: as in
        :class:`TabularDenoisingAutoencoder`. "from_dtype" treats the
        category, enum, string, object and boolean columns of a DataFrame as
        categorical (a NumPy array is then all numeric).

    corruption_level : float, default=0.25
        Fraction of the observed entries masked in every training row at
        every minibatch, in [0, 1).

    uncorrupted_weight : float, default=0.5
        Weight in the loss of the observed entries that were not masked
        (masked ones weigh 1): the emphasis of Vincent et al. (2010).

    n_networks : int or "auto", default="auto"
        Number of networks trained (from different initial weights and
        noise, on the same validation rows) whose predictions are averaged.
        "auto" means ``round(20000 / n_samples)``, between 1 and 5:
        averaging helps most where rows are few, and costs little there.
        The networks train at the same time, one per available thread
        (``threadpoolctl`` limits apply); they are the same whatever the
        number of threads.

    sample_posterior : bool, default=False
        Whether to draw each imputation at random instead of taking the
        averaged prediction. A row is drawn by feeding it, with a fresh
        masking of a fraction ``corruption_level`` of its entries (as in
        training), to one of the networks picked at random: the spread
        between such draws is the model's own uncertainty about that row.
        A numeric entry then gets Gaussian noise whose scale is set on the
        validation rows so that the draws' mean squared spread equals the
        squared error of the imputations, by column and by the fraction of
        the row's other entries that are observed (five bins): an entry is
        drawn more widely when its column is less predictable and when its
        row shows less. A categorical entry is a category drawn from the
        drawn probabilities. Several ``random_state`` values give multiple
        imputations.

    add_indicator : bool, default=False
        If True, a :class:`~sklearn.impute.MissingIndicator` transform is
        stacked onto the output (columns with missing values in fit only).

    keep_empty_features : bool, default=False
        If True, columns with no observed value in fit are kept and imputed
        with 0 (numeric) or left missing (categorical, no category being
        known); by default they are dropped, as scikit-learn's imputers do.

    activation : {"relu", "tanh", "sigmoid", "identity"}, default="relu"
        Activation of every hidden layer.

    solver : {"adam", "sgd"}, default="adam"
        Optimizer: Adam, or stochastic gradient descent with momentum.

    learning_rate_init : float, default=3e-3
        Learning rate.

    batch_size : int or "auto", default="auto"
        Minibatch size (at most the number of training rows); "auto" means
        a 50th of the training rows, at least 64 and at most 256: small
        tables get enough steps per epoch, large ones fewer and cheaper
        steps.

    max_iter : int, default=300
        Maximum number of epochs.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights.

    early_stopping : bool, default=True
        Whether to set aside ``validation_fraction`` of the rows and stop
        when the imputation loss on them (a fixed masking of a fraction
        ``corruption_level`` of their observed entries) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the best weights are kept.
        Only used when that leaves at least 10 validation rows.

    validation_fraction : float, default=0.1
        Fraction of the rows set aside for early stopping.

    n_iter_no_change : int, default=20
        Epochs without an improvement of ``tol`` after which fit stops.

    tol : float, default=1e-4
        Minimum improvement that counts.

    shuffle : bool, default=True
        Whether to shuffle the rows at every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the validation split, the noise
        and the draws of ``sample_posterior``. An int gives the same
        imputations whatever the number of threads.

    verbose : int, default=0
        1 prints a line per epoch; 2 also progress inside long epochs.

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
        Weights of every layer of the first network, ``coefs_[i]`` of shape
        (fan_in, fan_out).

    intercepts_ : list of ndarray
        Biases of every layer of the first network, ``intercepts_[i]`` of
        shape (fan_out,).

    networks_ : list of dict
        Every network averaged (the first holds ``coefs_`` and
        ``intercepts_``): ``{"coefs": [...], "intercepts": [...]}``.

    hidden_layer_sizes_ : tuple of int
        The encoder's widths (resolves "auto").

    is_categorical_ : ndarray of shape (`n_features_in_`,), dtype=bool
        Which columns are categorical.

    categories_ : list of ndarray
        Sorted categories seen in fit of each categorical column.

    mean_ : ndarray of shape (`n_features_in_`,)
        Mean of the observed values of each numeric column (NaN for
        categorical columns).

    scale_ : ndarray of shape (`n_features_in_`,)
        Standard deviation of the observed values of each numeric column
        (1 if constant; NaN for categorical columns).

    residual_scale_ : ndarray of shape (`n_features_in_`,)
        Root mean squared error of the imputations of each numeric column,
        in the column's units, on masked entries of the validation rows (of
        the training rows without early stopping); NaN for categorical
        columns. ``sample_posterior`` draws with it.

    indicator_ : :class:`~sklearn.impute.MissingIndicator` or None
        The indicator of ``add_indicator=True``.

    loss_curve_ : list of float
        Mean training loss of each epoch, plus the L2 penalty (of the first
        network, as the other training attributes below).

    validation_scores_ : list of float or None
        Minus the mean imputation loss of the validation rows after each
        epoch, when early stopping was used.

    best_validation_score_ : float or None
        Best value in ``validation_scores_``.

    n_iter_ : int
        Epochs run.

    n_features_in_ : int
        Number of columns seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen during :term:`fit`, if they are all strings.

    See Also
    --------
    sklearn.impute.SimpleImputer : Column means or most frequent values.
    sklearn.impute.KNNImputer : Means of the nearest rows.
    sklearn.impute.IterativeImputer : One regression per column, in rounds.
    TabularDenoisingAutoencoder : The same network as a feature extractor.

    References
    ----------
    .. [1] L. Gondara and K. Wang, "MIDA: Multiple imputation using
       denoising autoencoders", PAKDD 2018, 260-272.

    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked denoising autoencoders: learning useful representations in a
       deep network with a local denoising criterion", Journal of Machine
       Learning Research, 11, 3371-3408, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from skdae import DenoisingAutoencoderImputer
    >>> rng = np.random.RandomState(0)
    >>> z = rng.normal(size=(300, 1))
    >>> X = np.hstack([z, 2 * z, -z]) + 0.1 * rng.normal(size=(300, 3))
    >>> X[::3, 1] = np.nan
    >>> imputer = DenoisingAutoencoderImputer(max_iter=20, random_state=0)
    >>> X_filled = imputer.fit_transform(X)
    >>> bool(np.isnan(X_filled).any())
    False
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in _BaseTabularNetwork._parameter_constraints.items()
           if k not in ("corruption", "warm_start")},
        "missing_values": [MissingValues()],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None,
                                                      closed="left"),
                               StrOptions({"auto"})],
        "n_networks": [IntInterval(1, None, closed="left"),
                       StrOptions({"auto"})],
        "sample_posterior": ["boolean"],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
    }

    # Read by the shared tabular base; not parameters of an imputer.
    corruption = "masking"
    warm_start = False

    def __init__(
        self,
        *,
        missing_values=np.nan,
        hidden_layer_sizes="auto",
        categorical_features="from_dtype",
        corruption_level=0.25,
        uncorrupted_weight=0.5,
        n_networks="auto",
        sample_posterior=False,
        add_indicator=False,
        keep_empty_features=False,
        activation="relu",
        solver="adam",
        learning_rate_init=3e-3,
        batch_size="auto",
        max_iter=300,
        alpha=0.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    ):
        self.missing_values = missing_values
        self.hidden_layer_sizes = hidden_layer_sizes
        self.categorical_features = categorical_features
        self.corruption_level = corruption_level
        self.uncorrupted_weight = uncorrupted_weight
        self.n_networks = n_networks
        self.sample_posterior = sample_posterior
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
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
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the imputer on X, masking its observed entries afresh.

        ``fit`` is all or nothing: if it raises or is interrupted, the
        estimator is left exactly as it was before the call.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            The table, with its missing values. Sparse input is not
            supported.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        with transaction(self):
            X = _as_missing(self._dense(X), self.missing_values)
            inputs, targets, missing = self._fit(X, incremental=False)
            if self.add_indicator:
                self.indicator_ = MissingIndicator(error_on_new=False)
                self.indicator_._fit(missing, precomputed=True)
            else:
                self.indicator_ = None
            self._residuals(inputs, targets, missing)
        return self

    def transform(self, X):
        """Impute the missing values of X.

        Parameters
        ----------
        X : {array-like, pandas or polars DataFrame} of shape \
                (n_samples, n_features)
            A table with the columns seen in fit.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features_out)
            X with its missing entries imputed, observed entries unchanged,
            columns never observed in fit dropped (unless
            ``keep_empty_features``), then the missing indicators if
            ``add_indicator``. An array of X's float dtype (float64 for
            integer input) when every column is numeric, else an object
            array; with ``set_output(transform="pandas")`` (or "polars") on
            a DataFrame of that library, a DataFrame that keeps X's dtypes.
        """
        check_is_fitted(self)
        X = _as_missing(self._dense(X), self.missing_values)
        X = self._validate_table(X, reset=False)
        missing = self._missing(X)
        inputs, _, _ = C.encode(X, self._columns, dtype=DTYPE)
        filled = C.decode(self._predictions(inputs), self._columns)
        return self._assemble(X, filled, missing)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input column names; by default ``feature_names_in_`` or
            ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The kept columns' names, then the indicators' names
            (``missingindicator_<name>``).
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        out = names[self._kept()]
        if self.indicator_ is not None:
            out = np.concatenate(
                [out, self.indicator_.get_feature_names_out(names)])
        return np.asarray(out, dtype=object)

    # ------------------------------------------------------------------
    # The tabular base's hooks
    # ------------------------------------------------------------------
    def _encoder_sizes(self, n_inputs):
        if isinstance(self.hidden_layer_sizes, str):
            width = int(np.clip(auto_width(n_inputs), MIN_AUTO_WIDTH,
                                MAX_AUTO_WIDTH))
            return (width,) * 2
        return super()._encoder_sizes(n_inputs)

    def _batch_size_for(self, n_train):
        if self.batch_size == "auto":
            return min(int(np.clip(n_train // AUTO_BATCH_STEPS, 64,
                                   MAX_AUTO_BATCH)), n_train)
        return min(self.batch_size, n_train)

    def _validates(self, n_samples):
        n_val = int(np.ceil(self.validation_fraction * n_samples))
        return self.early_stopping and n_val >= MIN_VALIDATION_ROWS

    def _validation_rows(self, inputs, targets, weights):
        """Score the validation rows on fixed maskings of their entries.

        Small validation sets are repeated under several maskings, so that
        about ``MIN_SCORED_ENTRIES`` masked entries are scored: the early
        stopping of small tables would otherwise follow noise.
        """
        observed = (np.ones(targets.shape, dtype=bool) if weights is None
                    else weights > 0)
        level = self.corruption_level if self.corruption_level > 0 else 0.25
        copies = int(np.clip(np.ceil(MIN_SCORED_ENTRIES / max(
            level * observed.sum(), 1)), 1, MAX_VALIDATION_COPIES))
        observed = np.tile(observed, (copies, 1))
        mask = self._score_mask(observed, self._validation_seed)
        if not mask.any():
            return inputs, targets, weights
        return (_masked(np.tile(inputs, (copies, 1)), self._columns, mask),
                np.tile(targets, (copies, 1)), mask.astype(DTYPE))

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _score_mask(self, observed, seed):
        """Observed entries masked for scoring: a fixed draw from ``seed``."""
        rng = np.random.RandomState(seed)
        level = self.corruption_level if self.corruption_level > 0 else 0.25
        return observed & (rng.uniform(size=observed.shape) < level)

    def _n_networks_for(self, n_samples):
        """``n_networks``, "auto" resolved for ``n_samples`` rows."""
        if self.n_networks != "auto":
            return self.n_networks
        return int(np.clip(round(AUTO_ENSEMBLE_ROWS / max(n_samples, 1)), 1,
                           MAX_AUTO_NETWORKS))

    def _train(self, inputs, targets, missing, incremental, tag=None):
        """Train every network of ``networks_``, at once where threads allow.

        The first network is this estimator's own (``coefs_``, the training
        attributes); each further one starts from its own weights and noise
        (a seed drawn from the random stream before any training) and
        validates on the same rows. The networks depend on their seeds
        only, so they train concurrently, each on its share of the threads
        (``_parallel.run_jobs``): small tables, whose steps are too small
        to share, keep every core busy, and the result is the same for any
        number of threads.
        """
        count = self._n_networks_for(inputs.shape[0])
        train = super()._train
        if count == 1:
            train(inputs, targets, missing, incremental, tag)
            self.networks_ = [{"coefs": self.coefs_,
                               "intercepts": self.intercepts_}]
            return
        # The validation rows are drawn first, as validation_split would:
        # every network validates on them.
        shared_seed = (validation_seed(self)
                       if self._validates(inputs.shape[0]) else None)
        seeds = self._random_state.randint(np.iinfo(np.int32).max,
                                           size=count - 1)
        name = type(self).__name__

        def tag(k):
            # Progress lines say which network; warnings stay one message
            # (shown once), not one per network.
            return f"{name} network {k}/{count}" if self.verbose else None

        def first():
            train(inputs, targets, missing, incremental, tag(1))
            return {"coefs": self.coefs_, "intercepts": self.intercepts_}

        def further(k, seed):
            def job():
                # A model of its own, sharing the read-only column state.
                net = object.__new__(type(self))
                net.__dict__.update(self.__dict__)
                net._initialize(self._columns, np.random.RandomState(seed))
                if shared_seed is not None:
                    net._validation_seed = shared_seed
                super(DenoisingAutoencoderImputer, net)._train(
                    inputs, targets, missing, incremental, tag(k))
                return {"coefs": net.coefs_, "intercepts": net.intercepts_}
            return job

        jobs = [first] + [further(k, seed)
                          for k, seed in enumerate(seeds, start=2)]
        self.networks_ = run_jobs(jobs, available_threads())

    def _outputs(self, X, start=0, networks=None):
        """Head outputs averaged over ``networks`` (default: all of them)."""
        networks = self.networks_ if networks is None else networks
        acts, head = self._activation_codes(), self._head()

        def average(block, _):
            out = None
            for net in networks:
                y = predict_head(net["coefs"], net["intercepts"], acts, head,
                                 block, start=start)
                out = y if out is None else out + y
            return out if len(networks) == 1 else out / DTYPE(len(networks))

        # By fixed blocks of rows: the same whatever the number of threads.
        return self._by_blocks(average, X, (head.n_outputs,))

    def _draws(self, inputs, rng):
        """Head outputs of one draw per row, before the residual noise.

        Each row is fed, with a fresh masking of a fraction
        ``corruption_level`` of its entries (as in training), to one of
        ``networks_`` picked at random: the spread of the draws of a row is
        the network's own uncertainty about it.
        """
        n, d = inputs.shape[0], len(self._columns["dtypes"])
        level = self.corruption_level
        pick = rng.randint(len(self.networks_), size=n)
        mask = rng.uniform(size=(n, d)) < level
        masked = _masked(inputs, self._columns, mask)
        out = np.empty((n, self._columns["n_outputs"]), dtype=np.float64)
        for k, net in enumerate(self.networks_):
            rows = np.flatnonzero(pick == k)
            if rows.size:
                out[rows] = self._outputs(masked[rows], networks=[net])
        return out

    def _residuals(self, inputs, targets, missing):
        """``residual_scale_`` and the noise of ``sample_posterior``.

        On the validation rows (the training rows without early stopping),
        repeated up to ``MAX_VALIDATION_COPIES`` times, one observed entry
        of each row is masked at random and imputed from the rest of its
        row, as a missing entry is: ``residual_scale_``. Then the same rows
        are masked at a rate drawn uniformly in [0, 1] for each row, and the
        squared errors of the imputed entries of each numeric column are
        averaged by the fraction of the row's other entries that were seen
        (``N_NOISE_BINS`` bins, each pulled towards the column's average by
        ``NOISE_PRIOR`` entries): the noise added to a draw brings the
        draws' mean squared spread to that error.
        """
        rows = np.arange(inputs.shape[0])
        seed = 0
        if self._validates(inputs.shape[0]):
            _, rows = validation_split(self, rows)
            seed = self._validation_seed + 1
        copies = int(np.clip(np.ceil(MIN_SCORED_ENTRIES / rows.shape[0]), 1,
                             MAX_VALIDATION_COPIES))
        rows = np.tile(rows, copies)
        observed = ~missing[rows]
        rng = np.random.RandomState(seed)
        # One observed column per row, uniformly (none if nothing observed).
        keys = np.where(observed, rng.uniform(size=observed.shape), -1.0)
        pick = np.argmax(keys, axis=1)
        mask = np.zeros_like(observed)
        mask[np.arange(rows.shape[0]), pick] = observed[np.arange(
            rows.shape[0]), pick]
        outputs = self._outputs(_masked(inputs[rows], self._columns, mask))
        scale = np.ones(missing.shape[1])  # unseen: the mean's error
        starts = self._columns["output_start"]
        numeric = np.flatnonzero(~self.is_categorical_)
        for j in numeric:
            hit = mask[:, j]
            if hit.any():
                err = outputs[hit, starts[j]] - targets[rows[hit], j]
                scale[j] = np.sqrt(np.mean(err.astype(np.float64) ** 2))
        self.residual_scale_ = scale * np.where(
            self.is_categorical_, np.nan, self._columns["scale"])

        # The noise of the draws, by column and fraction of the row seen.
        rows = np.tile(rows[:rows.shape[0] // copies], int(np.clip(np.ceil(
            NOISE_ROWS * copies / rows.shape[0]), 1, 100)))
        observed = ~missing[rows]
        mask = observed & (rng.uniform(size=observed.shape)
                           < rng.uniform(size=(observed.shape[0], 1)))
        masked = _masked(inputs[rows], self._columns, mask)
        outputs = self._outputs(masked)
        draws = self._draws(masked, rng)
        bins = self._seen_bins(masked)
        noise = np.zeros((missing.shape[1], N_NOISE_BINS))
        for j in numeric:
            hit = np.flatnonzero(mask[:, j])
            err = (outputs[hit, starts[j]] - targets[rows[hit], j]) ** 2
            spread = (draws[hit, starts[j]] - outputs[hit, starts[j]]) ** 2
            counts = np.bincount(bins[hit, j], minlength=N_NOISE_BINS)
            prior = NOISE_PRIOR / max(counts.sum(), 1)
            mse, var = (
                (np.bincount(bins[hit, j], v, N_NOISE_BINS)
                 + prior * v.sum()) / (counts + NOISE_PRIOR)
                if hit.size else np.ones(N_NOISE_BINS)
                for v in (err.astype(np.float64), spread))
            noise[j] = np.sqrt(np.maximum(mse - var, 0.0))
        self._posterior_noise = noise  # standardised units

    def _seen_bins(self, inputs):
        """Bin of the fraction of each row's other entries that are seen."""
        indicators = self._columns["indicator"]
        missing = inputs[:, indicators] > 0.5
        d = missing.shape[1]
        others = ((d - missing.sum(axis=1, keepdims=True)) - ~missing) / max(
            d - 1, 1)
        return np.minimum((others * N_NOISE_BINS).astype(np.intp),
                          N_NOISE_BINS - 1)

    def _predictions(self, inputs):
        """Head outputs to decode: predictions, or draws if sample_posterior."""
        state = self._columns
        starts, stops = state["output_start"], state["output_stop"]
        numeric = np.flatnonzero(~self.is_categorical_)
        if self.sample_posterior:
            rng = check_random_state(self.random_state)
            bins = self._seen_bins(inputs)[:, numeric]
            outputs = self._draws(inputs, rng)
            outputs[:, starts[numeric]] += rng.normal(
                size=(inputs.shape[0], numeric.shape[0])) * \
                self._posterior_noise[numeric, bins]
            for j in np.flatnonzero(self.is_categorical_):
                p = outputs[:, starts[j]:stops[j]]
                if p.shape[1] == 0:
                    continue
                u = rng.uniform(size=(p.shape[0], 1))
                cum = np.cumsum(p, axis=1)
                draw = np.minimum((cum < u * cum[:, -1:]).sum(axis=1),
                                  p.shape[1] - 1)
                p[:] = 0.0
                p[np.arange(p.shape[0]), draw] = 1.0
        else:
            outputs = self._outputs(inputs).astype(np.float64)
        # Within the range observed in fit: a nearly constant column (a
        # border pixel) has a tiny scale, and the network's extrapolations
        # in its standardised units would be far off in the data's.
        mean, scale = state["mean"][numeric], state["scale"][numeric]
        outputs[:, starts[numeric]] = np.clip(
            outputs[:, starts[numeric]],
            (state["minimum"][numeric] - mean) / scale,
            (state["maximum"][numeric] - mean) / scale)
        # Constant and never observed numeric columns: the mean (0 if never
        # observed) exactly, as SimpleImputer gives.
        constant = numeric[state["minimum"][numeric] ==
                           state["maximum"][numeric]]
        outputs[:, starts[constant]] = 0.0
        return outputs

    def _observed_in_fit(self):
        """Columns with at least one observed value in fit."""
        state = self._columns
        observed = np.ones(len(state["dtypes"]), dtype=bool)
        cat = np.flatnonzero(state["is_categorical"])
        observed[cat] = [c.shape[0] > 0 for c in state["categories"]]
        return observed & ~self._never_observed

    def _kept(self):
        if self.keep_empty_features:
            return np.ones(len(self._columns["dtypes"]), dtype=bool)
        return self._observed_in_fit()

    def _fit(self, X, incremental):
        encoded = super()._fit(X, incremental)
        missing = encoded[2]
        self._never_observed = missing.all(axis=0) if missing.shape[0] else \
            np.ones(missing.shape[1], dtype=bool)
        return encoded

    def _dense(self, X):
        if sp.issparse(X):
            raise TypeError(
                f"{type(self).__name__} does not accept sparse input; "
                "convert it with X.toarray(), or impute explicitly stored "
                "entries with another imputer.")
        return X

    @staticmethod
    def _missing(X):
        """The native missing entries of X (unknown categories are observed)."""
        _, _, _, columns, _ = C._as_columns(X)
        return np.column_stack([miss for _, miss in columns])

    def _assemble(self, X, filled, missing):
        """Observed entries of X, imputed ones from ``filled``; then columns."""
        kept = self._kept()
        indicator = (self.indicator_.transform(missing)
                     if self.indicator_ is not None else None)
        config = _get_output_config("transform", self)["dense"]
        if nw.dependencies.is_into_dataframe(X):
            frame = _fill_frame(X, filled, missing)
            names = [frame.columns[j] for j in np.flatnonzero(kept)]
            library = self._columns["container"]
            if config == library and library in ("pandas", "polars"):
                out = nw.from_native(frame, eager_only=True).select(names)
                if indicator is not None:
                    extra = self.indicator_.get_feature_names_out(
                        np.asarray(frame.columns, dtype=object))
                    out = out.with_columns(
                        [nw.new_series(str(n), indicator[:, k],
                                       nw.Boolean, backend=library)
                         for k, n in enumerate(extra)])
                return nw.to_native(out)
            values = nw.from_native(frame, eager_only=True).select(
                names).to_numpy()
            if values.dtype.kind != "f":
                numeric = not self.is_categorical_[kept].any()
                values = values.astype(np.float64 if numeric else object)
        else:
            values = np.array(X, copy=True)
            if values.dtype.kind in "biu":
                values = values.astype(np.float64)
            rows, cols = np.nonzero(missing)
            if rows.size:
                values[rows, cols] = filled[rows, cols]
            values = values[:, kept]
        if indicator is not None:
            values = np.hstack([values, indicator.astype(values.dtype)])
        return values

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _fill_frame(X, filled, missing):
    """DataFrame X with its ``missing`` entries taken from ``filled``."""
    frame = nw.from_native(X, eager_only=True)
    library = nw.get_native_namespace(frame).__name__
    if library == "pandas":
        filled.index = X.index
    other = nw.from_native(filled, eager_only=True)
    columns = []
    for j, name in enumerate(frame.columns):
        if not missing[:, j].any():
            continue
        keep = nw.new_series("keep", ~missing[:, j], nw.Boolean,
                             backend=library)
        column = frame[name]
        columns.append(column.zip_with(keep, other[name].cast(column.dtype))
                       .alias(name))
    if not columns:
        return X
    return nw.to_native(frame.with_columns(columns))
