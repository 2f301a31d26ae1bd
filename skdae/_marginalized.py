"""The marginalized stacked denoising autoencoder (mSDA), in closed form."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from . import _kernels as K
from ._base import IntInterval, check_finite_if_assumed
from ._network import bias_activate
from ._parallel import inference_rows_per_block, map_row_blocks
from ._repr import DocumentationLinkMixin
from ._scatter import add_statistics, layer_statistics, solve_layer

# Attributes that validate_data sets.
_VALIDATED = ("n_features_in_", "feature_names_in_")


class MarginalizedDenoisingAutoencoder(TransformerMixin, DocumentationLinkMixin,
                                       BaseEstimator):
    """Marginalized stacked denoising autoencoder (mSDA), fitted in closed form.

    Each layer is a linear denoising autoencoder with masking noise whose
    expected squared reconstruction loss over *every* masking of the input is
    minimised exactly: the weights are the solution of one symmetric positive
    definite linear system built from the scatter matrix ``X^T X`` (Chen et
    al., 2012). No gradient descent, no epochs, no learning rate. Layers stack:
    each reconstructs its input from a masked copy, and its output
    ``activation(X_k @ coefs_[k].T + intercepts_[k])`` is the next layer's
    input.

    Read more in the :ref:`User Guide <marginalized>`.

    Parameters
    ----------
    n_layers : int, default=1
        Number of layers stacked.

    corruption_level : float in [0, 1), default=0.5
        Masking probability ``p``: every input feature of a layer is set to
        zero with probability ``p``, independently. The bias feature is
        never masked.

    alpha : float, default=1e-5
        L2 penalty on the weights (not the bias): added to the diagonal of
        ``Q``, the expected scatter matrix of the masked input. The loss it
        regularises is summed, not averaged, over the samples, as in the
        paper (whose default this is). It keeps the solve well posed when a
        feature is constant zero; with ``alpha=0`` a singular system gets
        its minimum-norm least-squares solution.

    activation : {"tanh", "relu", "identity"}, default="tanh"
        Applied to every layer's output. "tanh" is the paper's choice;
        "identity" gives the linear marginalized denoising autoencoder (mDA);
        "relu" keeps non-negative input non-negative.

    n_components : int, default=None
        Width of every layer. None: every layer reconstructs all its input
        features (a d x d solve per layer, O(d^2) memory). An int ``r``: the
        paper's variant for wide input. The first layer reconstructs only the
        ``r`` most frequent input features (the most often non-zero ones when
        ``X`` is non-negative, as bag-of-words counts are; the highest
        variance ones otherwise) from all of them: the features are split at
        random into subsets of about ``r``, one ``r`` x ``r`` layer is solved
        per subset and the layer's output is the mean of their
        reconstructions. Its statistics take O(d r) memory, never d x d.
        The layers above are ``r`` wide. Must not exceed ``n_features``.

    features : {"all", "layers", "last"}, default="all"
        What :meth:`transform` returns: "all" the input followed by every
        layer's output (the paper's representation), "layers" every layer's
        output, "last" the last layer's output.

    random_state : int, RandomState instance or None, default=None
        Draws the random split of the features into subsets when
        ``n_components`` is an int; unused otherwise (the fit is then
        deterministic).

    Attributes
    ----------
    coefs_ : list of ndarray of shape (n_outputs, n_inputs)
        Weights of every layer, in the dtype of the input ``fit`` last saw
        (solved in float64). Layer ``k`` has ``n_inputs`` = ``n_features_in_``
        for the first layer and the width of the layer below otherwise, and
        ``n_outputs`` = ``n_components`` (or ``n_features_in_`` when None).

    intercepts_ : list of ndarray of shape (n_outputs,)
        Bias of every layer, in the dtype of ``coefs_``.

    reconstructed_features_ : ndarray of shape (n_outputs,), dtype=int
        Indices (ascending) of the input features the first layer
        reconstructs: output ``j`` of layer 1 is the denoised input feature
        ``reconstructed_features_[j]``.

    feature_subsets_ : list of ndarray of int
        The partition of the input features into the first layer's subsets
        (ascending indices in each); one subset holding every feature when
        ``n_components`` is None.

    n_samples_seen_ : int
        Number of samples the statistics were accumulated over.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    DenoisingAutoencoder : A denoising autoencoder trained by gradient
        descent, with codes of any width and other noises and losses.
    sklearn.decomposition.PCA : Linear dimensionality reduction.

    Notes
    -----
    Fitting a layer of width ``r`` on ``n`` samples of ``d`` features costs a
    scatter product (``n d^2`` for the full layer, ``nnz r`` plus the
    subsets' products for the reduced one), a Cholesky solve (``d^3``, or
    ``r^3`` per subset) and, for every layer but the last, its output on the
    training data (``2 n d r``). The scatter is accumulated in float64 for any
    input dtype, chunk by chunk, so float32 input costs no float64 copy.

    For sparse input, :meth:`transform` returns a CSR matrix when
    ``features="all"`` (the input's non-zeros followed by the dense codes,
    whose memory is O(nnz + n_samples * total width)), and an ndarray
    otherwise.

    :meth:`partial_fit` adds a chunk's statistics to those seen so far and
    re-solves every layer. The first layer is then exactly what :meth:`fit`
    on all chunks at once gives. A layer above accumulates the statistics of
    its input as each chunk produced it with the layers below as they were
    after that chunk's update: exact for the first chunk, an approximation
    that improves as the lower layers settle. The reduced variant chooses its
    reconstructed features and subsets on the first chunk.

    The statistics :meth:`partial_fit` adds to take about as much memory as
    the weights (float64 scatter matrices). A model whose last fit was
    :meth:`fit` is saved (pickle, joblib, skops) without them, about the
    size of its weights; one trained by :meth:`partial_fit` keeps them, so
    that streaming training continues after loading (as ``dask_ml``'s
    ``Incremental`` does between blocks). :meth:`partial_fit` on a model
    loaded after :meth:`fit` raises a ``ValueError``.

    References
    ----------
    Chen, M., Xu, Z., Weinberger, K. Q., & Sha, F. (2012). Marginalized
    denoising autoencoders for domain adaptation. In Proceedings of the 29th
    International Conference on Machine Learning (ICML).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdae import MarginalizedDenoisingAutoencoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> msda = MarginalizedDenoisingAutoencoder(n_layers=2).fit(X / 16)
    >>> msda.transform(X / 16).shape
    (1797, 192)
    """

    _parameter_constraints = {
        "n_layers": [IntInterval(1, None, closed="left")],
        "corruption_level": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "activation": [StrOptions({"tanh", "relu", "identity"})],
        "n_components": [None, IntInterval(1, None, closed="left")],
        "features": [StrOptions({"all", "layers", "last"})],
        "random_state": ["random_state"],
    }

    def __init__(self, n_layers=1, *, corruption_level=0.5, alpha=1e-5,
                 activation="tanh", n_components=None, features="all",
                 random_state=None):
        self.n_layers = n_layers
        self.corruption_level = corruption_level
        self.alpha = alpha
        self.activation = activation
        self.n_components = n_components
        self.features = features
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit every layer in closed form on X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit_aside(X, reset=True, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the statistics of a chunk of rows and re-solve every layer.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if hasattr(self, "coefs_") and getattr(self, "_statistics", None) is None:
            raise ValueError(
                "This MarginalizedDenoisingAutoencoder was saved after fit, "
                "without the statistics partial_fit adds to (a model saved "
                "after partial_fit keeps them). Call fit on all the data, or "
                "train with partial_fit from the first chunk.")
        return self._fit_aside(X, reset=not hasattr(self, "_statistics"),
                               incremental=True)

    def transform(self, X):
        """Encode X: the input and / or the layers' outputs (see ``features``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray or CSR matrix of shape (n_samples, n_features_out)
            In the dtype of X; a CSR matrix for sparse X with
            ``features="all"``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr",
                          dtype=[np.float64, np.float32], reset=False)

        def encode(rows):
            codes = self._encode(X[rows], self.coefs_, self.intercepts_)
            return codes[-1] if self.features == "last" else np.hstack(codes)

        # By fixed blocks of rows on single-threaded BLAS: the same codes
        # whatever the number of threads.
        widths = [len(b) for b in self.intercepts_]
        out = np.empty((X.shape[0], widths[-1] if self.features == "last"
                        else sum(widths)), dtype=X.dtype)
        width = max(X.shape[1], out.shape[1])
        out = map_row_blocks(encode, X.shape[0],
                             inference_rows_per_block(width), out)
        if self.features != "all":
            return out
        if sp.issparse(X):
            return sp.hstack([X, sp.csr_matrix(out)], format="csr",
                             dtype=X.dtype)
        return np.hstack([X, out])

    def score_samples(self, X):
        """Minus the clean reconstruction loss of each sample by the first layer.

        The first layer's linear reconstruction of the features it
        reconstructs (``reconstructed_features_``) from the unmasked input,
        as :meth:`DenoisingAutoencoder.score_samples` measures it: higher
        means more typical of the training data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Minus the per-sample squared error, summed over the features.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr",
                          dtype=[np.float64, np.float32], reset=False)
        coef = self.coefs_[0].astype(X.dtype, copy=False)
        R = np.asarray(X @ coef.T) + self.intercepts_[0].astype(X.dtype)
        T = X[:, self.reconstructed_features_]
        R -= T.toarray() if sp.issparse(T) else T
        return -np.einsum("ij,ij->i", R, R)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`: minus the mean reconstruction loss.

        Not comparable across ``corruption_level`` (a masked layer
        reconstructs the clean input less closely by design): select it by
        a downstream score instead.

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

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Layer ``k`` (from 1) output ``j`` is named
        ``marginalizeddenoisingautoencoder_layer{k}_{j}``; with
        ``features="all"`` the input's names come first.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; by default ``feature_names_in_`` or
            ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            Transformed feature names.
        """
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        prefix = type(self).__name__.lower()
        layers = [[f"{prefix}_layer{k}_{j}" for j in range(len(b))]
                  for k, b in enumerate(self.intercepts_, start=1)]
        if self.features == "last":
            layers = layers[-1:]
        names = [name for layer in layers for name in layer]
        if self.features == "all":
            names = list(input_features) + names
        return np.asarray(names, dtype=object)

    def __getstate__(self):
        # The statistics are saved only for partial_fit (see Notes).
        state = dict(super().__getstate__())  # may be __dict__ itself
        if not state.get("_pickle_statistics", True):
            state["_statistics"] = None
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------
    def _update(self, X, previous):
        """Statistics and weights after adding X's rows, without committing.

        ``previous`` is the list of per-layer statistics so far (None for a
        fresh fit). Nothing of ``self`` is changed.
        """
        n_features = X.shape[1]
        if previous is None:
            if self.n_components is not None and self.n_components > n_features:
                raise ValueError(
                    f"n_components={self.n_components} must be at most the "
                    f"number of features, {n_features}. Lower n_components or "
                    "set it to None to reconstruct every feature.")
            targets, subsets = self._choose_targets(X)
        else:
            targets = self.reconstructed_features_
            subsets = self.feature_subsets_
            width = (n_features if self.n_components is None
                     else self.n_components)
            if len(previous) != self.n_layers or len(targets) != width:
                raise ValueError(
                    "n_layers or n_components changed since the last "
                    "partial_fit: the statistics seen so far are for "
                    f"n_layers={len(previous)} and {len(targets)} outputs. "
                    "Call fit to start again with the new setting.")
        width = len(targets)
        everything = [np.arange(width)]
        p, code = self.corruption_level, K.ACTIVATION_CODES[self.activation]
        statistics, coefs, intercepts = [], [], []
        H = X
        for k in range(self.n_layers):
            layer_targets, layer_subsets = ((targets, subsets) if k == 0
                                            else (everything[0], everything))
            stats = layer_statistics(H, layer_targets, layer_subsets)
            if previous is not None:
                stats = add_statistics(previous[k], stats)
            coef, intercept = solve_layer(stats, layer_targets, layer_subsets,
                                          p, self.alpha)
            statistics.append(stats)
            coefs.append(coef.astype(X.dtype, copy=False))
            intercepts.append(intercept.astype(X.dtype, copy=False))
            if k + 1 < self.n_layers:
                H = self._layer_output(H, coefs[-1], intercepts[-1], code)
        return {"_statistics": statistics, "coefs_": coefs,
                "intercepts_": intercepts,
                "reconstructed_features_": targets,
                "feature_subsets_": subsets,
                "n_samples_seen_": int(statistics[0]["n"])}

    def _fit_aside(self, X, reset, incremental):
        """Validate X, compute the new model aside, then commit it at once.

        ``incremental``: whether pickles keep the statistics (partial_fit).

        ``validate_data`` sets ``n_features_in_`` / ``feature_names_in_``
        before anything is computed: on any exception (a KeyboardInterrupt
        too) they are put back, so a failed fit leaves the previous model
        whole.
        """
        saved = {k: self.__dict__[k] for k in _VALIDATED
                 if k in self.__dict__}
        try:
            X = validate_data(self, X, accept_sparse="csr",
                              dtype=[np.float64, np.float32], reset=reset)
            check_finite_if_assumed(X, type(self).__name__)
            state = self._update(X, None if reset else self._statistics)
        except BaseException:
            for k in _VALIDATED:
                if k in saved:
                    self.__dict__[k] = saved[k]
                else:
                    self.__dict__.pop(k, None)
            raise
        state["_pickle_statistics"] = incremental
        # One dict update: an interrupt leaves either the old or the new model.
        self.__dict__.update(state)
        return self

    def _choose_targets(self, X):
        """The first layer's reconstructed features and feature subsets."""
        n_features = X.shape[1]
        if self.n_components is None:
            return np.arange(n_features), [np.arange(n_features)]
        r = self.n_components
        values = X.data if sp.issparse(X) else X
        if values.size == 0 or values.min() >= 0:
            score = (X != 0).sum(axis=0) if sp.issparse(X) else (
                np.count_nonzero(X, axis=0))
        elif sp.issparse(X):
            mean = np.asarray(X.mean(axis=0)).ravel()
            score = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean ** 2
        else:
            score = X.var(axis=0, dtype=np.float64)
        score = np.asarray(score, dtype=np.float64).ravel()
        # Stable: ties go to the lower index.
        targets = np.sort(np.argsort(-score, kind="stable")[:r])
        rng = check_random_state(self.random_state)
        n_subsets = -(-n_features // r)
        order = rng.permutation(n_features)
        bounds = [n_features * s // n_subsets for s in range(n_subsets + 1)]
        subsets = [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        return targets, subsets

    @staticmethod
    def _layer_output(X, coef, intercept, code):
        if sp.issparse(X):
            # No transposed copy of the (r, d) weights, which scipy makes.
            H = np.empty((X.shape[0], coef.shape[0]), dtype=coef.dtype)
            K.csr_matmul_t(X.data.astype(coef.dtype, copy=False), X.indices,
                           X.indptr, coef, H)
        else:
            H = np.asarray(X @ coef.T, dtype=coef.dtype, order="C")
        K._check_bias_activate(H, intercept, code)
        bias_activate(H, intercept, code)
        return H

    def _encode(self, X, coefs, intercepts):
        """Every layer's output on X, in X's dtype."""
        code = K.ACTIVATION_CODES[self.activation]
        codes, H = [], X
        for coef, intercept in zip(coefs, intercepts):
            H = self._layer_output(H, coef.astype(X.dtype, copy=False),
                                   intercept.astype(X.dtype, copy=False), code)
            codes.append(H)
        return codes

    @property
    def _n_features_out(self):
        width = sum(len(b) for b in self.intercepts_)
        if self.features == "last":
            return len(self.intercepts_[-1])
        if self.features == "all":
            return self.n_features_in_ + width
        return width
