"""TF.js graph-model (``model.json`` + ``*.bin``) to ONNX converter, numpy + onnx only.

Why: the face models shipped with ``@vladmandic/human`` are TF.js graph models; the service runs
ONNX Runtime, and installing TensorFlow just to convert a few small graphs is not worth it. One module
of ~1,250 lines, on purpose: it is a table of TF ops and their ONNX lowerings over one shared graph
state and layout rule (below); each op's lowering is short, and splitting the table would scatter one
translation across files.

Input format
    ``model.json`` with ``modelTopology.node`` (a frozen TF GraphDef in JSON form) and
    ``weightsManifest`` (groups of ``.bin`` shards, ``float32``/``int32``/``bool`` weights, optionally
    ``quantization`` entries: ``uint8``/``uint16`` affine ``q * scale + min`` and ``float16``).
    Consts without a manifest entry are read from their inline ``value`` tensor.

Supported ops
    Const, Placeholder (exactly one), Identity (control inputs ``^x`` are ignored);
    Conv2D, _FusedConv2D, DepthwiseConv2dNative, FusedDepthwiseConv2dNative
    (fused_ops: BiasAdd, Relu, Relu6, Prelu, LeakyRelu, Elu, Sigmoid, Tanh; padding SAME/VALID/EXPLICIT);
    MaxPool, AvgPool; Pad, PadV2; ResizeBilinear, ResizeNearestNeighbor (align_corners and
    half_pixel_centers honoured); Add, AddV2, BiasAdd, Sub, Mul, RealDiv, Div, Minimum, Maximum,
    SquaredDifference;
    Relu, Relu6, LeakyRelu, Prelu, Elu, Sigmoid, Tanh, Abs, Neg, Exp, Sqrt, Rsqrt, Square, Softmax, Cast;
    Mean, Sum, Max, Min, Prod; MatMul, _FusedMatMul (BiasAdd + activation); Reshape, Squeeze,
    ExpandDims, ConcatV2. Anything else raises :class:`UnsupportedOpError` naming the op and node:
    pass ``outputs=`` to cut a graph before an unsupported tail (e.g. centernet's TopK decode).

Layout strategy
    The ONNX model keeps TF's interface: the input is NHWC and every output has the TF.js shape, so
    pre/post-processing ported from human's TypeScript stays valid. Internally each 4-D value carries
    a layout tag (``nhwc`` or ``nchw``). Conv/pool/resize ops need NCHW and produce NCHW; elementwise
    ops, activations, Pad, Softmax, ConcatV2 and reductions follow the layout of their inputs (constant
    operands and axes are permuted at conversion time instead of transposing activations). Only ops
    whose meaning depends on the memory order (Reshape, ExpandDims, MatMul, graph outputs) force a
    ``Transpose`` back to NHWC. Each value is transposed at most once per layout (cached), so a typical
    CNN ends up with one transpose after the input and one per reshape/output.

Rewrites (speed only, same numbers)
    ``Relu``/``Relu6``/``Minimum``/``Maximum`` by a scalar become clamps, and a chain of clamps
    (Keras' ``Relu -> Minimum(6) -> Maximum(0)``) one ``Clip``, which ONNX Runtime fuses into the
    preceding Conv. The PReLU decompositions TF exporters emit (``Relu(x) + (x - |x|) * k``,
    ``x + (x - |x|) * k``, ``Maximum(x, 0) + g * Minimum(x, 0)``) become one ``PRelu``. SAME padding
    becomes explicit ``pads`` where H and W are static. Nodes and weights no output needs are dropped.

Batch
    A ``-1`` batch in the Placeholder becomes the symbolic dim ``batch``. A fixed batch (blazeface and
    centernet declare 1) stays fixed unless ``input_shape`` asks for a dynamic one (``-1``/None first):
    then Reshape targets whose leading dim equals the declared batch copy the input's dim 0 instead
    (ONNX ``0``). That assumes such reshapes keep the batch leading, as these exporters' heads do;
    check a batched run against single runs when converting a new model that way.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ConversionInfo", "TfjsConversionError", "UnsupportedOpError", "convert_graph_model"]

OPSET = 17
NHWC = "nhwc"
NCHW = "nchw"
PLAIN = "plain"  # rank != 4: no layout question
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
#: position of an NHWC axis in NCHW order
_NHWC_AXIS_IN_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}
#: NCHW positions of the NHWC axes, in NHWC order (gathers an NCHW shape back into NHWC order)
_NHWC_AXIS_IN_NCHW_LIST = (0, 2, 3, 1)

_TF_DTYPES: dict[str, type[np.generic]] = {
    "DT_FLOAT": np.float32,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_BOOL": np.bool_,
    "DT_HALF": np.float16,
}
_MANIFEST_DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "float16": np.float16,
}
_ONNX_DTYPES = {"DT_FLOAT": TensorProto.FLOAT, "DT_INT32": TensorProto.INT32, "DT_INT64": TensorProto.INT64}


class TfjsConversionError(ValueError):
    """The graph model cannot be converted (malformed json, missing weights, bad attributes)."""


class UnsupportedOpError(TfjsConversionError):
    """A node uses an op this converter does not implement."""

    def __init__(self, op: str, node: str) -> None:
        super().__init__(f"unsupported TF.js op {op!r} at node {node!r}")
        self.op = op
        self.node = node


@dataclass(frozen=True)
class ConversionInfo:
    """What :func:`convert_graph_model` produced.

    Shapes use ``None`` for dynamic dims (the batch); op counts are of the converted (pruned) TF graph.
    """

    onnx_path: Path
    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: list[str]
    output_shapes: list[tuple[int | None, ...]]
    tf_op_counts: dict[str, int]
    onnx_op_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Value:
    """A converted tensor: its ONNX name, rank, layout tag and constant data when known."""

    name: str
    rank: int
    layout: str = PLAIN
    const: np.ndarray | None = None


# ----------------------------------------------------------------------------- model.json reading


def _load_weights(model_json: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Decode every weight of the manifest into float32/int32/bool arrays keyed by name."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            arr, offset = _decode_weight(spec, data, offset)
            out[spec["name"]] = arr
    return out


def _decode_weight(spec: dict[str, Any], data: bytes, offset: int) -> tuple[np.ndarray, int]:
    """Read one manifest entry at ``offset``; return it (dequantised) and the next offset."""
    shape = tuple(int(d) for d in spec["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    quant = spec.get("quantization")
    stored = quant["dtype"] if quant else spec["dtype"]
    if stored not in _MANIFEST_DTYPES:
        raise TfjsConversionError(f"weight {spec['name']!r}: unsupported dtype {stored!r}")
    np_dtype = np.dtype(_MANIFEST_DTYPES[stored])
    end = offset + count * np_dtype.itemsize
    if end > len(data):
        raise TfjsConversionError(f"weight {spec['name']!r} runs past the end of its shards")
    raw = np.frombuffer(data, dtype=np_dtype.newbyteorder("<"), count=count, offset=offset)
    arr = _dequantize(raw, spec, quant) if quant else raw
    return arr.reshape(shape).copy(), end


def _dequantize(raw: np.ndarray, spec: dict[str, Any], quant: dict[str, Any]) -> np.ndarray:
    """Undo TF.js weight quantisation (float16 cast, or affine uint8/uint16)."""
    target = np.dtype(_MANIFEST_DTYPES.get(spec["dtype"], np.float32))
    if quant["dtype"] == "float16":
        return raw.astype(np.float32).astype(target)
    scale = float(quant.get("scale", 1.0))
    minimum = float(quant.get("min", 0.0))
    return (raw.astype(np.float32) * scale + minimum).astype(target)


def _attr_tensor(attr: dict[str, Any]) -> np.ndarray:
    """Decode a GraphDef ``TensorProto`` in JSON form (inline Const values)."""
    dtype = np.dtype(_TF_DTYPES.get(attr.get("dtype", "DT_FLOAT"), np.float32))
    dims = [int(d.get("size", 0)) for d in attr.get("tensorShape", {}).get("dim", [])]
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if "tensorContent" in attr:
        raw = base64.b64decode(attr["tensorContent"])
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)
    if "halfVal" in attr:  # float16 bit patterns stored as ints
        bits = np.asarray(attr["halfVal"], np.uint16).view(np.float16).astype(dtype)
        return np.broadcast_to(bits, (count,)).reshape(dims).copy()
    for key in ("floatVal", "intVal", "int64Val", "boolVal"):
        if key in attr:
            vals = np.asarray(attr[key], dtype=dtype)
            return np.broadcast_to(vals if vals.size else np.zeros(1, dtype), (count,)).reshape(dims).copy()
    return np.zeros(dims, dtype=dtype)


def _split_input(ref: str) -> tuple[str, int]:
    """``"node:1"`` -> ``("node", 1)``; ``"node"`` -> ``("node", 0)``."""
    name, sep, idx = ref.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return ref, 0


def _tensor_name(node: str, index: int) -> str:
    return node if index == 0 else f"{node}:{index}"


def _toposort(nodes: dict[str, dict[str, Any]], outputs: list[str]) -> list[dict[str, Any]]:
    """Nodes needed for ``outputs``, dependencies first (the json order is not topological)."""
    order: list[dict[str, Any]] = []
    state: dict[str, int] = {}
    stack: list[tuple[str, bool]] = [(o, False) for o in reversed(outputs)]
    while stack:
        name, done = stack.pop()
        if done:
            if state.get(name) != 2:
                state[name] = 2
                order.append(nodes[name])
            continue
        if state.get(name):
            continue
        if name not in nodes:
            raise TfjsConversionError(f"graph has no node {name!r}")
        state[name] = 1
        stack.append((name, True))
        for ref in nodes[name].get("input", []):
            if not ref.startswith("^"):
                stack.append((_split_input(ref)[0], False))
    return order


# ----------------------------------------------------------------------------- attribute helpers


def _attr_s(node: dict[str, Any], key: str, default: str = "") -> str:
    val = node.get("attr", {}).get(key, {}).get("s")
    return base64.b64decode(val).decode() if val else default


def _attr_ints(node: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _attr_strs(node: dict[str, Any], key: str) -> list[str]:
    vals = node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])
    return [base64.b64decode(v).decode() for v in vals]


def _attr_b(node: dict[str, Any], key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


def _attr_f(node: dict[str, Any], key: str, default: float) -> float:
    return float(node.get("attr", {}).get(key, {}).get("f", default))


def _check_nhwc(node: dict[str, Any]) -> None:
    fmt = _attr_s(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise TfjsConversionError(f"node {node['name']!r}: data_format {fmt} (only NHWC is supported)")


# ----------------------------------------------------------------------------- graph builder


class _OnnxGraph:
    """Accumulates ONNX nodes/initializers and tracks value layouts and transposes."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._relayout: dict[tuple[str, str], _Value] = {}
        #: Relu/Relu6/Minimum/Maximum-by-scalar outputs -> (lo, hi): merged into one Clip by finalize()
        self._clips: dict[str, tuple[float, float]] = {}

    def fresh(self, base: str) -> str:
        """A tensor name derived from ``base`` not used yet."""
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}__{i}"
        self._names.add(name)
        return name

    def emit(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        """Append one single-output node; return its (fresh) output name."""
        name = self.fresh(out)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def emit_clip(self, x: str, out: str, lo: float, hi: float) -> str:
        """A clamp of ``x`` to [lo, hi]; chains of clamps are fused into one node by :meth:`finalize`."""
        name = self.emit("Clip", [x], out)
        self._clips[name] = (lo, hi)
        return name

    def finalize(self, outputs: list[str]) -> None:
        """Fuse clamp chains, then drop nodes and initializers ``outputs`` do not need."""
        self._fuse_clips()
        live = set(outputs)
        kept: list[onnx.NodeProto] = []
        for node in reversed(self.nodes):
            if any(o in live for o in node.output):
                kept.append(node)
                live.update(node.input)
        self.nodes = kept[::-1]
        self.initializers = [t for t in self.initializers if t.name in live]

    def _fuse_clips(self) -> None:
        """Fuse chained clamps (TF's ``Relu -> Minimum(6) -> Maximum(0)``) and materialise them.

        One Clip (or Relu) per chain lets ONNX Runtime fuse it into the preceding Conv.
        """
        consumers = Counter(i for n in self.nodes for i in n.input)
        producer = {n.output[0]: n for n in self.nodes}
        dropped: set[str] = set()
        for node in self.nodes:
            out, src = node.output[0], node.input[0] if node.input else ""
            if out in self._clips and src in self._clips and consumers[src] == 1:
                lo, hi = self._clips[out]
                plo, phi = self._clips[src]
                if max(lo, plo) <= min(hi, phi):
                    self._clips[out] = (max(lo, plo), min(hi, phi))
                    node.input[0] = producer[src].input[0]
                    dropped.add(src)
        self.nodes = [self._materialize_clip(n) for n in self.nodes if n.output[0] not in dropped]

    def _materialize_clip(self, node: onnx.NodeProto) -> onnx.NodeProto:
        out = node.output[0]
        if out not in self._clips:
            return node
        lo, hi = self._clips[out]
        if lo == 0.0 and hi == np.inf:
            return helper.make_node("Relu", [node.input[0]], [out], name=out)
        bounds = [
            self.constant(np.array(b, np.float32), f"{out}/{tag}") if np.isfinite(b) else ""
            for b, tag in ((lo, "min"), (hi, "max"))
        ]
        return helper.make_node("Clip", [node.input[0], *bounds], [out], name=out)

    def constant(self, array: np.ndarray, base: str) -> str:
        """Add ``array`` as an initializer (float64 -> float32, int32 shapes kept as given)."""
        arr = np.ascontiguousarray(array.astype(np.float32) if array.dtype == np.float64 else array)
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def materialize(self, v: _Value, base: str) -> str:
        """The ONNX name for ``v``, adding it as an initializer first if it is a folded constant."""
        if v.const is not None and not v.name:
            v.name = self.constant(v.const, base)
        return v.name

    def to_layout(self, v: _Value, layout: str) -> _Value:
        """``v`` in ``layout`` (``nhwc``/``nchw``); inserts at most one cached Transpose per value."""
        if v.rank != 4 or v.layout == layout or (v.layout == PLAIN and layout == NHWC):
            return v
        if v.const is not None:
            perm = _TO_NCHW if layout == NCHW else _TO_NHWC
            return _Value("", 4, layout, np.transpose(v.const, perm))
        key = (v.name, layout)
        if key not in self._relayout:
            perm = _TO_NCHW if layout == NCHW else _TO_NHWC
            name = self.emit("Transpose", [v.name], f"{v.name}/{layout}", perm=list(perm))
            self._relayout[key] = _Value(name, 4, layout)
        return self._relayout[key]


# ----------------------------------------------------------------------------- the converter


_Handler = Callable[["_Converter", dict[str, Any], list[_Value]], list[_Value]]


class _Converter:
    """Walks the pruned TF graph in topological order and emits ONNX nodes."""

    def __init__(self, weights: dict[str, np.ndarray], nodes: dict[str, dict[str, Any]]) -> None:
        self.g = _OnnxGraph()
        self.weights = weights
        self.tf_nodes = nodes
        self.values: dict[str, _Value] = {}
        #: the fixed batch the graph declares, when the caller asked for a dynamic one instead
        self.rebatch: int | None = None
        #: resize node -> (ONNX input name, constant output H, W), recorded for dynamic-size conversion
        self.resize_inputs: dict[str, tuple[str, tuple[int, ...]]] = {}
        #: resize node -> (y, x) factor used instead of its constant size (dynamic H and W)
        self.resize_scales: dict[str, tuple[float, float]] = {}

    def run(self, order: list[dict[str, Any]], input_shape: tuple[int | None, ...] | None) -> str:
        """Convert all nodes; return the Placeholder name."""
        placeholder = ""
        for node in order:
            if node["op"] == "Placeholder":
                if placeholder:
                    raise TfjsConversionError("graphs with several inputs are not supported")
                placeholder = node["name"]
                self.g._names.add(placeholder)
                declared = _placeholder_dims(node)
                rank = len(input_shape) if input_shape else len(declared)
                if (
                    input_shape
                    and (input_shape[0] is None or input_shape[0] < 0)
                    and declared
                    and declared[0] > 0
                ):
                    self.rebatch = declared[0]
                self.values[placeholder] = _Value(placeholder, rank, NHWC if rank == 4 else PLAIN)
                continue
            inputs = [self._lookup(ref) for ref in node.get("input", []) if not ref.startswith("^")]
            handler = _HANDLERS.get(node["op"])
            if handler is None:
                raise UnsupportedOpError(node["op"], node["name"])
            for i, v in enumerate(handler(self, node, inputs)):
                self.values[_tensor_name(node["name"], i)] = v
        if not placeholder:
            raise TfjsConversionError("graph has no Placeholder input for the requested outputs")
        return placeholder

    def _lookup(self, ref: str) -> _Value:
        node, idx = _split_input(ref)
        key = _tensor_name(node, idx)
        if key not in self.values:
            raise TfjsConversionError(f"input {ref!r} was not produced by a converted node")
        return self.values[key]

    # helpers used by handlers
    def name_of(self, v: _Value, base: str) -> str:
        return self.g.materialize(v, base)

    def const_of(self, v: _Value, node: dict[str, Any], what: str) -> np.ndarray:
        if v.const is None:
            raise TfjsConversionError(f"node {node['name']!r}: {what} must be a constant")
        return v.const


def _placeholder_dims(node: dict[str, Any]) -> list[int]:
    dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
    return [int(d.get("size", -1)) for d in dims]


# ---- leaf ops


def _const(c: _Converter, node: dict[str, Any], _: list[_Value]) -> list[_Value]:
    name = node["name"]
    arr = (
        c.weights[name]
        if name in c.weights
        else _attr_tensor(node.get("attr", {}).get("value", {}).get("tensor", {}))
    )
    return [_Value("", arr.ndim, NHWC if arr.ndim == 4 else PLAIN, arr)]


def _identity(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    return [ins[0]]


# ---- convolutions and pools


def _pads_attrs(node: dict[str, Any]) -> dict[str, Any]:
    padding = _attr_s(node, "padding", "VALID")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER"}
    if padding == "VALID":
        return {}
    if padding == "EXPLICIT":
        p = _attr_ints(node, "explicit_paddings")
        return {"pads": [p[2], p[4], p[3], p[5]]}
    raise TfjsConversionError(f"node {node['name']!r}: padding {padding!r} not supported")


def _conv(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    _check_nhwc(node)
    x = c.g.to_layout(ins[0], NCHW)
    kernel = c.const_of(ins[1], node, "filter")
    depthwise = "Depthwise" in node["op"]
    if depthwise:
        kh, kw, cin, mult = kernel.shape
        w = kernel.reshape(kh, kw, 1, cin * mult).transpose(3, 2, 0, 1)
        group = cin
    else:
        w, group = kernel.transpose(3, 2, 0, 1), 1
    fused = _attr_strs(node, "fused_ops")
    conv_in = [x.name, c.g.constant(w, f"{node['name']}/W")]
    if fused and fused[0] == "BiasAdd":
        conv_in.append(c.g.constant(c.const_of(ins[2], node, "bias").astype(np.float32), f"{node['name']}/B"))
        fused, extra = fused[1:], ins[3:]
    else:
        extra = ins[2:]
    strides, dil = _attr_ints(node, "strides") or [1] * 4, _attr_ints(node, "dilations") or [1] * 4
    out = c.g.emit(
        "Conv",
        conv_in,
        node["name"] + ("/conv" if fused else ""),
        kernel_shape=list(w.shape[2:]),
        strides=strides[1:3],
        dilations=dil[1:3],
        group=group,
        **_pads_attrs(node),
    )
    return [_fused_activations(c, node, _Value(out, 4, NCHW), fused, extra)]


def _fused_activations(
    c: _Converter, node: dict[str, Any], v: _Value, ops: list[str], extra: list[_Value]
) -> _Value:
    """Apply the activation part of ``fused_ops`` (after BiasAdd) to ``v``."""
    for i, op in enumerate(ops):
        last = i == len(ops) - 1
        base = node["name"] if last else f"{node['name']}/{op}"
        if op == "Prelu":
            alpha = c.const_of(extra[0], node, "prelu alpha").astype(np.float32)
            slope = _broadcast_const(alpha, v.rank, v.layout)
            v = _Value(
                c.g.emit("PRelu", [v.name, c.g.constant(slope, f"{base}/alpha")], base), v.rank, v.layout
            )
        elif op in _UNARY:
            v = _Value(_UNARY[op](c, v.name, base, node), v.rank, v.layout)
        else:
            raise UnsupportedOpError(f"{node['op']}+{op}", node["name"])
    return v


def _pool(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    _check_nhwc(node)
    x = c.g.to_layout(ins[0], NCHW)
    ksize, strides = _attr_ints(node, "ksize"), _attr_ints(node, "strides")
    attrs: dict[str, Any] = {"kernel_shape": ksize[1:3], "strides": strides[1:3], **_pads_attrs(node)}
    op = "MaxPool" if node["op"] == "MaxPool" else "AveragePool"
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # TF SAME average ignores padding
    return [_Value(c.g.emit(op, [x.name], node["name"], **attrs), 4, NCHW)]


def _resize(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = c.g.to_layout(ins[0], NCHW)
    align, half = _attr_b(node, "align_corners"), _attr_b(node, "half_pixel_centers")
    bilinear = node["op"] == "ResizeBilinear"
    attrs: dict[str, Any] = {"mode": "linear" if bilinear else "nearest"}
    if align:
        attrs["coordinate_transformation_mode"] = "align_corners"
    elif half:
        attrs["coordinate_transformation_mode"] = "half_pixel" if bilinear else "tf_half_pixel_for_nn"
    else:
        attrs["coordinate_transformation_mode"] = "asymmetric"
    if not bilinear:
        attrs["nearest_mode"] = "round_prefer_ceil" if align else "floor"
    base = node["name"]
    if ins[1].const is not None:
        c.resize_inputs[base] = (x.name, tuple(int(v) for v in ins[1].const.reshape(-1)))
    if base in c.resize_scales:  # dynamic H and W: the fixed output size becomes a fixed factor
        fy, fx = c.resize_scales[base]
        scales = c.g.constant(np.array([1.0, 1.0, fy, fx], np.float32), f"{base}/scales")
        return [_Value(c.g.emit("Resize", [x.name, "", scales], base, **attrs), 4, NCHW)]
    if ins[1].const is not None:
        hw = c.g.constant(ins[1].const.astype(np.int64), f"{base}/hw")
    else:
        hw = c.g.emit("Cast", [ins[1].name], f"{base}/hw", to=TensorProto.INT64)
    shape = c.g.emit("Shape", [x.name], f"{base}/shape", start=0, end=2)
    sizes = c.g.emit("Concat", [shape, hw], f"{base}/sizes", axis=0)
    out = c.g.emit("Resize", [x.name, "", "", sizes], base, **attrs)
    return [_Value(out, 4, NCHW)]


# ---- elementwise


def _broadcast_const(arr: np.ndarray, rank: int, layout: str) -> np.ndarray:
    """Reshape a constant operand so it broadcasts the TF way against a value in ``layout``."""
    if layout != NCHW:
        return arr
    full = arr.reshape((1,) * (4 - arr.ndim) + arr.shape) if arr.ndim <= 4 else arr
    return np.transpose(full, _TO_NCHW)


def _pick_layout(ins: list[_Value]) -> str:
    """NCHW if any live operand is 4-D NCHW and every live operand is 4-D, else NHWC."""
    live = [v for v in ins if v.const is None]
    if any(v.layout == NCHW for v in live) and all(v.rank == 4 for v in live):
        return NCHW
    return NHWC


def _align_operands(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> tuple[list[str], int, str]:
    """Bring elementwise operands to a common layout; return names, result rank and layout."""
    layout = _pick_layout(ins)
    rank = max(v.rank for v in ins)
    names = []
    for i, v in enumerate(ins):
        if v.const is not None:
            arr = v.const.astype(np.float32) if v.const.dtype == np.float64 else v.const
            names.append(
                c.g.constant(
                    _broadcast_const(arr, rank, layout) if rank == 4 else arr, f"{node['name']}/c{i}"
                )
            )
        else:
            names.append(c.g.to_layout(v, layout).name)
    return names, rank, (layout if rank == 4 else PLAIN)


_BINARY_ONNX = {
    "Add": "Add",
    "AddV2": "Add",
    "BiasAdd": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Div": "Div",
    "Minimum": "Min",
    "Maximum": "Max",
}
_BINARY_NUMPY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Min": np.minimum,
    "Max": np.maximum,
}


def _binary(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    op = _BINARY_ONNX[node["op"]]
    prelu = _match_prelu(c, node) if op == "Add" else None
    if prelu is not None:
        x, slope = prelu
        alpha = c.g.constant(
            _broadcast_const(slope.astype(np.float32), x.rank, x.layout), f"{node['name']}/alpha"
        )
        return [_Value(c.g.emit("PRelu", [x.name, alpha], node["name"]), x.rank, x.layout)]
    a, b = ins[0].const, ins[1].const
    if a is not None and b is not None:
        arr = _BINARY_NUMPY[op](a, b)
        return [_Value("", arr.ndim, NHWC if arr.ndim == 4 else PLAIN, np.asarray(arr))]
    if op in ("Min", "Max") and (a is None) != (b is None):
        scalar = a if a is not None else b
        live = ins[1] if a is not None else ins[0]
        if scalar is not None and scalar.size == 1 and live.rank >= scalar.ndim:
            bound = float(scalar.reshape(()))
            lo, hi = (-np.inf, bound) if op == "Min" else (bound, np.inf)
            return [_Value(c.g.emit_clip(live.name, node["name"], lo, hi), live.rank, live.layout)]
    names, rank, layout = _align_operands(c, node, ins[:2])
    return [_Value(c.g.emit(op, names, node["name"]), rank, layout)]


def _tf_input(c: _Converter, node: dict[str, Any] | None, i: int) -> dict[str, Any] | None:
    """The TF node feeding input ``i`` of ``node`` (output 0 only), or None."""
    refs = [r for r in (node or {}).get("input", []) if not r.startswith("^")]
    if node is None or i >= len(refs) or _split_input(refs[i])[1] != 0:
        return None
    return c.tf_nodes.get(refs[i])


def _const_operand(c: _Converter, node: dict[str, Any] | None) -> tuple[np.ndarray, str] | None:
    """For a binary ``node`` with one constant operand: (that constant, the other input's name)."""
    if node is None or len(node.get("input", [])) != 2:
        return None
    a, b = (c.values.get(_tensor_name(*_split_input(r))) for r in node["input"])
    if a is not None and a.const is not None and (b is None or b.const is None):
        return a.const, node["input"][1]
    if b is not None and b.const is not None and (a is None or a.const is None):
        return b.const, node["input"][0]
    return None


def _match_prelu(c: _Converter, node: dict[str, Any]) -> tuple[_Value, np.ndarray] | None:
    """Recognise the two PReLU decompositions TF exporters emit; return (x, slope).

    ``Relu(x) + (x - Abs(x)) * k`` (slope 2k), ``x + (x - Abs(x)) * k`` (slope 1 + 2k, where the
    exporter fused the Relu into the producer of ``x``) and ``Maximum(x, 0) + g * Minimum(x, 0)``
    (slope g). One PRelu instead of four elementwise ops; ``finalize`` drops the unused pieces.
    """
    for pos, other in ((0, 1), (1, 0)):
        pos_node, mul = _tf_input(c, node, pos), _tf_input(c, node, other)
        if pos_node is None or mul is None or mul["op"] != "Mul":
            continue
        scaled = _const_operand(c, mul)
        if scaled is None:
            continue
        slope, neg_ref = scaled
        neg = c.tf_nodes.get(neg_ref)
        match = _prelu_input(c, pos_node, neg)
        if match is None or match[0] not in c.values or (slope.size > 1 and slope.ndim != 1):
            continue
        x_ref, offset, factor = match
        return c.values[x_ref], offset + slope.reshape(-1) * factor
    return None


def _prelu_input(
    c: _Converter, pos: dict[str, Any], neg: dict[str, Any] | None
) -> tuple[str, float, float] | None:
    """Match a PReLU's positive and negative branches: (x, offset, factor), slope = offset + factor * k."""
    if neg is None:
        return None
    refs = [r for r in pos.get("input", []) if not r.startswith("^")]
    if neg["op"] == "Sub":
        sub_in = neg.get("input", [])
        abs_node = c.tf_nodes.get(sub_in[1]) if len(sub_in) == 2 else None
        if not abs_node or abs_node["op"] != "Abs" or abs_node["input"][0] != sub_in[0]:
            return None
        if pos["op"] == "Relu" and refs and refs[0] == sub_in[0]:
            return _tensor_name(*_split_input(refs[0])), 0.0, 2.0
        if pos["name"] == _split_input(sub_in[0])[0] and _split_input(sub_in[0])[1] == 0:
            return pos["name"], 1.0, 2.0
    if pos["op"] == "Maximum" and neg["op"] == "Minimum":
        p, n = _const_operand(c, pos), _const_operand(c, neg)
        if p and n and p[1] == n[1] and np.all(p[0] == 0) and np.all(n[0] == 0):
            return _tensor_name(*_split_input(p[1])), 0.0, 1.0
    return None


def _squared_difference(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    names, rank, layout = _align_operands(c, node, ins[:2])
    diff = c.g.emit("Sub", names, f"{node['name']}/diff")
    return [_Value(c.g.emit("Mul", [diff, diff], node["name"]), rank, layout)]


def _prelu(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    names, rank, layout = _align_operands(c, node, ins[:2])
    return [_Value(c.g.emit("PRelu", names, node["name"]), rank, layout)]


def _simple(op: str, **attrs: Any) -> Callable[[_Converter, str, str, dict[str, Any]], str]:
    def build(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
        return c.g.emit(op, [x], out, **attrs)

    return build


def _relu(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
    return c.g.emit_clip(x, out, 0.0, np.inf)


def _clip6(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
    return c.g.emit_clip(x, out, 0.0, 6.0)


def _square(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
    return c.g.emit("Mul", [x, x], out)


def _rsqrt(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
    return c.g.emit("Reciprocal", [c.g.emit("Sqrt", [x], f"{out}/sqrt")], out)


def _leaky(c: _Converter, x: str, out: str, node: dict[str, Any]) -> str:
    alpha = _attr_f(node, "leakyrelu_alpha", _attr_f(node, "alpha", 0.2))
    return c.g.emit("LeakyRelu", [x], out, alpha=alpha)


_UNARY: dict[str, Callable[[_Converter, str, str, dict[str, Any]], str]] = {
    "Relu": _relu,
    "Relu6": _clip6,
    "Elu": _simple("Elu"),
    "Sigmoid": _simple("Sigmoid"),
    "Tanh": _simple("Tanh"),
    "Abs": _simple("Abs"),
    "Neg": _simple("Neg"),
    "Exp": _simple("Exp"),
    "Sqrt": _simple("Sqrt"),
    "Rsqrt": _rsqrt,
    "Square": _square,
    "LeakyRelu": _leaky,
}


def _unary(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = ins[0]
    name = _UNARY[node["op"]](c, c.name_of(x, f"{node['name']}/x"), node["name"], node)
    return [_Value(name, x.rank, x.layout)]


def _softmax(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = ins[0]
    axis = 1 if x.layout == NCHW else -1
    return [_Value(c.g.emit("Softmax", [x.name], node["name"], axis=axis), x.rank, x.layout)]


def _cast(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    dst = node.get("attr", {}).get("DstT", {}).get("type", "DT_FLOAT")
    if dst not in _ONNX_DTYPES:
        raise TfjsConversionError(f"node {node['name']!r}: Cast to {dst} not supported")
    x = ins[0]
    if x.const is not None:
        return [_Value("", x.rank, x.layout, x.const.astype(_TF_DTYPES[dst]))]
    return [_Value(c.g.emit("Cast", [x.name], node["name"], to=_ONNX_DTYPES[dst]), x.rank, x.layout)]


# ---- shape and reduction ops


def _axes_in_layout(axes: Iterable[int], rank: int, layout: str) -> list[int]:
    norm = [a % rank for a in axes]
    return [_NHWC_AXIS_IN_NCHW[a] for a in norm] if layout == NCHW else norm


def _order_kept(axes: list[int]) -> bool:
    """True when dropping NHWC ``axes`` leaves the same dim order in NCHW and NHWC."""
    kept = [a for a in range(4) if a not in axes]
    return kept == sorted(kept, key=lambda a: _NHWC_AXIS_IN_NCHW[a])


_REDUCE = {
    "Mean": "ReduceMean",
    "Sum": "ReduceSum",
    "Max": "ReduceMax",
    "Min": "ReduceMin",
    "Prod": "ReduceProd",
}


def _reduce(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = ins[0]
    axes = [int(a) % x.rank for a in np.atleast_1d(c.const_of(ins[1], node, "reduction axes"))]
    keep = _attr_b(node, "keep_dims")
    if x.layout == NCHW and not keep and not _order_kept(axes):
        x = c.g.to_layout(x, NHWC)
    onnx_axes = _axes_in_layout(axes, x.rank, x.layout)
    op = _REDUCE[node["op"]]
    if op == "ReduceSum":  # opset 13+: axes as an input
        ax = c.g.constant(np.array(onnx_axes, np.int64), f"{node['name']}/axes")
        out = c.g.emit(op, [x.name, ax], node["name"], keepdims=int(keep))
    else:
        out = c.g.emit(op, [x.name], node["name"], axes=onnx_axes, keepdims=int(keep))
    rank = x.rank if keep else x.rank - len(set(axes))
    return [_Value(out, rank, x.layout if rank == 4 else PLAIN)]


def _reshape(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = c.g.to_layout(ins[0], NHWC)
    shape = ins[1]
    if shape.const is not None:
        target = shape.const.astype(np.int64).reshape(-1)
        if c.rebatch is not None and target.size and target[0] == c.rebatch and x.const is None:
            target[0] = 0  # ONNX Reshape: 0 copies the input's (batch) dim
        sname = c.g.constant(target, f"{node['name']}/shape")
        rank = int(target.size)
    else:
        sname = c.g.emit("Cast", [shape.name], f"{node['name']}/shape", to=TensorProto.INT64)
        rank = -1
    out = c.g.emit("Reshape", [c.name_of(x, f"{node['name']}/x"), sname], node["name"])
    return [_Value(out, rank, NHWC if rank == 4 else PLAIN)]


def _squeeze(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = ins[0]
    axes = [a % x.rank for a in _attr_ints(node, "squeeze_dims")]
    if not axes:
        raise TfjsConversionError(f"node {node['name']!r}: Squeeze without squeeze_dims not supported")
    if x.layout == NCHW and not _order_kept(axes):
        x = c.g.to_layout(x, NHWC)
    ax = c.g.constant(np.array(_axes_in_layout(axes, x.rank, x.layout), np.int64), f"{node['name']}/axes")
    rank = x.rank - len(axes)
    return [_Value(c.g.emit("Squeeze", [x.name, ax], node["name"]), rank, x.layout if rank == 4 else PLAIN)]


def _expand_dims(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = c.g.to_layout(ins[0], NHWC)
    axis = int(np.asarray(c.const_of(ins[1], node, "axis")).reshape(-1)[0])
    rank = x.rank + 1
    ax = c.g.constant(np.array([axis % rank], np.int64), f"{node['name']}/axes")
    out = c.g.emit("Unsqueeze", [c.name_of(x, f"{node['name']}/x"), ax], node["name"])
    return [_Value(out, rank, NHWC if rank == 4 else PLAIN)]


def _concat(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    parts, axis_v = ins[:-1], ins[-1]
    rank = max(v.rank for v in parts)
    axis = int(np.asarray(c.const_of(axis_v, node, "axis")).reshape(-1)[0]) % rank
    layout = _pick_layout(parts) if rank == 4 else PLAIN
    names = []
    for i, v in enumerate(parts):
        v = c.g.to_layout(v, layout) if layout != PLAIN else v
        names.append(c.name_of(v, f"{node['name']}/p{i}"))
    onnx_axis = _axes_in_layout([axis], rank, layout)[0]
    return [_Value(c.g.emit("Concat", names, node["name"], axis=onnx_axis), rank, layout)]


def _pad(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    x = ins[0]
    pads = np.asarray(c.const_of(ins[1], node, "paddings"), np.int64).reshape(-1, 2)
    if x.layout == NCHW:
        pads = pads[list(_TO_NCHW)]
    inputs = [x.name, c.g.constant(np.concatenate([pads[:, 0], pads[:, 1]]), f"{node['name']}/pads")]
    if len(ins) > 2:
        value = np.asarray(c.const_of(ins[2], node, "constant_values"), np.float32).reshape(())
        inputs.append(c.g.constant(value, f"{node['name']}/value"))
    return [_Value(c.g.emit("Pad", inputs, node["name"], mode="constant"), x.rank, x.layout)]


def _matmul(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    a, b = c.g.to_layout(ins[0], NHWC), ins[1]
    a_name = c.name_of(a, f"{node['name']}/a")
    if _attr_b(node, "transpose_a"):
        a_name = c.g.emit("Transpose", [a_name], f"{node['name']}/aT", perm=[1, 0])
    if b.const is not None:
        w = b.const.T if _attr_b(node, "transpose_b") else b.const
        b_name = c.g.constant(w.astype(np.float32), f"{node['name']}/W")
    else:
        b_name = c.g.to_layout(b, NHWC).name
        if _attr_b(node, "transpose_b"):
            b_name = c.g.emit("Transpose", [b_name], f"{node['name']}/bT", perm=[1, 0])
    fused = _attr_strs(node, "fused_ops")
    out = c.g.emit("MatMul", [a_name, b_name], node["name"] + ("/matmul" if fused else ""))
    extra = ins[2:]
    if fused and fused[0] == "BiasAdd":
        bias = c.g.constant(c.const_of(ins[2], node, "bias").astype(np.float32), f"{node['name']}/B")
        out = c.g.emit("Add", [out, bias], node["name"] + ("/bias" if len(fused) > 1 else ""))
        fused, extra = fused[1:], ins[3:]
    return [_fused_activations(c, node, _Value(out, 2, PLAIN), fused, extra)]


def _transpose(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    """TF ``Transpose``. Graphs exported through ONNX (onnx-tf: NanoDet) wrap every conv in an
    NCHW <-> NHWC pair; with the layout tags those pairs cost nothing: a value physically stored NCHW
    *is* the transposed logical tensor, so the tag flips and no node is emitted."""
    x = ins[0]
    perm = [int(p) for p in np.asarray(c.const_of(ins[1], node, "perm")).reshape(-1)]
    if x.const is not None:
        arr = np.transpose(x.const, perm)
        return [_Value("", arr.ndim, NHWC if arr.ndim == 4 else PLAIN, arr)]
    if x.rank == 4 and tuple(perm) == _TO_NCHW and x.layout == NCHW:
        return [_Value(x.name, 4, NHWC)]
    if x.rank == 4 and tuple(perm) == _TO_NHWC and x.layout in (NHWC, PLAIN):
        return [_Value(x.name, 4, NCHW)]
    x = c.g.to_layout(x, NHWC)
    out = c.g.emit("Transpose", [x.name], node["name"], perm=perm)
    return [_Value(out, len(perm), NHWC if len(perm) == 4 else PLAIN)]


def _split_v(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    """TF ``SplitV`` (sizes and axis constant; no -1 size) as one ONNX Split."""
    x = ins[0]
    sizes = np.asarray(c.const_of(ins[1], node, "size_splits"), np.int64).reshape(-1)
    if (sizes < 0).any():
        raise TfjsConversionError(f"node {node['name']!r}: SplitV with an inferred (-1) size")
    axis = int(np.asarray(c.const_of(ins[2], node, "split_dim")).reshape(-1)[0]) % x.rank
    layout = x.layout if x.rank == 4 else PLAIN
    onnx_axis = _axes_in_layout([axis], x.rank, layout)[0]
    split = c.g.constant(sizes, f"{node['name']}/split")
    names = [c.g.fresh(_tensor_name(node["name"], i)) for i in range(sizes.size)]
    c.g.nodes.append(helper.make_node("Split", [x.name, split], names, name=names[0], axis=onnx_axis))
    return [_Value(n, x.rank, layout) for n in names]


def _sparse_to_dense(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    """TF ``SparseToDense`` with constant operands only (onnx-tf emits it for shape arithmetic)."""
    indices, shape, values, default = (c.const_of(v, node, "every operand") for v in ins[:4])
    shape = np.asarray(shape, np.int64).reshape(-1)
    out = np.full(tuple(shape), np.asarray(default).reshape(()), dtype=np.asarray(values).dtype)
    idx = np.asarray(indices, np.int64).reshape(-1, max(shape.size, 1))
    out[tuple(idx.T)] = np.broadcast_to(np.asarray(values), (idx.shape[0],))
    return [_Value("", out.ndim, NHWC if out.ndim == 4 else PLAIN, out)]


def _shape(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    """TF ``Shape`` (int32, logical NHWC order even when the value is stored NCHW)."""
    x = ins[0]
    if x.const is not None:
        return [_Value("", 1, PLAIN, np.array(x.const.shape, np.int32))]
    out = c.g.emit("Shape", [x.name], f"{node['name']}/i64")
    if x.rank == 4 and x.layout == NCHW:
        order = c.g.constant(np.array(_NHWC_AXIS_IN_NCHW_LIST, np.int64), f"{node['name']}/order")
        out = c.g.emit("Gather", [out, order], f"{node['name']}/nhwc", axis=0)
    return [_Value(c.g.emit("Cast", [out], node["name"], to=TensorProto.INT32), 1, PLAIN)]


def _strided_slice(c: _Converter, node: dict[str, Any], ins: list[_Value]) -> list[_Value]:
    """TF ``StridedSlice`` with constant begin/end/strides and begin/end/shrink masks (no ellipsis or
    new axes): one ONNX Slice (plus a Squeeze for shrunk axes)."""
    attrs = node.get("attr", {})
    if any(int(attrs.get(k, {}).get("i", 0)) for k in ("ellipsis_mask", "new_axis_mask")):
        raise TfjsConversionError(f"node {node['name']!r}: StridedSlice with ellipsis/new axes")
    x = c.g.to_layout(ins[0], NHWC)
    begin, end, strides = (
        np.asarray(c.const_of(v, node, "begin/end/strides"), np.int64).reshape(-1) for v in ins[1:4]
    )
    bmask, emask, shrink = (
        int(attrs.get(k, {}).get("i", 0)) for k in ("begin_mask", "end_mask", "shrink_axis_mask")
    )
    big = np.iinfo(np.int64).max
    starts, ends = [], []
    for i in range(begin.size):
        lo = (0 if strides[i] > 0 else big) if bmask >> i & 1 else begin[i]
        hi = (big if strides[i] > 0 else -big) if emask >> i & 1 else end[i]
        if shrink >> i & 1:
            lo, hi = begin[i], (begin[i] + 1 if begin[i] != -1 else big)
        starts.append(lo)
        ends.append(hi)
    shrunk = [i for i in range(begin.size) if shrink >> i & 1]
    if x.const is not None:
        arr = x.const[
            tuple(
                slice(a, None if b in (big, -big) else b, st)
                for a, b, st in zip(starts, ends, strides, strict=True)
            )
        ]
        arr = np.squeeze(arr, axis=tuple(shrunk)) if shrunk else arr
        return [_Value("", arr.ndim, NHWC if arr.ndim == 4 else PLAIN, arr)]
    base = node["name"]
    inputs = [
        c.name_of(x, f"{base}/x"),
        c.g.constant(np.array(starts, np.int64), f"{base}/starts"),
        c.g.constant(np.array(ends, np.int64), f"{base}/ends"),
        c.g.constant(np.arange(begin.size, dtype=np.int64), f"{base}/axes"),
        c.g.constant(strides, f"{base}/steps"),
    ]
    out = c.g.emit("Slice", inputs, base + ("/slice" if shrunk else ""))
    rank = x.rank
    if shrunk:
        axes = c.g.constant(np.array(shrunk, np.int64), f"{base}/shrink")
        out = c.g.emit("Squeeze", [out, axes], base)
        rank -= len(shrunk)
    return [_Value(out, rank, NHWC if rank == 4 else PLAIN)]


_HANDLERS: dict[str, _Handler] = {
    "Const": _const,
    "Identity": _identity,
    "Conv2D": _conv,
    "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": _conv,
    "FusedDepthwiseConv2dNative": _conv,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "ResizeBilinear": _resize,
    "ResizeNearestNeighbor": _resize,
    **{op: _binary for op in _BINARY_ONNX},
    "SquaredDifference": _squared_difference,
    "Prelu": _prelu,
    **{op: _unary for op in _UNARY},
    "Softmax": _softmax,
    "Cast": _cast,
    **{op: _reduce for op in _REDUCE},
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "ExpandDims": _expand_dims,
    "ConcatV2": _concat,
    "Pad": _pad,
    "PadV2": _pad,
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "Transpose": _transpose,
    "SplitV": _split_v,
    "SparseToDense": _sparse_to_dense,
    "Shape": _shape,
    "StridedSlice": _strided_slice,
}


# ----------------------------------------------------------------------------- public API


def _default_outputs(model: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> list[str]:
    """Outputs from the model's signature, else every node nothing consumes."""
    sig = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature") or {}
    names = [_split_input(o.get("name", k))[0] for k, o in sig.get("outputs", {}).items()]
    names = [n for n in names if n in nodes]
    if names:
        return sorted(names)
    used = {_split_input(r.lstrip("^"))[0] for n in nodes.values() for r in n.get("input", [])}
    return [n for n, node in nodes.items() if n not in used and node["op"] != "Const"]


def _input_dims(node: dict[str, Any], override: tuple[int, ...] | None) -> list[int | str]:
    dims: list[int] = list(override) if override is not None else _placeholder_dims(node)
    return [
        "batch" if i == 0 and (d is None or d < 0) else (d if d is not None and d >= 0 else f"d{i}")
        for i, d in enumerate(dims)
    ]


def _dim_of(d: onnx.TensorShapeProto.Dimension) -> int | None:
    return int(d.dim_value) if d.HasField("dim_value") else None


def convert_graph_model(
    model_json: Path,
    onnx_path: Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    outputs: list[str] | None = None,
) -> ConversionInfo:
    """Convert a TF.js graph model to an opset-17 ONNX file.

    Args:
        model_json: the ``model.json``; weight shards are resolved next to it.
        onnx_path: where to write the ``.onnx`` file (parent created).
        input_shape: NHWC shape overriding the Placeholder's (``-1`` for a dynamic batch).
        outputs: TF node names to expose (``"name"`` or ``"name:0"``); default: the signature's
            outputs, or every sink node. Nodes only needed by other outputs are dropped.

    Returns:
        A :class:`ConversionInfo` with the TF-layout input/output names and shapes.

    Raises:
        UnsupportedOpError: a needed node uses an op this module does not implement.
        TfjsConversionError: the json or weights are malformed.
    """
    model = json.loads(Path(model_json).read_text())
    topology = model.get("modelTopology", {})
    nodes = {n["name"]: n for n in topology.get("node", [])}
    weights = _load_weights(Path(model_json), model.get("weightsManifest", []))
    out_refs = [_split_input(o) for o in (outputs or _default_outputs(model, nodes))]
    order = _toposort(nodes, list(dict.fromkeys(n for n, _ in out_refs)))
    scales: dict[str, tuple[float, float]] = {}
    if input_shape is not None and len(input_shape) == 4 and _dynamic(input_shape[1:3]):
        scales = _resize_factors(model_json, nodes, weights, order, out_refs)
    onnx_model = _build(model_json, nodes, weights, order, out_refs, input_shape, scales)
    _explicit_same_pads(onnx_model)
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(onnx_path))
    return _info(onnx_model, onnx_path, order)


def _dynamic(dims: Iterable[int | None]) -> bool:
    return any(d is None or d < 0 for d in dims)


def _build(
    model_json: Path,
    nodes: dict[str, dict[str, Any]],
    weights: dict[str, np.ndarray],
    order: list[dict[str, Any]],
    out_refs: list[tuple[str, int]],
    input_shape: tuple[int, ...] | None,
    resize_scales: dict[str, tuple[float, float]],
    conv: _Converter | None = None,
) -> onnx.ModelProto:
    """One conversion pass: the shape-inferred ONNX model (``conv`` receives the converter state)."""
    conv = conv or _Converter(weights, nodes)
    conv.resize_scales = resize_scales
    conv.g._names.update(_tensor_name(n, i) for n, i in out_refs)  # outputs keep their TF names
    placeholder = conv.run(order, input_shape)
    graph_outputs = [_finish_output(conv, _tensor_name(n, i)) for n, i in out_refs]
    conv.g.finalize(graph_outputs)
    in_node = nodes[placeholder]
    in_dtype = _ONNX_DTYPES.get(
        in_node.get("attr", {}).get("dtype", {}).get("type", "DT_FLOAT"), TensorProto.FLOAT
    )
    graph = helper.make_graph(
        conv.g.nodes,
        "tfjs_" + Path(model_json).stem,
        [helper.make_tensor_value_info(placeholder, in_dtype, _input_dims(in_node, input_shape))],
        [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None) for name in graph_outputs],
        conv.g.initializers,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keeneye.tfjs"
    )
    onnx_model.ir_version = 8
    return onnx.shape_inference.infer_shapes(onnx_model, strict_mode=True)


def _resize_factors(
    model_json: Path,
    nodes: dict[str, dict[str, Any]],
    weights: dict[str, np.ndarray],
    order: list[dict[str, Any]],
    out_refs: list[tuple[str, int]],
) -> dict[str, tuple[float, float]]:
    """For a dynamic-H/W conversion: each constant-size resize's factor (output / input size).

    A graph exported for one input size carries its upsampling as fixed output sizes (Keras'
    ``UpSampling2D`` becomes ``ResizeBilinear`` to e.g. 64x64). Converted at the declared size
    first, shape inference gives each resize's input size; the ratio is the factor the layer meant,
    which holds at any input size that keeps the feature maps integral (multiples of the stride).
    """
    first = _Converter(weights, nodes)
    static = _build(model_json, nodes, weights, order, out_refs, None, {}, first)
    shapes = {vi.name: vi.type.tensor_type.shape for vi in [*static.graph.value_info, *static.graph.input]}
    factors: dict[str, tuple[float, float]] = {}
    for name, (x_name, (out_h, out_w)) in first.resize_inputs.items():
        dims = [_dim_of(d) for d in shapes[x_name].dim] if x_name in shapes else []
        if len(dims) != 4 or not dims[2] or not dims[3]:
            raise TfjsConversionError(f"resize {name!r}: input size unknown, cannot make H and W dynamic")
        factors[name] = (out_h / dims[2], out_w / dims[3])
    return factors


def _explicit_same_pads(model: onnx.ModelProto) -> None:
    """Replace ``auto_pad=SAME_UPPER`` by explicit pads wherever the input's H and W are static.

    Same numbers as TF's SAME, but ONNX Runtime's NCHWc optimiser only takes pools with explicit
    pads, and keeping pools in NCHWc saves a reorder pair around every pool/residual block.
    """
    shapes = {vi.name: vi.type.tensor_type.shape for vi in [*model.graph.value_info, *model.graph.input]}
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if "auto_pad" not in attrs or helper.get_attribute_value(attrs["auto_pad"]) != b"SAME_UPPER":
            continue
        shape = shapes.get(node.input[0])
        dims = [_dim_of(d) for d in shape.dim] if shape is not None else []
        if len(dims) != 4 or dims[2] is None or dims[3] is None:
            continue
        kernel = helper.get_attribute_value(attrs["kernel_shape"])
        strides = helper.get_attribute_value(attrs["strides"]) if "strides" in attrs else [1, 1]
        dil = helper.get_attribute_value(attrs["dilations"]) if "dilations" in attrs else [1, 1]
        begin, end = zip(
            *(
                _same_pad(int(n or 0), k, s, d)
                for n, k, s, d in zip(dims[2:], kernel, strides, dil, strict=True)
            ),
            strict=True,
        )
        node.attribute.remove(attrs["auto_pad"])
        node.attribute.append(helper.make_attribute("pads", [*begin, *end]))


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF SAME padding for one spatial dim: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _finish_output(conv: _Converter, ref: str) -> str:
    """Give the TF output ``ref`` a graph output in TF layout, named after the TF tensor."""
    v = conv.values.get(ref)
    if v is None:
        raise TfjsConversionError(f"output {ref!r} was not produced")
    v = conv.g.to_layout(v, NHWC)
    src = conv.name_of(v, f"{ref}/const")
    conv.g.nodes.append(helper.make_node("Identity", [src], [ref], name=ref))
    return ref


def _info(model: onnx.ModelProto, path: Path, order: list[dict[str, Any]]) -> ConversionInfo:
    def shape(vi: onnx.ValueInfoProto) -> tuple[int | None, ...]:
        return tuple(_dim_of(d) for d in vi.type.tensor_type.shape.dim)

    graph = model.graph
    return ConversionInfo(
        onnx_path=path,
        input_name=graph.input[0].name,
        input_shape=shape(graph.input[0]),
        output_names=[o.name for o in graph.output],
        output_shapes=[shape(o) for o in graph.output],
        tf_op_counts=dict(Counter(n["op"] for n in order)),
        onnx_op_counts=dict(Counter(n.op_type for n in graph.node)),
    )
