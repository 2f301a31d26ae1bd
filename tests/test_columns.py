"""Tables to model inputs and back (skdae._columns), on their own."""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import OneHotEncoder

from skdae._columns import decode, encode, fit_columns


def _frame():
    return pd.DataFrame({
        "num": [1.5, np.nan, 3.0, 4.0, -2.0, 0.5],
        "int": pd.array([1, None, 3, 7, 2, 2], dtype="Int64"),
        "plain_int": [10, 20, 30, 40, 50, 60],
        "cat": pd.Categorical(["x", None, "y", "x", "y", "x"],
                              categories=["y", "x", "z"]),
        "flag": [True, False, True, True, False, True],
        "text": ["u", None, "w", "u", pd.NA, "v"],
        "nbool": pd.array([True, None, False, True, False, False],
                          dtype="boolean"),
        "when": pd.to_datetime(["2020-01-01", None, "2021-06-01",
                                "2022-01-01", "2020-03-01", "2021-01-01"]),
    })


def _perfect_outputs(targets, missing, state, fill=0.0):
    """Decoder outputs that reproduce the observed targets exactly."""
    n = targets.shape[0]
    out = np.full((n, state["n_outputs"]), fill)
    for j in range(len(state["dtypes"])):
        a = state["output_start"][j]
        if state["is_categorical"][j]:
            out[np.arange(n), a + targets[:, j].astype(int)] = 1.0
        else:
            out[:, a] = targets[:, j]
    return out


def _assert_plain(value):
    if isinstance(value, dict):
        for v in value.values():
            _assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            _assert_plain(v)
    else:
        assert value is None or isinstance(value, (np.ndarray, str, int, bool))


def test_from_dtype_kinds_and_plain_state():
    X = _frame()
    state = fit_columns(X)
    np.testing.assert_array_equal(
        state["is_categorical"],
        [False, False, False, True, True, True, True, False])
    assert state["dtypes"] == [str(d) for d in X.dtypes]
    assert state["container"] == "pandas"
    _assert_plain(state)
    pickle.loads(pickle.dumps(state))


def test_numeric_standardisation_and_edge_columns():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 5.0],
                      "const": [3.0, 3.0, 3.0, np.nan],
                      "empty": [np.nan] * 4})
    state = fit_columns(X)
    observed = np.array([1.0, 2.0, 5.0])
    assert state["mean"][0] == pytest.approx(observed.mean())
    assert state["scale"][0] == pytest.approx(observed.std())
    assert state["mean"][1] == 3.0 and state["scale"][1] == 1.0
    assert state["mean"][2] == 0.0 and state["scale"][2] == 1.0
    inputs, targets, missing = encode(X, state)
    assert np.isfinite(inputs).all() and np.isfinite(targets).all()
    np.testing.assert_allclose(inputs[[0, 1, 3], 0],
                               (observed - observed.mean()) / observed.std())
    assert inputs[2, 0] == 0.0 and (inputs[:, 1:] == 0).all()
    np.testing.assert_array_equal(missing, X.isna().to_numpy())


def test_categories_sorted_like_one_hot_encoder():
    X = _frame()
    state = fit_columns(X)
    cats = [c for c, is_cat in zip(X.columns, state["is_categorical"]) if is_cat]
    for name, fitted in zip(cats, state["categories"]):
        col = X[[name]].dropna().astype(object)
        ohe = OneHotEncoder().fit(col)
        np.testing.assert_array_equal(fitted, ohe.categories_[0])


def test_missing_of_every_kind_and_one_hot_blocks():
    X = _frame()
    state = fit_columns(X, add_indicator=True)
    inputs, targets, missing = encode(X, state)
    np.testing.assert_array_equal(missing, X.isna().to_numpy())
    assert missing[1].sum() == 6 and missing[4, 5]  # pd.NA in "text"
    for j in range(len(state["dtypes"])):
        block = inputs[:, state["input_start"][j]:state["input_stop"][j]]
        if state["is_categorical"][j]:
            np.testing.assert_array_equal(block.sum(1), ~missing[:, j])
        else:
            assert (block[missing[:, j]] == 0).all()
        np.testing.assert_array_equal(inputs[:, state["indicator"][j]],
                                      missing[:, j])
    assert inputs.shape[1] == state["n_inputs"] == state["n_outputs"] + 8
    assert (targets[missing] == 0).all()


def test_pandas_round_trip_keeps_values_and_dtypes():
    X = _frame()
    X_before = X.copy()
    state = fit_columns(X)
    inputs, targets, missing = encode(X, state)
    pd.testing.assert_frame_equal(X, X_before)  # input not mutated
    back = decode(_perfect_outputs(targets, missing, state), state)
    assert list(back.columns) == list(X.columns)
    pd.testing.assert_series_equal(back.dtypes, X.dtypes)
    assert list(back["cat"].cat.categories) == ["y", "x", "z"]
    observed = ~X.isna().to_numpy()
    for j, name in enumerate(X.columns):
        got, want = back[name][observed[:, j]], X[name][observed[:, j]]
        if name == "num":
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy())
        else:
            assert list(got) == list(want), name
    assert not back.isna().any().any()


def test_integer_columns_round_and_clip_bool_thresholds():
    X = pd.DataFrame({"i": [1, 2, 3, 10], "b": [True, False, True, False]})
    state = fit_columns(X, categorical_features=None)
    outputs = np.array([[0.4, 0.9], [-50.0, -3.0], [50.0, 0.1], [0.0, -0.1]])
    back = decode(outputs, state)
    i = outputs[:, 0] * state["scale"][0] + state["mean"][0]
    np.testing.assert_array_equal(back["i"], np.clip(np.rint(i), 1, 10))
    assert back["i"].dtype == np.int64 and back["b"].dtype == bool
    b = outputs[:, 1] * state["scale"][1] + state["mean"][1]
    np.testing.assert_array_equal(back["b"], b > 0.5)


def test_unknown_categories_become_missing():
    X = pd.DataFrame({"c": ["a", "b", "a"], "n": pd.Categorical([1, 2, 1])})
    state = fit_columns(X)
    new = pd.DataFrame({"c": ["b", "zzz", None],
                        "n": pd.Categorical([3, 2, 1])})
    inputs, targets, missing = encode(new, state)
    np.testing.assert_array_equal(missing, [[False, True], [True, False],
                                            [True, False]])
    np.testing.assert_array_equal(inputs, [[0, 1, 0, 0], [0, 0, 0, 1],
                                           [0, 0, 1, 0]])
    np.testing.assert_array_equal(targets, [[1, 0], [0, 1], [0, 0]])
    # Values of another type than the categories are unknown too.
    mixed = pd.DataFrame({"c": pd.Series([1, "a", 2.5], dtype=object),
                          "n": pd.Categorical([1, 1, 2])})
    _, targets, missing = encode(mixed, state)
    np.testing.assert_array_equal(missing[:, 0], [True, False, True])
    assert targets[1, 0] == 0


def test_polars_in_and_out():
    pl = pytest.importorskip("polars")
    X = pl.DataFrame({
        "f": [1.0, float("nan"), None, 4.0],
        "i": [1, None, 3, 4],
        "s": ["a", None, "b", "a"],
        "c": pl.Series(["p", "q", None, "q"], dtype=pl.Categorical),
        "e": pl.Series(["lo", "hi", "hi", None], dtype=pl.Enum(["lo", "hi"])),
        "b": [True, None, False, True],
    })
    state = fit_columns(X)
    assert state["container"] == "polars"
    np.testing.assert_array_equal(state["is_categorical"],
                                  [False, False, True, True, True, True])
    inputs, targets, missing = encode(X, state)
    expected = np.array([[c is None for c in X[n].to_list()]
                         for n in X.columns]).T
    expected[1, 0] = True  # NaN in a float column is missing too
    np.testing.assert_array_equal(missing, expected)
    back = decode(_perfect_outputs(targets, missing, state), state)
    assert isinstance(back, pl.DataFrame)
    assert back.columns == X.columns
    assert [str(d) for d in back.dtypes] == [str(d) for d in X.dtypes]
    for j, name in enumerate(X.columns):
        rows = np.flatnonzero(~missing[:, j])
        assert [back[name][int(r)] for r in rows] == [X[name][int(r)]
                                                     for r in rows]


def test_array_input_with_categorical_indices():
    X = np.array([[1.0, 0.0, 5.0], [2.0, 1.0, np.nan], [3.0, 2.0, 6.0],
                  [4.0, 1.0, 7.0]])
    state = fit_columns(X, categorical_features=[1])
    assert state["container"] == "array" and state["feature_names"] is None
    np.testing.assert_array_equal(state["categories"][0], [0.0, 1.0, 2.0])
    inputs, targets, missing = encode(X, state, dtype=np.float32)
    assert inputs.dtype == np.float32 and inputs.shape == (4, 5)
    back = decode(_perfect_outputs(targets, missing, state), state)
    assert isinstance(back, np.ndarray) and back.dtype == np.float64
    ok = ~np.isnan(X)
    np.testing.assert_allclose(back[ok], X[ok])
    # An object array with strings keeps them.
    S = np.array([["a", 1.0], ["b", 2.0], [None, 3.0]], dtype=object)
    state = fit_columns(S, categorical_features=[True, False])
    inputs, targets, missing = encode(S, state)
    back = decode(_perfect_outputs(targets, missing, state), state)
    assert back.dtype == object and list(back[:2, 0]) == ["a", "b"]


@pytest.mark.parametrize("spec", [["cat", "text"], [3, 5],
                                  [False, False, False, True, False, True,
                                   False, False]])
def test_categorical_features_by_name_index_or_mask(spec):
    X = _frame()
    state = fit_columns(X, categorical_features=spec)
    np.testing.assert_array_equal(np.flatnonzero(state["is_categorical"]),
                                  [3, 5])


def test_categorical_features_none_and_from_dtype_on_arrays():
    X = np.arange(12.0).reshape(4, 3)
    assert not fit_columns(X, "from_dtype")["is_categorical"].any()
    assert not fit_columns(_frame()[["num", "int"]], None)[
        "is_categorical"].any()


@pytest.mark.parametrize("spec, X, message", [
    (["nope"], None, "not a valid feature name"),
    ([8], None, r"must be in \[0, n_features - 1\]"),
    ([True, False], None, "must have shape"),
    ([1.5], None, "must be an array-like of bool, int or str"),
    (["a"], np.zeros((3, 2)), "on data without feature names"),
    (None, None, "cannot be treated as numeric"),
])
def test_error_messages(spec, X, message):
    X = _frame() if X is None else X
    with pytest.raises(ValueError, match=message):
        fit_columns(X, categorical_features=spec)


def test_other_errors_are_clear():
    with pytest.raises(TypeError, match="Sparse input is not supported"):
        fit_columns(sp.csr_matrix(np.eye(3)))
    with pytest.raises(ValueError, match="infinity"):
        fit_columns(np.array([[1.0], [np.inf]]))
    with pytest.raises(TypeError, match="cannot be sorted"):
        fit_columns(pd.DataFrame({"m": pd.Series(["a", 1, "b"],
                                                 dtype=object)}))
    state = fit_columns(_frame())
    with pytest.raises(ValueError, match="column names of X differ"):
        encode(_frame()[list(_frame().columns[::-1])], state)
    with pytest.raises(ValueError, match="X has 2 columns"):
        encode(_frame().iloc[:, :2], state)
    with pytest.raises(ValueError, match="decoder outputs"):
        decode(np.zeros((2, 3)), state)


@pytest.mark.parametrize("spec", [
    "from_dtype", None, [], ["cat", "text"], [3, 5], np.array([3, 5]),
    [False, False, False, True, False, True, False, False],
    ["nope"], [8], [-1], [True, False], [1.5], [1, "a"]])
def test_own_categorical_check_matches_scikit_learn(spec):
    """The check used on scikit-learn < 1.9 follows HistGradientBoosting's."""
    from skdae._columns import _categorical_mask

    validation = pytest.importorskip("sklearn.utils.validation")
    if not hasattr(validation, "_check_categorical_features"):
        pytest.skip("scikit-learn < 1.9 has no reference")
    reference = validation._check_categorical_features
    for X in (_frame(), np.zeros((3, 8))):
        try:
            expected = reference(X, spec)
        except ValueError as exc:
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                _categorical_mask(X, spec)
            continue
        got = _categorical_mask(X, spec)
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, expected)
