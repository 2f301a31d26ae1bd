"""StackedDenoisingAutoencoder: fine-tuning, score_samples, pandas output."""

import io
import pickle
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from skdae import StackedDenoisingAutoencoder
from skdae._fine_tuning import deep_network
from skdae._network import Workspace, forward_backward, predict_head

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:1400] / 16.0


def _stack(**params):
    defaults = dict(hidden_layer_sizes=(12, 6), max_iter=3,
                    fine_tune_max_iter=3, fine_tune=True, random_state=0)
    defaults.update(params)
    return StackedDenoisingAutoencoder(**defaults)


def _fitted(est):
    """The fitted state as bytes (no constructor parameters)."""
    return pickle.dumps({k: v for k, v in vars(est).items()
                         if k not in est.get_params(deep=False)})


def _mse(model, X):
    return np.mean((model.inverse_transform(model.transform(X)) - X) ** 2)


# --------------------------------------------------------------------------
# A NumPy reference of the deep autoencoder, from the layers' attributes
# --------------------------------------------------------------------------
_ACT = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh,
        "relu": lambda a: np.maximum(a, 0), "identity": lambda a: a}


def _reference_loss(stack, X):
    """Loss of the clean X through the layers' public weights, in NumPy."""
    layers = stack.autoencoders_
    H = X
    for ae in layers:
        H = _ACT[ae.activation](H @ ae.components_.T + ae.intercept_hidden_)
    for k in range(len(layers) - 1, -1, -1):
        ae = layers[k]
        A = H @ ae.decoder_components_ + ae.intercept_visible_
        if k > 0:  # a decoder's output activation follows its loss
            H = A if ae.loss_ == "squared_error" else _ACT["sigmoid"](A)
    if layers[0].loss_ == "squared_error":
        return 0.5 * ((A - X) ** 2).sum(axis=1)
    return (np.logaddexp(0, A) - X * A).sum(axis=1)


def test_score_samples_is_the_reconstruction_loss_of_the_whole_stack():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(80, 9))
    # Layer 2 on sigmoid codes (cross-entropy, sigmoid decoder), layer 3 on
    # tanh codes (squared error, identity decoder).
    stack = _stack(hidden_layer_sizes=(7, 5, 3), fine_tune=False,
                   activation=["sigmoid", "tanh", "relu"],
                   tied_weights=False).fit(X)
    assert [ae.loss_ for ae in stack.autoencoders_] == [
        "cross_entropy", "cross_entropy", "squared_error"]
    assert_allclose(stack.score_samples(X), -_reference_loss(stack, X),
                    rtol=1e-10)
    assert stack.score(X) == pytest.approx(np.mean(stack.score_samples(X)))
    # Squared error at the bottom; sparse input scores as dense.
    Xn = rng.normal(size=(80, 9))
    stack = _stack(fine_tune=False, hidden_layer_sizes=(4, 3)).fit(Xn)
    assert stack.autoencoders_[0].loss_ == "squared_error"
    assert_allclose(stack.score_samples(Xn), -_reference_loss(stack, Xn),
                    rtol=1e-10)
    assert_allclose(stack.score_samples(sp.csr_matrix(Xn)),
                    stack.score_samples(Xn), rtol=1e-12)
    # The network of the stack is inverse_transform(transform(X)).
    net = deep_network(stack.autoencoders_, np.float64)
    assert_allclose(predict_head(*net, Xn),
                    stack.inverse_transform(stack.transform(Xn)), rtol=1e-12)


def test_gradients_through_the_stack_wiring_match_finite_differences():
    """The engine's gradients of the stack's network, against the layers."""
    rng = np.random.RandomState(1)
    X = rng.uniform(size=(150, 8))
    stack = _stack(hidden_layer_sizes=(6, 4, 3),
                   activation=["tanh", "sigmoid", "relu"], fine_tune=False,
                   max_iter=2).fit(X)
    for ae in stack.autoencoders_:  # a generic point: untied, biased
        ae.decoder_components_ = ae.decoder_components_ + rng.normal(
            scale=0.3, size=ae.decoder_components_.shape)
        ae.intercept_visible_ = rng.normal(size=ae.intercept_visible_.shape)
    coefs, intercepts, activations, head = deep_network(
        stack.autoencoders_, np.float64, copy=True)
    ws = Workspace(150, coefs, head, 0, True)
    loss = forward_backward(coefs, intercepts, activations, head, X,
                            np.arange(150), X, None, None, 0, ws)
    assert_allclose(loss, _reference_loss(stack, X).sum(), rtol=1e-10)
    # Where each layer's arrays sit in the network: encoders up, then down.
    top = 2 * stack.n_layers_ - 1
    eps = 1e-6
    for k, ae in enumerate(stack.autoencoders_):
        for name, grad, transpose in (
                ("components_", ws.grad_coefs[k], True),
                ("intercept_hidden_", ws.grad_intercepts[k], False),
                ("decoder_components_", ws.grad_coefs[top - k], False),
                ("intercept_visible_", ws.grad_intercepts[top - k], False)):
            P = getattr(ae, name)
            for idx in [tuple(rng.randint(s) for s in P.shape)
                        for _ in range(3)]:
                old = P[idx]
                P[idx] = old + eps
                up = _reference_loss(stack, X).sum()
                P[idx] = old - eps
                down = _reference_loss(stack, X).sum()
                P[idx] = old
                g = grad[idx[::-1]] if transpose else grad[idx]
                assert_allclose(g, (up - down) / (2 * eps), rtol=1e-5,
                                atol=1e-7)


# --------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------
def test_fine_tuning_lowers_the_held_out_reconstruction_error(digits):
    X_train, X_test = digits[:1000], digits[1000:]
    params = dict(hidden_layer_sizes=(32, 16), max_iter=20,
                  learning_rate_init=3e-3, random_state=0)
    greedy = StackedDenoisingAutoencoder(**params).fit(X_train)
    longer = StackedDenoisingAutoencoder(**{**params, "max_iter": 40}).fit(
        X_train)
    tuned = StackedDenoisingAutoencoder(**params, fine_tune=True,
                                        fine_tune_max_iter=20).fit(X_train)
    # The same pretraining (measured: MSE 0.071 -> 0.043), and better than
    # twice the greedy epochs (0.060).
    assert _mse(tuned, X_test) < 0.8 * _mse(greedy, X_test)
    assert _mse(tuned, X_test) < 0.9 * _mse(longer, X_test)
    assert tuned.score(X_test) > greedy.score(X_test) + 2.0
    assert tuned.fine_tune_n_iter_ == 20 == len(tuned.fine_tune_loss_curve_)
    assert tuned.n_iter_ == greedy.n_iter_ + 20
    assert tuned.fine_tune_loss_curve_[-1] < tuned.fine_tune_loss_curve_[0]
    assert tuned.fine_tune_best_loss_ == min(tuned.fine_tune_loss_curve_)
    assert tuned.fine_tune_validation_scores_ is None


def test_fine_tuned_weights_live_in_the_layers(digits):
    X = digits[:300]
    greedy = _stack(fine_tune=False).fit(X)
    tuned = _stack().fit(X)
    for g, t in zip(greedy.autoencoders_, tuned.autoencoders_):
        # The same pretraining, then other weights, untied.
        assert g.n_iter_ == t.n_iter_ and g.loss_curve_ == t.loss_curve_
        assert g.decoder_components_ is g.components_ and g.tied_weights
        assert t.decoder_components_ is not t.components_
        assert not t.tied_weights
        assert not np.allclose(g.components_, t.components_)
        assert t.components_.flags.c_contiguous
    # transform / inverse_transform / score_samples use them, and agree
    # with the network the fine-tuning trained.
    net = deep_network(tuned.autoencoders_, np.float64)
    assert_allclose(predict_head(*net, X),
                    tuned.inverse_transform(tuned.transform(X)), rtol=1e-12)
    assert_allclose(tuned.score_samples(X), -_reference_loss(tuned, X),
                    rtol=1e-10)
    H = X
    for ae in tuned.autoencoders_:
        H = ae.transform(H)
    assert_array_equal(tuned.transform(X), H)


def test_warm_start_fine_tunes_a_greedy_stack(digits):
    X = digits[:300]
    fresh = _stack().fit(X)
    warm = _stack(fine_tune=False).fit(X)
    warm.set_params(fine_tune=True, warm_start=True).fit(X)
    # No new pretraining, the same random stream: the same model.
    for a, b in zip(fresh.autoencoders_, warm.autoencoders_):
        assert_array_equal(a.components_, b.components_)
        assert_array_equal(a.decoder_components_, b.decoder_components_)
        assert a.n_iter_ == b.n_iter_ == 3
    # A second warm fit continues the fine-tuning.
    warm.fit(X)
    assert warm.fine_tune_n_iter_ == 6
    assert [ae.n_iter_ for ae in warm.autoencoders_] == [3, 3]
    # Greedy training after fine-tuning keeps the layers untied and drops
    # the fine-tuning's attributes (they no longer describe the layers).
    warm.set_params(fine_tune=False).fit(X)
    assert [ae.n_iter_ for ae in warm.autoencoders_] == [6, 6]
    assert not hasattr(warm, "fine_tune_n_iter_")
    assert all(not ae.tied_weights for ae in warm.autoencoders_)
    warm.partial_fit(X)
    assert [ae.n_iter_ for ae in warm.autoencoders_] == [7, 7]
    # A structural change is refused before anything changes.
    before = _fitted(warm)
    with pytest.raises(ValueError, match="hidden_layer_sizes changed"):
        warm.set_params(hidden_layer_sizes=(12, 5), fine_tune=True).fit(X)
    assert _fitted(warm) == before


def test_partial_fit_runs_fine_tuning_epochs(digits):
    X = digits[:300]
    stack = _stack(fine_tune_max_iter=1)
    stack.partial_fit(X)
    # The first call pretrains in full, then runs one fine-tuning epoch:
    # fit with one fine-tuning epoch.
    fitted = _stack(fine_tune_max_iter=1).fit(X)
    assert_array_equal(stack.transform(X), fitted.transform(X))
    assert [ae.n_iter_ for ae in stack.autoencoders_] == [3, 3]
    stack.partial_fit(X[:100])
    assert stack.fine_tune_n_iter_ == 2
    assert stack._fine_tune_t == 400
    assert [ae.n_iter_ for ae in stack.autoencoders_] == [3, 3]
    # The optimizer state continues (and is pickled after partial_fit).
    assert stack._optimizer_state["t"] == 3
    restored = pickle.loads(pickle.dumps(stack))
    assert restored._optimizer_state["t"] == 3


def test_fine_tuning_early_stopping_holds_out_rows_of_every_phase(digits):
    X = digits[:500]
    stack = _stack(early_stopping=True, fine_tune_max_iter=100,
                   n_iter_no_change=2, tol=0.05, validation_fraction=0.2,
                   learning_rate_init=1e-2).fit(X)
    n_iter = stack.fine_tune_n_iter_
    assert n_iter < 100
    scores = stack.fine_tune_validation_scores_
    assert len(scores) == n_iter
    assert stack.fine_tune_best_validation_score_ == max(scores)
    # Neither the pretraining nor the fine-tuning saw the validation rows
    # (the first layer holds out its own 20% of the other 400 rows).
    assert stack.autoencoders_[0].t_ == 3 * 320
    assert stack._fine_tune_t == n_iter * 400
    # The best epoch's weights are kept: the validation rows score as the
    # best score says.
    val = X[np.setdiff1d(np.arange(500), _training_rows(stack, 500))]
    assert stack.score(val) == pytest.approx(max(scores), rel=1e-9)


def _training_rows(stack, n):
    from sklearn.model_selection import train_test_split
    train, _ = train_test_split(np.arange(n), test_size=0.2,
                                random_state=stack._validation_seed)
    return train


@pytest.mark.parametrize("corruption", ["masking", "gaussian",
                                        "salt_and_pepper"])
def test_sparse_input_equals_dense(digits, corruption):
    X = digits[:300]
    params = dict(corruption=corruption, uncorrupted_weight=(
        1.0 if corruption == "gaussian" else 0.5), corruption_level=0.2)
    dense = _stack(**params).fit(X)
    sparse = _stack(**params).fit(sp.csr_matrix(X))
    assert_allclose(sparse.transform(X), dense.transform(X), rtol=1e-6,
                    atol=1e-8)
    assert_allclose(sparse.fine_tune_loss_curve_, dense.fine_tune_loss_curve_,
                    rtol=1e-8)


def test_same_model_whatever_the_number_of_threads():
    X = np.random.RandomState(0).uniform(size=(300, 200))
    models = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads, user_api="blas"):
            models.append(_stack(hidden_layer_sizes=(150, 20),
                                 fine_tune_max_iter=2, max_iter=1).fit(X))
    for first, second in zip(*(m.autoencoders_ for m in models)):
        assert_array_equal(first.components_, second.components_)
        assert_array_equal(first.decoder_components_,
                           second.decoder_components_)


def test_float32_stays_float32(digits):
    X = digits[:300].astype(np.float32)
    stack = _stack().fit(X)
    assert all(ae.components_.dtype == np.float32
               and ae.decoder_components_.dtype == np.float32
               for ae in stack.autoencoders_)
    assert stack.transform(X).dtype == np.float32
    assert stack.score_samples(X).shape == (300,)
    assert stack.fine_tune_loss_curve_[-1] < stack.fine_tune_loss_curve_[0]


def test_verbose_tags_the_fine_tuning(digits):
    out = io.StringIO()
    with redirect_stdout(out):
        _stack(max_iter=1, fine_tune_max_iter=2, verbose=1).fit(digits[:200])
    text = out.getvalue()
    assert re.search(r"Fine-tuning: 64 -> 12 -> 6 -> 12 -> 64 units, "
                     r"corruption=masking\(0.3\), loss=cross_entropy", text)
    assert len(re.findall(
        r"\[StackedDenoisingAutoencoder fine-tuning\] epoch \d+/2, "
        r"loss = \d+\.\d+", text)) == 2


def test_refit_starts_afresh(digits):
    X = digits[:200]
    stack = _stack().fit(X)
    stack.set_params(fine_tune=False).fit(X)
    # Tied again, no fine-tuning state: as a new greedy stack.
    new = _stack(fine_tune=False).fit(X)
    assert all(ae.tied_weights and ae.decoder_components_ is ae.components_
               for ae in stack.autoencoders_)
    assert not hasattr(stack, "fine_tune_n_iter_")
    assert_array_equal(stack.transform(X), new.transform(X))
    assert_array_equal(stack.set_params(fine_tune=True).fit(X).transform(X),
                       _stack().fit(X).transform(X))


def test_pickle_and_clone(digits):
    X = digits[:300]
    stack = _stack().fit(X)
    restored = pickle.loads(pickle.dumps(stack))
    assert_array_equal(restored.transform(X), stack.transform(X))
    assert_array_equal(restored.score_samples(X), stack.score_samples(X))
    # The fine-tuning's optimizer state is left out after fit.
    assert "_optimizer_state" not in restored.__dict__
    restored.set_params(warm_start=True).fit(X)
    assert restored.fine_tune_n_iter_ == 6
    assert not hasattr(clone(stack), "autoencoders_")


def test_cross_entropy_needs_x_in_unit_interval_on_warm_fine_tuning(digits):
    X = digits[:200]
    stack = _stack(fine_tune=False).fit(X)
    before = _fitted(stack)
    with pytest.raises(ValueError, match="needs X in"):
        stack.set_params(fine_tune=True, warm_start=True).fit(X * 16)
    assert _fitted(stack) == before


# --------------------------------------------------------------------------
# Issue 9, items 13 and 14
# --------------------------------------------------------------------------
def test_score_ranks_outliers_and_grid_search_needs_no_scoring(digits):
    X = digits
    stack = _stack(fine_tune=False, max_iter=10).fit(X[:1000])
    noise = np.random.RandomState(0).uniform(size=(50, 64))
    assert np.median(stack.score_samples(X[1000:])) > np.max(
        stack.score_samples(noise))
    search = GridSearchCV(_stack(fine_tune=False),
                          {"corruption_level": [0.1, 0.3]}, cv=2).fit(X[:400])
    assert np.isfinite(search.best_score_)
    assert search.best_score_ < 0


@pytest.mark.parametrize("fine_tune", [False, True])
def test_pandas_output_raises_no_feature_name_warning(digits, fine_tune):
    pd = pytest.importorskip("pandas")
    X = digits[:200]
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    with config_context(transform_output="pandas"), warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        for data in (X, frame):
            stack = _stack(fine_tune=fine_tune).fit(data)
            codes = stack.transform(data)
            assert isinstance(codes, pd.DataFrame)
            assert list(codes.columns) == list(stack.get_feature_names_out())
            assert stack.fit_transform(data).shape == (200, 6)
            assert stack.inverse_transform(codes).shape == (200, 64)
            assert stack.score_samples(data).shape == (200,)
            stack.partial_fit(data)
            stack.set_params(warm_start=True, fine_tune=True).fit(data)
