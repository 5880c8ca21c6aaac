"""Builders the tests share: images and videos made on the fly (never stored in the repo), the fake face
pipeline (keeneye.models.fake) as an analyzer, collections and server services, and data directories
that see the installed models."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.aws.images import ImageLoader
from keeneye.config import CameraEgress, EgressSettings, ImageLimits, Settings, SinkEgress
from keeneye.core.types import UInt8Image
from keeneye.models.fake import CentreFaceDetector, PixelEmbedder
from keeneye.service.container import Services
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.collections import FaceCollections
from keeneye.store.db import Store
from keeneye.streams.egress import EgressPolicy
from keeneye.video.writer import VideoWriter

# -- images ----------------------------------------------------------------------------------------------


def encode(image: np.ndarray | Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(height: int = 60, width: int = 90) -> np.ndarray:
    """An RGB test card: red grows left to right, green top to bottom, blue constant."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 64)], axis=2).astype(np.uint8)


def noise_image(seed: int, height: int = 40, width: int = 40, low: int = 20) -> UInt8Image:
    """Uniform RGB noise in [low, 255): a different image per seed. With the default ``low`` it is never
    black, so the fake detector finds its face in every one, and the pixel embedder's vectors of two
    seeds are far apart."""
    return np.random.default_rng(seed).integers(low, 255, (height, width, 3), dtype=np.uint8)


def huge_png(width: int = 12_000, height: int = 9_000) -> bytes:
    """A 108-megapixel PNG of a few kilobytes: a decompression bomb in miniature."""
    return encode(Image.new("1", (width, height)), "PNG", optimize=True)


def with_exif_orientation(image: np.ndarray, orientation: int) -> bytes:
    img = Image.fromarray(image)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


# -- videos ----------------------------------------------------------------------------------------------


def walking_box_frames(
    count: int, width: int = 160, height: int = 120, x0: int = 10, step: int = 4
) -> list[UInt8Image]:
    """``count`` black frames with a 10x30 white box (rows 40-70) walking right by ``step`` px a frame from
    ``x0``: one person for keeneye.models.fake.BrightBoxDetector."""
    frames = []
    for i in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        x = x0 + i * step
        image[40:70, x : x + 10] = 255
        frames.append(image)
    return frames


def write_video(path: Path, frames: Sequence[UInt8Image], fps: float = 10.0) -> Path:
    """``frames`` (one size) encoded by keeneye's VideoWriter at ``fps``, frame i at i * 1000 / fps ms;
    returns where the writer put the video (an ``.avi`` where H.264 is missing)."""
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, fps) as writer:
        for i, image in enumerate(frames):
            writer.write(image, i * 1000.0 / fps)
    return writer.path


# -- the fake face pipeline ------------------------------------------------------------------------------


def fake_analyzer(embedder_id: str | None = "pixels-v1") -> FaceAnalyzer:
    """A face pipeline of stand-ins (keeneye.models.fake): one face in the middle of any image that is
    not black, the image's first pixels as its vector (``embedder_id``); None: no embedder."""
    embedder = None if embedder_id is None else PixelEmbedder(embedder_id)
    return FaceAnalyzer(detector=CentreFaceDetector(), embedder=embedder)


def fake_collections(
    store: Store, embedder_id: str = "pixels-v1", limits: ImageLimits | None = None
) -> FaceCollections:
    """FaceCollections on ``store`` with the fake pipeline: no model is loaded."""
    return FaceCollections(store, fake_analyzer(embedder_id), limits)


def fake_services(buckets: dict[str, Path] | None = None) -> Services:
    """A server's services with only face analysis (the fake detector, no embedder) and the images of
    ``buckets`` (name -> folder); tests add a store's services where they need them."""
    faces = FaceService(fake_analyzer(embedder_id=None))
    return Services(faces=faces, images=ImageLoader(dict(buckets or {})))


# -- data directories with the installed models -----------------------------------------------------------


def settings_with_models(root: Path, models_dir: Path) -> Settings:
    """Settings for a new data directory ``root/data`` whose ``models`` folder links to the installed
    models, so a subprocess told only ``--data-dir`` finds them too."""
    data = root / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    return Settings(data_dir=data)


def index_photos(
    collections: FaceCollections, collection_id: str, shared_data: Path, names: Sequence[str]
) -> None:
    """Create ``collection_id`` and index the largest face of each named photo of
    ``shared_data/faces/face_recognition/<name>.png``, the name as its ExternalImageId."""
    collections.create_collection(collection_id)
    for name in names:
        photo = (shared_data / "faces" / "face_recognition" / f"{name}.png").read_bytes()
        collections.index_faces(collection_id, photo, external_image_id=name, max_faces=1)


def photo_variants(photo: bytes) -> list[bytes]:
    """Three photos of one person from one: the photo, its mirror image and a copy at 3/4 size (PNG), for
    a user with several faces where the test data holds one photo of them."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    w, h = image.size
    out = []
    for variant in (
        image,
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        image.resize((w * 3 // 4, h * 3 // 4)),
    ):
        buf = io.BytesIO()
        variant.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def enrol_user(
    collections: FaceCollections, collection_id: str, shared_data: Path, name: str, user_id: str
) -> list[str]:
    """Index :func:`photo_variants` of ``faces/face_recognition/<name>.png`` (ExternalImageId ``name``) and
    associate the three faces with ``user_id`` (created); returns their FaceIds."""
    photo = (shared_data / "faces" / "face_recognition" / f"{name}.png").read_bytes()
    face_ids = [
        collections.index_faces(collection_id, data, external_image_id=name, max_faces=1)
        .indexed[0][0]
        .face_id
        for data in photo_variants(photo)
    ]
    collections.create_user(collection_id, user_id)
    collections.associate_faces(collection_id, user_id, face_ids)
    return face_ids


LOOPBACK = ("127.0.0.0/8", "::1/128")
LOOPBACK_EGRESS = EgressSettings(cameras=CameraEgress(allow=LOOPBACK), sinks=SinkEgress(allow=LOOPBACK))
"""The egress settings of tests whose cameras, webhooks and brokers listen on loopback (refused by
default): loopback allow-listed, everything else as by default."""


def loopback_egress() -> EgressPolicy:
    """An egress policy with loopback allowed (the test rigs listen on 127.0.0.1)."""
    return EgressPolicy(LOOPBACK_EGRESS)
