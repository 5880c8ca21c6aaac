"""Derive the 3-D five-point face template ``keeneye.analysis.faces`` fits poses to, from the mesh.

For the first photo of every 10th LFW person (deep-funneled, ``../shared/data/faces/lfw``): BlazeFace finds
the central face, human's FaceMesh gives its 468 3-D points (x, y in pixels, z in the same units), the mesh is
rotated into the face's own frame (``pose_from_mesh``'s axes: x to the image right, y down, z away from the
camera) and scaled to an eye distance of 1, with the eye midpoint at the origin. Faces turned more than 15
degrees are left out; the median of each named point over the rest is printed, ready to paste.

Usage: python tools/pose_template.py [--data-dir var]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from keeneye.analysis.images import read_image_file  # noqa: E402
from keeneye.config import Settings  # noqa: E402
from keeneye.models.facemesh import FaceMeshLandmarker, face_axes, pose_from_mesh  # noqa: E402
from keeneye.models.registry import build_detector, model_path  # noqa: E402

# name -> mesh indices averaged (MediaPipe canonical mesh; image left/right of an upright face)
POINTS = {
    "eyeLeft": (33, 133, 159, 145),
    "eyeRight": (263, 362, 386, 374),
    "nose": (1,),
    "mouthLeft": (61,),
    "mouthRight": (291,),
    "mouthCenter": (13, 14),
    "earLeft": (234,),
    "earRight": (454,),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=REPO / "var")
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir)
    detector = build_detector(settings.faces.detector, settings.models_dir)
    mesher = FaceMeshLandmarker(model_path(settings.models_dir, "human-facemesh"))
    people = sorted((REPO.parent / "shared/data/faces/lfw").iterdir())[:: args.every]
    rows = []
    for person in people:
        image = read_image_file(sorted(person.glob("*.jpg"))[0])
        dets = detector.detect(image)
        if len(dets) == 0:
            continue
        i = int(np.argmin(np.abs((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2 - image.shape[1] / 2)))
        mesh, score = mesher.mesh(image, dets.xyxy[i : i + 1])
        _roll, yaw, pitch = pose_from_mesh(mesh[0])
        if score[0] < 0.5 or max(abs(yaw), abs(pitch)) > 15:
            continue
        frame = np.stack(face_axes(mesh[0]))  # rows: the face's x, y, z axes in image coordinates
        pts = {n: mesh[0][list(ix)].mean(axis=0) for n, ix in POINTS.items()}
        origin = (pts["eyeLeft"] + pts["eyeRight"]) / 2
        local = {n: frame @ (p - origin) for n, p in pts.items()}
        unit = float(np.linalg.norm(local["eyeRight"] - local["eyeLeft"]))
        rows.append(np.stack([local[n] / unit for n in POINTS]))
    template = np.median(np.stack(rows), axis=0)
    print(f"# {len(rows)} faces")
    for name, (x, y, z) in zip(POINTS, template, strict=True):
        print(f'    "{name}": ({x:.3f}, {y:.3f}, {z:.3f}),')


if __name__ == "__main__":
    main()
