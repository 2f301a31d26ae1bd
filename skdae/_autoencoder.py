"""The denoising autoencoder estimator."""

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
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _kernels as K
from ._base import (
    SOLVER_PARAMETER_CONSTRAINTS,
    IntInterval,
    non_finite_input_error,
)
from ._minibatch import Noise, Workspace, data_range, forward_backward
from ._optimizers import RowUpdates, make_optimizer
from ._parallel import (
    BlockRunner,
    available_threads,
    inference_rows_per_block,
    map_row_blocks,
)
from ._repr import DocumentationLinkMixin
from ._sampling import (
    SampledWorkspace,
    initial_visible_bias,
    train_batch_sampled,
)
from ._swap_kernels import pool_columns
from ._training import (
    batch_size_for,
    check_structure,
    keep_optimizer_state,
    pickled_state,
    record_structure,
    reset_training_state,
    run_epochs,
    transaction,
    unpickled_state,
    validation_split,
)


def _uniform_rows(rng, bound, shape, dtype):
    """``rng.uniform(-bound, bound, shape).astype(dtype)``, a row at a time.

    The same numbers (RandomState draws them in order), without a float64
    temporary of the whole matrix: on a million features that is 128 MB per
    16 hidden units.
    """
    out = np.empty(shape, dtype=dtype)
    for k in range(shape[0]):
        out[k] = rng.uniform(-bound, bound, shape[1])
    return out


class DenoisingAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                           DocumentationLinkMixin, BaseEstimator):
    """Denoising autoencoder: features learned by reconstructing corrupted input.

    Each training sample ``x`` is corrupted into ``x~`` (masking, Gaussian or
    salt-and-pepper noise, drawn afresh for every minibatch of every epoch),
    encoded as ``h = s(W x~ + b)`` and decoded as ``z = s'(W' h + b')``; the
    weights are learned by minibatch gradient descent so that ``z`` reconstructs
    the *clean* ``x``. :meth:`transform` returns the code ``h`` of the clean,
    uncorrupted input, a robust feature representation for a downstream
    estimator.

    Training runs on Numba-compiled kernels for the elementwise work and BLAS
    for the matrix products. Computation happens in float32 for float32 input
    and in float64 otherwise.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units, the width of the code returned by
        :meth:`transform`.

    corruption : {"masking", "gaussian", "salt_and_pepper", "swap"}, \
            default="masking"
        Noise applied to the training input:

        - "masking": each component is set to 0 with probability
          ``corruption_level``;
        - "gaussian": ``N(0, corruption_level**2)`` noise is added to every
          component;
        - "salt_and_pepper": each component is, with probability
          ``corruption_level``, set to the minimum or the maximum of the
          training data (each with probability 1/2);
        - "swap": each component is, with probability ``corruption_level``,
          replaced by the same feature's value in another random row of the
          training data (never a validation row; with :meth:`partial_fit`,
          a row of the X passed), the noise of Kaggle's
          tabular denoising autoencoders: it keeps every feature's marginal
          distribution. For sparse X its cost is proportional to the
          non-zeros (a zero can receive a donor's non-zero, with the
          probability it has for dense X).

    corruption_level : float, default=0.3
        Fraction of components corrupted (masking, salt_and_pepper, swap; in
        ``[0, 1)``) or standard deviation of the noise (gaussian). 0 trains a
        plain (non-denoising) autoencoder.

    uncorrupted_weight : float, default=1.0
        Weight in the loss of the components that were not corrupted
        (corrupted ones weigh 1), the "emphasis" of Vincent et al. (2010):
        1 weighs all components equally, 0.5 doubles the emphasis on the
        corrupted components and 0 reconstructs only them. Only for masking,
        salt_and_pepper and swap noise.

    activation : {"sigmoid", "tanh", "relu", "identity"}, default="sigmoid"
        Activation of the hidden units.

    loss : {"auto", "cross_entropy", "squared_error"}, default="auto"
        Reconstruction loss, summed over features:

        - "cross_entropy": sigmoid decoder; needs X in [0, 1] (binary or
          probabilities, e.g. after :class:`~sklearn.preprocessing.MinMaxScaler`);
        - "squared_error": affine decoder, half the squared error; any real X;
        - "auto": "cross_entropy" if the training data lies in [0, 1], else
          "squared_error" (Vincent et al., 2010). The choice is stored in
          ``loss_``; with :meth:`partial_fit` the first call decides.

    tied_weights : bool, default=True
        Whether the decoder uses the encoder weights (``W' = W.T``). Untied
        weights double the parameters.

    reconstruction_sampling : int or None, default=None
        Reconstruction sampling for sparse X [3]_. None
        reconstructs every feature. An int ``k`` makes each minibatch
        reconstruct only the features with a stored entry in the minibatch
        plus ``k`` of the others drawn uniformly, their loss weighted so that
        it stays an unbiased estimate of the full one: a minibatch then costs
        time and memory in proportion to its non-zeros, not to
        ``n_features``. Only the sampled columns of the weights and visible
        biases are updated in a step, with their optimizer state ("lazy"
        Adam or momentum), and the visible biases start at the
        reconstruction of each feature by its mean instead of 0. Needs sparse
        X and masking noise (or ``corruption_level=0``). See
        :ref:`reconstruction_sampling`.

    solver : {"adam", "sgd"}, default="adam"
        Optimizer: Adam, or stochastic gradient descent with momentum.

    learning_rate_init : float, default=1e-3
        Learning rate (the step size of Adam, or of SGD).

    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" means ``min(200, n_samples)``.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data) of
        :meth:`fit`; training usually stops earlier, by the rule of
        ``tol`` and ``n_iter_no_change``. MLP's default: Adam at the
        default learning rate needs a few thousand minibatch steps, which
        small data sets (digits: 8 minibatches per epoch) take 150 to 200
        epochs to make.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights (not the intercepts).

    early_stopping : bool, default=False
        Whether to set aside ``validation_fraction`` of the training data and
        stop when the validation score (minus the mean reconstruction loss of
        the clean data) has not improved by at least ``tol`` for
        ``n_iter_no_change`` epochs; the best weights are kept. A warm start
        validates on the same rows and continues from the best weights and
        score. Ignored by :meth:`partial_fit` (which then sets
        ``validation_scores_`` to None).

    validation_fraction : float, default=0.1
        Fraction of the training data set aside when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` (in the
        training loss, or the validation score with early stopping) after
        which :meth:`fit` stops.

    tol : float, default=1e-4
        Minimum improvement that counts (see ``n_iter_no_change``), in the
        loss *per feature*: training stops when the loss (summed over the
        ``n_features`` features) has not improved by ``tol * n_features``,
        as MLP's ``tol`` applies to its loss averaged over outputs. The same
        ``tol`` thus means the same on 64 and on 784 features.

    shuffle : bool, default=True
        Whether to shuffle the samples at every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling, the validation split
        and the corruption noise. Pass an int for reproducible results
        (identical whatever the number of threads). See :term:`Glossary
        <random_state>`.

    verbose : int, default=0
        Progress output: 1 prints a line per epoch (``epoch k/max_iter``,
        the loss, the time taken, elapsed and an estimate of the remaining
        time); 2 also prints progress inside epochs that take longer than
        two seconds.

    warm_start : bool, default=False
        Whether :meth:`fit` continues from the weights of the previous fit
        (with a new optimizer state) instead of initialising new ones. The
        parameters the weights were built with cannot change (see
        :meth:`fit`).

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
    components_ : ndarray of shape (n_components, n_features)
        Encoder weights ``W``; row ``k`` is the filter of hidden unit ``k``.

    decoder_components_ : ndarray of shape (n_components, n_features)
        Decoder weights (the reconstruction is ``s'(h @ decoder_components_ +
        intercept_visible_)``). The same array as ``components_`` when
        ``tied_weights=True``.

    intercept_hidden_ : ndarray of shape (n_components,)
        Biases of the hidden units.

    intercept_visible_ : ndarray of shape (n_features,)
        Biases of the reconstruction.

    loss_ : str
        The loss used, "cross_entropy" or "squared_error" (resolves
        ``loss="auto"``).

    loss_curve_ : list of float
        Mean training loss of each epoch: the reconstruction loss of the
        corrupted samples, summed over features (and weighted by emphasis),
        plus the L2 penalty.

    best_loss_ : float
        Lowest value in ``loss_curve_``.

    validation_scores_ : list of float or None
        Score on the validation set (minus the mean clean reconstruction loss)
        after each epoch when ``early_stopping=True``, else None.

    best_validation_score_ : float or None
        Best value in ``validation_scores_``, else None.

    n_iter_ : int
        Number of epochs run since the weights were initialised.

    t_ : int
        Number of training samples seen since the weights were initialised.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.neural_network.BernoulliRBM : Restricted Boltzmann machine, another
        single-layer unsupervised feature learner.
    sklearn.neural_network.MLPRegressor : Multi-layer perceptron; trained on
        ``(X, X)`` it is a plain autoencoder without corruption or transform.
    sklearn.decomposition.PCA : Linear features; the optimum of a linear
        autoencoder with squared error.

    References
    ----------
    .. [1] P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting
       and composing robust features with denoising autoencoders", Proceedings
       of the 25th International Conference on Machine Learning (ICML), 2008.

    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked denoising autoencoders: learning useful representations in a
       deep network with a local denoising criterion", Journal of Machine
       Learning Research, 11, 3371-3408, 2010.

    .. [3] Y. Dauphin, X. Glorot and Y. Bengio, "Large-scale learning of
       embeddings with reconstruction sampling", Proceedings of the 28th
       International Conference on Machine Learning (ICML), 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdae import DenoisingAutoencoder
    >>> X = load_digits().data / 16  # pixels in [0, 1]
    >>> dae = DenoisingAutoencoder(n_components=64, learning_rate_init=3e-3,
    ...                            max_iter=200, random_state=0)
    >>> codes = dae.fit_transform(X)
    >>> codes.shape
    (1797, 64)
    >>> dae.loss_
    'cross_entropy'
    >>> denoised = dae.inverse_transform(dae.transform(X * (X > 0.5)))
    """

    _parameter_constraints: dict = {
        **SOLVER_PARAMETER_CONSTRAINTS,
        "n_components": [IntInterval(1, None, closed="left")],
        "corruption": [StrOptions({"masking", "gaussian", "salt_and_pepper",
                                   "swap"})],
        "corruption_level": [Interval(Real, 0, None, closed="left")],
        "uncorrupted_weight": [Interval(Real, 0, 1, closed="both")],
        "activation": [StrOptions({"sigmoid", "tanh", "relu", "identity"})],
        "loss": [StrOptions({"auto", "cross_entropy", "squared_error"})],
        "tied_weights": ["boolean"],
        "reconstruction_sampling": [IntInterval(1, None, closed="left"),
                                    None],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_components=256,
        *,
        corruption="masking",
        corruption_level=0.3,
        uncorrupted_weight=1.0,
        activation="sigmoid",
        loss="auto",
        tied_weights=True,
        reconstruction_sampling=None,
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
        self.n_components = n_components
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.uncorrupted_weight = uncorrupted_weight
        self.activation = activation
        self.loss = loss
        self.tied_weights = tied_weights
        self.reconstruction_sampling = reconstruction_sampling
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
    def fit(self, X, y=None):
        """Fit the model to X, corrupting it afresh for every minibatch.

        ``fit`` is all or nothing: if it raises (invalid data or parameters,
        divergence) or is interrupted (``KeyboardInterrupt``), the estimator
        is left exactly as it was before the call, unfitted if it was.

        With ``warm_start=True`` on a fitted model, training continues from
        the current weights with a fresh optimizer state; parameters the
        weights were built with (``n_components``, ``activation``, the loss,
        and ``tied_weights`` from False to True) cannot change and raise a
        ``ValueError``; ``tied_weights`` from True to False unties by copying.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input is processed a minibatch at a time,
            never densified as a whole. NaN entries (and explicitly stored
            NaN in sparse X) are missing values: they are fed as corrupted
            (set to 0, as masking noise does; swap noise never swaps into
            them, and a missing donor value is fed as 0) and carry no loss.
            Data without NaN pays nothing for this.

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

        The first call initialises the model (and, with ``loss="auto"``,
        chooses the loss from this X); later calls continue the weights and
        the optimizer state, following the current solver settings
        (``learning_rate_init``, ``beta_1``...; a new ``solver`` starts a
        fresh optimizer state). Structural parameters cannot change between
        calls (see :meth:`fit`). ``early_stopping`` is ignored.

        A model saved (pickled) after :meth:`fit` leaves out the optimizer
        state (the Adam moments or SGD velocities, together twice the size of
        the weights): it is about the size of its weights, and
        ``partial_fit`` after loading it continues the weights, ``n_iter_``,
        ``t_`` and the random stream with a fresh optimizer state. A model
        saved after ``partial_fit`` keeps it, so that streaming training
        that pickles the model between calls continues it. Like
        :meth:`fit`, ``partial_fit`` is all or nothing.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; NaN entries are missing values (see :meth:`fit`).

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
        """Encode X: the hidden representation of the clean (uncorrupted) input.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode. NaN entries (missing) are encoded as 0, as
            training feeds them: ``inverse_transform(transform(X))`` then
            fills them in (inpainting).

        Returns
        -------
        H : ndarray of shape (n_samples, n_components)
            The codes, in the dtype of X (float32 or float64).
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan", reset=False)
        return self._encode_by_blocks(X)

    def inverse_transform(self, X):
        """Decode codes back to the input space.

        ``inverse_transform(transform(X))`` is the model's reconstruction (the
        denoised version) of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, as returned by :meth:`transform`.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
            The reconstruction, in [0, 1] for the cross-entropy loss.
        """
        check_is_fitted(self)
        H = check_array(X, accept_sparse=["csr", "csc"],
                        dtype=[np.float64, np.float32])
        if H.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {H.shape[1]} columns, but {type(self).__name__} decodes "
                f"codes of width n_components={self.n_components_}. Pass the "
                "output of transform() to inverse_transform()."
            )
        if sp.issparse(H):
            H = H.tocsr()
        bias = self.intercept_visible_.astype(H.dtype, copy=False)

        def decode(rows):
            A = self._decoder_products(H[rows])
            K.bias_output(A, bias, K.LOSS_CODES[self.loss_])
            return A

        out = np.empty((H.shape[0], self.n_features_in_), dtype=H.dtype)
        return map_row_blocks(decode, H.shape[0],
                              inference_rows_per_block(out.shape[1]), out)

    def score_samples(self, X):
        """Minus the reconstruction loss of each clean sample.

        Higher means better reconstructed, i.e. more typical of the training
        data: an anomaly score where low values flag outliers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score. NaN entries (missing) are encoded as 0 and left
            out of the loss.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Minus the per-sample reconstruction loss (summed over the
            observed features).
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan", reset=False)
        if sp.issparse(X):
            X = X.tocsr()
        return -self._reconstruction_losses(X, np.arange(X.shape[0]))

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
            Minus the mean per-sample reconstruction loss; higher is better.
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def n_components_(self):
        """Width of the code (number of hidden units) of the fitted model."""
        return self.components_.shape[0]

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self):
        return pickled_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(unpickled_state(state))

    # ------------------------------------------------------------------
    # Validation and initialisation
    # ------------------------------------------------------------------
    def _fit(self, X, incremental, tag=None):
        """Body of fit / partial_fit, run inside a ``transaction``.

        Everything is validated (parameters, data, structure, data range)
        before the model is initialised or trained.
        """
        self._check_noise_params()
        fitted = hasattr(self, "components_")
        warm = fitted and (incremental or self.warm_start)
        X = self._validate_training_data(X, reset=not warm)
        self._check_sampling(X)
        # One pass over X, for the loss, the range check and the noise; NaN
        # (missing entries) found on the way, so data without any pays
        # nothing for them.
        *value_range, self._has_missing = data_range(X, return_missing=True)
        if self._has_missing and self.reconstruction_sampling is not None:
            raise ValueError(
                f"reconstruction_sampling={self.reconstruction_sampling} does "
                "not take missing entries (NaN) yet. Impute them first (e.g. "
                "with sklearn.impute.SimpleImputer) or set "
                "reconstruction_sampling=None, whose exact path takes NaN as "
                "missing entries.")
        if not np.isfinite(value_range).all():
            # Only with sklearn.set_config(assume_finite=True), which skips
            # validate_data's check: it would look like divergence.
            raise non_finite_input_error(type(self).__name__, allow_nan=True)
        if warm:
            check_structure(self, self._structure_now(),
                            how=("fit a new estimator" if incremental else
                                 "set warm_start=False"))
            loss = self.loss_
        else:
            loss = self._resolve_loss(value_range)
        self._check_data_range(value_range, loss)
        if not warm:
            self._initialize(X, loss)
        self._track_data_range(value_range)
        self._train(X, incremental, tag)

    def _structure_now(self):
        """What the current parameters would build (see ``check_structure``).

        Untying (``tied_weights`` True to False) is honoured by copying the
        weights, so only tying untied weights counts as a change.
        """
        fitted_tied = getattr(self, "_structure", {}).get("tied_weights",
                                                           True)
        loss = self.loss_ if self.loss == "auto" else self.loss
        return {"n_components": self.n_components,
                "activation": self.activation,
                "loss": loss,
                "tied_weights": self.tied_weights or fitted_tied}

    def _check_noise_params(self):
        if self.corruption != "gaussian" and self.corruption_level >= 1:
            raise ValueError(
                f"corruption_level={self.corruption_level} corrupts every "
                f"component with corruption='{self.corruption}'. It is the "
                "fraction of components corrupted and must be in [0, 1); "
                "0.1 to 0.5 are typical."
            )
        if self.corruption == "gaussian" and self.uncorrupted_weight != 1:
            raise ValueError(
                "uncorrupted_weight applies to masking and salt_and_pepper "
                "noise only (Gaussian noise corrupts every component); set "
                "uncorrupted_weight=1.0 or choose another corruption."
            )
        if self.uncorrupted_weight == 0 and self.corruption_level == 0:
            raise ValueError(
                "uncorrupted_weight=0 with corruption_level=0 gives every "
                "component weight 0: nothing would be learned. Raise "
                "corruption_level or uncorrupted_weight."
            )

    def _check_sampling(self, X):
        k = self.reconstruction_sampling
        if k is None:
            return
        if not sp.issparse(X):
            raise ValueError(
                f"reconstruction_sampling={k} samples the zeros of sparse "
                "input, but X is dense. Pass X as a scipy.sparse CSR matrix "
                "(scipy.sparse.csr_matrix(X)) or set "
                "reconstruction_sampling=None.")
        if self.corruption != "masking" and self.corruption_level > 0:
            raise ValueError(
                f"reconstruction_sampling={k} needs masking noise (or "
                f"corruption_level=0): corruption='{self.corruption}' also "
                "corrupts the zeros, which makes the input dense. Use "
                "corruption='masking' or reconstruction_sampling=None.")

    def _validate_training_data(self, X, reset):
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32], order="C",
                          ensure_all_finite="allow-nan", reset=reset)
        if sp.issparse(X):
            X = X.tocsr()
            if not X.has_canonical_format:
                # Swap noise looks entries up by binary search; duplicates
                # stand for their sum. A copy: the input is never modified.
                X = X.copy()
                X.sum_duplicates()
        if not reset and X.dtype != self.components_.dtype:
            # Continue training in the dtype the weights were created in.
            X = X.astype(self.components_.dtype)
        return X

    def _resolve_loss(self, value_range):
        if self.loss != "auto":
            return self.loss
        low, high = value_range
        return "cross_entropy" if low >= 0 and high <= 1 else "squared_error"

    def _check_data_range(self, value_range, loss):
        """Reject X outside [0, 1] for the cross-entropy."""
        low, high = value_range
        if loss == "cross_entropy" and not (low >= 0 and high <= 1):
            how = ("loss='cross_entropy' was given"
                   if self.loss == "cross_entropy"
                   else "the first partial_fit / fit chose loss_='cross_entropy'")
            raise ValueError(
                f"The cross-entropy loss needs X in [0, 1] ({how}), but X ranges "
                f"over [{low!r}, {high!r}]. Scale X into [0, 1] (e.g. with "
                "sklearn.preprocessing.MinMaxScaler) or use "
                "loss='squared_error'."
            )

    def _track_data_range(self, value_range):
        # Salt and pepper noise uses the extremes of all data trained on.
        low, high = value_range
        old_low, old_high = getattr(self, "_data_low_high", (low, high))
        self._data_low_high = (min(low, old_low), max(high, old_high))

    def _initialize(self, X, loss):
        n_features = X.shape[1]
        dtype = X.dtype
        # Kept for partial_fit: later calls continue the same random stream.
        self._random_state = rng = check_random_state(self.random_state)
        self.loss_ = loss
        for name in ("_data_low_high", "_validation_seed"):
            self.__dict__.pop(name, None)
        # Glorot & Bengio (2010) uniform initialisation; 4x wider for the
        # sigmoid, as in the Theano deep learning tutorials.
        bound = np.sqrt(6.0 / (n_features + self.n_components))
        if self.activation == "sigmoid":
            bound *= 4.0
        shape = (self.n_components, n_features)
        self.components_ = _uniform_rows(rng, bound, shape, dtype)
        if self.tied_weights:
            self.decoder_components_ = self.components_
        else:
            self.decoder_components_ = _uniform_rows(rng, bound, shape, dtype)
        self.intercept_hidden_ = np.zeros(self.n_components, dtype=dtype)
        self.intercept_visible_ = np.zeros(n_features, dtype=dtype)
        if self.reconstruction_sampling is not None:
            self.intercept_visible_[:] = initial_visible_bias(X, loss)
        reset_training_state(self)
        self.__dict__.pop("_optimizer_state", None)
        record_structure(self, {"n_components": self.n_components,
                                "activation": self.activation,
                                "loss": loss,
                                "tied_weights": self.tied_weights})

    def _params(self):
        """Trainable arrays, their L2 flags, and how gradients map to them."""
        if self.decoder_components_ is self.components_:
            return ([self.components_, self.intercept_hidden_,
                     self.intercept_visible_], [True, False, False])
        return ([self.components_, self.decoder_components_,
                 self.intercept_hidden_, self.intercept_visible_],
                [True, True, False, False])

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------
    def _train(self, X, incremental, tag=None):
        """Run ``max_iter`` epochs (fit) or one epoch (partial_fit)."""
        # Tied weights share one array (also after a joblib.load, which
        # does not keep the sharing); a warm start may untie them.
        if self.tied_weights:
            self.decoder_components_ = self.components_
        elif self.decoder_components_ is self.components_:
            self.decoder_components_ = self.components_.copy()
        self._structure = {**getattr(self, "_structure", {}),
                           "tied_weights": self.tied_weights}
        params, l2_flags = self._params()
        self._optimizer = make_optimizer(
            self, params,
            self.__dict__.get("_optimizer_state") if incremental else None)

        indices = np.arange(X.shape[0])
        validation_score = None
        if self.early_stopping and not incremental:
            indices, val_indices = validation_split(self, indices)

            def validation_score():
                return -float(np.mean(self._reconstruction_losses(
                    X, val_indices)))

        batch_size = batch_size_for(self, indices.shape[0])
        corruption = "none" if self.corruption_level == 0 else self.corruption
        has_missing = self.__dict__.pop("_has_missing", False)
        pool = indices if self.early_stopping and not incremental else \
            np.empty(0, dtype=np.intp)  # swap donors: never a validation row
        noise = Noise(K.CORRUPTION_CODES[corruption],
                      float(self.corruption_level),
                      float(self.uncorrupted_weight), *self._data_low_high,
                      pool=pool, has_missing=has_missing,
                      pool_columns=(pool_columns(X, pool) if corruption ==
                                    "swap" and sp.issparse(X) else None))

        # Overflow is not warned about: divergence is detected and reported.
        codes = (K.ACTIVATION_CODES[self.activation], K.LOSS_CODES[self.loss_])
        with BlockRunner(available_threads()) as runner, np.errstate(
                over="ignore", invalid="ignore"):
            if self.reconstruction_sampling is None:
                workspace = Workspace(batch_size, X.shape[1],
                                      self.n_components, X.dtype, *codes,
                                      runner)

                def step(rows, seed):
                    return self._train_batch(X, rows, seed, noise, workspace,
                                             params, l2_flags)
            else:
                workspace = SampledWorkspace(batch_size, self.n_components,
                                             X.dtype, *codes, runner)

                def step(rows, seed):
                    return train_batch_sampled(
                        self._optimizer, params, l2_flags, self.alpha, X,
                        rows, seed, noise, self.reconstruction_sampling,
                        workspace)

            run_epochs(self, step, params, l2_flags, indices,
                       n_epochs=1 if incremental else self.max_iter,
                       batch_size=batch_size,
                       validation_score=validation_score, tag=tag,
                       warn=not incremental, loss_terms=X.shape[1])
        keep_optimizer_state(self, self.__dict__.pop("_optimizer"),
                             incremental)

    def _train_batch(self, X, rows, seed, noise, ws, params, l2_flags):
        """One gradient step on the rows ``rows`` of X; returns the loss sum.

        The weight matrices are updated one block of hidden units at a time,
        in the thread that computed that block's gradient and while it is in
        cache; the biases after the whole minibatch.
        """
        opt, n = self._optimizer, rows.shape[0]
        if self.decoder_components_ is self.components_:
            # Tied: forward_backward sums both gradients in grad_encoder.
            weight_grads = [ws.grad_encoder]
        else:
            weight_grads = [ws.grad_encoder, ws.grad_decoder]
        n_weights = len(weight_grads)
        updates = RowUpdates(opt, params[:n_weights], weight_grads,
                             range(n_weights), self.alpha)
        updates.start(n)  # the optimizer's step begins
        loss_sum = self._forward_backward(X, rows, seed, noise, ws, updates)
        for k, grad in zip(range(n_weights, len(params)),
                           (ws.grad_hidden_bias, ws.grad_visible_bias)):
            opt.update(k, params[k], (grad,), n, l2_flags[k], self.alpha)
        return loss_sum

    def _forward_backward(self, X, rows, seed, noise, ws, updates=None):
        """Loss and gradients of one minibatch; see ``_minibatch``."""
        return forward_backward(
            self.components_, self.decoder_components_, self.intercept_hidden_,
            self.intercept_visible_, X, rows, seed, noise, ws, updates)

    # ------------------------------------------------------------------
    # Encoding, decoding, scoring
    # ------------------------------------------------------------------
    def _weights_as(self, dtype):
        return (self.components_.astype(dtype, copy=False),
                self.decoder_components_.astype(dtype, copy=False))

    def _encode(self, X, out=None):
        """The codes of X, written into ``out`` if given (C-ordered)."""
        W, _ = self._weights_as(X.dtype)
        bias = self.intercept_hidden_.astype(X.dtype, copy=False)
        code = K.ACTIVATION_CODES[self.activation]
        if sp.issparse(X):
            H = _missing_as_zero(X) @ W.T
            if out is None:
                H = np.asarray(H, order="C")
            else:
                out[...], H = H, out
            K.bias_activate(H, bias, code)
            return H
        H = np.matmul(X, W.T, out=out)
        # A NaN (missing) entry of X makes its row of the product NaN: the
        # activation pass finds it, and only then is the product made again
        # with the NaN as 0 (no pass over the wider X to look for them).
        if K.bias_activate_observed(H, bias, code):
            np.matmul(_missing_as_zero(X), W.T, out=H)
            K.bias_activate(H, bias, code)
        return H

    def _encode_by_blocks(self, X):
        """``_encode(X)`` by fixed blocks of rows on single-threaded BLAS.

        The codes are then the same whatever the number of threads (a
        multi-threaded BLAS rounds differently at each thread count).
        """
        if sp.issparse(X):
            X = X.tocsr()
        out = np.empty((X.shape[0], self.n_components_), dtype=X.dtype)
        # Each block is encoded in place, in its rows of ``out``.
        return map_row_blocks(lambda rows: self._encode(X[rows], out[rows]),
                              X.shape[0], inference_rows_per_block(out.shape[1]),
                              out, in_place=True)

    def _decoder_products(self, H):
        _, W_dec = self._weights_as(H.dtype)
        return np.ascontiguousarray(H @ W_dec)

    def _reconstruction_losses(self, X, rows):
        """Clean reconstruction loss of the rows ``rows`` of X.

        By fixed blocks of rows on single-threaded BLAS: the same losses
        whatever the number of threads.
        """
        loss_code = K.LOSS_CODES[self.loss_]
        bias = self.intercept_visible_.astype(X.dtype, copy=False)

        def losses(block):
            Xb = X[rows[block]]
            A = self._decoder_products(self._encode(Xb))
            if sp.issparse(Xb):
                Xb = Xb.toarray()
            out = np.empty(Xb.shape[0])
            K.row_losses(A, bias, Xb, loss_code, out)
            return out

        width = max(X.shape[1], self.n_components_)
        return map_row_blocks(losses, rows.shape[0],
                              inference_rows_per_block(width),
                              np.empty(rows.shape[0]))


def _missing_as_zero(X):
    """X with its NaN (missing) entries as 0, as training feeds them.

    A copy only if there is a NaN (one pass to look, against the matrix
    product that follows).
    """
    values = X.data if sp.issparse(X) else X
    # A sum is NaN if an entry is (or if +inf and -inf meet, which the
    # exact test below then sorts out): one pass and no temporary array.
    if values.size == 0 or not np.isnan(np.sum(values)):
        return X
    missing = np.isnan(values)
    if not missing.any():
        return X
    if sp.issparse(X):
        X = X.copy()
        X.data[missing] = 0
        return X
    return np.where(missing, 0, X)
