"""dlib weights -> ONNX / numpy, in pure Python (dlib itself is never imported here).

Two files from the CC0 ``face-recognition-models`` package are converted:

* ``dlib_face_recognition_resnet_model_v1.dat`` (the ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``)
  -> an ONNX model, input ``image`` float32 ``[N, 150, 150, 3]`` (RGB chip, 0..255), output ``embedding``
  float32 ``[N, 128]`` = dlib's raw descriptor (not re-normalised).
* ``shape_predictor_5_face_landmarks.dat`` (an ensemble-of-regression-trees cascade) -> an ``.npz`` of arrays
  that :class:`keeneye.models.dlib.DlibShapeLandmarker` evaluates with numpy.

dlib's serialization format, as found in ``dlib/serialize.h``, ``dlib/dnn/*.h`` and confirmed on these files
-----------------------------------------------------------------------------------------------------------
* **Integers** (any width, signed or not): one control byte, then the value's magnitude in little-endian
  bytes. The control byte's low nibble is the number of bytes that follow; bit 0x80 means negative.
  (Seen here: ``01 00`` for 0, ``02 80 12`` for 4736, ``81 0a`` for -10.)
* **float / double**: two integers, a mantissa (int64) and an exponent (int16):
  value = mantissa * 2**exponent.
* **bool**: one ASCII character, ``'1'`` or ``'0'``.
* **std::string**: an integer length, then the raw bytes. **std::vector<T>**: an integer size, then each T.
* **matrix<T,0,1>**: ``-nr``, ``-nc`` (negated to mark the current format), then nr*nc values row-major.
* **dlib::vector<float,2>**: x then y.
* **dnn tensor** (``resizable_tensor``): int version (2), ``num_samples, k, nr, nc``, then the values as raw
  4-byte little-endian IEEE floats (NCHW). Version 1 (dlib floats) is not used by these files.
* **alias_tensor**: int version (1) then ``num_samples, k, nr, nc`` (a view into the layer's ``params``).
* **Networks** are written outermost layer first, but each layer writes its sub-network *before* its own
  details, so the layer details appear input-first:

  - ``add_loss_layer``: int version (1), loss details (``"loss_metric_2"``, margin, distance threshold),
    then the sub-network.
  - ``add_layer`` (version 2): version, sub-network, details, 3 bools (setup called, gradient stale,
    getters disabled), 3 tensors (``x_grad``, ``cached_output``, ``params_grad``; empty here).
  - ``add_layer`` directly on the input layer (version 3): version, input layer, details, 3 bools,
    3 tensors, int ``sample_expansion_factor``.
  - ``add_tag_layer`` / ``add_skip_layer`` (version 1): version, sub-network. They carry no data, so the
    graph topology (which tensor ``add_prev`` adds, where ``skip`` jumps back to) is not in the file: it
    comes from the network's C++ type. We rebuild it from the sequence of layer kinds (see
    :func:`_build_graph`), which is unambiguous for this ResNet and is checked strictly.
  - Input ``"input_rgb_image_sized"``: mean red, green, blue (floats), NR, NC. Its ``to_tensor`` computes
    ``(pixel - mean) / 256`` per channel, R, G, B in that channel order.
  - ``"con_4"``: params tensor (all filters, then biases), num_filters, nr, nc, stride_y, stride_x,
    padding_y, padding_x, filters alias (num_filters, k, nr, nc), biases alias (1, num_filters, 1, 1),
    4 float learning-rate / weight-decay multipliers.
  - ``"affine_"`` (batch norm folded by dlib): params tensor (gamma then beta), gamma alias, beta alias,
    int mode (per-channel here): ``y = gamma * x + beta``.
  - ``"relu_"``, ``"add_prev_"``: no data. ``add_prev`` output has the element-wise *max* of both input
    shapes and zero-pads the smaller one at the end (bottom / right / last channels) before adding.
  - ``"max_pool_2"`` / ``"avg_pool_2"``: nr, nc, stride_y, stride_x, padding_y, padding_x;
    ``nr = nc = 0`` means a window over the whole input (``avg_pool_everything``).
  - ``"fc_2"``: num_outputs, num_inputs, params tensor, weights alias ``(num_inputs, num_outputs)``,
    biases alias (empty for ``fc_no_bias``), int bias mode, 4 float multipliers. ``y = x @ W``.
* **shape_predictor**: int version (1), ``initial_shape`` (matrix, 2*P floats, x/y interleaved, in the
  unit box), ``forests`` (vector of cascades, each a vector of trees; a tree is ``splits``, a vector of
  (idx1, idx2, float thresh), and ``leaf_values``, a vector of 2*P matrices), ``anchor_idx``
  (vector per cascade of ints), ``deltas`` (vector per cascade of (x, y) float offsets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: ONNX opset the converted model targets.
OPSET = 17
#: Side of the square RGB chip the ResNet consumes (``input_rgb_image_sized<150>``).
CHIP_SIZE = 150


class DlibFormatError(ValueError):
    """The file does not have the structure this converter expects."""


# ------------------------------------------------------------------------------------------------------------
# Low-level stream reader


class _Reader:
    """Sequential reader of dlib's serialization primitives over an in-memory byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def int_(self) -> int:
        """One dlib integer: control byte (low nibble = byte count, 0x80 = negative), little-endian bytes."""
        ctrl = self.data[self.pos]
        n = ctrl & 0x0F
        start = self.pos + 1
        value = int.from_bytes(self.data[start : start + n], "little")
        self.pos = start + n
        return -value if ctrl & 0x80 else value

    def float_(self) -> float:
        """One dlib float/double: mantissa and exponent integers, value = m * 2**e."""
        mantissa = self.int_()
        exponent = self.int_()
        return float(np.ldexp(float(mantissa), exponent))

    def bool_(self) -> bool:
        ch = self.data[self.pos : self.pos + 1]
        self.pos += 1
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"expected a bool character at byte {self.pos - 1}, got {ch!r}")
        return ch == b"1"

    def str_(self) -> str:
        n = self.int_()
        s = self.data[self.pos : self.pos + n].decode("ascii")
        self.pos += n
        return s

    def expect_str(self, *allowed: str) -> str:
        s = self.str_()
        if s not in allowed:
            raise DlibFormatError(f"expected one of {allowed}, found {s!r} at byte {self.pos}")
        return s

    def tensor(self) -> F32:
        """A dnn tensor (version 2): shape (num_samples, k, nr, nc), raw little-endian float32 values."""
        version = self.int_()
        if version != 2:
            raise DlibFormatError(f"unsupported dnn tensor version {version}")
        shape = tuple(self.int_() for _ in range(4))
        count = int(np.prod(shape))
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return arr.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int_()
        if version != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {version}")
        n, k, nr, nc = (self.int_() for _ in range(4))
        return n, k, nr, nc

    def float_matrix(self) -> F32:
        """A ``matrix<float,0,1>`` (or any nr x nc float matrix) as a flat float32 array."""
        nr, nc = -self.int_(), -self.int_()
        if nr < 0 or nc < 0:
            raise DlibFormatError("old (positive-size) matrix format is not supported")
        return np.array([self.float_() for _ in range(nr * nc)], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# ResNet: parsing


@dataclass
class _Layer:
    """One computational layer as read from the file (input-first order)."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    arrays: dict[str, F32] = field(default_factory=dict)
    ints: dict[str, int] = field(default_factory=dict)


@dataclass
class _ResNetFile:
    means_rgb: tuple[float, float, float]
    size: tuple[int, int]
    layers: list[_Layer]


def _read_layer_details(r: _Reader) -> _Layer:
    name = r.str_()
    if name == "con_4":
        params = r.tensor().reshape(-1)
        names = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        ints = {k: r.int_() for k in names}
        fshape = r.alias()
        r.alias()  # biases alias: (1, num_filters, 1, 1)
        for _ in range(4):
            r.float_()  # learning-rate / weight-decay multipliers (training only)
        nf = int(np.prod(fshape))
        w = params[:nf].reshape(fshape)
        b = params[nf : nf + fshape[0]]
        if b.size != fshape[0]:
            raise DlibFormatError("con_ params hold no biases")
        return _Layer("con", {"w": w, "b": b}, ints)
    if name == "affine_":
        params = r.tensor().reshape(-1)
        g_shape = r.alias()
        r.alias()
        mode = r.int_()
        c = int(np.prod(g_shape))
        if g_shape[0] != 1 or g_shape[2:] != (1, 1):
            raise DlibFormatError(f"affine_ in fc mode (gamma {g_shape}, mode {mode}) is not supported")
        return _Layer("affine", {"gamma": params[:c], "beta": params[c : 2 * c]})
    if name in ("relu_", "add_prev_"):
        return _Layer(name[:-1])
    if name in ("max_pool_2", "avg_pool_2"):
        pool_names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return _Layer(name[:-2], ints={k: r.int_() for k in pool_names})
    if name == "fc_2":
        n_out, n_in = r.int_(), r.int_()
        params = r.tensor().reshape(-1)
        r.alias()
        b_shape = r.alias()
        bias_mode = r.int_()
        for _ in range(4):
            r.float_()
        arrays: dict[str, F32] = {"w": params[: n_in * n_out].reshape(n_in, n_out)}
        if int(np.prod(b_shape)) > 0:
            arrays["b"] = params[n_in * n_out : n_in * n_out + n_out]
        return _Layer("fc", arrays, {"bias_mode": bias_mode})
    raise DlibFormatError(f"unsupported dlib layer {name!r}")


def _skip_layer_state(r: _Reader) -> None:
    """The per-layer training state every add_layer writes after its details: 3 bools, 3 tensors."""
    for _ in range(3):
        r.bool_()
    for _ in range(3):
        r.tensor()


def _parse_resnet(data: bytes) -> _ResNetFile:
    r = _Reader(data)
    if r.int_() != 1:
        raise DlibFormatError("unexpected add_loss_layer version")
    r.expect_str("loss_metric_", "loss_metric_2")
    r.float_()  # margin
    r.float_()  # distance threshold
    versions: list[int] = []
    while True:  # versions of the nested add_layer / tag / skip wrappers, outermost first
        v = r.int_()
        versions.append(v)
        if v == 3:
            break
        if v not in (1, 2):
            raise DlibFormatError(f"unexpected layer version {v}")
    r.expect_str("input_rgb_image_sized")
    means = (r.float_(), r.float_(), r.float_())
    size = (r.int_(), r.int_())
    layers: list[_Layer] = []
    first = True
    while not r.at_end():
        layers.append(_read_layer_details(r))
        _skip_layer_state(r)
        if first:
            r.int_()  # sample_expansion_factor of the add_layer on the input layer
            first = False
    n_computational = sum(1 for v in versions if v in (2, 3))
    if n_computational != len(layers):
        raise DlibFormatError(f"{n_computational} add_layers declared but {len(layers)} read")
    return _ResNetFile(means, size, layers)


# ------------------------------------------------------------------------------------------------------------
# ResNet: ONNX graph


class _GraphBuilder:
    """Accumulates ONNX nodes and initializers, tracking static NCHW shapes for dlib's padded add."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, arr: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(self, op: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - k) // stride


@dataclass
class _T:
    """A tensor in the graph under construction: its name and static (C, H, W)."""

    name: str
    chw: tuple[int, int, int]


def _emit_layer(g: _GraphBuilder, layer: _Layer, x: _T) -> _T:
    c, h, w = x.chw
    if layer.kind == "con":
        i = layer.ints
        wt, bs = layer.arrays["w"], layer.arrays["b"]
        out = g.node(
            "Conv",
            [x.name, g.const("con_w", wt), g.const("con_b", bs)],
            "con",
            kernel_shape=[i["nr"], i["nc"]],
            strides=[i["stride_y"], i["stride_x"]],
            pads=[i["padding_y"], i["padding_x"], i["padding_y"], i["padding_x"]],
        )
        oh = _conv_out(h, i["nr"], i["stride_y"], i["padding_y"])
        ow = _conv_out(w, i["nc"], i["stride_x"], i["padding_x"])
        return _T(out, (i["num_filters"], oh, ow))
    if layer.kind == "affine":
        gamma = layer.arrays["gamma"].reshape(1, -1, 1, 1)
        beta = layer.arrays["beta"].reshape(1, -1, 1, 1)
        y = g.node("Mul", [x.name, g.const("gamma", gamma)], "affine_mul")
        return _T(g.node("Add", [y, g.const("beta", beta)], "affine"), x.chw)
    if layer.kind == "relu":
        return _T(g.node("Relu", [x.name], "relu"), x.chw)
    if layer.kind in ("max_pool", "avg_pool"):
        i = layer.ints
        if i["nr"] == 0 and i["nc"] == 0:
            op = "GlobalMaxPool" if layer.kind == "max_pool" else "GlobalAveragePool"
            return _T(g.node(op, [x.name], layer.kind), (c, 1, 1))
        if i["padding_y"] or i["padding_x"]:
            # dlib's padded pooling ignores the padding for max and divides by the full window for avg;
            # this network never uses it, so refuse rather than guess.
            raise DlibFormatError("padded pooling is not supported")
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        out = g.node(
            op, [x.name], layer.kind, kernel_shape=[i["nr"], i["nc"]], strides=[i["stride_y"], i["stride_x"]]
        )
        oh = _conv_out(h, i["nr"], i["stride_y"], 0)
        ow = _conv_out(w, i["nc"], i["stride_x"], 0)
        return _T(out, (c, oh, ow))
    raise DlibFormatError(f"layer {layer.kind!r} cannot be emitted here")


def _pad_to(g: _GraphBuilder, x: _T, chw: tuple[int, int, int]) -> str:
    """Zero-pad ``x`` at the end of C, H and W up to ``chw`` (dlib's ``tt::add`` on unequal shapes)."""
    if x.chw == chw:
        return x.name
    pads = np.array([0, 0, 0, 0, 0, *(t - s for t, s in zip(chw, x.chw, strict=True))], np.int64)
    return g.node("Pad", [x.name, g.const("pads", pads)], "pad", mode="constant")


def _add_prev(g: _GraphBuilder, a: _T, b: _T) -> _T:
    out_chw = (max(a.chw[0], b.chw[0]), max(a.chw[1], b.chw[1]), max(a.chw[2], b.chw[2]))
    out = g.node("Add", [_pad_to(g, a, out_chw), _pad_to(g, b, out_chw)], "add_prev")
    return _T(out, out_chw)


_BLOCK = ["con", "affine", "relu", "con", "affine"]


def _build_graph(g: _GraphBuilder, layers: list[_Layer], x: _T) -> _T:
    """Emit dlib's face ResNet: a stem, then residual blocks, then global pooling and fc_no_bias.

    The file has no tag/skip data, so the topology is recovered from the sequence of layer kinds:
    a block is ``con affine relu con affine`` then either ``add_prev`` (identity shortcut: adds the block
    input) or ``avg_pool add_prev`` (``add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>``: adds the block
    output to ``avg_pool(x)``), then ``relu``.
    """
    kinds = [layer.kind for layer in layers]
    i = 0
    # stem: con affine relu max_pool
    if kinds[:4] != ["con", "affine", "relu", "max_pool"]:
        raise DlibFormatError(f"unexpected stem {kinds[:4]}")
    for layer in layers[:4]:
        x = _emit_layer(g, layer, x)
    i = 4
    while i < len(layers) and kinds[i] == "con":
        if kinds[i : i + 5] != _BLOCK:
            raise DlibFormatError(f"unexpected residual block at layer {i}: {kinds[i : i + 5]}")
        block_in = x
        y = x
        for layer in layers[i : i + 5]:
            y = _emit_layer(g, layer, y)
        i += 5
        if kinds[i] == "avg_pool":
            shortcut = _emit_layer(g, layers[i], block_in)
            i += 1
            if kinds[i] != "add_prev":
                raise DlibFormatError(f"expected add_prev at layer {i}")
            x = _add_prev(g, shortcut, y)
        elif kinds[i] == "add_prev":
            x = _add_prev(g, y, block_in)
        else:
            raise DlibFormatError(f"unexpected {kinds[i]} after a block at layer {i}")
        i += 1
        if kinds[i] != "relu":
            raise DlibFormatError(f"expected relu after add_prev at layer {i}")
        x = _emit_layer(g, layers[i], x)
        i += 1
    if kinds[i:] != ["avg_pool", "fc"]:
        raise DlibFormatError(f"unexpected head {kinds[i:]}")
    x = _emit_layer(g, layers[i], x)
    fc = layers[i + 1]
    flat = g.node("Flatten", [x.name], "flatten", axis=1)
    y_name = g.node("MatMul", [flat, g.const("fc_w", fc.arrays["w"])], "fc")
    if "b" in fc.arrays:
        y_name = g.node("Add", [y_name, g.const("fc_b", fc.arrays["b"])], "fc_bias")
    return _T(y_name, (int(fc.arrays["w"].shape[1]), 1, 1))


def convert_resnet(dat_path: Path, onnx_path: Path) -> None:
    """Convert dlib's face-recognition ResNet (``*.dat``) into an ONNX model at ``onnx_path``.

    Input ``image``: float32 ``[N, 150, 150, 3]``, an RGB chip with values 0..255 (dynamic N).
    Output ``embedding``: float32 ``[N, 128]``, dlib's raw descriptor (not re-normalised).
    dlib's input normalisation, ``(pixel - mean_rgb) / 256``, is done inside the graph.
    """
    import onnx
    from onnx import TensorProto, helper

    parsed = _parse_resnet(Path(dat_path).read_bytes())
    nr, nc = parsed.size
    g = _GraphBuilder()
    nchw = g.node("Transpose", ["image"], "to_nchw", perm=[0, 3, 1, 2])
    means = np.array(parsed.means_rgb, np.float32).reshape(1, 3, 1, 1)
    centred = g.node("Sub", [nchw, g.const("mean_rgb", means)], "sub_mean")
    # dlib divides by 256.0; multiplying by 2**-8 is bit-identical in float32.
    scaled = g.node("Mul", [centred, g.const("inv256", np.array(1.0 / 256.0, np.float32))], "scale")
    out = _build_graph(g, parsed.layers, _T(scaled, (3, nr, nc)))
    g.nodes.append(helper.make_node("Identity", [out.name], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", nr, nc, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", out.chw[0]])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keeneye.models.convert.dlib"
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "source": "dlib_face_recognition_resnet_model_v1.dat (face-recognition-models 0.3.0, CC0)",
            "input": "image float32 [N,150,150,3] RGB 0..255 chip (dlib get_face_chip size=150 padding=0.25)",
            "output": "embedding float32 [N,128] raw dlib descriptor",
        },
    )
    onnx.checker.check_model(model)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))


# ------------------------------------------------------------------------------------------------------------
# Shape predictor


def _parse_tree(r: _Reader) -> tuple[list[tuple[int, int, float]], list[F32]]:
    splits = [(r.int_(), r.int_(), r.float_()) for _ in range(r.int_())]
    leaves = [r.float_matrix() for _ in range(r.int_())]
    return splits, leaves


def convert_shape_predictor(dat_path: Path, npz_path: Path) -> None:
    """Convert a dlib ``shape_predictor`` (.dat) into an ``.npz`` of dense arrays.

    Arrays (C cascades, T trees per cascade, S splits per tree, L = S + 1 leaves, F feature pixels per
    cascade, P parts):

    * ``initial_shape`` float32 (P, 2): mean shape in the unit box ((0, 0) = box top-left,
      (1, 1) = bottom-right)
    * ``split_idx1``, ``split_idx2`` int32 (C, T, S): feature-pixel indices compared at each split node
    * ``split_thresh`` float32 (C, T, S): go left (2i+1) if ``f[idx1] - f[idx2] > thresh``, else right (2i+2)
    * ``leaf_values`` float32 (C, T, L, P, 2): shape increment added at each leaf
    * ``anchor_idx`` int32 (C, F): part each feature pixel is anchored to
    * ``deltas`` float32 (C, F, 2): pixel offset from its anchor, in the initial-shape frame
    """
    r = _Reader(Path(dat_path).read_bytes())
    if r.int_() != 1:
        raise DlibFormatError("unexpected shape_predictor version")
    initial = r.float_matrix().reshape(-1, 2)
    forests = []
    for _ in range(r.int_()):
        forests.append([_parse_tree(r) for _ in range(r.int_())])
    anchors = [[r.int_() for _ in range(r.int_())] for _ in range(r.int_())]
    deltas = [[(r.float_(), r.float_()) for _ in range(r.int_())] for _ in range(r.int_())]
    if not r.at_end():
        raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the shape predictor")
    n_parts = initial.shape[0]
    n_splits = {len(t[0]) for f in forests for t in f}
    n_trees = {len(f) for f in forests}
    if len(n_splits) != 1 or len(n_trees) != 1:
        raise DlibFormatError("trees of unequal depth or forests of unequal size are not supported")
    s = n_splits.pop()
    idx1 = np.array([[[sp[0] for sp in t[0]] for t in f] for f in forests], np.int32)
    idx2 = np.array([[[sp[1] for sp in t[0]] for t in f] for f in forests], np.int32)
    thresh = np.array([[[sp[2] for sp in t[0]] for t in f] for f in forests], np.float32)
    leaves = np.array([[np.stack(t[1]) for t in f] for f in forests], np.float32)
    leaves = leaves.reshape(len(forests), n_trees.pop(), s + 1, n_parts, 2)
    npz_path = Path(npz_path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        npz_path,
        initial_shape=initial.astype(np.float32),
        split_idx1=idx1,
        split_idx2=idx2,
        split_thresh=thresh,
        leaf_values=leaves,
        anchor_idx=np.array(anchors, np.int32),
        deltas=np.array(deltas, np.float32),
    )
