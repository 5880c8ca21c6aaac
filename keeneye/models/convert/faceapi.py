"""face-api's age/gender and expression networks (npm ``@vladmandic/face-api`` 1.7.15, MIT) -> ONNX.

face-api ships its weights as TF.js *weights manifests* (``model/<name>-weights_manifest.json`` plus a
``.bin`` of uint8-quantised tensors: ``value = q * scale + min``) without a graph: the architecture is
TypeScript in the package's ``src/``. This module writes those two graphs in ONNX with numpy and onnx
only (TF.js's converter cannot help: there is no graph to convert). Read from ``src/`` (1.7.15):

* **age/gender** (``ageGenderNet``, ``xception/TinyXception.ts`` with 2 main blocks): conv 3x3/2 32 +
  ReLU; reduction block 0 (no input ReLU) and 1 (64, 128 channels); main blocks 0 and 1 (128); exit
  reduction block (256); separable conv 512 + ReLU; average pool 7x7/2 valid -> 512; ``fc/age`` (1, the
  age in years) and ``fc/gender`` (2, softmax: male, female). A reduction block is
  ``sep(relu(sep(relu?(x)))) -> maxpool 3x3/2 same, + conv1x1/2(x)``; a main block is three
  ``sep(relu(.))`` plus ``x``.
* **expression** (``faceExpressionNet``, ``faceFeatureExtractor``): four dense blocks of four convs
  (32, 64, 128, 256 channels; the first conv of block 0 a plain conv, the others separable; each block
  halves the size), average pool 7x7/2 valid -> 256, ``fc`` (7, softmax: neutral, happy, sad, angry,
  fearful, disgusted, surprised). A dense block is ``o1 = relu(c0(x)); o2 = c1(o1);
  o3 = c2(relu(o1+o2)); o4 = c3(relu(o1+o2+o3)); relu(o1+o2+o3+o4)``.

TF's ``same`` padding puts the odd pixel at the end (ONNX ``SAME_UPPER``). Both graphs take ``image``
float32 ``[N, 112, 112, 3]`` **RGB 0..255** (face-api's own input: the face crop padded to a square,
centred, and resized bilinearly to 112) and subtract face-api's channel means and divide by 255 inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from keeneye.models.convert.mtcnn import _Builder

OPSET = 17
F32 = npt.NDArray[np.float32]
Net = Literal["age_gender", "expression"]
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
EXPRESSION_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


class FaceApiFormatError(ValueError):
    """The weights manifest is not the face-api 1.7 layout this converter expects."""


def read_weights(manifest_path: Path) -> dict[str, F32]:
    """Every tensor of a TF.js weights manifest (float32, dequantised), by name."""
    manifest_path = Path(manifest_path)
    try:
        groups = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise FaceApiFormatError(f"{manifest_path.name}: not a readable weights manifest ({exc})") from exc
    out: dict[str, F32] = {}
    for group in groups:
        for p in group["paths"]:  # shards sit beside the manifest: a bare file name, nothing else
            if Path(p).name != p or p in ("", ".", ".."):
                raise FaceApiFormatError(f"{manifest_path.name}: shard path {p!r} is not a file name")
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(s) for s in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                if quant.get("dtype") != "uint8":
                    raise FaceApiFormatError(f"{spec['name']}: unsupported quantisation {quant.get('dtype')}")
                raw = np.frombuffer(data, np.uint8, count, offset).astype(np.float32)
                arr = raw * np.float32(quant["scale"]) + np.float32(quant["min"])
                offset += count
            elif spec["dtype"] == "float32":
                arr = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
                offset += 4 * count
            else:
                raise FaceApiFormatError(f"{spec['name']}: unsupported dtype {spec['dtype']}")
            out[spec["name"]] = arr.reshape(shape)
        if offset != len(data):
            raise FaceApiFormatError(
                f"{manifest_path.name}: {len(data) - offset} bytes left after the tensors"
            )
    return out


class _Net:
    def __init__(self, weights: dict[str, F32]) -> None:
        self.b = _Builder()
        self.w = weights
        self.used: set[str] = set()

    def take(self, name: str) -> F32:
        if name not in self.w:
            raise FaceApiFormatError(f"missing tensor {name}")
        self.used.add(name)
        return self.w[name]

    def conv(self, x: str, prefix: str, stride: int) -> str:
        k = self.take(f"{prefix}/filters")  # [kh, kw, in, out]
        return self.b.node(
            "Conv",
            [x, self.b.const(k.transpose(3, 2, 0, 1)), self.b.const(self.take(f"{prefix}/bias"))],
            kernel_shape=[k.shape[0], k.shape[1]],
            strides=[stride, stride],
            auto_pad="SAME_UPPER",
        )

    def sep(self, x: str, prefix: str, stride: int = 1) -> str:
        dw = self.take(f"{prefix}/depthwise_filter")  # [kh, kw, in, 1]
        pw = self.take(f"{prefix}/pointwise_filter")  # [1, 1, in, out]
        channels = dw.shape[2]
        y = self.b.node(
            "Conv",
            [x, self.b.const(dw.transpose(2, 3, 0, 1))],  # -> [in, 1, kh, kw], one group per channel
            kernel_shape=[dw.shape[0], dw.shape[1]],
            strides=[stride, stride],
            group=channels,
            auto_pad="SAME_UPPER",
        )
        return self.b.node(
            "Conv",
            [y, self.b.const(pw.transpose(3, 2, 0, 1)), self.b.const(self.take(f"{prefix}/bias"))],
            kernel_shape=[1, 1],
        )

    def relu(self, x: str) -> str:
        return self.b.node("Relu", [x])

    def add(self, *xs: str) -> str:
        out = xs[0]
        for x in xs[1:]:
            out = self.b.node("Add", [out, x])
        return out

    def fc(self, x: str, prefix: str) -> str:
        return self.add(
            self.b.node("MatMul", [x, self.b.const(self.take(f"{prefix}/weights"))]),
            self.b.const(self.take(f"{prefix}/bias")),
        )

    def pooled(self, x: str) -> str:
        y = self.b.node("AveragePool", [x], kernel_shape=[7, 7], strides=[2, 2], pads=[0, 0, 0, 0])
        return self.b.node("Flatten", [y], axis=1)  # 1x1 spatial: channel order is TF's too


def _input(n: _Net) -> str:
    """``image`` [N, 112, 112, 3] RGB 0..255 -> NCHW ``(x - mean) / 255``."""
    x = n.b.node("Transpose", ["image"], perm=[0, 3, 1, 2])
    mean = np.asarray(MEAN_RGB, np.float32).reshape(1, 3, 1, 1)
    x = n.b.node("Sub", [x, n.b.const(mean)])
    return n.b.node("Div", [x, n.b.const(np.asarray(255.0, np.float32))])


def _reduction(n: _Net, x: str, prefix: str, activate_input: bool = True) -> str:
    out = n.relu(x) if activate_input else x
    out = n.sep(out, f"{prefix}/separable_conv0")
    out = n.sep(n.relu(out), f"{prefix}/separable_conv1")
    out = n.b.node("MaxPool", [out], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    return n.add(out, n.conv(x, f"{prefix}/expansion_conv", 2))


def _main_block(n: _Net, x: str, prefix: str) -> str:
    out = n.sep(n.relu(x), f"{prefix}/separable_conv0")
    out = n.sep(n.relu(out), f"{prefix}/separable_conv1")
    out = n.sep(n.relu(out), f"{prefix}/separable_conv2")
    return n.add(out, x)


def _dense_block(n: _Net, x: str, prefix: str, first: bool) -> str:
    o1 = n.relu(n.conv(x, f"{prefix}/conv0", 2) if first else n.sep(x, f"{prefix}/conv0", 2))
    o2 = n.sep(o1, f"{prefix}/conv1")
    o3 = n.sep(n.relu(n.add(o1, o2)), f"{prefix}/conv2")
    o4 = n.sep(n.relu(n.add(o1, o2, o3)), f"{prefix}/conv3")
    return n.relu(n.add(o1, o2, o3, o4))


def build_model(net: Net, weights: dict[str, F32]) -> Any:
    """The ONNX model of one face-api network from its dequantised weights (module docstring)."""
    from onnx import TensorProto, helper

    n = _Net(weights)
    x = _input(n)
    outputs = []
    if net == "age_gender":
        x = n.relu(n.conv(x, "entry_flow/conv_in", 2))
        x = _reduction(n, x, "entry_flow/reduction_block_0", activate_input=False)
        x = _reduction(n, x, "entry_flow/reduction_block_1")
        for i in range(2):
            x = _main_block(n, x, f"middle_flow/main_block_{i}")
        x = _reduction(n, x, "exit_flow/reduction_block")
        x = n.pooled(n.relu(n.sep(x, "exit_flow/separable_conv")))
        n.b.node("Identity", [n.fc(x, "fc/age")], "age")
        n.b.node("Softmax", [n.fc(x, "fc/gender")], "gender", axis=1)
        outputs = [
            helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["N", 2]),
        ]
    elif net == "expression":
        for i in range(4):
            x = _dense_block(n, x, f"dense{i}", first=i == 0)
        n.b.node("Softmax", [n.fc(n.pooled(x), "fc")], "expression", axis=1)
        outputs = [helper.make_tensor_value_info("expression", TensorProto.FLOAT, ["N", 7])]
    else:
        raise FaceApiFormatError(f"unknown face-api network {net!r}")
    unused = sorted(set(weights) - n.used)
    if unused:
        raise FaceApiFormatError(f"{net}: tensors not used by the graph: {unused[:5]}")
    graph = helper.make_graph(
        n.b.nodes,
        f"faceapi_{net}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", INPUT_SIZE, INPUT_SIZE, 3])],
        outputs,
        initializer=n.b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keeneye.models.convert.faceapi"
    )
    model.ir_version = 8
    return model


def convert_faceapi(manifest_path: Path, onnx_path: Path, net: Net = "age_gender") -> None:
    """Write face-api's ``net`` from its weights manifest (``model/<name>-weights_manifest.json``, the
    ``.bin`` beside it) to ``onnx_path``."""
    import onnx

    if net not in ("age_gender", "expression"):
        raise FaceApiFormatError(f"unknown face-api network {net!r}")
    model = build_model(net, read_weights(Path(manifest_path)))
    onnx.checker.check_model(model, full_check=True)
    Path(onnx_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))
