"""Export of skdae's estimators to ONNX, through skl2onnx.

Importing this module registers a shape calculator and a converter for each
skdae estimator with skl2onnx (its public ``update_registered_converter``),
after which :func:`skl2onnx.to_onnx` and :func:`skl2onnx.convert_sklearn`
convert any pipeline that contains them::

    import skdae.onnx  # noqa: F401 (registers the converters)
    from skl2onnx import to_onnx
    onx = to_onnx(pipeline, X[:1].astype(np.float32))

Only ``import skdae.onnx`` imports skl2onnx and onnx; ``import skdae`` does
not. Both come with the ``onnx`` extra: ``pip install "skdae[onnx]"``.

What the graphs compute
-----------------------
- a transformer (:class:`~skdae.DenoisingAutoencoder`,
  :class:`~skdae.StackedDenoisingAutoencoder`) maps its dense input to its
  :meth:`transform` codes, in one output named ``codes`` when it is the last
  step; ``inverse_transform`` and ``score_samples`` are not exported;
- :class:`~skdae.StackedDenoisingAutoencoderClassifier` gives the labels
  (``label``) and the class probabilities (``probabilities``), with
  skl2onnx's usual classifier options ``zipmap`` (True, False or
  "columns"), ``nocl`` and ``output_class_labels``.

The ops run in float for a ``FloatTensorType`` input and in double for a
``DoubleTensorType`` input (the weights are cast to that type); any other
numeric input is cast to float first. The graphs take dense input, also for
models trained on sparse matrices (the weights are the same).

Adding an estimator
-------------------
An estimator whose output is a stack of dense layers (``act(X @ W + b)``)
needs one function ``model -> list of Layer`` and an entry in
``_TRANSFORMER_LAYERS`` or ``_CLASSIFIER_LAYERS``. The layers are read from
public fitted attributes only. A function raises :class:`ValueError` to say
what of a fitted model cannot be exported. An estimator whose graph needs
other operators writes its own converter on top of :func:`add_dense_layers`
and registers it with :func:`_register_transformer` (``convert=...``).
"""

from collections import namedtuple

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    from onnx import TensorProto
    from onnx.numpy_helper import from_array
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        guess_proto_type,
        guess_tensor_type,
    )
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skdae.onnx needs the packages skl2onnx and onnx (and onnxruntime to "
        "run the exported graphs). Install them with: pip install "
        "\"skdae[onnx]\"."
    ) from exc

from ._autoencoder import DenoisingAutoencoder
from ._classifier import StackedDenoisingAutoencoderClassifier
from ._stacked import StackedDenoisingAutoencoder

__all__ = ["Layer", "add_dense_layers"]

#: One dense layer ``activation(X @ coef + intercept)``: ``coef`` of shape
#: (fan_in, fan_out), ``intercept`` of shape (fan_out,), ``activation`` one of
#: the keys of ``ONNX_ACTIVATIONS``.
Layer = namedtuple("Layer", ["coef", "intercept", "activation"])

# ONNX operator of each activation; None is the identity (no node).
ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "identity": None,
    "softmax": "Softmax",
}

# Classifier options, as skl2onnx's own classifiers declare them. Declaring
# "zipmap" makes skl2onnx parse the estimator as a classifier (outputs
# label and probabilities, ZipMap appended unless zipmap=False).
_CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "nocl": [True, False],
    "output_class_labels": [False, True],
}


# ----------------------------------------------------------------------
# Layers of each estimator, from its public fitted attributes
# ----------------------------------------------------------------------
def _autoencoder_layers(model):
    return [Layer(model.components_.T, model.intercept_hidden_,
                  model.activation)]


def _stacked_layers(model):
    return [layer for ae in model.autoencoders_
            for layer in _autoencoder_layers(ae)]


def _per_layer_values(model, name, n_layers):
    """Constructor parameter ``name`` as one value per layer."""
    value = getattr(model, name)
    if isinstance(value, str):
        return [value] * n_layers
    values = list(value)
    if len(values) != n_layers:
        raise ValueError(
            f"{type(model).__name__}.{name} has {len(values)} values for "
            f"{n_layers} hidden layers; cannot tell the activation of each "
            "layer. Set it to one value per layer (as in fit) and convert "
            "again."
        )
    return values


def _classifier_layers(model):
    n_hidden = len(model.coefs_) - 1
    activations = _per_layer_values(model, "activation", n_hidden)
    activations.append("softmax")
    return [Layer(W, b, act) for W, b, act in
            zip(model.coefs_, model.intercepts_, activations)]


# Estimator class -> function giving its layers. Adding an estimator whose
# output is a stack of dense layers is one function and one entry here.
_TRANSFORMER_LAYERS = {
    DenoisingAutoencoder: _autoencoder_layers,
    StackedDenoisingAutoencoder: _stacked_layers,
}
_CLASSIFIER_LAYERS = {
    StackedDenoisingAutoencoderClassifier: _classifier_layers,
}


def _layers_of(model, table):
    """The validated layers of the fitted ``model``."""
    check_is_fitted(model)
    layers = table[type(model)](model)
    for layer in layers:
        if layer.activation not in ONNX_ACTIVATIONS:
            raise ValueError(
                f"{type(model).__name__} uses the activation "
                f"{layer.activation!r}, which skdae.onnx cannot export; the "
                f"exportable activations are {sorted(ONNX_ACTIVATIONS)}."
            )
    return layers


# ----------------------------------------------------------------------
# Graph building
# ----------------------------------------------------------------------
def _graph_dtype(operator):
    """NumPy and ONNX element type of the graph: double or float."""
    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return np.float64, TensorProto.DOUBLE
    return np.float32, TensorProto.FLOAT


def _graph_input(scope, operator, container, proto_dtype):
    """Name of the operator's input, cast to ``proto_dtype`` if needed."""
    name = operator.inputs[0].full_name
    if guess_proto_type(operator.inputs[0].type) == proto_dtype:
        return name
    cast = scope.get_unique_variable_name("cast_input")
    container.add_node("Cast", [name], [cast], to=proto_dtype,
                       name=scope.get_unique_operator_name("Cast"))
    return cast


def _add_constant(scope, container, name, array):
    unique = scope.get_unique_variable_name(name)
    if array.dtype == object:  # strings (the container copies no raw data)
        container.add_initializer(unique, TensorProto.STRING, array.shape,
                                  [str(s).encode("utf-8") for s in array])
    else:
        container.add_initializer(unique, None, None,
                                  from_array(array, unique))
    return unique


def add_dense_layers(scope, container, input_name, layers, dtype, output_name):
    """Add ``MatMul``, ``Add`` and activation nodes for each layer.

    Parameters
    ----------
    scope : skl2onnx.common._topology.Scope
        The scope of the conversion (gives unique names).

    container : skl2onnx.common._container.ModelComponentContainer
        The graph under construction.

    input_name : str
        Name of the input tensor of the first layer.

    layers : list of Layer
        The layers, from the input up.

    dtype : {np.float32, np.float64}
        Element type of the weights in the graph.

    output_name : str
        Name of the output tensor of the last layer.
    """
    below = input_name
    for k, layer in enumerate(layers):
        coef = _add_constant(scope, container, "coef",
                             np.ascontiguousarray(layer.coef, dtype=dtype))
        intercept = _add_constant(scope, container, "intercept",
                                  np.asarray(layer.intercept, dtype=dtype))
        product = scope.get_unique_variable_name("product")
        container.add_node("MatMul", [below, coef], [product],
                           name=scope.get_unique_operator_name("MatMul"))
        op_type = ONNX_ACTIVATIONS[layer.activation]
        last = k == len(layers) - 1
        pre = (output_name if last and op_type is None
               else scope.get_unique_variable_name("pre_activation"))
        container.add_node("Add", [product, intercept], [pre],
                           name=scope.get_unique_operator_name("Add"))
        if op_type is None:
            below = pre
            continue
        below = output_name if last else scope.get_unique_variable_name(
            "activation")
        attributes = {"axis": 1} if op_type == "Softmax" else {}
        container.add_node(op_type, [pre], [below],
                           name=scope.get_unique_operator_name(op_type),
                           **attributes)


def _check_input_width(operator, layers):
    """Clear error when the declared input width does not fit the model."""
    model = operator.raw_operator
    shape = operator.inputs[0].type.shape
    n_features = layers[0].coef.shape[0]
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_features):
        raise ValueError(
            f"{type(model).__name__} was fitted on {n_features} features, but "
            f"its ONNX input is declared with shape {list(shape)}. Declare the "
            f"input as [None, {n_features}] (e.g. to_onnx(model, "
            "X[:1].astype(np.float32)))."
        )


# ----------------------------------------------------------------------
# Transformers: parser, shape calculator, converter
# ----------------------------------------------------------------------
def _register_transformer(cls, convert=None):
    """Register ``cls``, a transformer, with skl2onnx.

    By default its graph is the dense layers of ``_TRANSFORMER_LAYERS[cls]``;
    ``convert(scope, operator, container)`` replaces that converter (its
    output tensor is ``operator.outputs[0].full_name``, of shape
    [N, ``model._n_features_out``] declared by the shape calculator).
    """
    alias = f"Skdae{cls.__name__}"

    def parse(scope, model, inputs, custom_parsers=None):
        # A named output, in the element type of the input.
        operator = scope.declare_local_operator(alias, model)
        operator.inputs = inputs
        codes = scope.declare_local_variable(
            "codes", guess_tensor_type(inputs[0].type))
        operator.outputs.append(codes)
        return operator.outputs

    def calculate_shape(operator):
        model = operator.raw_operator
        layers = _layers_of(model, _TRANSFORMER_LAYERS)
        _check_input_width(operator, layers)
        n_rows = operator.inputs[0].get_first_dimension()
        output_type = guess_tensor_type(operator.inputs[0].type)
        output_type.shape = [n_rows, layers[-1].coef.shape[1]]
        operator.outputs[0].type = output_type

    update_registered_converter(
        cls, alias, calculate_shape, convert or _convert_transformer,
        parser=parse)


def _convert_transformer(scope, operator, container):
    model = operator.raw_operator
    dtype, proto_dtype = _graph_dtype(operator)
    layers = _layers_of(model, _TRANSFORMER_LAYERS)
    add_dense_layers(scope, container,
                     _graph_input(scope, operator, container, proto_dtype),
                     layers, dtype, operator.outputs[0].full_name)


# ----------------------------------------------------------------------
# Classifiers
# ----------------------------------------------------------------------
def _label_values(model):
    """The label of each class index, as an int64 or a string array.

    Numeric labels become int64, as in skl2onnx's own classifiers (float
    labels are integral: classifiers reject others as continuous targets).
    """
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "biuf":
        return classes.astype(np.int64)
    return np.array([str(c) for c in classes], dtype=object)


def _convert_classifier(scope, operator, container):
    """Probabilities by the dense layers, labels by ArgMax and Gather."""
    model = operator.raw_operator
    dtype, proto_dtype = _graph_dtype(operator)
    layers = _layers_of(model, _CLASSIFIER_LAYERS)
    options = container.get_options(model, dict(nocl=False, zipmap=True))
    if proto_dtype == TensorProto.DOUBLE and options["zipmap"] is not False:
        raise ValueError(
            f"{type(model).__name__} with a double input: ONNX's ZipMap takes "
            "only float probabilities. Convert with options={id(model): "
            "{'zipmap': False}} (or options={type(model): {'zipmap': False}})"
            " to get the probabilities as a double tensor."
        )
    labels = None if options["nocl"] else _label_values(model)
    label_name, proba_name = (out.full_name for out in operator.outputs[:2])
    add_dense_layers(scope, container,
                     _graph_input(scope, operator, container, proto_dtype),
                     layers, dtype, proba_name)
    # np.argmax and ONNX ArgMax both return the first maximum.
    index = label_name if labels is None else scope.get_unique_variable_name(
        "class_index")
    container.add_node("ArgMax", [proba_name], [index], axis=1, keepdims=0,
                       name=scope.get_unique_operator_name("ArgMax"))
    if labels is not None:
        classes = _add_constant(scope, container, "classes", labels)
        container.add_node("Gather", [classes, index], [label_name], axis=0,
                           name=scope.get_unique_operator_name("Gather"))


def _calculate_classifier_shapes(operator):
    layers = _layers_of(operator.raw_operator, _CLASSIFIER_LAYERS)
    _check_input_width(operator, layers)
    calculate_linear_classifier_output_shapes(operator)


def _register_classifier(cls):
    update_registered_converter(
        cls, f"Skdae{cls.__name__}", _calculate_classifier_shapes,
        _convert_classifier, options=_CLASSIFIER_OPTIONS)


for _cls in _TRANSFORMER_LAYERS:
    _register_transformer(_cls)
for _cls in _CLASSIFIER_LAYERS:
    _register_classifier(_cls)
