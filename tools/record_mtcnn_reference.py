"""Record PyPI ``mtcnn`` 0.1.1's own outputs (Keras/TensorFlow), for the MTCNN ONNX conversion test.

Runs in a throwaway virtual environment, never the project's (TensorFlow is not a keeneye dependency)::

    python3.11 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu tf_keras h5py pillow "setuptools<81" \
        "opencv-python-headless==4.14.0.94"   # the OpenCV the project uses, so resizes match bit for bit
    /tmp/tfref/bin/pip install --no-deps mtcnn==0.1.1
    /tmp/tfref/bin/python tools/record_mtcnn_reference.py --shared-data ../shared/data \
        --out tests/fixtures/mtcnn_reference.npz

It writes, for each network (``pnet``, ``rnet``, ``onet``), seeded inputs in [-1, 1] in the ordinary
orientation (``<net>_input``, NHWC) and what ``mtcnn``'s Keras model gave for them, fed transposed as
``mtcnn`` feeds it, with the outputs transposed back (``<net>_prob``, ``<net>_reg``, ``onet_landmarks``);
and ``MTCNN().detect_faces`` on a few real photos (``images``: paths under the shared data directory;
``faces``: rows ``image index, x, y, w, h, confidence, 10 keypoint coordinates``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGES = (
    "faces/face_recognition/obama-480p.jpg",
    "faces/face_recognition/two_people.jpg",
    "faces/misc/skimage_astronaut.png",
    "faces/widerface_val/subset_orig/images/0--Parade/0_Parade_Parade_0_205.jpg",
    "faces/widerface_val/subset_orig/images/20--Family_Group/20_Family_Group_Family_Group_20_483.jpg",
)
KEYS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def main() -> None:
    import cv2
    from mtcnn import MTCNN

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=20261206)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    detector = MTCNN()
    nets = {
        "pnet": (detector._pnet, (2, 37, 53, 3)),
        "rnet": (detector._rnet, (5, 24, 24, 3)),
        "onet": (detector._onet, (5, 48, 48, 3)),
    }
    out: dict[str, np.ndarray] = {}
    for name, (model, shape) in nets.items():
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        outs = model.predict(x.transpose(0, 2, 1, 3), verbose=0)
        out[f"{name}_input"] = x
        if name == "pnet":
            out["pnet_reg"] = np.asarray(outs[0]).transpose(0, 2, 1, 3)
            out["pnet_prob"] = np.asarray(outs[1]).transpose(0, 2, 1, 3)
        else:
            out[f"{name}_reg"] = np.asarray(outs[0])
            out[f"{name}_prob"] = np.asarray(outs[-1])
            if name == "onet":
                out["onet_landmarks"] = np.asarray(outs[1])
    rows = []
    for i, rel in enumerate(IMAGES):
        image = cv2.cvtColor(cv2.imread(str(args.shared_data / rel)), cv2.COLOR_BGR2RGB)
        for face in detector.detect_faces(image):
            points = [v for k in KEYS for v in face["keypoints"][k]]
            rows.append([i, *face["box"], float(face["confidence"]), *points])
    out["images"] = np.array(IMAGES)
    out["faces"] = np.array(rows, np.float64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: {len(rows)} faces on {len(IMAGES)} images")


if __name__ == "__main__":
    main()
