"""DenoisingAutoencoderImputer: the imputer conventions and what it learns."""

import threading

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_wine
from sklearn.impute import MissingIndicator, SimpleImputer

from skdae._impute import DenoisingAutoencoderImputer
from skdae._parallel import available_threads as available_threads_now

FAST = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0}


def _mcar(X, rate, seed=0):
    rng = np.random.RandomState(seed)
    mask = rng.uniform(size=X.shape) < rate
    X_missing = X.astype(float).copy()
    X_missing[mask] = np.nan
    return X_missing, mask


def _structured(n=300, seed=0):
    """Four columns driven by one latent variable, plus a pure-noise column."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, 1))
    X = np.hstack([z, 2 * z + 1, -z, np.sin(2 * z)]) + \
        0.05 * rng.normal(size=(n, 4))
    return np.hstack([X, rng.normal(size=(n, 1))])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_observed_entries_pass_through_bit_for_bit(dtype):
    X = _structured().astype(dtype) * dtype(1e3)
    X_missing, mask = _mcar(X, 0.3)
    X_missing = X_missing.astype(dtype)
    before = X_missing.copy()
    out = DenoisingAutoencoderImputer(**FAST).fit_transform(X_missing)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[~mask], X[~mask])
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(X_missing, before)  # input not mutated


def test_dataframe_observed_entries_and_dtypes_kept():
    rng = np.random.RandomState(0)
    n = 120
    X = pd.DataFrame({
        "x": rng.normal(size=n),
        "count": pd.array(rng.randint(0, 9, size=n), dtype="Int64"),
        "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
        "name": rng.choice(["a", "b"], n).astype(object),
    }, index=np.arange(n) + 1000)
    X.loc[X.index[::4], "x"] = np.nan
    X.loc[X.index[1::5], "count"] = pd.NA
    X.loc[X.index[2::6], "colour"] = np.nan
    X.loc[X.index[3::7], "name"] = None
    imputer = DenoisingAutoencoderImputer(**FAST).set_output(transform="pandas")
    out = imputer.fit_transform(X)
    assert list(out.columns) == list(X.columns)
    assert list(out.index) == list(X.index)
    assert out.dtypes["count"] == X.dtypes["count"]
    assert out.dtypes["colour"] == X.dtypes["colour"]
    assert out.dtypes["x"] == np.float64
    assert not out.isna().any().any()
    for column in X.columns:
        seen = X[column].notna()
        pd.testing.assert_series_equal(out.loc[seen, column],
                                       X.loc[seen, column])
    assert set(out["colour"]) <= {"red", "green", "blue"}
    assert set(out["name"]) <= {"a", "b"}
    # The default output is an array, object because of the categories.
    default = DenoisingAutoencoderImputer(**FAST).fit_transform(X)
    assert isinstance(default, np.ndarray) and default.dtype == object


def test_polars_output_keeps_dtypes():
    pl = pytest.importorskip("polars", reason="polars is optional")
    X = pl.DataFrame({"a": [1.0, None, 3.0, 4.0, 5.0, 6.0] * 5,
                      "b": ["u", "v", None, "u", "v", "u"] * 5})
    out = DenoisingAutoencoderImputer(**FAST).set_output(
        transform="polars").fit_transform(X)
    assert isinstance(out, pl.DataFrame)
    assert out.schema == X.schema
    assert out.null_count().sum_horizontal().item() == 0
    assert out["a"][0] == 1.0 and out["b"][1] == "v"


def test_determinism_and_different_seeds():
    X_missing, _ = _mcar(_structured(), 0.2)
    a = DenoisingAutoencoderImputer(**FAST).fit_transform(X_missing)
    b = DenoisingAutoencoderImputer(**FAST).fit_transform(X_missing)
    np.testing.assert_array_equal(a, b)
    c = DenoisingAutoencoderImputer(**{**FAST, "random_state": 1}
                                    ).fit_transform(X_missing)
    assert not np.array_equal(a, c)


def _rmse(X, X_imputed, mask):
    z = (X_imputed - X) / X.std(axis=0)
    return np.sqrt(np.mean(z[mask] ** 2))


def test_better_than_column_means_on_wine():
    X = load_wine().data
    X_missing, mask = _mcar(X, 0.2)
    dae = DenoisingAutoencoderImputer(random_state=0).fit_transform(X_missing)
    means = SimpleImputer().fit_transform(X_missing)
    assert _rmse(X, dae, mask) < 0.85 * _rmse(X, means, mask)


def test_categorical_imputed_from_the_other_columns():
    rng = np.random.RandomState(0)
    z = rng.normal(size=400)
    X = pd.DataFrame({"z": z, "w": z + 0.1 * rng.normal(size=400),
                      "sign": pd.Categorical(np.where(z > 0, "pos", "neg"))})
    hidden = rng.uniform(size=400) < 0.3
    X_missing = X.copy()
    X_missing.loc[hidden, "sign"] = np.nan
    imputer = DenoisingAutoencoderImputer(random_state=0, max_iter=100)
    out = imputer.set_output(transform="pandas").fit_transform(X_missing)
    accuracy = np.mean(out.loc[hidden, "sign"] == X.loc[hidden, "sign"])
    assert accuracy > 0.9  # the most frequent category gets about 0.5


def test_sample_posterior_spread_follows_predictability():
    X = _structured(1000)
    X_missing, mask = _mcar(X, 0.2)
    draws = np.stack([
        DenoisingAutoencoderImputer(sample_posterior=True, random_state=seed,
                                    max_iter=60, n_networks=1
                                    ).fit_transform(X_missing)
        for seed in range(4)])
    spread = draws.std(axis=0)
    predictable = spread[:, 0][mask[:, 0]].mean()
    noise = spread[:, 4][mask[:, 4]].mean()
    assert noise > 2 * predictable
    np.testing.assert_array_equal(draws[:, ~mask], np.broadcast_to(
        X[~mask], draws[:, ~mask].shape))
    # The point imputation does not vary between calls; the draws neither
    # for one fitted model and seed.
    imputer = DenoisingAutoencoderImputer(sample_posterior=True,
                                          max_iter=60, random_state=0,
                                          n_networks=2).fit(X_missing)
    np.testing.assert_array_equal(imputer.transform(X_missing),
                                  imputer.transform(X_missing))
    assert imputer.residual_scale_[4] > 2 * imputer.residual_scale_[0]


def test_sample_posterior_spread_is_per_entry():
    # Column 0 missing, with its predictors (columns 1-3) observed in half
    # the rows and missing in the other half: the draws of the same column
    # spread more where the row says less about it.
    X = _structured(600)
    X_missing, _ = _mcar(X, 0.1)
    rows = np.arange(0, 600, 3)
    X_missing[rows, 0] = np.nan
    hidden = rows[::2]
    X_missing[np.ix_(hidden, [1, 2, 3])] = np.nan
    seen = np.setdiff1d(rows, hidden)
    seen = seen[~np.isnan(X_missing[np.ix_(seen, [1, 2, 3])]).any(axis=1)]
    draws = np.stack([
        DenoisingAutoencoderImputer(sample_posterior=True, random_state=seed,
                                    max_iter=60, n_networks=2
                                    ).fit_transform(X_missing)[:, 0]
        for seed in range(4)])
    spread = draws.std(axis=0)
    assert spread[hidden].mean() > 2 * spread[seen].mean()


def _networks(imputer):
    return [np.concatenate([w.ravel() for w in net["coefs"] + net["intercepts"]])
            for net in imputer.networks_]


def test_networks_train_at_once_and_the_same_at_any_thread_count(
        monkeypatch):
    from threadpoolctl import threadpool_limits

    from skdae import _tabular
    X_missing, _ = _mcar(_structured(), 0.2)
    params = {**FAST, "n_networks": 4}
    with threadpool_limits(1):
        one = DenoisingAutoencoderImputer(**params).fit(X_missing)
    trained_in, second = [], threading.Event()
    train = _tabular._BaseTabularNetwork._train

    def recording(self, *args, **kwargs):
        trained_in.append(threading.current_thread().name)
        if len(trained_in) == 1:  # the first waits for a second at once
            second.wait(10)
        else:
            second.set()
        return train(self, *args, **kwargs)

    monkeypatch.setattr(_tabular._BaseTabularNetwork, "_train", recording)
    with threadpool_limits(2):
        two = DenoisingAutoencoderImputer(**params).fit(X_missing)
    assert len(trained_in) == 4
    if available_threads_now() >= 2:
        assert len(set(trained_in)) == 2
    for a, b in zip(_networks(one), _networks(two), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.transform(X_missing),
                                  two.transform(X_missing))
    assert one.loss_curve_ == two.loss_curve_


def test_a_failing_network_fails_the_fit_and_changes_nothing(monkeypatch):
    from threadpoolctl import threadpool_limits

    from skdae import _tabular
    X_missing, _ = _mcar(_structured(), 0.2)
    imputer = DenoisingAutoencoderImputer(**{**FAST, "n_networks": 3})
    imputer.fit(X_missing[:100])
    before = _networks(imputer)
    calls = []
    train = _tabular._BaseTabularNetwork._train

    def third_fails(self, *args, **kwargs):
        calls.append(None)
        if len(calls) == 3:
            raise MemoryError("no memory for network 3")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(_tabular._BaseTabularNetwork, "_train", third_fails)
    with threadpool_limits(2), pytest.raises(MemoryError, match="network 3"):
        imputer.fit(X_missing)
    assert not [t for t in threading.enumerate()
                if t.name.startswith("skdae-job")]
    for a, b in zip(before, _networks(imputer), strict=True):
        np.testing.assert_array_equal(a, b)
    assert imputer.n_features_in_ == X_missing.shape[1]
    monkeypatch.setattr(_tabular._BaseTabularNetwork, "_train", train)
    imputer.fit(X_missing)
    assert len(imputer.networks_) == 3


def test_networks_are_averaged():
    X_missing, mask = _mcar(_structured(), 0.2)
    imputer = DenoisingAutoencoderImputer(**{**FAST, "n_networks": 3})
    out = imputer.fit_transform(X_missing)
    assert len(imputer.networks_) == 3
    assert imputer.networks_[0]["coefs"] is imputer.coefs_
    first, second = (net["coefs"][0] for net in imputer.networks_[:2])
    assert not np.array_equal(first, second)
    # Each network alone, then the average of their head outputs.
    from skdae import _columns as C
    inputs, _, _ = C.encode(X_missing, imputer._columns, dtype=np.float32)
    alone = [imputer._outputs(inputs, networks=[net])
             for net in imputer.networks_]
    np.testing.assert_allclose(imputer._outputs(inputs),
                               np.mean(alone, axis=0), rtol=1e-5, atol=1e-6)
    single = DenoisingAutoencoderImputer(**{**FAST, "n_networks": 1}
                                         ).fit_transform(X_missing)
    np.testing.assert_array_equal(out[~mask], single[~mask])
    assert not np.array_equal(out[mask], single[mask])


def test_auto_networks_follow_the_number_of_rows():
    imputer = DenoisingAutoencoderImputer()
    assert imputer._n_networks_for(100) == 5
    assert imputer._n_networks_for(20000) == 1
    assert DenoisingAutoencoderImputer(n_networks=2)._n_networks_for(100) == 2


def test_auto_width_follows_the_number_of_columns():
    # Two layers of twice the inputs (values + indicators), 128 to 256 wide.
    imputer = DenoisingAutoencoderImputer()
    assert imputer._encoder_sizes(2 * 16) == (128, 128)  # letter
    assert imputer._encoder_sizes(2 * 50) == (224, 224)
    assert imputer._encoder_sizes(2 * 784) == (256, 256)  # Fashion-MNIST
    fitted = DenoisingAutoencoderImputer(max_iter=1, random_state=0).fit(
        _mcar(np.random.RandomState(0).normal(size=(40, 200)), 0.2)[0])
    assert fitted.hidden_layer_sizes_ == (256, 256)
    assert fitted.coefs_[0].shape == (400, 256)


def test_empty_constant_columns_and_rows():
    X = _structured(100)
    X[:, 1] = 7.5  # constant
    X_missing, mask = _mcar(X, 0.2)
    X_missing[:, 2] = np.nan  # never observed
    X_missing[5] = np.nan  # an entirely missing row
    imputer = DenoisingAutoencoderImputer(**FAST)
    out = imputer.fit_transform(X_missing)
    assert out.shape == (100, 4)  # the empty column is dropped
    np.testing.assert_array_equal(out[:, 1], 7.5)
    assert np.isfinite(out).all()
    assert list(imputer.get_feature_names_out()) == ["x0", "x1", "x3", "x4"]
    kept = DenoisingAutoencoderImputer(keep_empty_features=True, **FAST)
    out = kept.fit_transform(X_missing)
    assert out.shape == (100, 5)
    np.testing.assert_array_equal(out[:, 2], 0.0)  # as SimpleImputer does
    expected = SimpleImputer(keep_empty_features=True).fit_transform(
        X_missing)[:, 2]
    np.testing.assert_array_equal(out[:, 2], expected)


def test_add_indicator_matches_missing_indicator():
    X_missing, _ = _mcar(_structured(), 0.2)
    X_missing[:, 3] = np.nan_to_num(X_missing[:, 3])  # no missing entry
    imputer = DenoisingAutoencoderImputer(add_indicator=True, **FAST)
    out = imputer.fit_transform(X_missing)
    indicator = MissingIndicator().fit_transform(X_missing)
    assert out.shape == (X_missing.shape[0], 5 + indicator.shape[1])
    np.testing.assert_array_equal(out[:, 5:], indicator)
    assert list(imputer.get_feature_names_out()[5:]) == [
        "missingindicator_x0", "missingindicator_x1", "missingindicator_x2",
        "missingindicator_x4"]


def test_missing_values_placeholder():
    X = np.round(_structured() * 10).astype(np.int64) + 100
    _, mask = _mcar(X, 0.2)
    X_placeholder = np.where(mask, -1, X)
    out = DenoisingAutoencoderImputer(missing_values=-1, **FAST
                                      ).fit_transform(X_placeholder)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[~mask], X[~mask])
    assert (out[mask] != -1).all()


def test_unknown_category_is_observed_not_imputed():
    X = pd.DataFrame({"a": ["x", "y", None, "x"] * 10,
                      "b": np.arange(40.0)})
    imputer = DenoisingAutoencoderImputer(**FAST).set_output(
        transform="pandas").fit(X)
    new = pd.DataFrame({"a": ["z", None], "b": [1.0, np.nan]})
    out = imputer.transform(new)
    assert out["a"][0] == "z" and out["a"][1] in ("x", "y")
    assert out["b"][0] == 1.0 and np.isfinite(out["b"][1])


def test_sparse_input_refused():
    with pytest.raises(TypeError, match="sparse"):
        DenoisingAutoencoderImputer(**FAST).fit(sp.random(10, 3, format="csr"))


def test_missing_values_placeholder_in_a_dataframe():
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"n": rng.randint(0, 5, 60),
                      "s": rng.choice(["u", "v", "?"], 60).astype(object),
                      "x": rng.normal(size=60)})
    X.loc[::5, "n"] = -1
    before = X.copy()
    out = DenoisingAutoencoderImputer(missing_values=-1, **FAST).set_output(
        transform="pandas").fit_transform(X)
    pd.testing.assert_frame_equal(X, before)  # input not mutated
    assert out["n"].dtype == np.float64 and (out["n"] != -1).all()
    np.testing.assert_array_equal(out["n"][X["n"] != -1], X["n"][X["n"] != -1])
    assert (out["s"] == "?").sum() == (X["s"] == "?").sum()  # observed
    out = DenoisingAutoencoderImputer(missing_values="?", **FAST).set_output(
        transform="pandas").fit_transform(X)
    assert set(out["s"]) == {"u", "v"}
    assert (out["n"] == -1).sum() == 12  # an observed value now


def test_thread_count_does_not_change_the_imputations(monkeypatch):
    from threadpoolctl import threadpool_limits

    from skdae import _network

    X_missing, _ = _mcar(_structured(600), 0.2)
    # Batches of 256 rows run as two blocks of 128, on two threads if allowed
    # (even steps this small, which otherwise run as one block on one).
    monkeypatch.setattr(_network, "SERIAL_STEP_WORK", 0)
    results = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads):
            results.append(DenoisingAutoencoderImputer(
                batch_size=256, **FAST).fit_transform(X_missing))
    np.testing.assert_array_equal(results[0], results[1])


def test_pickle_and_skops_round_trip():
    import pickle

    X_missing, _ = _mcar(_structured(100), 0.2)
    imputer = DenoisingAutoencoderImputer(add_indicator=True, **FAST)
    expected = imputer.fit_transform(X_missing)
    restored = pickle.loads(pickle.dumps(imputer))
    np.testing.assert_array_equal(restored.transform(X_missing), expected)
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    dumped = sio.dumps(imputer)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert untrusted == ["skdae.DenoisingAutoencoderImputer"]
    loaded = sio.loads(dumped, trusted=untrusted)
    np.testing.assert_array_equal(loaded.transform(X_missing), expected)


def test_imputations_stay_in_the_range_seen_in_fit():
    # A nearly constant column (one non-zero value, a border pixel) has a
    # tiny scale: unclipped extrapolations would be far outside its range.
    X = _structured(200)
    X[:, 3] = 0.0
    X[7, 3] = 1e-3
    X_missing, mask = _mcar(X, 0.3)
    X_missing[7, 3] = 1e-3
    imputer = DenoisingAutoencoderImputer(**FAST).fit(X_missing)
    test = _structured(100, seed=1) * 5  # far outside the training range
    test[::2, :] = np.nan
    out = imputer.transform(test)
    low, high = np.nanmin(X_missing, axis=0), np.nanmax(X_missing, axis=0)
    filled = np.isnan(test)
    assert ((out >= low) & (out <= high))[filled].all()


def test_progress_lines_name_the_network(capsys):
    X_missing, _ = _mcar(_structured(n=120), 0.2)
    DenoisingAutoencoderImputer(**{**FAST, "max_iter": 2, "n_networks": 2,
                                   "verbose": 1}).fit(X_missing)
    out = capsys.readouterr().out
    for k in (1, 2):
        lines = [line for line in out.splitlines()
                 if f"[DenoisingAutoencoderImputer network {k}/2] epoch" in line]
        assert len(lines) == 2, out
