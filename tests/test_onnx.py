"""Tests of skdae.onnx: parity of the exported graphs with onnxruntime."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skdae import (
    DenoisingAutoencoder,
    DenoisingAutoencoderImputer,
    MarginalizedDenoisingAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
    TabularDenoisingAutoencoder,
)

_REASON = 'needs the onnx extra: pip install "skdae[onnx]"'
skl2onnx = pytest.importorskip("skl2onnx", reason=_REASON)
ort = pytest.importorskip("onnxruntime", reason=_REASON)
onnx = pytest.importorskip("onnx", reason=_REASON)
from skl2onnx.common.data_types import (  # noqa: E402
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
)

import skdae.onnx  # noqa: E402, F401 (registers the converters)

pytestmark = pytest.mark.usefixtures("quiet_single_threaded_blas")

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
DTYPES = [np.float32, np.float64]
# Relative tolerance of the parity, by dtype. Elements near 0 are compared
# relative to the largest magnitude of the output (see assert_parity).
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


@pytest.fixture(scope="module")
def data():
    """Digits in [0, 1] and standard-normal random data, with labels."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    X_random = rng.normal(size=(150, 12))
    y_random = rng.randint(3, size=150)
    return {"digits": (X[::3] / 16.0, y[::3]), "random": (X_random, y_random)}


def run(onx, X):
    """Output names and outputs of the ONNX model ``onx`` on X."""
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    return names, session.run(None, {session.get_inputs()[0].name: X})


def assert_parity(got, want):
    """Same dtype and shape; equal within RTOL of the output's magnitude."""
    assert got.dtype == want.dtype
    rtol = RTOL[want.dtype]
    assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def _autoencoder(**params):
    return DenoisingAutoencoder(**{"n_components": 8, "max_iter": 3,
                                   "random_state": 0, **params})


def _classifier(**params):
    return StackedDenoisingAutoencoderClassifier(
        **{"hidden_layer_sizes": (10, 6), "pretrain_max_iter": 2,
           "max_iter": 10, "random_state": 0, **params})


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("tied_weights", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_autoencoder_transform(data, dataset, tied_weights, activation, dtype):
    X = data[dataset][0].astype(dtype)
    ae = _autoencoder(activation=activation, tied_weights=tied_weights).fit(X)
    onx = skl2onnx.to_onnx(ae, X[:1])
    # The weights, hence the ops, in the dtype of the input.
    weight_types = {init.data_type for init in onx.graph.initializer}
    assert weight_types == {onnx.helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype))}
    names, (codes,) = run(onx, X)
    assert names == ["codes"]
    assert codes.shape == (X.shape[0], 8)
    assert_parity(codes, ae.transform(X))


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_trained_autoencoder_takes_dense_input(data, dataset, dtype):
    X = data[dataset][0].astype(dtype)
    X[np.abs(X) < 0.5] = 0
    X_sparse = sp.csr_matrix(X)
    ae = _autoencoder().fit(X_sparse)
    _, (codes,) = run(skl2onnx.to_onnx(ae, X[:1]), X)
    assert_parity(codes, ae.transform(X_sparse))


def test_float32_model_exported_in_double(data):
    # transform casts the weights to the dtype of X, as the graph does.
    X = data["digits"][0]
    ae = _autoencoder().fit(X.astype(np.float32))
    onx = skl2onnx.convert_sklearn(
        ae, initial_types=[("X", DoubleTensorType([None, X.shape[1]]))])
    _, (codes,) = run(onx, X)
    assert_parity(codes, ae.transform(X))


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("activation", [
    "sigmoid", ["relu", "tanh"], ["identity", "sigmoid"]])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stacked_transform(data, dataset, activation, dtype):
    X = data[dataset][0].astype(dtype)
    sda = StackedDenoisingAutoencoder(
        hidden_layer_sizes=(10, 6), activation=activation,
        tied_weights=False, max_iter=3, random_state=0).fit(X)
    names, (codes,) = run(skl2onnx.to_onnx(sda, X[:1]), X)
    assert names == ["codes"]
    assert_parity(codes, sda.transform(X))


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("features", ["all", "layers", "last"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_marginalized_transform(data, dataset, n_layers, features, activation,
                                dtype):
    X = data[dataset][0].astype(dtype)
    msda = MarginalizedDenoisingAutoencoder(
        n_layers, activation=activation, features=features).fit(X)
    onx = skl2onnx.to_onnx(msda, X[:1])
    names, (codes,) = run(onx, X)
    assert names == ["codes"]
    assert codes.shape == (X.shape[0], len(msda.get_feature_names_out()))
    assert_parity(codes, msda.transform(X))


@pytest.mark.parametrize("features", ["all", "layers", "last"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduced_marginalized_transform(data, features, sparse, dtype):
    # Non-negative digits: the first layer reconstructs the 20 most often
    # non-zero pixels from subsets of about 20 pixels.
    X = data["digits"][0].astype(dtype)
    X_fit = sp.csr_matrix(X) if sparse else X
    msda = MarginalizedDenoisingAutoencoder(
        2, n_components=20, features=features, random_state=0).fit(X_fit)
    assert len(msda.feature_subsets_) > 1
    _, (codes,) = run(skl2onnx.to_onnx(msda, X[:1]), X)
    want = msda.transform(X_fit)
    assert_parity(codes, want.toarray() if sp.issparse(want) else want)


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("features", ["all", "last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_trained_marginalized_takes_dense_input(data, dataset, features,
                                                       dtype):
    X = data[dataset][0].astype(dtype)
    X[np.abs(X) < 0.5] = 0
    X_sparse = sp.csr_matrix(X)
    msda = MarginalizedDenoisingAutoencoder(2, features=features).fit(X_sparse)
    _, (codes,) = run(skl2onnx.to_onnx(msda, X[:1]), X)
    want = msda.transform(X_sparse)
    assert_parity(codes, want.toarray() if sp.issparse(want) else want)


def test_float32_marginalized_exported_in_double(data):
    X = data["digits"][0]
    msda = MarginalizedDenoisingAutoencoder(2).fit(X.astype(np.float32))
    assert msda.coefs_[0].dtype == np.float32
    onx = skl2onnx.convert_sklearn(
        msda, initial_types=[("X", DoubleTensorType([None, X.shape[1]]))])
    _, (codes,) = run(onx, X)
    assert_parity(codes, msda.transform(X))


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("activation", ["sigmoid", ["relu", "tanh"]])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fine_tuned_stacked_transform(data, dataset, activation, dtype):
    X = data[dataset][0].astype(dtype)
    greedy = StackedDenoisingAutoencoder(
        hidden_layer_sizes=(10, 6), activation=activation, max_iter=3,
        random_state=0).fit(X)
    sda = clone(greedy).set_params(fine_tune=True, fine_tune_max_iter=5).fit(X)
    # The export reads the fine-tuned encoders, not the greedy ones.
    assert not np.allclose(sda.transform(X), greedy.transform(X))
    names, (codes,) = run(skl2onnx.to_onnx(sda, X[:1]), X)
    assert names == ["codes"]
    assert_parity(codes, sda.transform(X))


def _labels(y, kind):
    return np.array(["zero", "one", "two", "three", "four", "five", "six",
                     "seven", "eight", "nine"])[y] if kind == "str" else y


@pytest.mark.parametrize("dataset", ["digits", "random"])
@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_classifier_labels_and_probabilities(data, dataset, labels,
                                             activation, dtype):
    X, y = data[dataset]
    X, y = X.astype(dtype), _labels(y, labels)
    clf = _classifier(activation=activation).fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    names, (label, proba) = run(onx, X)
    assert names == ["label", "probabilities"]
    assert_array_equal(label, clf.predict(X))
    assert_parity(proba, clf.predict_proba(X))


def test_classifier_options(data):
    X, y = data["digits"]
    X, y = X.astype(np.float32), _labels(y, "str")
    clf = _classifier().fit(X, y)
    proba = clf.predict_proba(X)

    # Default: a ZipMap of {label: probability} per sample.
    names, (label, maps) = run(skl2onnx.to_onnx(clf, X[:1]), X)
    assert names == ["output_label", "output_probability"]
    assert_array_equal(label, clf.predict(X))
    assert list(maps[0]) == list(clf.classes_)
    assert_allclose([list(m.values()) for m in maps], proba, rtol=1e-5,
                    atol=1e-6)

    # zipmap="columns": one output per class.
    names, outputs = run(
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": "columns"}), X)
    assert len(names) == 1 + len(clf.classes_)
    assert_parity(np.column_stack(outputs[1:]), proba)

    # nocl: class indices instead of labels.
    _, (index, _) = run(skl2onnx.to_onnx(
        clf, X[:1], options={"zipmap": False, "nocl": True}), X)
    assert index.dtype == np.int64
    assert_array_equal(clf.classes_[index], clf.predict(X))

    # output_class_labels: the labels as a third output.
    names, (_, _, classes) = run(skl2onnx.to_onnx(
        clf, X[:1], options={"zipmap": False, "output_class_labels": True}), X)
    assert names[2] == "class_labels"
    assert_array_equal(classes, clf.classes_)


def test_classifier_ties_give_the_first_class(data):
    X, y = data["random"]
    clf = _classifier().fit(X, y)
    clf.coefs_[-1][:] = 0  # every class equally likely
    clf.intercepts_[-1][:] = 0
    _, (label, proba) = run(skl2onnx.to_onnx(clf, X[:1], options={
        "zipmap": False}), X)
    assert_array_equal(label, clf.predict(X))
    assert_array_equal(label, clf.classes_[0])
    assert_parity(proba, clf.predict_proba(X))


@pytest.mark.parametrize("y_map", [lambda y: y > 4, lambda y: 2.0 * y - 5])
def test_classifier_bool_and_float_labels_come_out_int64(data, y_map):
    X, y = data["digits"]
    clf = _classifier().fit(X, y_map(y))
    _, (label, _) = run(skl2onnx.to_onnx(clf, X[:1], options={
        "zipmap": False}), X)
    assert label.dtype == np.int64
    assert_array_equal(label, clf.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["autoencoder", "stacked", "classifier",
                                   "marginalized", "reduced marginalized"])
def test_in_pipeline(data, model, dtype):
    X, y = data["digits"]
    X = X.astype(dtype) * 16
    encoders = {
        "autoencoder": lambda: _autoencoder(n_components=16),
        "stacked": lambda: StackedDenoisingAutoencoder(
            hidden_layer_sizes=(16, 8), activation=["tanh", "relu"],
            max_iter=3, random_state=0),
        "marginalized": lambda: MarginalizedDenoisingAutoencoder(2),
        "reduced marginalized": lambda: MarginalizedDenoisingAutoencoder(
            2, n_components=16, features="layers", random_state=0),
    }
    if model == "classifier":
        pipe = make_pipeline(MinMaxScaler(), _classifier())
    else:
        encoder = encoders[model]()
        pipe = make_pipeline(StandardScaler(), encoder,
                             LogisticRegression(max_iter=500))
    pipe.fit(X, y)
    # ZipMap takes float probabilities only (skl2onnx's own rule too).
    options = {id(pipe.steps[-1][1]): {"zipmap": dtype == np.float32}}
    names, (label, proba) = run(skl2onnx.to_onnx(pipe, X[:1], options=options),
                                X)
    assert_array_equal(label, pipe.predict(X))
    if dtype == np.float32:
        proba = np.array([[m[c] for c in pipe.classes_] for m in proba],
                         dtype=np.float32)
    # The scaler and LogisticRegression run in skl2onnx's own converters.
    assert_parity(proba, pipe.predict_proba(X).astype(dtype))


def test_codes_of_a_transformer_pipeline(data):
    X = data["digits"][0].astype(np.float32)
    pipe = make_pipeline(MinMaxScaler(), _autoencoder()).fit(X)
    names, (codes,) = run(skl2onnx.to_onnx(pipe, X[:1]), X)
    assert names == ["codes"]
    assert_parity(codes, pipe.transform(X))


def test_dataframe_columns_are_concatenated(data):
    pd = pytest.importorskip("pandas")
    X, y = data["random"]
    df = pd.DataFrame(X.astype(np.float32),
                      columns=[f"x{i}" for i in range(X.shape[1])])
    ae = _autoencoder().fit(df)
    onx = skl2onnx.to_onnx(ae, df[:1])  # one input per column
    assert len(onx.graph.input) == X.shape[1]
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    feeds = {name: df[[name]].to_numpy() for name in df.columns}
    assert_parity(session.run(None, feeds)[0], ae.transform(df))

    # An int64 column: the graph runs in float.
    df["x0"] = np.arange(X.shape[0]) % 3
    clf = _classifier().fit(df, y)
    onx = skl2onnx.to_onnx(clf, df[:1], options={"zipmap": False})
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    feeds = {name: df[[name]].to_numpy() for name in df.columns}
    label, proba = session.run(None, feeds)
    assert_array_equal(label, clf.predict(df))
    assert_parity(proba, clf.predict_proba(df).astype(np.float32))


def test_integer_input_is_cast_to_float(data):
    X = (data["digits"][0] * 16).astype(np.int64)
    ae = _autoencoder().fit(X.astype(np.float32))
    onx = skl2onnx.convert_sklearn(
        ae, initial_types=[("X", Int64TensorType([None, X.shape[1]]))])
    _, (codes,) = run(onx, X)
    assert_parity(codes, ae.transform(X.astype(np.float32)))


# ----------------------------------------------------------------------
# The tabular network: numeric columns with missing entries
# ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tables():
    """Digits, wine (columns of very different scales) and random data, each
    with 10% NaN; the random table also has a constant and an empty column."""
    from sklearn.datasets import load_digits, load_wine
    rng = np.random.RandomState(0)
    X_digits, y_digits = load_digits(return_X_y=True)
    out = {"digits": (X_digits[::3], y_digits[::3]),
           "wine": load_wine(return_X_y=True)}
    for X, _ in out.values():
        X[rng.uniform(size=X.shape) < 0.1] = np.nan
    X = rng.normal(size=(120, 6)) * [1, 10, 0.1, 1, 1, 1] + [0, 5, 0, 0, 0, 0]
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    X[:, 4] = 0.1  # constant where observed (its mean is not exactly 0.1)
    X[::7, 4] = np.nan
    X[:, 5] = np.nan  # never observed
    out["random"] = X, rng.randint(3, size=X.shape[0])
    return out


def assert_float32_parity(got, want, dtype):
    """The type of the graph; equal within float32's RTOL of each column's
    magnitude (the tabular network computes in float32 in skdae)."""
    assert got.dtype == dtype
    scale = np.maximum(np.abs(want).max(axis=0, initial=0),
                       np.finfo(np.float32).tiny)
    assert_allclose(got / scale, want / scale, rtol=0,
                    atol=RTOL[np.dtype(np.float32)])


def _tabular(**params):
    return TabularDenoisingAutoencoder(**{
        "hidden_layer_sizes": (16, 8), "max_iter": 3, "random_state": 0,
        **params})


def _imputer(**params):
    return DenoisingAutoencoderImputer(**{
        "hidden_layer_sizes": (16, 16), "max_iter": 3, "random_state": 0,
        **params})


@pytest.mark.parametrize("dataset", ["digits", "wine", "random"])
@pytest.mark.parametrize("features", ["all", "last"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tabular_transform(tables, dataset, features, activation, dtype):
    X = tables[dataset][0].astype(dtype)
    dae = _tabular(features=features, activation=activation).fit(X)
    names, (codes,) = run(skl2onnx.to_onnx(dae, X[:1]), X)
    assert names == ["codes"]
    want = dae.transform(X)
    assert want.dtype == np.float32  # skdae's network is float32
    assert codes.shape == want.shape == (X.shape[0], 24 if features == "all"
                                         else 8)
    # The graph's output follows the input's type (skl2onnx's convention).
    assert_float32_parity(codes, want, dtype)


@pytest.mark.parametrize("dataset", ["digits", "wine", "random"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_imputer_transform(tables, dataset, activation, dtype):
    X = tables[dataset][0].astype(dtype)
    imputer = _imputer(activation=activation).fit(X)
    names, (imputed,) = run(skl2onnx.to_onnx(imputer, X[:1]), X)
    assert names == ["imputed"]
    want = imputer.transform(X)
    assert imputed.shape == want.shape
    assert not np.isnan(imputed).any()
    # Observed entries pass through bit for bit; the others as predicted.
    kept = imputer._kept()
    observed = ~np.isnan(X[:, kept])
    assert_array_equal(imputed[observed], X[:, kept][observed])
    assert_float32_parity(imputed, want, dtype)


@pytest.mark.parametrize("add_indicator", [False, True])
@pytest.mark.parametrize("keep_empty_features", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_imputer_columns(tables, add_indicator, keep_empty_features, dtype):
    # Constant and empty columns, the kept columns, the indicators.
    X = tables["random"][0].astype(dtype)
    imputer = _imputer(add_indicator=add_indicator,
                       keep_empty_features=keep_empty_features).fit(X)
    _, (imputed,) = run(skl2onnx.to_onnx(imputer, X[:1]), X)
    want = imputer.transform(X)
    assert imputed.shape == want.shape == (
        X.shape[0], 5 + keep_empty_features + 6 * add_indicator)
    assert_float32_parity(imputed, want, dtype)
    # The constant column: its mean, exactly, as skdae imputes it.
    assert_array_equal(imputed[:, 4], want[:, 4])
    assert_allclose(imputed[:, 4], 0.1, rtol=1e-6)
    if keep_empty_features:
        assert_array_equal(imputed[:, 5], 0.0)
    if add_indicator:  # every column has missing entries; exactly
        assert_array_equal(imputed[:, -6:], want[:, -6:])
        assert_array_equal(imputed[:, -6:], np.isnan(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_imputer_missing_values_placeholder(tables, dtype):
    X = tables["wine"][0]
    X = np.where(np.isnan(X), -1, X).astype(dtype)
    imputer = _imputer(missing_values=-1).fit(X)
    _, (imputed,) = run(skl2onnx.to_onnx(imputer, X[:1]), X)
    want = imputer.transform(X)  # float64 (skdae replaces -1 by NaN first)
    observed = X != -1
    assert_array_equal(imputed[observed], X[observed])
    assert not (imputed == -1).any()
    assert_float32_parity(imputed, want.astype(dtype), dtype)


def test_imputer_dataframe_with_integer_columns(tables):
    pd = pytest.importorskip("pandas")
    X = tables["wine"][0][:, :5]
    df = pd.DataFrame(X, columns=list("abcde"))
    df["k"] = np.round(np.nan_to_num(X[:, 0]) - 11).astype(np.int64)
    imputer = _imputer(max_iter=10).fit(df)

    def run_frame(test):
        # One input per column, declared from the first row.
        onx = skl2onnx.to_onnx(imputer, test[:1])
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        imputed, = session.run(None, {c: test[[c]].to_numpy() for c in test})
        assert_float32_parity(imputed, imputer.transform(test), np.float64)
        observed = ~test.isna().to_numpy()
        assert_array_equal(imputed[observed], test.to_numpy()[observed])
        return imputed

    # Double and int64 inputs: a graph in double (skdae reads integers in
    # double), observed entries passed through exactly.
    run_frame(df)
    # Missing integers (the column is float then): imputed rounded and
    # within the range seen in fit, as skdae decodes an integer column.
    test = df.astype({"k": np.float64})
    test.iloc[::3, 5] = np.nan
    k = run_frame(test)[::3, 5]
    assert_array_equal(k, np.round(k))
    assert df["k"].min() <= k.min() and k.max() <= df["k"].max()
    assert len(np.unique(k)) > 1


def test_tabular_dataframe_input(tables):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(tables["wine"][0][:, :6].astype(np.float32),
                      columns=list("abcdef"))

    def codes(model, frame):
        onx = skl2onnx.to_onnx(model, frame[:1])  # one input per column
        assert len(onx.graph.input) == frame.shape[1]
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {c: frame[[c]].to_numpy() for c in frame})[0]

    dae = _tabular().fit(df)
    assert_float32_parity(codes(dae, df), dae.transform(df), np.float32)
    # An integer column: a graph in double, the column read exactly.
    df["k"] = 2**30 + np.arange(df.shape[0]) % 5
    dae = _tabular().fit(df)
    assert_float32_parity(codes(dae, df), dae.transform(df), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["imputer", "imputer+indicator", "tabular",
                                   "imputer+autoencoder"])
def test_tabular_in_pipeline(tables, model, dtype):
    X, y = tables["wine"]
    X = X.astype(dtype)
    steps = {
        "imputer": [_imputer()],
        "imputer+indicator": [_imputer(add_indicator=True)],
        "tabular": [_tabular()],
        "imputer+autoencoder": [_imputer(), StandardScaler(),
                                _autoencoder(activation="tanh")],
    }[model]
    pipe = make_pipeline(*steps, LogisticRegression(max_iter=2000)).fit(X, y)
    if dtype == np.float32:  # skl2onnx's defaults, ZipMap included
        names, (label, maps) = run(skl2onnx.to_onnx(pipe, X[:1]), X)
        proba = np.array([[m[c] for c in pipe.classes_] for m in maps])
    else:  # ZipMap takes float probabilities only
        names, (label, proba) = run(skl2onnx.to_onnx(
            pipe, X[:1], options={LogisticRegression: {"zipmap": False}}), X)
    assert_array_equal(label, pipe.predict(X))
    assert_allclose(proba, pipe.predict_proba(X), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------
# Clear errors at conversion time
# ----------------------------------------------------------------------
def test_unfitted_model_is_refused(data):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        skl2onnx.to_onnx(DenoisingAutoencoder(), data["digits"][0][:1])


def test_wrong_input_width_is_refused(data):
    X = data["digits"][0].astype(np.float32)
    ae = _autoencoder().fit(X)
    with pytest.raises(ValueError, match=r"fitted on 64 features.*\[None, 64\]"):
        skl2onnx.convert_sklearn(
            ae, initial_types=[("X", FloatTensorType([None, 10]))])


def test_double_zipmap_is_refused(data):
    X, y = data["random"]
    clf = _classifier().fit(X, y)
    with pytest.raises(ValueError, match="zipmap.: False"):
        skl2onnx.to_onnx(clf, X[:1])


def test_unknown_activation_is_refused(data):
    X = data["random"][0]
    ae = _autoencoder().fit(X)
    ae.activation = "softplus"  # e.g. an activation added to skdae later
    with pytest.raises(ValueError, match="cannot export the activation 'softplus'"):
        skl2onnx.to_onnx(ae, X[:1])


def test_activation_per_layer_must_match_the_fitted_layers(data):
    X, y = data["random"]
    clf = _classifier(activation=["relu", "tanh"]).fit(X, y)
    clf.set_params(activation=["relu"])
    with pytest.raises(ValueError, match="1 values for 2 hidden layers"):
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})


# Not exportable: refused at conversion time, saying why and what to do.
def test_categorical_columns_are_refused():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    df = pd.DataFrame({"size": rng.normal(size=40),
                       "colour": rng.choice(["red", "blue"], size=40)})
    for model in (_tabular(), _imputer()):
        model.fit(df)
        with pytest.raises(ValueError, match=(
                r"categorical columns \(colour\).*string tensors.*"
                r"OneHotEncoder.*categorical_features=None")):
            skl2onnx.to_onnx(model, df[:1])


def test_time_columns_are_refused():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"t": pd.date_range("2020-01-01", periods=40),
                       "x": np.arange(40.0)})
    model = _tabular().fit(df)
    with pytest.raises(ValueError, match=r"date or time columns \(t\).*"
                                         r"astype\('int64'\)"):
        skl2onnx.convert_sklearn(model, initial_types=[
            ("X", DoubleTensorType([None, 2]))])


def test_imputer_boolean_columns_are_refused():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"b": np.arange(40) % 3 == 0, "x": np.arange(40.0)})
    imputer = _imputer(categorical_features=None).fit(df)
    with pytest.raises(ValueError, match="boolean columns.*Cast them to float"):
        skl2onnx.convert_sklearn(imputer, initial_types=[
            ("X", DoubleTensorType([None, 2]))])


def test_sample_posterior_is_refused(tables):
    X = tables["wine"][0]
    imputer = _imputer(sample_posterior=True).fit(X)
    with pytest.raises(ValueError, match=r"sample_posterior=True draws.*"
                                         r"set_params\(sample_posterior=False"):
        skl2onnx.to_onnx(imputer, X[:1])
    # As the message says: the same weights, the predictions exported.
    imputer.set_params(sample_posterior=False)
    _, (imputed,) = run(skl2onnx.to_onnx(imputer, X[:1]), X)
    assert_float32_parity(imputed, imputer.transform(X), np.float64)


def test_string_missing_values_are_refused(tables):
    X = tables["wine"][0].astype(object)
    X[np.isnan(X.astype(float))] = "?"
    imputer = _imputer(missing_values="?").fit(X)
    with pytest.raises(ValueError, match=r"missing_values='\?'.*cannot hold "
                                         r"that string.*np.nan"):
        skl2onnx.convert_sklearn(imputer, initial_types=[
            ("X", DoubleTensorType([None, X.shape[1]]))])


def test_import_skdae_does_not_import_skl2onnx():
    # Then, without skl2onnx, skdae.onnx says how to install it.
    code = """
import sys
import skdae
skdae.DenoisingAutoencoder()
print(sorted(m for m in sys.modules
             if m.split(".")[0] in ("skl2onnx", "onnx", "onnxruntime")))
sys.modules["skl2onnx"] = None  # as if not installed
try:
    import skdae.onnx
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert 'pip install "skdae[onnx]"' in out[1]
