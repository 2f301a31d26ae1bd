"""Fits are safe: no crash, all or nothing, structural changes refused.

Issue 9: parameter changes between fits, failed or interrupted fits,
divergence, read-only weights, saved size and the training loop's output.
"""

import io
import pickle
import re
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from skdae import (
    DenoisingAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
    _network,
)

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def dae(**params):
    return DenoisingAutoencoder(**{"n_components": 8, "max_iter": 2,
                                   "random_state": 0, **params})


def stack(**params):
    return StackedDenoisingAutoencoder(**{"hidden_layer_sizes": (8, 4),
                                          "max_iter": 2, "random_state": 0,
                                          **params})


def tuned(**params):
    """A stack fine-tuned end to end (fine_tune=True)."""
    return stack(**{"fine_tune": True, "fine_tune_max_iter": 2, **params})


def clf(**params):
    return StackedDenoisingAutoencoderClassifier(
        **{"hidden_layer_sizes": (8, 4), "max_iter": 2,
           "pretrain_max_iter": 1, "random_state": 0, **params})


def state(est):
    """Everything fitted, as bytes: equal states give equal bytes."""
    fitted = {k: v for k, v in vars(est).items()
              if k not in est.get_params(deep=False)}
    # The optimizer state is left out of pickles: compare it on its own.
    return pickle.dumps((fitted, _optimizer_states(est)))


def _optimizer_states(est):
    found = [est.__dict__.get("_optimizer_state")]
    for layer in getattr(est, "autoencoders_", []):
        found.append(layer.__dict__.get("_optimizer_state"))
    return found


def run_isolated(code):
    """Run ``code`` in a new interpreter: a crash fails the test, not pytest."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------
# A. No crash: structural changes are refused (or honoured), kernels checked
# ---------------------------------------------------------------------------
def test_tying_untied_weights_is_refused_not_a_crash():
    proc = run_isolated("""
        import scipy.sparse as sp
        from sklearn.datasets import load_digits
        from skdae import DenoisingAutoencoder
        X = load_digits().data[:200] / 16
        for data in (X, sp.csr_matrix(X)):
            d = DenoisingAutoencoder(n_components=8, tied_weights=False,
                                     max_iter=1, random_state=0).fit(data)
            for warm in (False, True):
                d.set_params(tied_weights=True, warm_start=warm)
                try:
                    d.fit(data) if warm else d.partial_fit(data)
                except ValueError as e:
                    print("refused:", e)
            d.set_params(tied_weights=False).partial_fit(data)
            print("n_iter_", d.n_iter_)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(re.findall(r"refused: tied_weights changed from False to True",
                          proc.stdout)) == 4
    assert proc.stdout.count("n_iter_ 2") == 2


def test_smaller_n_components_on_sparse_warm_start_is_refused():
    proc = run_isolated("""
        import scipy.sparse as sp
        from sklearn.datasets import load_digits
        from skdae import DenoisingAutoencoder
        S = sp.csr_matrix(load_digits().data[:200] / 16)
        d = DenoisingAutoencoder(n_components=64, warm_start=True,
                                 max_iter=1, random_state=0).fit(S)
        for X in (S, S.toarray()):
            try:
                d.set_params(n_components=4).fit(X)
            except ValueError as e:
                print("refused:", e)
        print("shape", d.components_.shape)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(re.findall(r"refused: n_components changed from 64 to 4",
                          proc.stdout)) == 2
    assert "set warm_start=False" in proc.stdout
    assert "shape (64, 64)" in proc.stdout


@pytest.mark.parametrize("make, method, change, name", [
    (dae, "partial_fit", {"n_components": 4}, "n_components"),
    (dae, "warm_fit", {"activation": "tanh"}, "activation"),
    (dae, "partial_fit", {"loss": "squared_error"}, "loss"),
    (stack, "partial_fit", {"hidden_layer_sizes": (8, 2)},
     "hidden_layer_sizes"),
    (stack, "partial_fit", {"activation": ["sigmoid", "relu"]}, "activation"),
    (stack, "partial_fit", {"loss": "squared_error"}, "loss"),
    (stack, "partial_fit", {"tied_weights": False}, None),  # honoured
    (tuned, "warm_fit", {"hidden_layer_sizes": (8,)}, "hidden_layer_sizes"),
    (tuned, "partial_fit", {"activation": "tanh"}, "activation"),
    (tuned, "warm_fit", {"solver": "sgd"}, None),  # honoured
    (clf, "warm_fit", {"hidden_layer_sizes": (8,)}, "hidden_layer_sizes"),
    (clf, "partial_fit", {"activation": "tanh"}, "activation"),
    (clf, "warm_fit", {"solver": "sgd"}, None),  # honoured
])
def test_structural_change_refused_by_name_before_anything_changes(
        data, make, method, change, name):
    X, y = data
    est = make()
    supervised = isinstance(est, StackedDenoisingAutoencoderClassifier)
    args = (X, y) if supervised else (X,)
    if method == "partial_fit":
        kwargs = {"classes": np.unique(y)} if supervised else {}
        est.partial_fit(*args, **kwargs)
        retrain = est.partial_fit
    else:
        est.set_params(warm_start=True).fit(*args)
        retrain = est.fit
    before = state(est)
    n_iter = est.n_iter_
    est.set_params(**change)
    if name is None:
        retrain(*args)
        assert est.n_iter_ > n_iter
        return
    with pytest.raises(ValueError, match=f"{name} changed from"):
        retrain(*args)
    assert state(est) == before


def test_stack_partial_fit_passes_new_settings_to_its_layers(data):
    X, _ = data
    s = stack().partial_fit(X)
    s.set_params(corruption_level=[0.1, 0.2], learning_rate_init=0.01)
    s.partial_fit(X)
    assert [ae.corruption_level for ae in s.autoencoders_] == [0.1, 0.2]
    assert all(ae.learning_rate_init == 0.01 for ae in s.autoencoders_)


def test_untying_and_new_solver_are_honoured(data):
    X, _ = data
    d = dae().partial_fit(X)
    d.set_params(tied_weights=False, solver="sgd").partial_fit(X)
    assert d.decoder_components_ is not d.components_
    assert d._optimizer_state["solver"] == "sgd"
    assert len(d._optimizer_state["velocities"]) == 4
    assert np.isfinite(d.score(X))


def test_kernels_check_the_shapes_they_write_through():
    # Unchecked, these calls write out of bounds: run them in a new process.
    proc = run_isolated("""
        import numpy as np
        from skdae import _kernels as K
        calls = [
            lambda: K.csr_matmul_t(np.ones(2), np.array([0, 5]),
                                   np.array([0, 1, 2]), np.ones((8, 6)),
                                   np.empty((2, 4))),
            lambda: K.csr_matmul_t(np.ones(2), np.array([0, 9]),
                                   np.array([0, 1, 2]), np.ones((8, 6)),
                                   np.empty((2, 8))),
            lambda: K.csr_t_matmul_add(np.ones(2), np.array([0, 1]),
                                       np.array([0, 1, 2]), np.ones((2, 3)),
                                       np.zeros((8, 6))),
            lambda: K.mask_csr_data(np.ones(2), np.array([0, 1]),
                                    np.array([0, 1, 2]), 6, np.empty(1), 0,
                                    0.5),
            lambda: K.gather_corrupt(np.ones((5, 3)), np.array([0, 7]),
                                     np.empty((2, 3)), 0, 0, 0, 0.0, 0.0, 1.0),
            lambda: K.gather_corrupt(np.ones((5, 3)), np.array([0, 1, 2]),
                                     np.empty((2, 3)), 0, 0, 0, 0.0, 0.0, 1.0),
            lambda: K.bias_activate(np.ones((2, 3)), np.ones(2), 0),
            lambda: K.hidden_delta(np.ones((2, 3)), np.ones((2, 3)), 0,
                                   np.empty(2)),
            lambda: K.output_delta(np.ones((2, 3)), np.ones(3),
                                   np.ones((4, 3)), np.array([0, 4]), 0, 0,
                                   0, 0.0, 1.0, 0, np.empty(3)),
            lambda: K.row_losses(np.ones((2, 3)), np.ones(3), np.ones((2, 3)),
                                 0, np.empty(1)),
            lambda: K.adam_update(np.ones((2, 3)), np.ones((2, 3)),
                                  np.ones((2, 3)), False, np.ones((2, 2)),
                                  np.ones((2, 3)), 1.0, 0.0, 1e-3, 0.9,
                                  0.999, 1e-8),
            lambda: K.sgd_update(np.ones((2, 3)), np.ones((2, 3)),
                                 np.ones((2, 3)), False, np.ones((3, 3)),
                                 1.0, 0.0, 1e-3, 0.9, True),
        ]
        for call in calls:
            try:
                call()
                print("accepted")
            except ValueError as e:
                print("refused", "skdae._kernels" in str(e))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:-1] == ["refused True"] * 12, proc.stdout


# ---------------------------------------------------------------------------
# B. Fits are all or nothing
# ---------------------------------------------------------------------------
def test_failed_refit_leaves_the_autoencoder_as_it_was(data):
    X, _ = data
    d = dae(loss="cross_entropy").fit(X)
    before = state(d)
    with pytest.raises(ValueError, match="MinMaxScaler"):
        d.fit(X * 16)
    assert state(d) == before
    with pytest.raises(ValueError, match="corruption_level"):
        d.set_params(corruption_level=1.0).fit(X[:, :32])
    assert d.n_features_in_ == 64
    assert state(d) == before


def test_failed_refit_keeps_every_layer_of_the_stack(data):
    X, _ = data
    s = stack().fit(X)
    before = state(s)
    # Layer 1 trains, layer 2 then refuses the tanh codes in [-1, 1].
    s.set_params(activation=["tanh", "sigmoid"],
                 loss=["auto", "cross_entropy"])
    with pytest.raises(ValueError, match="cross-entropy"):
        s.fit(X)
    assert state(s) == before


def test_classifier_keeps_classes_after_a_failed_refit(data):
    X, y = data
    c = clf().fit(X, y)
    before = state(c)
    with pytest.raises(ValueError, match="activation has 3 values"):
        c.set_params(activation=["tanh"] * 3, pretrain=False).fit(X, y % 2)
    assert state(c) == before
    assert c.predict_proba(X).shape == (X.shape[0], 10)


class _Interrupt:
    """Raise KeyboardInterrupt at the ``n``-th call of a method."""

    def __init__(self, monkeypatch, cls, name, n):
        self.calls, self.n = 0, n
        original = getattr(cls, name)

        def wrapper(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("make, target, cls, name, n", [
    (dae, "fit", DenoisingAutoencoder, "_train_batch", 3),
    (dae, "partial_fit", DenoisingAutoencoder, "_train_batch", 1),
    (stack, "fit", DenoisingAutoencoder, "_train_batch", 5),  # layer 2
    (stack, "partial_fit", DenoisingAutoencoder, "_train_batch", 2),
    (tuned, "fit", DenoisingAutoencoder, "_train_batch", 2),  # pretraining
    (tuned, "fit", _network, "forward_backward", 3),  # fine-tuning
    (tuned, "partial_fit", _network, "forward_backward", 1),
    (clf, "fit", DenoisingAutoencoder, "_train_batch", 2),  # pretraining
    (clf, "fit", _network, "forward_backward", 3),  # fine-tuning
    (clf, "partial_fit", _network, "forward_backward", 1),
])
@pytest.mark.parametrize("fitted", [False, True])
def test_keyboard_interrupt_leaves_the_estimator_as_before(
        data, monkeypatch, make, target, cls, name, n, fitted):
    X, y = data
    est = make(batch_size=100)
    supervised = isinstance(est, StackedDenoisingAutoencoderClassifier)
    args = (X, y) if supervised else (X,)
    kwargs = ({"classes": np.unique(y)}
              if supervised and target == "partial_fit" else {})
    if fitted:
        getattr(est, target)(*args, **kwargs)
        # A warm fit, except where the interrupt is in the pretraining of
        # the classifier or a fine-tuned stack, which only a new fit runs.
        pretraining = (supervised or est.get_params().get("fine_tune")) and (
            cls is DenoisingAutoencoder)
        if target == "fit" and not pretraining and (
                "warm_start" in est.get_params()):
            est.set_params(warm_start=True)
    before = state(est)
    _Interrupt(monkeypatch, cls, name, n)
    with pytest.raises(KeyboardInterrupt):
        getattr(est, target)(*args, **kwargs)
    assert state(est) == before
    if not fitted:
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
    monkeypatch.undo()
    getattr(est, target)(*args, **kwargs)  # and it trains on


def test_warm_start_keeps_the_best_weights_and_the_split(data):
    X, _ = data
    d = dae(early_stopping=True, warm_start=True, max_iter=3,
            learning_rate_init=1e-2).fit(X)
    best = d.components_.copy()
    # A far too large step: every epoch of this call is worse.
    d.set_params(learning_rate_init=10.0, solver="sgd", max_iter=2).fit(X)
    assert_array_equal(d.components_, best)
    seed = d._validation_seed
    assert d.best_validation_score_ > max(d.validation_scores_[3:])
    _, val = train_test_split(np.arange(X.shape[0]), test_size=0.1,
                              random_state=seed)
    assert d.score(X[val]) == pytest.approx(d.best_validation_score_,
                                            rel=1e-12)


def test_classifier_warm_start_validates_on_the_same_rows(data):
    X, y = data
    c = clf(early_stopping=True, warm_start=True, pretrain=False).fit(X, y)
    seed = c._validation_seed
    c.fit(X, y)
    assert c._validation_seed == seed and len(c.validation_scores_) == 4
    _, val = train_test_split(np.arange(X.shape[0]), test_size=0.1,
                              random_state=seed, stratify=y)
    assert c.score(X[val], y[val]) == c.best_validation_score_


# ---------------------------------------------------------------------------
# C. Divergence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("model, params", [
    ({"activation": "identity", "loss": "squared_error"},
     {"solver": "sgd", "learning_rate_init": 1e3}),
    ({}, {"learning_rate_init": 1e3}),
])
def test_finite_divergence_is_detected_and_the_model_kept(data, model, params):
    X, _ = data
    d = dae(max_iter=2, warm_start=True, **model).fit(X)
    before = state(d)
    d.set_params(**params)
    with pytest.raises(ValueError, match="diverged.*left as it was"):
        d.fit(X)
    assert state(d) == before
    assert np.isfinite(d.score(X))
    fresh = dae(max_iter=2, **model, **params)
    with pytest.raises(ValueError, match="diverged"):
        fresh.fit(X)
    with pytest.raises(NotFittedError):
        fresh.transform(X)


def test_fine_tuning_divergence_is_detected_and_the_stack_kept(data):
    X, _ = data
    s = tuned(warm_start=True).fit(X)
    before = state(s)
    s.set_params(solver="sgd", learning_rate_init=1e3)
    with pytest.raises(ValueError, match="fine-tuning: training diverged"):
        s.fit(X)
    assert state(s) == before
    assert np.isfinite(s.score(X))


def test_nan_under_assume_finite_is_not_called_divergence(data):
    import sklearn

    # NaN is a missing entry (tests/test_swap_missing.py); infinity is not.
    X = data[0].copy()
    X[3, 5] = np.inf
    d = dae()
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match="infinity.*assume_finite"):
            d.fit(X)
    with pytest.raises(NotFittedError):
        d.transform(data[0])


def test_sparse_duplicates_count_as_their_sum_for_the_loss(data):
    # Two stored 0.6 at one position are 1.2: outside [0, 1], as dense.
    X = data[0][:50]
    assert X[0, 0] == 0
    S = sp.csr_matrix(X)
    S = sp.csr_matrix((np.r_[0.6, 0.6, S.data], np.r_[0, 0, S.indices],
                       np.r_[0, S.indptr[1:] + 2]), shape=S.shape)
    assert not S.has_canonical_format and S.toarray()[0, 0] == 1.2
    assert dae(max_iter=1).fit(S).loss_ == dae(max_iter=1).fit(
        S.toarray()).loss_ == "squared_error"


# ---------------------------------------------------------------------------
# D. Read-only weights; solver settings followed
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [dae, stack, clf])
def test_training_continues_from_memory_mapped_weights(data, tmp_path, make):
    X, y = data
    est = make()
    supervised = isinstance(est, StackedDenoisingAutoencoderClassifier)
    args = (X, y) if supervised else (X,)
    est.fit(*args)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path, mmap_mode="r")
    saved = pickle.dumps(joblib.load(path))
    n_iter = loaded.n_iter_
    loaded.partial_fit(*args)
    assert loaded.n_iter_ > n_iter
    if "warm_start" in loaded.get_params():
        loaded.set_params(warm_start=True).fit(*args)
    assert pickle.dumps(joblib.load(path)) == saved  # the file is untouched


def test_training_continues_from_read_only_weights(data):
    X, _ = data
    d = dae(tied_weights=False).fit(X)
    for a in (d.components_, d.decoder_components_, d.intercept_hidden_,
              d.intercept_visible_):
        a.setflags(write=False)
    d.partial_fit(X)
    assert d.n_iter_ == 3 and d.t_ == 3 * X.shape[0]


@pytest.mark.parametrize("change", [{"learning_rate_init": 0.1},
                                    {"solver": "sgd"}, {"beta_1": 0.5}])
def test_partial_fit_follows_changed_solver_settings(data, change):
    X, _ = data
    a, b = dae().partial_fit(X), dae().partial_fit(X)
    a.partial_fit(X)
    b.set_params(**change).partial_fit(X)
    assert not np.array_equal(a.components_, b.components_)
    assert b._optimizer_state["solver"] == b.solver


# ---------------------------------------------------------------------------
# E. Progress output (saved models: tests/test_saving.py)
# ---------------------------------------------------------------------------
def test_progress_lines_count_epochs_time_and_tag_layers(data, monkeypatch):
    X, _ = data
    out = io.StringIO()
    with redirect_stdout(out):
        stack(max_iter=3, verbose=1).fit(X)
    lines = out.getvalue().splitlines()
    for k in (1, 2):
        epochs = [line for line in lines if line.startswith(
            f"[StackedDenoisingAutoencoder layer {k}/2] epoch ")]
        assert len(epochs) == 3
        assert re.search(r"epoch 3/3, loss = \d+\.\d+, time = .*, elapsed = "
                         r"\d+\.\ds, remaining ~ \d+\.\ds$", epochs[-1])
    assert not any("minibatch" in line for line in lines)
    from skdae import _training

    monkeypatch.setattr(_training, "_PROGRESS_SECONDS", -1.0)
    out = io.StringIO()
    with redirect_stdout(out):
        dae(max_iter=1, verbose=2, batch_size=50).fit(X)
    inside = re.findall(r"\[DenoisingAutoencoder\] epoch 1/1: minibatch "
                        r"(\d+)/6, loss = \d+\.\d+", out.getvalue())
    assert inside == [str(k) for k in range(1, 7)]
