"""Export of skdae's estimators to ONNX, through skl2onnx.

Importing this module registers a shape calculator and a converter for each
skdae estimator with skl2onnx (its public ``update_registered_converter``),
after which :func:`skl2onnx.to_onnx` and :func:`skl2onnx.convert_sklearn`
convert any pipeline that contains them::

    import skdae.onnx  # registers the converters
    from skl2onnx import to_onnx
    onx = to_onnx(pipeline, X[:1].astype(np.float32))

Only ``import skdae.onnx`` imports skl2onnx and onnx; ``import skdae`` does
not. Both come with the ``onnx`` extra: ``pip install "skdae[onnx]"``.

What the graphs compute
-----------------------
- a transformer (:class:`~skdae.DenoisingAutoencoder`,
  :class:`~skdae.StackedDenoisingAutoencoder`,
  :class:`~skdae.MarginalizedDenoisingAutoencoder` with any ``features``,
  :class:`~skdae.TabularDenoisingAutoencoder` with ``features`` "all" or
  "last") gives its :meth:`transform` output, named ``codes`` when it is
  the last step; ``inverse_transform`` and ``score_samples`` are not
  exported;
- :class:`~skdae.DenoisingAutoencoderImputer` gives its :meth:`transform`
  output, named ``imputed``: observed entries unchanged, missing ones (NaN,
  or equal to a numeric ``missing_values``) predicted, de-standardised and
  clipped as skdae does, the kept columns, then the ``add_indicator``
  columns;
- a classifier (:class:`~skdae.StackedDenoisingAutoencoderClassifier`)
  gives the labels (``label``) and the class probabilities
  (``probabilities``), with skl2onnx's usual classifier options ``zipmap``
  (True, False or "columns"), ``nocl`` and ``output_class_labels``.

The ops run in float for a ``FloatTensorType`` input and in double for a
``DoubleTensorType`` input (the weights are cast to that type); any other
numeric input is cast to float first (to double for the tabular models,
below). Several inputs (``to_onnx`` on a
DataFrame declares one per column) are concatenated. The graphs take dense
input, also for models trained on sparse matrices (the weights are the
same).

The tabular network of the last two computes in float32 in skdae, so its
graph does too, whatever the input: the graph is in float when every input
is float and in double otherwise (integer columns are then read exactly);
the standardisation, ``(x - mean_) / scale_`` with NaN fed as 0 plus a
missing indicator per column, is computed in double as skdae does and the
network's output is cast to the graph's type. A double graph therefore
agrees with skdae within float32 rounding, not double's. Only numeric
columns are exportable: categorical columns (one-hot inputs, the
imputer's most probable category), date and time columns, the imputer's
boolean columns, string ``missing_values`` and ``sample_posterior=True``
are refused at conversion time with a :class:`ValueError` that says what
to do. Like skdae, the graphs feed NaN as missing; infinite values, which
skdae rejects, propagate through them to non-finite outputs.

Adding an estimator
-------------------
Each estimator has a *graph function* ``graph(g, model, X, output)`` that
adds the nodes computing ``output`` (a transformer's result, a classifier's
probabilities) from the tensor ``X`` to the :class:`_Graph` ``g``, in
``g.dtype``. It reads only public fitted attributes and constructor
parameters and raises :class:`ValueError` to say what of a fitted model
cannot be exported (the tabular models' graphs also read the fitted
column state ``_columns``, a plain dict of arrays). For a stack of dense
layers ``act(X @ W + b)`` the graph function is ``_dense_graph(layers)``
with ``layers(model) -> list of _Layer``; others build any nodes with
``g.node``, ``g.constant`` and ``g.dense`` (a second ``_Graph`` on the same
scope and container computes in another type: the tabular network's
float32 layers in a double graph). The function then goes in ``_TRANSFORMERS`` or
``_CLASSIFIERS``, keyed by the estimator class (and a transformer's output
name, if not "codes", in ``_OUTPUT_NAMES``). The input width is
``model.n_features_in_``; a transformer's output width is
``len(model.get_feature_names_out())``.
"""

from collections import namedtuple
from types import SimpleNamespace

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    from onnx import TensorProto
    from onnx.numpy_helper import from_array
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
        guess_proto_type,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skdae.onnx needs the packages skl2onnx and onnx (and onnxruntime to "
        "run the exported graphs). Install them with: pip install "
        "\"skdae[onnx]\"."
    ) from exc

from ._autoencoder import DenoisingAutoencoder
from ._classifier import StackedDenoisingAutoencoderClassifier
from ._columns import _is_missing_scalar
from ._impute import DenoisingAutoencoderImputer
from ._marginalized import MarginalizedDenoisingAutoencoder
from ._stacked import StackedDenoisingAutoencoder, _per_layer
from ._tabular import TabularDenoisingAutoencoder, _BaseTabularNetwork

__all__ = []

# One dense layer ``activation(X @ coef + intercept)``: ``coef`` of shape
# (fan_in, fan_out), ``intercept`` of shape (fan_out,).
_Layer = namedtuple("_Layer", ["coef", "intercept", "activation"])

# ONNX operator of each activation; None is the identity (no node).
_ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "identity": None,
    "softmax": "Softmax",
}

# Classifier options, as skl2onnx's own classifiers declare them. Declaring
# "zipmap" makes skl2onnx parse the estimator as a classifier (outputs
# label and probabilities, then ZipMap unless zipmap=False).
_CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "nocl": [True, False],
    "output_class_labels": [False, True],
}


class _Graph:
    """The ONNX graph under construction, in the element type ``dtype``."""

    def __init__(self, scope, container, dtype):
        self.scope = scope
        self.container = container
        self.dtype = dtype
        self.proto_dtype = (TensorProto.DOUBLE if dtype == np.float64
                            else TensorProto.FLOAT)

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def constant(self, hint, array):
        """An initializer holding ``array``; returns its name."""
        name = self.name(hint)
        array = np.asarray(array)
        if array.dtype.kind in "OUS":  # the container keeps no string raw data
            self.container.add_initializer(
                name, TensorProto.STRING, array.shape,
                [str(s).encode("utf-8") for s in array.ravel()])
        else:
            self.container.add_initializer(name, None, None,
                                           from_array(array, name))
        return name

    def weights(self, hint, array):
        """A constant in the graph's element type."""
        return self.constant(hint, np.ascontiguousarray(array,
                                                        dtype=self.dtype))

    def node(self, op_type, inputs, output=None, **attributes):
        """Add one node; returns the name of its (single) output."""
        output = output or self.name(op_type.lower())
        self.container.add_node(
            op_type, list(inputs), [output],
            name=self.scope.get_unique_operator_name(op_type), **attributes)
        return output

    def dense(self, X, layers, output=None):
        """``MatMul``, ``Add`` and an activation node per layer."""
        for k, layer in enumerate(layers):
            if layer.activation not in _ONNX_ACTIVATIONS:
                raise ValueError(
                    f"skdae.onnx cannot export the activation "
                    f"{layer.activation!r}; the exportable activations are "
                    f"{sorted(_ONNX_ACTIVATIONS)}."
                )
            op_type = _ONNX_ACTIVATIONS[layer.activation]
            out = output if k == len(layers) - 1 else None
            X = self.node("MatMul", [X, self.weights("coef", layer.coef)])
            X = self.node("Add", [X, self.weights("intercept",
                                                  layer.intercept)],
                          out if op_type is None else None)
            if op_type is not None:
                attributes = {"axis": -1} if op_type == "Softmax" else {}
                X = self.node(op_type, [X], out, **attributes)
        return X


# ----------------------------------------------------------------------
# Graph functions of the estimators (public fitted attributes only)
# ----------------------------------------------------------------------
def _dense_graph(layers):
    """The graph function of a model computed by the dense ``layers(model)``."""

    def graph(g, model, X, output):
        g.dense(X, layers(model), output)

    return graph


def _autoencoder_layers(model):
    return [_Layer(model.components_.T, model.intercept_hidden_,
                   model.activation)]


def _stacked_layers(model):
    return [layer for ae in model.autoencoders_
            for layer in _autoencoder_layers(ae)]


def _classifier_layers(model):
    activations = _per_layer(model, "activation", len(model.coefs_) - 1)
    return [_Layer(W, b, act) for W, b, act in
            zip(model.coefs_, model.intercepts_, activations + ["softmax"])]


def _layer_outputs(g, H, layers, output, parts=()):
    """Every layer's output, after ``parts``, side by side in ``output``."""
    parts = list(parts)
    for k, layer in enumerate(layers):
        # The only part of the output: written to it, no Concat.
        alone = not parts and k == len(layers) - 1
        H = g.dense(H, [layer], output if alone else None)
        parts.append(H)
    if len(parts) > 1:
        g.node("Concat", parts, output, axis=1)


def _marginalized_graph(g, model, X, output):
    """The layers' outputs, after the input with ``features="all"``.

    Layer ``k`` is ``activation(H @ coefs_[k].T + intercepts_[k])``; the
    reduced variant's first layer is already one (r, d) matrix.
    """
    layers = [_Layer(W.T, b, model.activation)
              for W, b in zip(model.coefs_, model.intercepts_)]
    if model.features == "last":
        g.dense(X, layers, output)
    else:
        _layer_outputs(g, X, layers, output,
                       [X] if model.features == "all" else [])


# ----------------------------------------------------------------------
# The tabular network (TabularDenoisingAutoencoder and the imputer)
# ----------------------------------------------------------------------
# Column dtypes (as the fitted column state records them) that a numeric
# tensor cannot feed as skdae reads them: times become integers of their
# unit, NaT is missing.
_TIME_DTYPES = ("datetime", "timedelta", "duration", "date")


def _numeric_columns(model):
    """The fitted column state of a tabular model, if ONNX can feed it.

    Raises ValueError naming the columns that a numeric tensor cannot
    feed as skdae does (categorical and time columns).
    """
    state = model._columns
    name = type(model).__name__
    labels = (state["feature_names"] if state["feature_names"] is not None
              else [f"x{j}" for j in range(len(state["dtypes"]))])
    categorical = [str(labels[j]) for j in
                   np.flatnonzero(state["is_categorical"])]
    if categorical:
        raise ValueError(
            f"{name} has categorical columns ({', '.join(categorical)}), "
            "which skdae.onnx cannot export: their one-hot inputs "
            + ("and the most probable category " if hasattr(
                model, "missing_values") else "")
            + "would need string tensors and a lookup of the fitted "
            "categories, which the exported graphs do not hold. Encode them "
            "before the model (e.g. a ColumnTransformer with a OneHotEncoder, "
            "which skl2onnx converts) and fit it with "
            "categorical_features=None, or save the model with pickle or "
            "skops instead.")
    times = [str(labels[j]) for j, dtype in enumerate(state["dtypes"])
             if dtype.lower().startswith(_TIME_DTYPES)]
    if times:
        raise ValueError(
            f"{name} was fitted on date or time columns ({', '.join(times)}),"
            " which skdae.onnx cannot export: skdae reads them as integers "
            "of their unit with NaT missing, which an ONNX tensor cannot "
            "carry. Convert them to numbers (e.g. X[col].astype('int64') or "
            "seconds as floats, NaN where missing) and fit on those.")
    if hasattr(model, "missing_values") and any(
            dtype.lower() in ("bool", "boolean") for dtype in state["dtypes"]):
        raise ValueError(
            f"{name} was fitted on boolean columns treated as numeric, which "
            "skdae.onnx cannot export (their imputations are booleans). Cast "
            "them to float before the imputer and fit on those.")
    n = len(state["dtypes"])
    if not (np.array_equal(state["input_start"], np.arange(n))
            and np.array_equal(state["indicator"], n + np.arange(n))):
        raise ValueError(  # pragma: no cover - the layout of numeric tables
            f"{name}: unexpected input layout for a numeric table.")
    return state


def _missing_mask(g, model, X):
    """Where X is missing: NaN, or equal to the imputer's missing_values."""
    missing = g.node("IsNaN", [X])
    placeholder = getattr(model, "missing_values", np.nan)
    if placeholder is None or _is_missing_scalar(placeholder):
        return missing
    if isinstance(placeholder, str):
        raise ValueError(
            f"{type(model).__name__} with missing_values={placeholder!r}: "
            "a numeric ONNX tensor cannot hold that string. Replace it by NaN "
            "before the imputer and fit with missing_values=np.nan.")
    # Compared in the graph's type, as NumPy compares X with a Python scalar.
    equal = g.node("Equal", [X, g.weights("missing_values", placeholder)])
    return g.node("Or", [missing, equal])


def _network_inputs(g, state, X, missing):
    """The network's float inputs, as ``_columns.encode`` computes them.

    Each column standardised in double, ``(x - mean) / scale``, 0 where
    missing, then cast to float; then one missing indicator per column.
    """
    if g.dtype != np.float64:
        X = g.node("Cast", [X], to=TensorProto.DOUBLE)
    Z = g.node("Div", [g.node("Sub", [X, g.constant("mean", state["mean"])]),
                       g.constant("scale", state["scale"])])
    Z = g.node("Where", [missing, g.constant("zero", np.float64(0.0)), Z])
    return g.node("Concat", [g.node("Cast", [Z], to=TensorProto.FLOAT),
                             g.node("Cast", [missing], to=TensorProto.FLOAT)],
                  axis=1)


def _network_layers(model, stop=None):
    """The tabular network's layers ``[:stop]``; the output layer is linear.

    ``model`` is a fitted estimator, or one of the imputer's ``networks_``
    (a namespace with the activation, ``coefs_`` and ``intercepts_``).
    """
    activations = [model.activation] * (len(model.coefs_) - 1) + ["identity"]
    return [_Layer(W, b, act) for W, b, act in
            zip(model.coefs_, model.intercepts_, activations)][:stop]


def _networks(imputer):
    """The imputer's averaged networks, as ``_network_layers`` takes them."""
    return [SimpleNamespace(activation=imputer.activation,
                            coefs_=net["coefs"], intercepts_=net["intercepts"])
            for net in imputer.networks_]


def _in_graph_type(g, Y, output):
    """``output``: the float tensor Y, cast to double in a double graph."""
    if g.dtype == np.float64:
        return g.node("Cast", [Y], output, to=TensorProto.DOUBLE)
    return g.node("Identity", [Y], output)


def _tabular_graph(g, model, X, output):
    """``transform``: the encoder's layers (or the code) of the clean rows.

    The network computes in float, as skdae's does; in a double graph the
    standardisation is in double (as in skdae) and the result is cast to
    double.
    """
    state = _numeric_columns(model)
    net = _Graph(g.scope, g.container, np.float32)
    H = _network_inputs(g, state, X, _missing_mask(g, model, X))
    layers = _network_layers(model, model._n_encoder_layers)
    out = net.name("features")
    if model.features == "last":
        net.dense(H, layers, out)
    else:
        _layer_outputs(net, H, layers, out)
    _in_graph_type(g, out, output)


def _imputer_graph(g, model, X, output):
    """``transform``: X with its missing entries replaced by predictions.

    As ``DenoisingAutoencoderImputer._predictions`` and ``_columns.decode``
    compute them: the network's output (float) in double, clipped to the
    fitted range in standardised units (0 for constant and never observed
    columns), then ``* scale + mean``; integer columns of a DataFrame
    rounded and clipped to their fitted range. Observed entries pass
    through; the kept columns, then the missing indicators.
    """
    if model.sample_posterior:
        raise ValueError(
            f"{type(model).__name__} with sample_posterior=True draws its "
            "imputations at random, which an ONNX graph cannot reproduce. "
            "To export the predictions instead, convert it after "
            "set_params(sample_posterior=False) (only transform reads "
            "sample_posterior: the fitted weights stay).")
    state = _numeric_columns(model)
    net = _Graph(g.scope, g.container, np.float32)
    missing = _missing_mask(g, model, X)
    inputs = _network_inputs(g, state, X, missing)
    # The average of the networks' outputs, summed in order, as skdae does.
    outputs = [net.dense(inputs, _network_layers(network))
               for network in _networks(model)]
    A = outputs[0]
    for other in outputs[1:]:
        A = net.node("Add", [A, other])
    if len(outputs) > 1:
        A = net.node("Div", [A, net.constant(
            "n_networks", np.float32(len(outputs)))])
    A = g.node("Cast", [A], to=TensorProto.DOUBLE)
    mean, scale = state["mean"], state["scale"]
    low = (state["minimum"] - mean) / scale
    high = (state["maximum"] - mean) / scale
    constant = state["minimum"] == state["maximum"]
    low[constant] = high[constant] = 0.0
    A = g.node("Min", [g.node("Max", [A, g.constant("low", low)]),
                       g.constant("high", high)])
    imputed = g.node("Add", [g.node("Mul", [A, g.constant("scale", scale)]),
                             g.constant("mean", mean)])
    integer = np.array(["int" in dtype.lower() for dtype in state["dtypes"]])
    if state["container"] != "array" and integer.any():
        rounded = g.node("Min", [
            g.node("Max", [g.node("Round", [imputed]),
                           g.constant("minimum", state["minimum"])]),
            g.constant("maximum", state["maximum"])])
        imputed = g.node("Where", [g.constant("integer", integer), rounded,
                                   imputed])
    if g.dtype != np.float64:
        imputed = g.node("Cast", [imputed], to=TensorProto.FLOAT)
    kept = np.flatnonzero(model._kept())
    indicator = model.indicator_
    parts = [g.node("Where", [missing, imputed, X])]
    if kept.shape[0] < len(state["dtypes"]):
        parts[0] = g.node("Gather", [parts[0], g.constant(
            "kept", kept.astype(np.int64))], axis=1)
    if indicator is not None and indicator.features_.shape[0]:
        parts.append(g.node("Cast", [g.node("Gather", [missing, g.constant(
            "indicator", indicator.features_.astype(np.int64))], axis=1)],
            to=g.proto_dtype))
    if len(parts) == 1:
        g.node("Identity", parts, output)
    else:
        g.node("Concat", parts, output, axis=1)


# Estimator class -> graph function. A transformer's graph computes its
# transform; a classifier's its class probabilities (the labels follow).
_TRANSFORMERS = {
    DenoisingAutoencoder: _dense_graph(_autoencoder_layers),
    StackedDenoisingAutoencoder: _dense_graph(_stacked_layers),
    MarginalizedDenoisingAutoencoder: _marginalized_graph,
    TabularDenoisingAutoencoder: _tabular_graph,
    DenoisingAutoencoderImputer: _imputer_graph,
}
_CLASSIFIERS = {
    StackedDenoisingAutoencoderClassifier: _dense_graph(_classifier_layers),
}
# Name of a transformer's output when it ends the pipeline, if not "codes".
_OUTPUT_NAMES = {DenoisingAutoencoderImputer: "imputed"}


# ----------------------------------------------------------------------
# Shape calculators and converters shared by all estimators
# ----------------------------------------------------------------------
def _check_input(operator):
    """Fitted model and declared inputs whose widths sum to n_features_in_."""
    model = operator.raw_operator
    check_is_fitted(model)
    shapes = [variable.type.shape for variable in operator.inputs]
    n_features = model.n_features_in_
    widths = [shape[1] if len(shape) == 2 else None for shape in shapes]
    if None in widths or (all(isinstance(w, int) for w in widths)
                          and sum(widths) != n_features):
        declared = " + ".join(str(list(shape)) for shape in shapes)
        raise ValueError(
            f"{type(model).__name__} was fitted on {n_features} features, but "
            f"its ONNX input is declared with shape {declared}. Declare the "
            f"input as [None, {n_features}] (e.g. to_onnx(model, "
            "X[:1].astype(np.float32)))."
        )


def _is_double(model, inputs):
    """Whether the graph computes in double.

    When all its inputs are double; for the tabular models, unless all its
    inputs are float: they read every column in double (integers exactly,
    as skdae does) and, for the imputer, pass observed entries through.
    """
    if isinstance(model, _BaseTabularNetwork):
        return not all(isinstance(variable.type, FloatTensorType)
                       for variable in inputs)
    return all(isinstance(variable.type, DoubleTensorType)
               for variable in inputs)


def _output_type(model, inputs, shape):
    double = _is_double(model, inputs)
    return (DoubleTensorType if double else FloatTensorType)(shape)


def _start_graph(scope, operator, container):
    """The graph, in double or float (``_is_double``); its input.

    Several inputs (one per column of a DataFrame, say) are cast to the
    graph's type and concatenated, in their order.
    """
    double = _is_double(operator.raw_operator, operator.inputs)
    g = _Graph(scope, container, np.float64 if double else np.float32)
    inputs = [
        variable.full_name if guess_proto_type(variable.type) == g.proto_dtype
        else g.node("Cast", [variable.full_name], to=g.proto_dtype)
        for variable in operator.inputs
    ]
    X = inputs[0] if len(inputs) == 1 else g.node("Concat", inputs, axis=1)
    return g, X


def _parse_transformer(scope, model, inputs, custom_parsers=None):
    """One output, named "codes" by default, in the type of the graph."""
    operator = scope.declare_local_operator(
        f"Skdae{type(model).__name__}", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable(
        _OUTPUT_NAMES.get(type(model), "codes"),
        _output_type(model, inputs, None)))
    return operator.outputs


def _transformer_shape(operator):
    _check_input(operator)
    model = operator.raw_operator
    operator.outputs[0].type = _output_type(model, operator.inputs, [
        operator.inputs[0].get_first_dimension(),
        len(model.get_feature_names_out())])


def _convert_transformer(scope, operator, container):
    model = operator.raw_operator
    g, X = _start_graph(scope, operator, container)
    _TRANSFORMERS[type(model)](g, model, X, operator.outputs[0].full_name)


def _classifier_shapes(operator):
    """Labels [N] (int64 or strings), probabilities [N, n_classes]."""
    _check_input(operator)
    model = operator.raw_operator
    n_rows = operator.inputs[0].get_first_dimension()
    nocl = operator.scope_inst.get_options(model, dict(nocl=False))["nocl"]
    numeric = nocl or _label_values(model).dtype == np.int64
    operator.outputs[0].type = (Int64TensorType if numeric
                                else StringTensorType)([n_rows])
    operator.outputs[1].type = _output_type(
        model, operator.inputs, [n_rows, len(model.classes_)])


def _label_values(model):
    """The label of each class index, as int64 or strings.

    Numeric labels become int64, as in skl2onnx's own classifiers (float
    labels are integral: classifiers reject others as continuous targets).
    """
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "biuf":
        return classes.astype(np.int64)
    return classes.astype(str)


def _convert_classifier(scope, operator, container):
    """Probabilities by the graph function, labels by ArgMax and Gather."""
    model = operator.raw_operator
    g, X = _start_graph(scope, operator, container)
    options = container.get_options(model, dict(nocl=False, zipmap=True))
    if g.dtype == np.float64 and options["zipmap"] is not False:
        raise ValueError(
            f"{type(model).__name__} with a double input: ONNX's ZipMap takes "
            "only float probabilities. Convert with options={id(model): "
            "{'zipmap': False}} (or options={type(model): {'zipmap': False}})"
            " to get the probabilities as a double tensor."
        )
    label, proba = (out.full_name for out in operator.outputs[:2])
    _CLASSIFIERS[type(model)](g, model, X, proba)
    # np.argmax and ArgMax both return the first of tied maxima.
    index = g.node("ArgMax", [proba], label if options["nocl"] else None,
                   axis=1, keepdims=0)
    if not options["nocl"]:
        g.node("Gather", [g.constant("classes", _label_values(model)), index],
               label, axis=0)


for _cls in _TRANSFORMERS:
    update_registered_converter(_cls, f"Skdae{_cls.__name__}",
                                _transformer_shape, _convert_transformer,
                                parser=_parse_transformer)
for _cls in _CLASSIFIERS:
    update_registered_converter(_cls, f"Skdae{_cls.__name__}",
                                _classifier_shapes, _convert_classifier,
                                options=_CLASSIFIER_OPTIONS)
