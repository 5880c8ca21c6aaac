"""TF.js graph model -> ONNX conversion, checked against outputs recorded with TF.js itself.

The references in ``tests/fixtures/tfjs_reference/<model>.json.gz`` come from
``tools/record_tfjs_reference.mjs`` (TF.js 4.22, pure-JS CPU backend). Each holds the uint8 source of
the model input (seeded noise and an LFW face crop, stored at low resolution), the affine map to the
float input, and the TF.js outputs (full, or a strided ``grid<k>`` subset for centernet's 128x128 maps).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keeneye.models.convert.tfjs import (
    ConversionInfo,
    TfjsConversionError,
    UnsupportedOpError,
    convert_graph_model,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tfjs_reference"

#: model -> (package path under the extracted dir, outputs to convert (None: the signature's))
MODELS: dict[str, tuple[str, list[str] | None]] = {
    "blazeface": ("human/models/blazeface", None),
    "faceres": ("human/models/faceres", None),
    "emotion": ("human/models/emotion", None),
    # the TopK/gather decode tail is left to the python backend: expose the raw maps
    "centernet": ("human/models/centernet", ["tower_0/keypoints", "tower_0/wh"]),
    "antispoof": ("human/models/antispoof", None),
    "liveness": ("human-models/models/liveness", None),
    "faceres-deep": ("human-models/models/faceres-deep", None),
    "mobilefacenet": ("human-models/models/mobilefacenet", None),
    "mobileface": ("human-models/models/mobileface", None),
}
#: max |onnx - tfjs| allowed, relative to max(1, max |tfjs|) of each output
TOLERANCE = 1e-4


def _b64(data: str, dtype: type[np.generic], shape: list[int] | None = None) -> np.ndarray:
    arr = np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype).newbyteorder("<"))
    return arr.reshape(shape) if shape is not None else arr


def _load_reference(model: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress((FIXTURES / f"{model}.json.gz").read_bytes()))
    return data


def _model_input(case: dict[str, Any]) -> np.ndarray:
    """Rebuild the float32 NHWC input exactly as the recorder did: upsample, then * scale + offset."""
    spec = case["input"]
    u8 = _b64(spec["u8"], np.uint8, spec["shape"])
    r = int(spec["repeat"])
    up = np.repeat(np.repeat(u8, r, axis=1), r, axis=2).astype(np.float32)
    out: np.ndarray = up * np.float32(spec["scale"]) + np.float32(spec["offset"])
    return out


def _view(got: np.ndarray, view: str) -> np.ndarray:
    if view == "full":
        return got
    stride = int(view.removeprefix("grid"))
    return got[:, ::stride, ::stride, :]


@pytest.fixture(scope="session")
def converted(package_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ConversionInfo]:
    """Every model converted once per session."""
    out = tmp_path_factory.mktemp("tfjs_onnx")
    return {
        name: convert_graph_model(package_sources / f"{rel}.json", out / f"{name}.onnx", outputs=outputs)
        for name, (rel, outputs) in MODELS.items()
    }


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.models
@pytest.mark.parametrize("model", list(MODELS))
def test_matches_tfjs_reference(model: str, converted: dict[str, ConversionInfo]) -> None:
    info = converted[model]
    ref = _load_reference(model)
    sess = _session(info.onnx_path)
    for label, case in ref["cases"].items():
        x = _model_input(case)
        got = dict(zip(info.output_names, sess.run(None, {info.input_name: x}), strict=True))
        for name, spec in case["outputs"].items():
            want = _b64(spec["data"], np.float32, spec["shape"])
            diff = np.abs(_view(got[name], spec["view"]) - want).max()
            scale = max(1.0, float(np.abs(want).max()))
            assert diff <= TOLERANCE * scale, f"{model}/{label}/{name}: max abs diff {diff:.3g}"
        if "topk" in case:
            _check_topk(got["tower_0/keypoints"], case["topk"])


def _check_topk(heatmap: np.ndarray, topk: dict[str, Any]) -> None:
    """The TF.js top-k scores must be the top-k of the ONNX heatmap, at the same positions."""
    values, indices = _b64(topk["values"], np.float32), _b64(topk["indices"], np.int32)
    flat = heatmap.reshape(-1)
    assert np.abs(flat[indices] - values).max() <= TOLERANCE
    assert np.abs(np.sort(flat)[::-1][: topk["k"]] - values).max() <= TOLERANCE


@pytest.mark.models
@pytest.mark.parametrize(
    ("model", "in_shape", "out_shapes"),
    [
        ("blazeface", (1, 256, 256, 3), [(1, 512, 1), (1, 384, 1), (1, 512, 16), (1, 384, 16)]),
        ("faceres", (None, 224, 224, 3), [(None, 100), (None, 1), (None, 1024)]),
        ("emotion", (None, 64, 64, 1), [(None, 7)]),
        ("centernet", (1, 512, 512, 3), [(1, 128, 128, 80), (1, 128, 128, 4)]),
        ("mobilefacenet", (None, 112, 112, 3), [(None, 192)]),
    ],
)
def test_keeps_tf_layout(
    model: str,
    in_shape: tuple[int | None, ...],
    out_shapes: list[tuple[int | None, ...]],
    converted: dict[str, ConversionInfo],
) -> None:
    info = converted[model]
    assert info.input_shape == in_shape
    assert info.output_shapes == out_shapes
    # one transpose for the input, at most one per output: the body runs in NCHW
    assert info.onnx_op_counts.get("Transpose", 0) <= 1 + len(info.output_names)


@pytest.mark.models
def test_dynamic_batch(converted: dict[str, ConversionInfo]) -> None:
    info = converted["emotion"]
    x = np.random.default_rng(0).uniform(-1, 1, (3, 64, 64, 1)).astype(np.float32)
    sess = _session(info.onnx_path)
    batched = sess.run(None, {info.input_name: x})[0]
    single = np.concatenate([sess.run(None, {info.input_name: x[i : i + 1]})[0] for i in range(3)])
    assert batched.shape == (3, 7)
    np.testing.assert_allclose(batched, single, atol=1e-6)


@pytest.mark.models
def test_dynamic_batch_on_fixed_batch_graph(package_sources: Path, tmp_path: Path) -> None:
    """blazeface declares batch 1; asking for -1 rewrites its Reshape heads to keep the batch."""
    info = convert_graph_model(
        package_sources / "human/models/blazeface.json", tmp_path / "b.onnx", input_shape=(-1, 256, 256, 3)
    )
    assert info.input_shape == (None, 256, 256, 3) and info.output_shapes[0] == (None, 512, 1)
    x = np.random.default_rng(4).uniform(-1, 1, (2, 256, 256, 3)).astype(np.float32)
    sess = _session(info.onnx_path)
    batched = sess.run(None, {info.input_name: x})
    singles = [sess.run(None, {info.input_name: x[i : i + 1]}) for i in range(2)]
    for j, out in enumerate(batched):
        np.testing.assert_allclose(out, np.concatenate([s[j] for s in singles]), atol=1e-4)


@pytest.mark.models
def test_centernet_tail_is_unsupported(package_sources: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"unsupported TF.js op .* at node .tower_0/"):
        convert_graph_model(package_sources / "human/models/centernet.json", tmp_path / "c.onnx")


# ----------------------------------------------------------------------------- hand-built graphs


def _node(name: str, op: str, inputs: list[str] | None = None, **attr: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": inputs or [], "attr": attr}


def _ints(*vals: int) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in vals]}}


def _s(text: str) -> dict[str, Any]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _placeholder(shape: tuple[int, ...]) -> dict[str, Any]:
    dims = [{"size": str(d)} for d in shape]
    return _node("x", "Placeholder", dtype={"type": "DT_FLOAT"}, shape={"shape": {"dim": dims}})


def _write_model(tmp: Path, nodes: list[dict[str, Any]], weights: dict[str, np.ndarray]) -> Path:
    """Write model.json + one shard; ``*_q`` weights are stored float16, ``*_u8`` affine uint8."""
    specs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr in weights.items():
        spec: dict[str, Any] = {"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        stored = arr
        if name.endswith("_q"):
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            stored = arr.astype(np.float16)
        elif name.endswith("_u8"):
            lo, scale = float(arr.min()), float(np.ptp(arr)) / 255
            spec["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
            stored = np.round((arr - lo) / scale).astype(np.uint8)
        specs.append(spec)
        blobs.append(stored.astype(stored.dtype.newbyteorder("<")).tobytes())
        dtype = "DT_INT32" if arr.dtype == np.int32 else "DT_FLOAT"
        nodes.append(_node(name, "Const", dtype={"type": dtype}))
    (tmp / "w.bin").write_bytes(b"".join(blobs))
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": specs}],
    }
    path = tmp / "model.json"
    path.write_text(json.dumps(model))
    return path


def _run(path: Path, x: np.ndarray, tmp: Path, **kwargs: Any) -> tuple[ConversionInfo, list[np.ndarray]]:
    info = convert_graph_model(path, tmp / "m.onnx", **kwargs)
    onnx.checker.check_model(onnx.load(str(info.onnx_path)))
    return info, _session(info.onnx_path).run(None, {info.input_name: x})


def _conv_same_nhwc(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Reference stride-1 SAME conv in NHWC with an HWIO kernel (odd kernel sizes)."""
    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros((*x.shape[:3], w.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + x.shape[1], j : j + x.shape[2]], w[i, j])
    return out


def test_fused_conv_relu6_mean_softmax(tmp_path: Path) -> None:
    """_FusedConv2D(BiasAdd, Relu) -> Relu6 -> Mul by a channel const -> Mean(H,W) -> Softmax."""
    rng = np.random.default_rng(1)
    weights = {
        "w_q": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
        "b": rng.normal(size=(4,)).astype(np.float32),
        "k": rng.uniform(0.5, 1.5, size=(4,)).astype(np.float32),
        "axes": np.array([1, 2], np.int32),
    }
    conv_attr = {
        "strides": _ints(1, 1, 1, 1),
        "padding": _s("SAME"),
        "data_format": _s("NHWC"),
        "fused_ops": {"list": {"s": [_s("BiasAdd")["s"], _s("Relu")["s"]]}},
        "num_args": {"i": "1"},
    }
    nodes = [
        _placeholder((-1, 6, 5, 2)),
        _node("conv", "_FusedConv2D", ["x", "w_q", "b"], **conv_attr),
        _node("r6", "Relu6", ["conv"]),
        _node("scaled", "Mul", ["r6", "k"]),
        _node("mean", "Mean", ["scaled", "axes"], keep_dims={"b": False}),
        _node("prob", "Softmax", ["mean"]),
    ]
    x = rng.normal(size=(2, 6, 5, 2)).astype(np.float32)
    info, (got,) = _run(_write_model(tmp_path, nodes, weights), x, tmp_path)
    w = weights["w_q"].astype(np.float16).astype(np.float64)  # stored float16-quantised
    y = np.clip(_conv_same_nhwc(x, w) + weights["b"], 0, 6) * weights["k"]
    logits = y.mean(axis=(1, 2))
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert info.input_shape == (None, 6, 5, 2) and info.output_shapes == [(None, 4)]
    assert info.tf_op_counts["_FusedConv2D"] == 1
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_depthwise_pad_maxpool_concat(tmp_path: Path) -> None:
    """Channel Pad, DepthwiseConv2dNative (multiplier 2), MaxPool SAME, ConcatV2 on channels, NHWC output."""
    rng = np.random.default_rng(2)
    weights = {
        "dw": rng.normal(size=(1, 1, 3, 2)).astype(np.float32),
        "pads": np.array([[0, 0], [0, 0], [0, 0], [0, 3]], np.int32),
        "axis": np.array(3, np.int32).reshape(()),
    }
    nodes = [
        _placeholder((1, 4, 4, 3)),
        _node("dwc", "DepthwiseConv2dNative", ["x", "dw"], strides=_ints(1, 1, 1, 1), padding=_s("VALID")),
        _node("pad", "Pad", ["x", "pads"]),
        _node("cat", "ConcatV2", ["dwc", "pad", "axis"], N={"i": "2"}),
        _node(
            "pool", "MaxPool", ["cat"], ksize=_ints(1, 2, 2, 1), strides=_ints(1, 2, 2, 1), padding=_s("SAME")
        ),
        _node("out", "Identity", ["pool"]),
    ]
    x = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    info, (got,) = _run(_write_model(tmp_path, nodes, weights), x, tmp_path)
    dwc = (x[..., :, None] * weights["dw"][0, 0]).reshape(1, 4, 4, 6)  # channel c*2+m
    cat = np.concatenate([dwc, np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 3)))], axis=3)
    want = cat.reshape(1, 2, 2, 2, 2, 12).max(axis=(2, 4))
    assert info.output_names == ["out"] and info.output_shapes == [(1, 2, 2, 12)]
    np.testing.assert_allclose(got, want, atol=1e-6)


def _inline_scalar(name: str, value: float) -> dict[str, Any]:
    """A Const whose value is inline in the graph (no manifest entry)."""
    tensor = {"dtype": "DT_FLOAT", "tensorShape": {}, "floatVal": [value]}
    return _node(name, "Const", dtype={"type": "DT_FLOAT"}, value={"tensor": tensor})


def test_prelu_and_clamp_patterns_are_fused(tmp_path: Path) -> None:
    """``x + (x - |x|) * k`` -> PRelu, ``Relu -> Minimum(6) -> Maximum(0)`` -> one Clip; MatMul head."""
    rng = np.random.default_rng(3)
    weights = {
        "k_u8": rng.uniform(0.05, 0.4, size=(3,)).astype(np.float32),
        "fc": rng.normal(size=(3, 2)).astype(np.float32),
        "fc_b": rng.normal(size=(2,)).astype(np.float32),
        "shape": np.array([-1, 3], np.int32),
    }
    mm_attr = {"fused_ops": {"list": {"s": [_s("BiasAdd")["s"]]}}, "num_args": {"i": "1"}}
    nodes = [
        _placeholder((-1, 1, 1, 3)),
        _inline_scalar("six", 6.0),
        _inline_scalar("zero", 0.0),
        _node("abs", "Abs", ["x"]),
        _node("sub", "Sub", ["x", "abs"]),
        _node("mul", "Mul", ["sub", "k_u8"]),
        _node("prelu", "AddV2", ["x", "mul"]),
        _node("relu", "Relu", ["prelu"]),
        _node("min", "Minimum", ["relu", "six"]),
        _node("max", "Maximum", ["min", "zero"]),
        _node("flat", "Reshape", ["max", "shape"]),
        _node("fc_out", "_FusedMatMul", ["flat", "fc", "fc_b"], **mm_attr),
    ]
    x = rng.normal(scale=5, size=(4, 1, 1, 3)).astype(np.float32)
    info, (got,) = _run(_write_model(tmp_path, nodes, weights), x, tmp_path)
    assert info.onnx_op_counts.get("PRelu") == 1 and info.onnx_op_counts.get("Clip") == 1
    assert not {"Abs", "Sub", "Relu", "Min", "Max"} & set(info.onnx_op_counts)
    k0 = weights["k_u8"]
    step = float(np.ptp(k0)) / 255
    k = np.round((k0 - k0.min()) / step) * step + k0.min()  # what the uint8 shard dequantises to
    y = x.reshape(4, 3)
    y = np.clip(np.where(y > 0, y, (1 + 2 * k) * y), 0, 6) @ weights["fc"] + weights["fc_b"]
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5)


def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    nodes = [
        _placeholder((1, 4)),
        _node("weird/node", "Cumsum", ["x"]),
        _node("y", "Identity", ["weird/node"]),
    ]
    path = _write_model(tmp_path, nodes, {})
    with pytest.raises(UnsupportedOpError, match=r"'Cumsum' at node 'weird/node'") as err:
        convert_graph_model(path, tmp_path / "m.onnx")
    assert (err.value.op, err.value.node) == ("Cumsum", "weird/node")


def test_unknown_output_is_an_error(tmp_path: Path) -> None:
    path = _write_model(tmp_path, [_placeholder((1, 4)), _node("y", "Relu", ["x"])], {})
    with pytest.raises(TfjsConversionError, match="nope"):
        convert_graph_model(path, tmp_path / "m.onnx", outputs=["nope"])
