"""Tests of StackedDenoisingAutoencoderClassifier and its softmax head."""

import io
import pickle
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import log_softmax
from scipy.special import softmax as scipy_softmax
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skdae import StackedDenoisingAutoencoder, StackedDenoisingAutoencoderClassifier
from skdae import _head_kernels as HK
from skdae._network import Head, Workspace, forward_backward

Classifier = StackedDenoisingAutoencoderClassifier


pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _small(**params):
    defaults = dict(hidden_layer_sizes=(24, 12), pretrain_max_iter=5,
                    max_iter=20, learning_rate_init=1e-2, random_state=0)
    defaults.update(params)
    return Classifier(**defaults)


# --------------------------------------------------------------------------
# The classifier's head (the engine's softmax group) against SciPy
# --------------------------------------------------------------------------
def _softmax_head_delta(A, bias, y):
    """The engine's loss and gradient of one softmax group, target ``y``."""
    n, n_classes = A.shape
    head = Head(["softmax"], [n_classes])
    grad_bias = np.empty(n_classes, dtype=A.dtype)
    T = y[:, None].astype(A.dtype)
    loss = HK.head_delta(A, bias, T, np.arange(n), np.ones((1, 1), A.dtype),
                         False, np.zeros((n, 1), np.uint8), False, 1.0,
                         head.kinds, head.starts, head.stops, head.targets,
                         head.target_groups, grad_bias)
    return loss, grad_bias, head


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_head(dtype):
    rng = np.random.RandomState(0)
    A = (10 * rng.normal(size=(7, 5))).astype(dtype)
    bias = rng.normal(size=5).astype(dtype)
    y = rng.randint(5, size=7)
    logits = A.astype(np.float64) + bias
    expected_loss = -log_softmax(logits, axis=1)[np.arange(7), y].sum()
    expected_delta = scipy_softmax(logits, axis=1)
    expected_delta[np.arange(7), y] -= 1.0

    loss, grad_bias, _ = _softmax_head_delta(A, bias, y)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(loss, expected_loss, rtol=rtol)
    assert_allclose(A, expected_delta, rtol=rtol, atol=10 * rtol)
    assert_allclose(grad_bias, expected_delta.sum(axis=0), rtol=rtol,
                    atol=10 * rtol)
    assert A.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_output(dtype, log):
    rng = np.random.RandomState(1)
    A = (30 * rng.normal(size=(6, 4))).astype(dtype)
    bias = rng.normal(size=4).astype(dtype)
    logits = A.astype(np.float64) + bias
    expected = (log_softmax if log else scipy_softmax)(logits, axis=1)
    head = _softmax_head_delta(A.copy(), bias, np.zeros(6, int))[2]
    HK.head_output(A, bias, head.kinds, head.starts, head.stops, log)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    # Log-probabilities near 0 are differences of large logits: absolute
    # error on the scale of the logits.
    atol = rtol * np.abs(logits).max() if log else 1e-30
    assert_allclose(A, expected, rtol=rtol, atol=atol)


def test_softmax_head_does_not_overflow():
    A = np.array([[1e4, -1e4, 0.0]])
    bias = np.zeros(3)
    loss, _, head = _softmax_head_delta(A.copy(), bias, np.array([1]))
    assert_allclose(loss, 2e4)
    logp = A.copy()
    HK.head_output(logp, bias, head.kinds, head.starts, head.stops, True)
    assert_allclose(logp, [[0.0, -2e4, -1e4]])


# --------------------------------------------------------------------------
# Gradients against finite differences
# --------------------------------------------------------------------------
def _network(activation, n_features=6, sizes=(5, 4), n_classes=3, seed=0,
             n_samples=150):
    # 150 rows: several row blocks of the minibatch (``_parallel``).
    rng = np.random.RandomState(seed)
    X = rng.uniform(size=(n_samples, n_features))
    y = rng.randint(n_classes, size=n_samples)
    clf = _small(hidden_layer_sizes=sizes, activation=activation,
                 pretrain=False, random_state=seed)
    clf.classes_ = np.arange(n_classes)
    clf._random_state = rng
    clf._initialize(X, np.arange(n_samples))
    # Non-zero biases, so that their gradients are tested at a generic point.
    for b in clf.intercepts_:
        b += rng.normal(scale=0.5, size=b.shape)
    return clf, X, y


def _forward_backward(clf, X, y, rows_per_block=None):
    """The classifier's minibatch on the engine: loss, workspace."""
    n = X.shape[0]
    ws = Workspace(n, clf.coefs_, clf._head(), 0, not sp.issparse(X),
                   rows_per_block=rows_per_block)
    loss = forward_backward(clf.coefs_, clf.intercepts_, clf._activations,
                            clf._head(), X, np.arange(n), y[:, None] * 1.0,
                            None, None, 0, ws)
    return loss, ws


def _loss(clf, X, y):
    logp = clf._output(X, log=True)
    return -logp[np.arange(X.shape[0]), y].sum()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "identity",
                                        ["tanh", "sigmoid"]])
@pytest.mark.parametrize("sparse", [False, True])
def test_gradients_match_finite_differences(activation, sparse):
    clf, X, y = _network(activation)
    X_fit = sp.csr_matrix(X) if sparse else X
    loss, ws = _forward_backward(clf, X_fit, y, rows_per_block=64)
    assert_allclose(loss, _loss(clf, X, y), rtol=1e-12)
    assert len(ws.bias_parts[0]) > 1

    eps = 1e-6
    params = [p for pair in zip(clf.coefs_, clf.intercepts_) for p in pair]
    grads = [g for pair in zip(ws.grad_coefs, ws.grad_intercepts) for g in pair]
    for param, grad in zip(params, grads):
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + eps
            up = _loss(clf, X, y)
            param[idx] = saved - eps
            down = _loss(clf, X, y)
            param[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_relu_gradients_match_finite_differences():
    clf, X, y = _network("relu", seed=3)
    _, ws = _forward_backward(clf, X, y)
    eps = 1e-7
    W = clf.coefs_[0]
    for idx in [(0, 0), (2, 3), (5, 1)]:
        saved = W[idx]
        W[idx] = saved + eps
        up = _loss(clf, X, y)
        W[idx] = saved - eps
        down = _loss(clf, X, y)
        W[idx] = saved
        assert_allclose(ws.grad_coefs[0][idx], (up - down) / (2 * eps),
                        rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------
def test_same_model_whatever_the_number_of_threads():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 200))
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.5)
    models = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads, user_api="blas"):
            models.append(_small(hidden_layer_sizes=(150, 20), max_iter=2,
                                 pretrain_max_iter=1, batch_size=150).fit(X, y))
    for W1, W2 in zip(models[0].coefs_, models[1].coefs_):
        assert_array_equal(W1, W2)


def test_learns_digits(digits):
    X, y = digits
    clf = _small(hidden_layer_sizes=(64, 32), max_iter=30).fit(X[:450], y[:450])
    assert clf.score(X[450:], y[450:]) > 0.85
    proba = clf.predict_proba(X[450:])
    assert proba.shape == (150, 10)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_allclose(clf.predict_log_proba(X[450:]), np.log(proba), rtol=1e-6)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.loss_ == clf.loss_curve_[-1]


def test_pretraining_initialises_the_hidden_layers(digits):
    X, y = digits
    clf = _small()
    clf.classes_ = np.unique(y)
    clf._random_state = np.random.RandomState(0)
    clf._initialize(X, np.arange(X.shape[0]))
    assert isinstance(clf.stack_, StackedDenoisingAutoencoder)
    assert clf.stack_.n_iter_ == 10
    for W, b, ae in zip(clf.coefs_, clf.intercepts_,
                        clf.stack_.autoencoders_):
        assert_array_equal(W, ae.components_.T)
        assert_array_equal(b, ae.intercept_hidden_)
    assert clf.coefs_[-1].shape == (12, 10)
    assert clf.pretrain_time_ > 0
    # Fine-tuning copies the weights: the pretrained stack stays as it was.
    clf.fit(X, y)
    assert not np.allclose(clf.coefs_[0], clf.stack_.autoencoders_[0]
                           .components_.T)


def test_pretrain_false_gives_the_same_network_from_random_weights(digits):
    X, y = digits
    pretrained = _small().fit(X, y)
    random = _small(pretrain=False).fit(X, y)
    assert random.stack_ is None
    assert random.pretrain_time_ == 0.0
    assert [W.shape for W in random.coefs_] == [W.shape for W in
                                                pretrained.coefs_]
    assert random.n_layers_ == pretrained.n_layers_ == 4
    assert random.n_outputs_ == 10
    assert random.out_activation_ == "softmax"


def test_early_stopping(digits):
    X, y = digits
    clf = _small(early_stopping=True, max_iter=200, n_iter_no_change=3,
                 validation_fraction=0.2).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert len(clf.loss_curve_) == clf.n_iter_
    # Without early stopping there are no validation scores.
    plain = _small(max_iter=3).fit(X, y)
    assert plain.validation_scores_ is None
    assert plain.best_validation_score_ is None


def test_partial_fit(digits):
    X, y = digits
    clf = _small()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=np.arange(10))
    assert clf.n_iter_ == 1
    assert clf.stack_ is not None
    # The first call is fit with one epoch.
    one_epoch = _small(max_iter=1).fit(X, y)
    assert_allclose(clf.predict_proba(X), one_epoch.predict_proba(X))
    clf.partial_fit(X[:100], y[:100])
    assert clf.n_iter_ == 2
    assert clf.t_ == X.shape[0] + 100
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, y + 20)
    # Later calls follow learning_rate_init: a tiny one barely moves.
    before = [W.copy() for W in clf.coefs_]
    clf.set_params(learning_rate_init=1e-12).partial_fit(X, y)
    for W, W_before in zip(clf.coefs_, before):
        assert_allclose(W, W_before, atol=1e-9)

    # A class absent from the first batch can come later.
    clf = _small()
    clf.partial_fit(X[y < 5], y[y < 5], classes=np.arange(10))
    clf.partial_fit(X[y >= 5], y[y >= 5])
    assert clf.predict_proba(X).shape == (X.shape[0], 10)


def test_warm_start_continues(digits):
    X, y = digits
    clf = _small(max_iter=5, warm_start=True).fit(X, y)
    stack = clf.stack_
    clf.fit(X, y)
    assert clf.n_iter_ == 10
    # No new pretraining: the same pretrained stack.
    for old, new in zip(stack.autoencoders_, clf.stack_.autoencoders_):
        assert_array_equal(old.components_, new.components_)


@pytest.mark.parametrize("labels", [np.array(["no", "yes"]), np.array([-1, 1])])
def test_binary_and_string_labels(digits, labels):
    X, y = digits
    target = labels[(y >= 5).astype(int)]
    clf = _small(max_iter=30).fit(X, target)
    assert_array_equal(clf.classes_, labels)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, target) > 0.8
    assert clf.predict_proba(X).shape == (X.shape[0], 2)


def test_one_class_is_refused(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="at least 2 classes"):
        _small().fit(X, np.zeros(X.shape[0]))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(digits, fmt):
    X, y = digits
    X_sparse = sp.csr_matrix(X).asformat(fmt)
    dense = _small(max_iter=5).fit(X, y)
    sparse = _small(max_iter=5).fit(X_sparse, y)
    assert_allclose(sparse.predict_proba(X_sparse), dense.predict_proba(X),
                    rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype(digits, dtype):
    X, y = digits
    clf = _small(max_iter=3).fit(X.astype(dtype), y)
    assert all(W.dtype == dtype for W in clf.coefs_)
    assert clf.predict_proba(X).dtype == dtype


def test_input_not_mutated(digits):
    X, y = digits
    X_copy, y_copy = X.copy(), y.copy()
    clf = _small(max_iter=3, early_stopping=True).fit(X, y)
    clf.partial_fit(X, y)
    clf.predict_proba(X)
    assert_array_equal(X, X_copy)
    assert_array_equal(y, y_copy)


def test_random_state_reproducibility(digits):
    X, y = digits
    a = _small(max_iter=3, random_state=5).fit(X, y).predict_proba(X)
    b = _small(max_iter=3, random_state=5).fit(X, y).predict_proba(X)
    c = _small(max_iter=3, random_state=6).fit(X, y).predict_proba(X)
    assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_divergence_raises_and_keeps_finite_weights(digits):
    X, y = digits
    clf = _small(solver="sgd", learning_rate_init=1e12, activation="identity",
                 pretrain=False, max_iter=5)
    with pytest.raises(ValueError, match="Lower learning_rate_init"):
        clf.fit(X * 1e6, y)
    # Left as before the call: unfitted, no weights at all (let alone NaN).
    assert not hasattr(clf, "coefs_") and not hasattr(clf, "classes_")


def test_per_layer_settings_reach_the_stack(digits):
    X, y = digits
    clf = _small(corruption_level=[0.4, 0.0], activation=["tanh", "sigmoid"],
                 max_iter=2).fit(X, y)
    first, second = clf.stack_.autoencoders_
    assert (first.corruption_level, second.corruption_level) == (0.4, 0.0)
    assert (first.activation, second.activation) == ("tanh", "sigmoid")
    with pytest.raises(ValueError, match="corruption_level has 3 values"):
        _small(corruption_level=[0.1, 0.2, 0.3]).fit(X, y)
    with pytest.raises(ValueError, match="activation has 3 values"):
        _small(activation=["tanh"] * 3, pretrain=False).fit(X, y)


def test_verbose_reports_both_phases(digits):
    X, y = digits
    out = io.StringIO()
    with redirect_stdout(out):
        _small(max_iter=2, pretrain_max_iter=1, verbose=1).fit(X, y)
    text = out.getvalue()
    assert "Pretraining" in text
    assert re.search(r"Layer 2/2: 24 -> 12 units", text)
    assert len(re.findall(
        r"\[StackedDenoisingAutoencoderClassifier fine-tuning\] epoch \d+/2, "
        r"loss = \d+\.\d+", text)) == 2


def test_pickle_clone_pipeline_and_grid_search(digits):
    X, y = digits
    clf = _small(max_iter=5).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    cloned = clone(clf)
    assert not hasattr(cloned, "coefs_")
    assert cloned.get_params() == clf.get_params()

    pipe = make_pipeline(StandardScaler(), _small(max_iter=10, batch_size=32))
    search = GridSearchCV(pipe, {
        "stackeddenoisingautoencoderclassifier__pretrain": [True, False]},
        cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.7
