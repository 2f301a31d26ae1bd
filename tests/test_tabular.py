"""TabularDenoisingAutoencoder: tables in and out, training, persistence."""

import io
import pickle
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from skdae import TabularDenoisingAutoencoder

pd = pytest.importorskip("pandas", reason="tables are pandas DataFrames here")

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


def _frame(n=120, seed=0):
    """Numeric, nullable integer, categorical, bool and string columns, with
    missing entries of every kind, and structure linking them."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=n)
    X = pd.DataFrame({
        "num": z + 0.1 * rng.normal(size=n),
        "count": pd.array(np.round(5 + 2 * z).astype(int), dtype="Int64"),
        "grade": pd.Categorical(np.where(z > 0.3, "high", np.where(
            z < -0.3, "low", "mid")), categories=["low", "mid", "high"]),
        "flag": z > 0,
        "text": np.where(z > 0, "pos", "neg").astype(object),
    })
    X.loc[::9, "num"] = np.nan
    X.loc[1::11, "count"] = pd.NA
    X.loc[2::13, "grade"] = None
    X.loc[3::10, "text"] = None
    X.loc[4::15, "text"] = pd.NA
    return X


def _small(**params):
    params = {"hidden_layer_sizes": (16, 8), "max_iter": 5,
              "random_state": 0, **params}
    return TabularDenoisingAutoencoder(**params)


def test_round_trip_keeps_columns_dtypes_and_values():
    X = _frame()
    before = X.copy()
    dae = _small(max_iter=30).fit(X)
    pd.testing.assert_frame_equal(X, before)  # input not mutated
    np.testing.assert_array_equal(dae.is_categorical_,
                                  [False, False, True, True, True])
    assert [c.tolist() for c in dae.categories_] == [
        ["high", "low", "mid"], [False, True], ["neg", "pos"]]
    observed = X["num"].dropna()
    np.testing.assert_allclose(dae.mean_[0], observed.mean(), rtol=1e-12)
    np.testing.assert_allclose(dae.scale_[0], observed.std(ddof=0),
                               rtol=1e-12)
    assert np.isnan(dae.mean_[2:]).all() and np.isnan(dae.scale_[2:]).all()
    H = dae.transform(X)
    assert H.shape == (120, 24) and H.dtype == np.float32
    assert np.isfinite(H).all()
    R = dae.inverse_transform(H)
    assert list(R.columns) == list(X.columns)
    assert R.dtypes.tolist() == X.dtypes.tolist()
    assert R.isna().sum().sum() == 0  # every entry reconstructed
    assert set(R["grade"]) <= {"low", "mid", "high"}
    assert set(R["text"]) <= {"pos", "neg"}
    # The code alone decodes the same way.
    dae.set_params(features="last")
    pd.testing.assert_frame_equal(dae.inverse_transform(dae.transform(X)), R)
    with pytest.raises(ValueError, match="decodes the output of transform"):
        dae.inverse_transform(H[:, :5])


def test_array_input_and_categorical_indices():
    X = _frame()
    A = np.column_stack([X["num"].to_numpy(),
                         X["text"].fillna(np.nan).to_numpy()]).astype(object)
    dae = _small(categorical_features=[1]).fit(A)
    assert dae.categories_[0].tolist() == ["neg", "pos"]
    R = dae.inverse_transform(dae.transform(A))
    assert isinstance(R, np.ndarray) and R.dtype == object
    numeric = _small().fit(np.random.RandomState(0).normal(size=(50, 3)))
    R = numeric.inverse_transform(numeric.transform(np.zeros((4, 3))))
    assert R.dtype == np.float64 and R.shape == (4, 3)


def test_polars_in_and_out():
    pl = pytest.importorskip("polars")
    X = _frame()
    def values(column):
        return [None if pd.isna(v) else v for v in X[column].astype(object)]

    P = pl.DataFrame({
        "num": X["num"].to_numpy(),
        "count": pl.Series(values("count"), dtype=pl.Int64),
        "grade": pl.Series(values("grade"),
                           dtype=pl.Enum(["low", "mid", "high"])),
        "flag": X["flag"].to_numpy(),
        "text": pl.Series(values("text"), dtype=pl.String),
    })
    dae = _small().fit(P)
    np.testing.assert_array_equal(dae.is_categorical_,
                                  [False, False, True, True, True])
    R = dae.inverse_transform(dae.transform(P))
    assert isinstance(R, pl.DataFrame)
    assert R.schema == P.schema
    out = clone(dae).set_output(transform="polars").fit(P).transform(P)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == dae.get_feature_names_out().tolist()
    # The same table read from pandas gives the same model.
    np.testing.assert_array_equal(_small().fit(X).transform(X),
                                  dae.transform(P))


def test_set_output_pandas_and_feature_names():
    X = _frame()
    dae = _small().set_output(transform="pandas").fit(X)
    out = dae.transform(X)
    assert list(out.columns) == list(dae.get_feature_names_out())
    assert out.columns[0] == "tabulardenoisingautoencoder_layer0_0"
    assert out.columns[-1] == "tabulardenoisingautoencoder_layer1_7"
    dae.set_params(features="last")
    assert dae.get_feature_names_out().shape == (8,)
    assert dae.transform(X).shape == (120, 8)
    # A DataFrame of features decodes too.
    assert dae.inverse_transform(dae.transform(X)).shape == X.shape


def test_unknown_categories_are_missing():
    X = _frame()
    dae = _small().fit(X)
    new = X.iloc[:6].copy()
    new["text"] = new["text"].astype(object)
    new.loc[new.index[:3], "text"] = "never seen"
    missing = new.copy()
    missing.loc[missing.index[:3], "text"] = None
    np.testing.assert_array_equal(dae.transform(new), dae.transform(missing))
    np.testing.assert_array_equal(dae.score_samples(new),
                                  dae.score_samples(missing))


def test_every_kind_of_missing_is_the_same_missing():
    X = _frame()
    dae = _small().fit(X)
    rows = X.iloc[:8].copy()
    rows["text"] = rows["text"].astype(object)
    variants = []
    for value in (None, np.nan, pd.NA):
        v = rows.copy()
        v.loc[v.index[[0, 5]], "text"] = value
        variants.append(dae.transform(v))
    for other in variants[1:]:
        np.testing.assert_array_equal(variants[0], other)
    # A missing entry carries no loss: whatever its value would be.
    a, b = rows.copy(), rows.copy()
    a.loc[a.index[0], "num"] = np.nan
    b.loc[b.index[0], "num"] = 1e3
    assert dae.score_samples(a)[0] > dae.score_samples(b)[0]
    both = dae.score_samples(pd.concat([a, a]))
    np.testing.assert_allclose(both[:8], both[8:])
    # Rows entirely missing still transform.
    empty = pd.DataFrame({c: [None] * 2 for c in X.columns}).astype(
        X.dtypes.to_dict())
    empty["flag"] = pd.array([None, None], dtype="boolean")  # bool has no NA
    assert np.isfinite(dae.transform(empty)).all()
    np.testing.assert_array_equal(dae.score_samples(empty), 0.0)


def test_sparse_input_is_refused_clearly():
    dae = _small()
    with pytest.raises(TypeError, match="Sparse input is not supported"):
        dae.fit(sp.csr_matrix(np.eye(5)))
    assert not hasattr(dae, "coefs_")
    dae.fit(np.eye(5))
    with pytest.raises(TypeError, match="Sparse input is not supported"):
        dae.transform(sp.csr_matrix(np.eye(5)))


def test_reproducible_and_seed_dependent():
    X = _frame()
    a = _small().fit(X).transform(X)
    np.testing.assert_array_equal(a, _small().fit(X).transform(X))
    assert not np.array_equal(a, _small(random_state=1).fit(X).transform(X))


@pytest.mark.parametrize("corruption", ["swap", "masking"])
def test_thread_count_does_not_change_the_model(corruption):
    # Batches of 256 rows run as two blocks of 128, on two threads if allowed.
    X = pd.concat([_frame(seed=s) for s in range(3)], ignore_index=True)
    fits = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads):
            dae = _small(hidden_layer_sizes=(300, 20), max_iter=2,
                         batch_size=256, corruption=corruption,
                         uncorrupted_weight=0.5).fit(X)
        fits.append(dae)
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_,
                    fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


def test_pickle_is_small_and_equivalent():
    X = _frame()
    dae = _small().fit(X)
    blob = pickle.dumps(dae)
    weights = sum(a.nbytes for a in dae.coefs_ + dae.intercepts_)
    assert len(blob) < weights + 20000  # no optimizer moments
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.transform(X), dae.transform(X))
    pd.testing.assert_frame_equal(
        loaded.inverse_transform(loaded.transform(X)),
        dae.inverse_transform(dae.transform(X)))
    # partial_fit after loading continues.
    loaded.partial_fit(X)
    assert loaded.n_iter_ == dae.n_iter_ + 1


def test_skops_round_trip_trusts_the_public_class_only():
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    X = _frame()
    dae = _small().fit(X)
    dumped = sio.dumps(dae)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert untrusted == ["skdae.TabularDenoisingAutoencoder"]
    loaded = sio.loads(dumped, trusted=untrusted)
    np.testing.assert_array_equal(loaded.transform(X), dae.transform(X))
    pd.testing.assert_frame_equal(
        loaded.inverse_transform(loaded.transform(X)),
        dae.inverse_transform(dae.transform(X)))


def test_partial_fit_and_warm_start():
    X = _frame()
    inc = _small()
    for _ in range(3):
        inc.partial_fit(X)
    assert inc.n_iter_ == 3 and inc.t_ == 3 * 120
    # partial_fit keeps the optimizer state in pickles (streaming).
    assert "_optimizer_state" in pickle.loads(pickle.dumps(inc)).__dict__
    # New categories in a later block are missing, not an error.
    block = X.copy()
    block["text"] = block["text"].astype(object)
    block.loc[block.index[:10], "text"] = "new"
    inc.partial_fit(block)
    assert inc.categories_[2].tolist() == ["neg", "pos"]

    warm = _small(warm_start=True, max_iter=3).fit(X)
    first = [c.copy() for c in warm.coefs_]
    warm.fit(X)
    assert warm.n_iter_ == 6
    assert not np.array_equal(first[0], warm.coefs_[0])
    before = [c.copy() for c in warm.coefs_]
    warm.set_params(hidden_layer_sizes=(16, 4))
    with pytest.raises(ValueError, match="hidden_layer_sizes changed"):
        warm.fit(X)
    # The failed call left the model as it was.
    for a, b in zip(before, warm.coefs_):
        np.testing.assert_array_equal(a, b)
    assert warm.n_iter_ == 6
    with pytest.raises(ValueError, match="feature names should match"):
        warm.set_params(hidden_layer_sizes=(16, 8)).fit(X.iloc[:, :4])


def test_early_stopping_and_verbose():
    X = _frame()
    dae = _small(early_stopping=True, max_iter=40, verbose=1,
                 n_iter_no_change=3, learning_rate_init=1e-2)
    out = io.StringIO()
    with redirect_stdout(out):
        dae.fit(X)
    assert len(dae.validation_scores_) == dae.n_iter_
    assert dae.best_validation_score_ == max(dae.validation_scores_)
    assert re.search(r"\[TabularDenoisingAutoencoder\] epoch 1/40, loss = "
                     r"[\d.]+, validation score = -[\d.]+", out.getvalue())


def test_default_architecture_adapts_to_the_table():
    X = _frame()
    dae = TabularDenoisingAutoencoder(max_iter=1, random_state=0).fit(X)
    # 2 numeric + 3 + 2 + 2 categories + 5 indicators = 14 inputs -> 64.
    assert dae.hidden_layer_sizes_ == (64, 64, 64)
    assert [c.shape for c in dae.coefs_] == [
        (14, 64), (64, 64), (64, 64), (64, 64), (64, 64), (64, 9)]
    assert dae.transform(X).shape == (120, 192)


def test_features_learn_real_structure():
    """Iris with its species as a column: hide one column, predict it."""
    iris = load_iris(as_frame=True)
    X = iris.data.copy()
    X["species"] = pd.Categorical(iris.target_names[iris.target])
    rng = np.random.RandomState(0)
    test = rng.permutation(150)[:50]
    train = np.setdiff1d(np.arange(150), test)
    dae = TabularDenoisingAutoencoder(
        hidden_layer_sizes=(64, 64), corruption="masking",
        corruption_level=0.25, max_iter=150, learning_rate_init=3e-3,
        random_state=0).fit(X.iloc[train])
    hidden = X.iloc[test].copy()
    hidden["species"] = None
    hidden["petal length (cm)"] = np.nan
    R = dae.inverse_transform(dae.transform(hidden))
    accuracy = np.mean(R["species"].to_numpy() ==
                       X["species"].iloc[test].to_numpy())
    assert accuracy > 0.85  # chance: 1/3
    truth = X["petal length (cm)"].iloc[test].to_numpy()
    r2 = 1 - np.mean((R["petal length (cm)"] - truth) ** 2) / np.var(truth)
    assert r2 > 0.7


def test_features_feed_a_pipeline_and_grid_search():
    X, y = load_wine(return_X_y=True, as_frame=True)
    pipe = make_pipeline(_small(hidden_layer_sizes=(32,), max_iter=15),
                         LogisticRegression(max_iter=500))
    # Features of a standardised-inside DAE beat chance by far on raw wine.
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    search = GridSearchCV(pipe, {"tabulardenoisingautoencoder__"
                                 "corruption_level": [0.05, 0.3]}, cv=2)
    search.fit(X, y)
    assert search.best_params_[
        "tabulardenoisingautoencoder__corruption_level"] in (0.05, 0.3)


def test_score_samples_flags_anomalies():
    X, _ = load_wine(return_X_y=True, as_frame=True)
    dae = _small(hidden_layer_sizes=(32, 4), max_iter=50).fit(X)
    odd = X.iloc[:20].copy()
    odd["alcohol"] = odd["alcohol"].to_numpy()[::-1] + 5 * X["alcohol"].std()
    assert np.all(dae.score_samples(odd) < dae.score_samples(X.iloc[:20]))
    np.testing.assert_allclose(dae.score(X), dae.score_samples(X).mean())


def test_bad_parameters_are_explained():
    X = _frame()
    with pytest.raises(ValueError, match="sequence of positive ints"):
        _small(hidden_layer_sizes=(16, 0)).fit(X)
    with pytest.raises(ValueError, match="nothing would be learned"):
        _small(corruption_level=0.0, uncorrupted_weight=0.0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="max_iter=5"):
            _small(tol=0.0).fit(X)
