"""MTCNN's three networks (PyPI ``mtcnn`` 0.1.1, MIT) -> ONNX, with numpy and onnx only.

The wheel ships ``mtcnn/data/mtcnn_weights.npy``: a NumPy ``.npy`` holding one pickled dict
``{"pnet": [...], "rnet": [...], "onet": [...]}``, each a list of float32 arrays in Keras
``get_weights()`` order for the models ``mtcnn/network/factory.py`` builds (the weights are Zhang
et al.'s Caffe MTCNN, via FaceNet's TensorFlow port). Pickle can run code, so it is read with an
unpickler that resolves only the four globals such a file names (``numpy.ndarray``, ``numpy.dtype``,
numpy's ``_reconstruct`` and ``_codecs.encode``); anything else is refused. (``mtcnn`` 1.0.0 ships the
same weights as lz4-compressed joblib pickles, which would need two more libraries.)

The networks (``factory.py``; Keras, channels-last)::

    P-Net (any size): conv3x3 10, PReLU, maxpool 2/2 same; conv3x3 16, PReLU; conv3x3 32, PReLU;
                      conv1x1 2 + softmax (face probability), conv1x1 4 (box regression)
    R-Net (24x24):    conv3x3 28, PReLU, maxpool 3/2 same; conv3x3 48, PReLU, maxpool 3/2 valid;
                      conv2x2 64, PReLU; flatten; dense 128, PReLU; dense 2 + softmax, dense 4
    O-Net (48x48):    conv3x3 32, PReLU, maxpool 3/2 same; conv3x3 64, PReLU, maxpool 3/2 valid;
                      conv3x3 64, PReLU, maxpool 2/2 same; conv2x2 128, PReLU; flatten; dense 256,
                      PReLU; dense 2 + softmax, dense 4, dense 10 (five landmarks: x1..x5, y1..y5)

Caffe's MTCNN was trained on images stored column-major, so ``mtcnn`` feeds every network the image
*transposed* (width first). The ONNX graphs take the image the ordinary way, ``image`` float32
``[N, H, W, 3]`` RGB already normalised ``(x - 127.5) / 128``, transpose it inside, and give outputs
in the ordinary orientation: P-Net ``prob [N, H', W', 2]`` and ``reg [N, H', W', 4]``; R-Net
``prob [N, 2]``, ``reg [N, 4]``; O-Net also ``landmarks [N, 10]``. The regression and landmark values
are exactly Keras's (``reg`` = dx1, dy1, dx2, dy2 as fractions of the box's width/height).
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

OPSET = 17
F32 = npt.NDArray[np.float32]
Net = Literal["pnet", "rnet", "onet"]
INPUT_SIZE: dict[str, int | None] = {"pnet": None, "rnet": 24, "onet": 48}

# (kind, argument): conv (filters, kernel), prelu, pool (kernel, stride, padding), flatten, dense (units)
_ARCH: dict[str, list[tuple[str, Any]]] = {
    "pnet": [
        ("conv", 3),
        ("prelu", None),
        ("pool", (2, 2, "same")),
        ("conv", 3),
        ("prelu", None),
        ("conv", 3),
        ("prelu", None),
    ],
    "rnet": [
        ("conv", 3),
        ("prelu", None),
        ("pool", (3, 2, "same")),
        ("conv", 3),
        ("prelu", None),
        ("pool", (3, 2, "valid")),
        ("conv", 2),
        ("prelu", None),
        ("flatten", None),
        ("dense", None),
        ("prelu", None),
    ],
    "onet": [
        ("conv", 3),
        ("prelu", None),
        ("pool", (3, 2, "same")),
        ("conv", 3),
        ("prelu", None),
        ("pool", (3, 2, "valid")),
        ("conv", 3),
        ("prelu", None),
        ("pool", (2, 2, "same")),
        ("conv", 2),
        ("prelu", None),
        ("flatten", None),
        ("dense", None),
        ("prelu", None),
    ],
}
_HEADS: dict[str, tuple[str, ...]] = {
    "pnet": ("prob", "reg"),
    "rnet": ("prob", "reg"),
    "onet": ("prob", "reg", "landmarks"),
}


class MtcnnFormatError(ValueError):
    """The weights file is not the ``mtcnn`` 0.1.x layout this converter expects."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only what a pickled dict of float arrays needs; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef,unused-ignore]
            return _reconstruct
        raise MtcnnFormatError(f"refusing to load {module}.{name} from the weights file")


def read_weights(npy_path: Path) -> dict[str, list[F32]]:
    """``{"pnet": [...], "rnet": [...], "onet": [...]}`` float32 arrays in Keras weight order."""
    data = Path(npy_path).read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise MtcnnFormatError(f"{npy_path} is not a .npy file")
    major = data[6]
    header_len = struct.unpack("<H" if major == 1 else "<I", data[8:10] if major == 1 else data[8:12])[0]
    start = (10 if major == 1 else 12) + header_len
    header = data[start - header_len : start].decode("latin1")
    if "'|O'" not in header or "'shape': ()" not in header:
        raise MtcnnFormatError(f"expected a pickled object array, header {header.strip()}")
    obj = _NumpyOnlyUnpickler(io.BytesIO(data[start:]), encoding="latin1").load()
    if isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype == object:
        obj = obj.item()  # the .npy holds a 0-d object array around the dict
    if not isinstance(obj, dict) or set(obj) != {"pnet", "rnet", "onet"}:
        raise MtcnnFormatError("expected a dict with pnet, rnet and onet weight lists")
    return {k: [np.asarray(a, np.float32) for a in v] for k, v in obj.items()}


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, arr: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        self._n += 1
        name = f"w{self._n}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        name = out or f"{op.lower()}{self._n}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _body(b: _Builder, net: str, weights: list[F32], x: str) -> tuple[str, list[F32]]:
    """Emit the trunk; returns the last tensor (NCHW with H and W swapped, or (N, F)) and unused weights."""
    w = list(weights)
    for kind, arg in _ARCH[net]:
        if kind == "conv":
            kernel, bias = w.pop(0), w.pop(0)
            if kernel.shape[0] != arg:
                raise MtcnnFormatError(f"{net}: expected a {arg}x{arg} kernel, got {kernel.shape}")
            k = b.const(kernel.transpose(3, 2, 0, 1))  # Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw]
            x = b.node("Conv", [x, k, b.const(bias)], kernel_shape=[arg, arg], pads=[0, 0, 0, 0])
        elif kind == "prelu":
            alpha = w.pop(0)
            slope = alpha.reshape(-1, 1, 1) if alpha.ndim == 3 else alpha.reshape(-1)
            x = b.node("PRelu", [x, b.const(slope)])
        elif kind == "pool":
            size, stride, padding = arg
            pad: dict[str, Any] = {"auto_pad": "SAME_UPPER"} if padding == "same" else {"pads": [0, 0, 0, 0]}
            x = b.node("MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride], **pad)
        elif kind == "flatten":
            # Keras flattened its (N, W', H', C) tensor (transposed image, channels last): same order here.
            x = b.node("Flatten", [b.node("Transpose", [x], perm=[0, 2, 3, 1])], axis=1)
        elif kind == "dense":
            kernel, bias = w.pop(0), w.pop(0)
            x = b.node("Add", [b.node("MatMul", [x, b.const(kernel)]), b.const(bias)])
    return x, w


def build_model(net: Net, weights: list[F32]) -> Any:
    """The ONNX model of one MTCNN network from its Keras-order weights (see the module docstring)."""
    from onnx import TensorProto, helper

    b = _Builder()
    size = INPUT_SIZE[net]
    # [N, H, W, 3] -> [N, 3, W, H]: NCHW of the transposed image mtcnn feeds Keras.
    x = b.node("Transpose", ["image"], perm=[0, 3, 2, 1])
    x, rest = _body(b, net, weights, x)
    heads = _HEADS[net]
    # Keras order after the trunk: P-Net conv4-1 (2 classes), conv4-2 (4); R/O-Net dense class, box(, points).
    if len(rest) != 2 * len(heads):
        raise MtcnnFormatError(f"{net}: {len(rest)} head weights left, expected {2 * len(heads)}")
    outputs = []
    for i, head in enumerate(heads):
        kernel, bias = rest[2 * i], rest[2 * i + 1]
        if net == "pnet":
            y = b.node("Conv", [x, b.const(kernel.transpose(3, 2, 0, 1)), b.const(bias)], kernel_shape=[1, 1])
            if head == "prob":
                y = b.node("Softmax", [y], axis=1)
            b.node("Transpose", [y], head, perm=[0, 3, 2, 1])  # back to [N, H', W', C]
            outputs.append(
                helper.make_tensor_value_info(head, TensorProto.FLOAT, ["N", "H", "W", kernel.shape[-1]])
            )
        else:
            y = b.node("Add", [b.node("MatMul", [x, b.const(kernel)]), b.const(bias)])
            b.node(
                "Softmax" if head == "prob" else "Identity",
                [y],
                head,
                **({"axis": 1} if head == "prob" else {}),
            )
            outputs.append(helper.make_tensor_value_info(head, TensorProto.FLOAT, ["N", kernel.shape[-1]]))
    shape: list[int | str] = ["N", "H", "W", 3] if size is None else ["N", size, size, 3]
    graph = helper.make_graph(
        b.nodes,
        f"mtcnn_{net}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        outputs,
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keeneye.models.convert.mtcnn"
    )
    model.ir_version = 8
    return model


def convert_mtcnn(npy_path: Path, onnx_path: Path, net: Net = "pnet") -> None:
    """Write one of MTCNN's networks (``net``) from ``mtcnn_weights.npy`` to ``onnx_path``."""
    import onnx

    if net not in _ARCH:
        raise MtcnnFormatError(f"unknown MTCNN network {net!r}")
    model = build_model(net, read_weights(npy_path)[net])
    onnx.checker.check_model(model, full_check=True)
    Path(onnx_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))
