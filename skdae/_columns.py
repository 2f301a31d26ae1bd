"""Tables to model inputs and back: column kinds, scaling, categories, missing.

The tabular estimators see a table through three functions, kept apart from
the network the way scikit-learn keeps HistGradientBoosting's binning apart
from its trees:

- ``fit_columns(X, categorical_features)`` learns how to encode a table and
  returns the fitted state as a dict of plain NumPy arrays, lists and strings
  (an estimator stores it as a fitted attribute, so pickle and ``skops.io``
  work);
- ``encode(X, state)`` gives the network's inputs, its reconstruction
  targets and the missing mask;
- ``decode(outputs, state)`` turns decoder outputs back into a table with the
  input's columns and dtypes.

How columns are treated:

- numeric columns are standardised by the mean and standard deviation of
  their observed values (a constant or never observed column gets scale 1,
  an all-missing column mean 0). Datetime and duration columns are numeric
  (as integers of their time unit);
- categorical columns become integer codes against the sorted observed
  categories (as ``OneHotEncoder.categories_``) and one-hot blocks in the
  inputs; a category unseen in fit is treated as missing, never an error;
- missing values of every kind (NaN, None, ``pd.NA``, ``NaT``, polars null)
  give ``True`` in the missing mask, 0 in a numeric input and an all-zero
  one-hot block; ``add_indicator=True`` appends one missing-indicator input
  per column (all columns, so that masking noise can switch any of them on).

The way back (``decode``): a numeric output is unstandardised; an integer
column is rounded to the nearest integer and clipped to the range seen in
fit (so a cast never overflows); a boolean column treated as numeric is
thresholded at 0.5; a categorical column takes its most probable category.
Pandas categoricals keep their categories and order, polars Enums their
categories. A DataFrame comes back as a DataFrame of the same library, an
array as an array.
"""

import narwhals as nw
import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array

try:  # scikit-learn >= 1.9 (HistGradientBoosting's own check)
    from sklearn.utils.validation import _check_categorical_features
except ImportError:  # pragma: no cover - older scikit-learn
    _check_categorical_features = None

NUMERIC, CATEGORICAL = 0, 1

# Narwhals dtypes treated as categorical by ``categorical_features="from_dtype"``.
_CATEGORICAL_DTYPES = (nw.Categorical, nw.Enum, nw.String, nw.Boolean,
                       nw.Object)


# --------------------------------------------------------------------------
# Reading a table column by column
# --------------------------------------------------------------------------
def _as_columns(X):
    """``(container, names, dtypes, columns)`` of a DataFrame or array.

    ``columns`` is a list of ``(values, missing)`` pairs of 1-D NumPy arrays;
    ``dtypes`` the columns' native dtypes as strings.
    """
    if sp.issparse(X):
        raise TypeError(
            "Sparse input is not supported for tables; convert it with "
            "X.toarray() or use DenoisingAutoencoder, which accepts sparse data."
        )
    if nw.dependencies.is_into_dataframe(X):
        frame = nw.from_native(X, eager_only=True)
        container = nw.get_native_namespace(frame).__name__
        if container not in ("pandas", "polars"):
            container = "pandas" if container == "modin.pandas" else "array"
        names = np.asarray(frame.columns, dtype=object)
        native = nw.to_native(frame)
        dtypes, columns = [], []
        for name in frame.columns:
            series = frame[name]
            values = series.to_numpy()
            missing = np.asarray(series.is_null().to_numpy(), dtype=bool)
            if values.dtype.kind in "fcmM":  # polars NaN is not null
                missing = missing | _nan_mask(values)
            columns.append((values, missing))
            dtypes.append(str(native[name].dtype))
        kinds = [d in _CATEGORICAL_DTYPES for d in frame.schema.dtypes()]
        return container, names, dtypes, columns, np.asarray(kinds)
    X = check_array(X, dtype=None, ensure_all_finite=False,
                    ensure_min_samples=1)
    if X.dtype.kind == "U":
        X = X.astype(object)
    columns = []
    for j in range(X.shape[1]):
        values = X[:, j]
        columns.append((values, _nan_mask(values)))
    return "array", None, [str(X.dtype)] * X.shape[1], columns, None


def _nan_mask(values):
    """Missing entries of an array: NaN, NaT, and None / pd.NA if object."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "O":
        return np.fromiter((_is_missing_scalar(v) for v in values), dtype=bool,
                           count=values.shape[0])
    return np.zeros(values.shape[0], dtype=bool)


def _is_missing_scalar(value):
    if value is None:
        return True
    try:
        # NaN, NaT and pd.NA are the values not equal to themselves (pd.NA
        # compares to NA, whose truth value raises).
        return bool(value != value)
    except TypeError:
        return True


def _numeric_values(values, name, dtype):
    """A column as float64 (datetimes as integers of their unit)."""
    if values.dtype.kind in "mM":
        out = values.view(np.int64).astype(np.float64)
        out[np.isnat(values)] = 0.0
        return out
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        # The same exception type as NumPy's (and check_array's) own.
        raise type(exc)(
            f"Column {name!r} of dtype {dtype} cannot be treated as numeric "
            f"({exc}); list it in categorical_features (or use "
            "categorical_features='from_dtype' on a DataFrame)."
        ) from exc


def _column_label(names, j):
    return str(names[j]) if names is not None else f"at index {j}"


# --------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------
def fit_columns(X, categorical_features="from_dtype", add_indicator=False):
    """Learn how to encode the columns of a table.

    Parameters
    ----------
    X : {array-like, pandas or polars DataFrame} of shape (n_samples, n_columns)
        The training table. Missing values are allowed everywhere.
    categorical_features : "from_dtype", array-like of {bool, int, str} or None
        As in :class:`~sklearn.ensemble.HistGradientBoostingClassifier`, except
        that ``"from_dtype"`` also treats string, object and boolean columns
        of a DataFrame as categorical (not only categorical and enum ones).
    add_indicator : bool, default=False
        Append one missing-indicator input per column.

    Returns
    -------
    state : dict
        Plain arrays, lists and strings; see ``encode`` and ``decode``.
    """
    container, names, dtypes, columns, kinds = _as_columns(X)
    n_columns = len(columns)
    if n_columns == 0:
        raise ValueError("X has 0 columns; at least one is required.")
    spec = categorical_features
    if isinstance(spec, str) and spec == "from_dtype" and kinds is not None:
        spec = kinds
    check = _check_categorical_features or _categorical_mask
    is_categorical = check(X, spec)
    if is_categorical is None:
        is_categorical = np.zeros(n_columns, dtype=bool)
    is_categorical = np.asarray(is_categorical, dtype=bool)

    mean = np.zeros(n_columns)
    scale = np.ones(n_columns)
    low = np.zeros(n_columns)
    high = np.zeros(n_columns)
    categories = []
    for j, (values, missing) in enumerate(columns):
        observed = values[~missing]
        if is_categorical[j]:
            categories.append(_sorted_categories(observed, names, j))
            continue
        x = _numeric_values(observed, _column_label(names, j), dtypes[j])
        if np.isinf(x).any():
            raise ValueError(
                f"Column {_column_label(names, j)} contains infinity; "
                "replace it by a finite value or by NaN (missing).")
        if x.size:
            mean[j] = x.mean()
            std = x.std()
            # A constant column stays centred at 0 with scale 1.
            scale[j] = std if std > 0 and np.isfinite(std) else 1.0
            low[j], high[j] = x.min(), x.max()

    widths = np.where(is_categorical, 0, 1)
    widths[is_categorical] = [c.shape[0] for c in categories]
    output_stop = np.cumsum(widths)
    output_start = output_stop - widths
    n_outputs = int(output_stop[-1])
    indicator = (n_outputs + np.arange(n_columns) if add_indicator
                 else np.full(n_columns, -1))
    state = {
        "container": container,
        "feature_names": names,
        "dtypes": dtypes,
        "is_categorical": is_categorical,
        "mean": mean,
        "scale": scale,
        "minimum": low,
        "maximum": high,
        "categories": categories,
        "dtype_categories": [_dtype_categories(X, names, j, container)
                             for j in range(n_columns)],
        "input_start": output_start.copy(),
        "input_stop": output_stop.copy(),
        "indicator": indicator,
        "output_start": output_start,
        "output_stop": output_stop,
        "n_inputs": n_outputs + (n_columns if add_indicator else 0),
        "n_outputs": n_outputs,
    }
    return state


def _categorical_mask(X, categorical_features):
    """The categorical columns, for scikit-learn < 1.9.

    Follows ``HistGradientBoostingClassifier``'s documented conventions (and
    messages): None or no column -> None; on a DataFrame "from_dtype" means
    its categorical and enum columns; else a boolean mask, integer indices
    or column names.
    """
    frame = nw.dependencies.is_into_dataframe(X)
    spec = categorical_features
    if spec is None:
        return None
    if isinstance(spec, str) and spec == "from_dtype":
        if not frame:
            return None
        dtypes = nw.from_native(X, eager_only=True).schema.dtypes()
        spec = [d in (nw.Categorical, nw.Enum) for d in dtypes]
    spec = np.asarray(spec)
    if spec.size == 0:
        return None
    kind = spec.dtype.kind
    if kind == "O" and {type(v) for v in spec.tolist()} == {str}:
        kind = "U"
    if kind not in "ibU":
        found = (spec.dtype.name if spec.dtype.kind != "O" else ", ".join(
            sorted({type(v).__name__ for v in spec.tolist()})))
        raise ValueError("categorical_features must be an array-like of bool, "
                         f"int or str, got: {found}.")
    n_features = (len(nw.from_native(X, eager_only=True).columns) if frame
                  else np.shape(X)[1])
    mask = np.zeros(n_features, dtype=bool)
    if kind == "U":
        if not frame:
            raise ValueError(
                "categorical_features should be passed as an array of "
                "integers or as a boolean mask when the model is fitted on "
                "data without feature names.")
        names = [str(c) for c in nw.from_native(X, eager_only=True).columns]
        for name in spec.tolist():
            if name not in names:
                raise ValueError(
                    f"categorical_features has an item value '{name}' which "
                    "is not a valid feature name of the training data. "
                    f"Observed feature names: {names}")
            mask[names.index(name)] = True
    elif kind == "i":
        if spec.max() >= n_features or spec.min() < 0:
            raise ValueError("categorical_features set as integer indices "
                             "must be in [0, n_features - 1]")
        mask[spec] = True
    else:
        if spec.shape[0] != n_features:
            raise ValueError(
                "categorical_features set as a boolean mask must have shape "
                f"(n_features,), got: {spec.shape}")
        mask = spec.astype(bool)
    return mask if mask.any() else None


def _sorted_categories(observed, names, j):
    """Sorted unique observed values, as ``OneHotEncoder.categories_``."""
    if observed.dtype.kind == "O":
        try:
            return np.array(sorted(set(observed.tolist())), dtype=object)
        except TypeError as exc:
            types = sorted({type(v).__name__ for v in observed})
            raise TypeError(
                f"Categorical column {_column_label(names, j)} mixes values of "
                f"types {types} that cannot be sorted; convert the column to "
                "one type (e.g. X[col].astype(str))."
            ) from exc
    return np.unique(observed)


def _dtype_categories(X, names, j, container):
    """Categories of a pandas categorical / polars enum dtype (else None)."""
    if container not in ("pandas", "polars"):
        return None
    dtype = X[names[j]].dtype
    if container == "pandas":
        cats = getattr(dtype, "categories", None)
        if cats is None:
            return None
        return {"categories": np.asarray(cats, dtype=object),
                "ordered": bool(dtype.ordered)}
    cats = getattr(dtype, "categories", None)
    if cats is None or not hasattr(cats, "to_numpy"):
        return None
    return {"categories": np.asarray(cats.to_numpy(), dtype=object),
            "ordered": False}


def column_groups(state):
    """The network's view of the columns, as plain lists and arrays.

    Returns
    -------
    kinds : list of str
        The head's loss per column: "squared_error" for a numeric column,
        "softmax" for a categorical one (``_network.Head``).
    widths : ndarray of int
        Output units per column.
    starts, stops, indicators : ndarray of int
        Each column's input block and missing-indicator input (-1 if none):
        the column groups of the noise (``_network.Corruption``).
    """
    kinds = ["softmax" if c else "squared_error"
             for c in state["is_categorical"]]
    widths = state["output_stop"] - state["output_start"]
    return (kinds, widths, state["input_start"], state["input_stop"],
            state["indicator"])


# --------------------------------------------------------------------------
# Encode
# --------------------------------------------------------------------------
def encode(X, state, dtype=np.float64):
    """Model inputs, reconstruction targets and missing mask of a table.

    Parameters
    ----------
    X : {array-like, DataFrame} of shape (n_samples, n_columns)
        A table with the columns seen in ``fit_columns``.
    state : dict
        From ``fit_columns``.
    dtype : {np.float32, np.float64}, default=np.float64
        Floating type of ``inputs``.

    Returns
    -------
    inputs : ndarray of shape (n_samples, state["n_inputs"])
        Standardised numerics (missing -> 0), one-hot categoricals (missing
        or unknown -> all zero), then the indicators if fitted with them.
    targets : ndarray of shape (n_samples, n_columns), float64
        The standardised value of a numeric column, the category code of a
        categorical one; 0 where missing (the loss weight must be 0 there).
    missing : ndarray of shape (n_samples, n_columns), bool
        Missing entries, unknown categories included.
    """
    container, names, dtypes, columns, _ = _as_columns(X)
    _check_same_columns(names, len(columns), state)
    n = columns[0][0].shape[0]
    n_columns = len(columns)
    inputs = np.zeros((n, state["n_inputs"]), dtype=dtype)
    targets = np.zeros((n, n_columns))
    missing = np.empty((n, n_columns), dtype=bool)
    cat_index = np.cumsum(state["is_categorical"]) - 1
    for j, (values, miss) in enumerate(columns):
        start = state["input_start"][j]
        if state["is_categorical"][j]:
            codes = _category_codes(values, miss,
                                    state["categories"][cat_index[j]])
            miss = codes < 0
            observed = np.flatnonzero(~miss)
            inputs[observed, start + codes[observed]] = 1.0
            targets[observed, j] = codes[observed]
        else:
            x = _numeric_values(values, _column_label(names, j), dtypes[j])
            x = (x - state["mean"][j]) / state["scale"][j]
            x[miss] = 0.0
            if np.isinf(x).any():
                raise ValueError(
                    f"Column {_column_label(names, j)} contains infinity; "
                    "replace it by a finite value or by NaN (missing).")
            inputs[:, start] = x
            targets[:, j] = x
        missing[:, j] = miss
        if state["indicator"][j] >= 0:
            inputs[:, state["indicator"][j]] = miss
    return inputs, targets, missing


def _check_same_columns(names, n_columns, state):
    fitted = state["feature_names"]
    if n_columns != len(state["dtypes"]):
        raise ValueError(
            f"X has {n_columns} columns, but the model was fitted on "
            f"{len(state['dtypes'])} columns.")
    if fitted is not None and names is not None and list(names) != list(fitted):
        raise ValueError(
            "The column names of X differ from those seen in fit (same names "
            f"in the same order are required). Fitted: {list(fitted)}; got: "
            f"{list(names)}.")


def _category_codes(values, missing, categories):
    """Codes of ``values`` in ``categories``; -1 where missing or unknown."""
    codes = np.full(values.shape[0], -1, dtype=np.intp)
    present = np.flatnonzero(~missing)
    if categories.dtype.kind != "O" and values.dtype.kind != "O":
        v = values[present]
        pos = np.minimum(np.searchsorted(categories, v),
                         max(categories.shape[0] - 1, 0))
        found = (categories[pos] == v) if categories.shape[0] else pos < 0
        codes[present[found]] = pos[found]
        return codes
    if categories.shape[0]:
        v = values[present]
        try:  # sorted comparable values: one vectorized search
            pos = np.minimum(np.searchsorted(categories, v),
                             categories.shape[0] - 1)
            found = np.asarray(categories[pos] == v, dtype=bool)
            codes[present[found]] = pos[found]
            return codes
        except TypeError:  # values of another type than the categories
            pass
    lookup = {c: k for k, c in enumerate(categories.tolist())}
    for i, v in zip(present.tolist(), values[present].tolist()):
        try:
            codes[i] = lookup.get(v, -1)
        except TypeError:  # unhashable value: unknown
            pass
    return codes


# --------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------
def decode(outputs, state):
    """Decoder outputs back to a table with the fitted columns and dtypes.

    Parameters
    ----------
    outputs : ndarray of shape (n_samples, state["n_outputs"])
        Standardised numeric values, and for each categorical column its
        scores (logits or probabilities) over its categories.
    state : dict
        From ``fit_columns``.

    Returns
    -------
    table : pandas or polars DataFrame, or ndarray
        Of the container fitted on. An array is float64 when every column
        is numeric (or has numeric categories), else object.
    """
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.shape[1] != state["n_outputs"]:
        raise ValueError(
            f"Expected decoder outputs with {state['n_outputs']} columns, got "
            f"shape {outputs.shape}.")
    n_columns = len(state["dtypes"])
    cat_index = np.cumsum(state["is_categorical"]) - 1
    values = []
    for j in range(n_columns):
        a, b = state["output_start"][j], state["output_stop"][j]
        if state["is_categorical"][j]:
            cats = state["categories"][cat_index[j]]
            if cats.shape[0] == 0:
                values.append(np.full(outputs.shape[0], None, dtype=object))
            else:
                values.append(cats[np.argmax(outputs[:, a:b], axis=1)])
        else:
            x = outputs[:, a].astype(np.float64) * state["scale"][j]
            values.append(x + state["mean"][j])
    container = state["container"]
    if container == "pandas":
        return _pandas_frame(values, state)
    if container == "polars":
        return _polars_frame(values, state)
    if all(v.dtype.kind in "biuf" for v in values):
        return np.column_stack(values).astype(np.float64)
    return np.column_stack([v.astype(object) for v in values])


def _integer_like(x, j, state):
    """Rounded and clipped to the fitted range: the cast cannot overflow."""
    return np.clip(np.rint(x), state["minimum"][j], state["maximum"][j])


def _restore(x, j, dtype, state):
    """A decoded numeric column as NumPy values ready for ``dtype``."""
    kind = dtype.lower()
    if kind.startswith(("datetime", "timedelta", "duration", "date")):
        return _integer_like(x, j, state).astype(np.int64)
    if kind in ("bool", "boolean"):
        return x > 0.5
    if "int" in kind:
        return _integer_like(x, j, state).astype(np.int64)
    return x


def _pandas_frame(values, state):
    import pandas as pd

    data = {}
    for j, name in enumerate(state["feature_names"]):
        dtype = state["dtypes"][j]
        x = values[j]
        if state["dtype_categories"][j] is not None:
            info = state["dtype_categories"][j]
            data[name] = pd.Categorical(x, categories=info["categories"],
                                        ordered=info["ordered"])
            continue
        if not state["is_categorical"][j]:
            x = _restore(x, j, dtype, state)
        target = pd.api.types.pandas_dtype(dtype)
        if target.kind in "mM":
            x = x.view(f"{target.kind}8[{np.datetime_data(target)[0]}]")
        data[name] = pd.Series(x).astype(target)
    return pd.DataFrame(data, columns=list(state["feature_names"]))


def _polars_frame(values, state):
    import polars as pl

    series = []
    for j, name in enumerate(state["feature_names"]):
        dtype = state["dtypes"][j]
        x = values[j]
        if state["dtype_categories"][j] is not None:
            cats = state["dtype_categories"][j]["categories"].tolist()
            series.append(pl.Series(name, x.tolist(), dtype=pl.Enum(cats)))
            continue
        if not state["is_categorical"][j]:
            x = _restore(x, j, dtype, state)
        if dtype.startswith(("Datetime", "Duration")):
            unit = dtype.split("'")[1]
            code = "M" if dtype.startswith("Datetime") else "m"
            s = pl.Series(name, x.view(f"{code}8[{unit}]"))
        elif dtype == "Date":
            s = pl.Series(name, x.view("M8[D]"))
        else:
            s = pl.Series(name, x.tolist() if x.dtype.kind == "O" else x)
            s = s.cast(getattr(pl, dtype.split("(")[0]))
        series.append(s)
    return pl.DataFrame(series)
