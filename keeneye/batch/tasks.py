"""The tasks of ``keeneye batch``: what is done to each input, in a worker, once the models are loaded.

- ``detect-faces``: Rekognition's DetectFaces (DEFAULT attributes): ``{"FaceDetails": [...],
  "ImageWidth", "ImageHeight"}``.
- ``index-faces``: IndexFaces' detection, QualityFilter (AUTO unless ``quality_filter``), MaxFaces
  (``max_faces``) and embedding run in the workers; the vectors travel to the driver, which stores
  them in the collection in batches (:class:`IndexCollector`, one transaction per batch), and the row
  then holds IndexFaces' response (FaceRecords with their FaceIds, UnindexedFaces).
- ``search-faces``: SearchFacesByImage with the largest face (``threshold``, 80 by default):
  ``{"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches"}``; no face: ``FaceMatches``
  empty and ``SearchedFaceBoundingBox`` null (a photo without a face is not a bad file).
- ``track``: keeneye.service.video.tracking.track_video on videos (``lines``, ``zones``, ``fps``): a
  summary of persons tracked, line counts and zone entries.

A bad input (missing, empty, not an image, truncated, over the limits) is an error row with keeneye's
error code (NotFound, InvalidImage, ImageTooLarge, InvalidVideo, LimitExceeded...), never an exception.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.analysis.images import decode_image
from keeneye.analysis.quality_filter import QualityFilter, quality_reasons
from keeneye.aws.shapes import bounding_box, confidence, face_detail, face_match, stored_face
from keeneye.batch.base import BatchInput, Row, Task, TaskSpec
from keeneye.batch.inputs import Sources, local_path, read_bytes
from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter, KeeneyeError, NotFound
from keeneye.core.types import Face, UInt8Image
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.collections import EmbeddedImage, FaceCollections
from keeneye.service.governance.audit import AuditLog
from keeneye.service.video.tracking import build_tracking_detector, track_video
from keeneye.store.db import Store
from keeneye.store.tables import CollectionRow
from keeneye.tracking.lines import Line
from keeneye.tracking.zones import Zone

TASKS = ("detect-faces", "index-faces", "search-faces", "track")
IMAGE_TASKS = frozenset({"detect-faces", "index-faces", "search-faces"})
MAX_VIDEO_READ_BYTES = 2 * 1024**3  # a video behind --s3-endpoint is read into memory: bounded
_EXTERNAL_ID_BAD = re.compile(r"[^a-zA-Z0-9_.\-:]")


def settings_for(spec: TaskSpec) -> Settings:
    kwargs: dict[str, Any] = {"data_dir": Path(spec.data_dir)}
    if spec.models_path is not None:
        kwargs["models_path"] = Path(spec.models_path)
    return Settings(**kwargs)


def external_image_id(uri: str) -> str:
    """The file name of ``uri`` as an ExternalImageId (characters IndexFaces refuses become ``_``)."""
    name = PurePosixPath(uri.replace("\\", "/")).name or "image"
    return _EXTERNAL_ID_BAD.sub("_", name)[:255]


def image_id_for(job_id: str, uri: str) -> str:
    """The ImageId of an input in a job: the same on every run, so a replayed batch is recognised."""
    return str(uuid.uuid5(uuid.UUID(job_id), uri))


class _InputTask:
    """Runs each input through ``_process``, times it, turns keeneye errors into error rows."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.sources = Sources.from_options(spec.options)
        self.settings: Settings | None = None

    def setup(self) -> None:
        self.settings = settings_for(self.spec)
        self._load()

    def _load(self) -> None:
        raise NotImplementedError

    def run_batch(self, inputs: Sequence[BatchInput]) -> list[Row]:
        return [self._run_one(item) for item in inputs]

    def _run_one(self, item: BatchInput) -> Row:
        start = time.perf_counter()
        try:
            result = self._process(item)
        except KeeneyeError as e:
            return Row(item.uri, "error", time.perf_counter() - start, {}, e.code, e.message)
        return Row(item.uri, "ok", time.perf_counter() - start, result)

    def _decode(self, item: BatchInput) -> UInt8Image:
        assert self.settings is not None, "setup() first"
        if item.kind != "image":
            raise InvalidParameter(f"{item.uri} is a video; the task {self.spec.name} takes images")
        limits = self.settings.images
        data = read_bytes(item.uri, self.sources, limits.max_bytes)
        return decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)

    def _process(self, item: BatchInput) -> dict[str, Any]:
        raise NotImplementedError


class DetectFacesTask(_InputTask):
    def _load(self) -> None:
        assert self.settings is not None
        analyzer = build_face_analyzer(self.settings, with_embedder=False)
        self.service = FaceService(analyzer, self.settings.images)

    def _process(self, item: BatchInput) -> dict[str, Any]:
        pixels = self._decode(item)
        found = self.service.detect_faces(pixels)
        return {
            "ImageWidth": found.width,
            "ImageHeight": found.height,
            "FaceDetails": [face_detail(f, found.width, found.height) for f in found.faces],
        }


class IndexFacesTask(_InputTask):
    """Detect, filter and embed (the worker's share of IndexFaces); the driver stores the vectors."""

    def _load(self) -> None:
        assert self.settings is not None
        self.quality_filter: QualityFilter = self.spec.options.get("quality_filter") or "AUTO"
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), self.quality_filter)  # validates the name
        self.max_faces: int | None = self.spec.options.get("max_faces")
        self.analyzer: FaceAnalyzer = build_face_analyzer(self.settings, with_embedder=True)

    def _process(self, item: BatchInput) -> dict[str, Any]:
        pixels = self._decode(item)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        faces = self.analyzer.analyze(pixels, attributes="default")
        passing, unindexed = [], []
        for face in faces:
            reasons = quality_reasons(face, self.quality_filter)
            if reasons:
                unindexed.append({"Reasons": list(reasons), "FaceDetail": face_detail(face, width, height)})
            else:
                passing.append(face)
        if self.max_faces is not None and len(passing) > self.max_faces:
            for face in passing[self.max_faces :]:
                unindexed.append(
                    {"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": face_detail(face, width, height)}
                )
            passing = passing[: self.max_faces]
        self.analyzer.embed(pixels, passing)
        return {
            "ImageWidth": width,
            "ImageHeight": height,
            "ExternalImageId": external_image_id(item.uri),
            "Faces": [encode_face(f, width, height) for f in passing],
            "UnindexedFaces": unindexed,
        }


def encode_face(face: Any, width: int, height: int) -> dict[str, Any]:
    """A detected, embedded face as JSON (the vector in base64 little-endian float32) for the driver."""
    assert face.embedding is not None
    return {
        "xyxy": [float(v) for v in face.xyxy],
        "score": float(face.score),
        "embedder_id": face.embedder_id,
        "embedding": base64.b64encode(np.ascontiguousarray(face.embedding, "<f4").tobytes()).decode(),
        "FaceDetail": face_detail(face, width, height),
    }


def decode_face(doc: dict[str, Any]) -> Any:
    return Face(
        np.asarray(doc["xyxy"], np.float32),
        float(doc["score"]),
        embedding=np.frombuffer(base64.b64decode(doc["embedding"]), "<f4").astype(np.float32),
        embedder_id=doc["embedder_id"],
    )


class SearchFacesTask(_InputTask):
    def _load(self) -> None:
        assert self.settings is not None
        self.collection_id = str(self.spec.options["collection_id"])
        self.threshold = float(self.spec.options.get("threshold", 80.0))
        self.max_faces = int(self.spec.options.get("max_faces", 4096))
        self.analyzer = build_face_analyzer(self.settings, with_embedder=True)
        self.store: Store = Store.open(self.settings.data_dir, self.settings.database_url)
        self.collections: FaceCollections = FaceCollections(
            self.store, self.analyzer, self.settings.images, vector_index=self.settings.vector_index
        )
        self.collections.describe_collection(self.collection_id)

    def _process(self, item: BatchInput) -> dict[str, Any]:
        pixels = self._decode(item)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        faces = self.analyzer.analyze(pixels, attributes="none", max_faces=1)
        if not faces:
            return {"SearchedFaceBoundingBox": None, "SearchedFaceConfidence": None, "FaceMatches": []}
        searched = faces[0]
        self.analyzer.embed(pixels, [searched])
        assert searched.embedding is not None and searched.embedder_id is not None
        matches = self.collections.search_faces_by_vector(
            self.collection_id, searched.embedding, searched.embedder_id, self.threshold, self.max_faces
        )
        return {
            "SearchedFaceBoundingBox": bounding_box(searched, width, height),
            "SearchedFaceConfidence": confidence(searched),
            "FaceMatches": [face_match(m) for m in matches],
        }


class TrackTask(_InputTask):
    def _load(self) -> None:
        assert self.settings is not None
        opts = self.spec.options
        self.lines = [Line(d["name"], tuple(d["p1"]), tuple(d["p2"])) for d in opts.get("lines") or []]
        self.zones = [Zone(d["name"], tuple(tuple(p) for p in d["polygon"])) for d in opts.get("zones") or []]
        self.fps: float | None = opts.get("fps")
        self.detector, self.tracker_config = build_tracking_detector(self.settings)

    def _process(self, item: BatchInput) -> dict[str, Any]:
        assert self.settings is not None
        if item.kind != "video":
            raise InvalidParameter(f"{item.uri} is not a video (.mp4 .mkv .avi .mov .ts); track takes videos")
        path = local_path(item.uri, self.sources)
        source: Path | bytes = (
            path if path is not None else read_bytes(item.uri, self.sources, MAX_VIDEO_READ_BYTES)
        )
        r = track_video(
            source,
            self.settings,
            self.lines,
            self.zones,
            target_fps=self.fps,
            detector=self.detector,
            tracker_config=self.tracker_config,
        )
        md = r.metadata
        zones: dict[str, dict[str, int]] = {}
        for z in self.zones:
            visits = [e for e in r.zone_events if e.zone == z.name and e.kind == "enter"]
            zones[z.name] = {"entries": len(visits), "persons": len({e.track_id for e in visits})}
        return {
            "width": md.width,
            "height": md.height,
            "duration_ms": None if md.duration_ms is None else round(md.duration_ms),
            "frames_analysed": r.frames_analysed,
            "persons_tracked": len(r.tracks),
            "lines": r.line_counts,
            "zones": zones,
        }


_CLASSES: dict[str, type[_InputTask]] = {
    "detect-faces": DetectFacesTask,
    "index-faces": IndexFacesTask,
    "search-faces": SearchFacesTask,
    "track": TrackTask,
}


def build_task(spec: TaskSpec) -> Task:
    """The task ``spec`` names, not yet set up (no model loaded: call ``setup()`` in the worker)."""
    if spec.name not in _CLASSES:
        raise InvalidParameter(f"unknown task {spec.name!r}; one of {', '.join(TASKS)}")
    if spec.name in ("index-faces", "search-faces") and not spec.options.get("collection_id"):
        raise InvalidParameter(f"the task {spec.name} needs --collection ID")
    return _CLASSES[spec.name](spec)


def check_collection(spec: TaskSpec) -> None:
    """NotFound, in the driver and before any worker starts, when search-faces names a collection
    that is not there (index-faces checks it, or creates it, in :class:`IndexCollector`)."""
    collection_id = str(spec.options["collection_id"])
    settings = settings_for(spec)
    store = Store.open(settings.data_dir, settings.database_url)
    try:
        with store.sessions() as session:
            if session.get(CollectionRow, collection_id) is None:
                raise NotFound(f"The collection id: {collection_id} does not exist")
    finally:
        store.close()


class IndexCollector:
    """The driver's share of index-faces: rows of embedded faces -> the collection, one transaction per
    batch (:meth:`FaceCollections.index_embedded_faces`), then the rows hold IndexFaces' response.

    ImageIds are derived from the job id and the input, so a batch committed before a crash and
    replayed by the resumed job is not indexed twice."""

    def __init__(self, spec: TaskSpec, job_id: str, *, create: bool = False) -> None:
        settings = settings_for(spec)
        self.job_id = job_id
        self.collection_id = str(spec.options["collection_id"])
        self.store = Store.open(settings.data_dir, settings.database_url)
        self.collections = FaceCollections(
            self.store,
            build_face_analyzer(settings, with_embedder=True),
            settings.images,
            vector_index=settings.vector_index,
        )
        try:
            info = self.collections.describe_collection(self.collection_id)
        except KeeneyeError as e:
            if not create or e.code != "NotFound":
                raise
            info = self.collections.create_collection(self.collection_id)
        if info.face_model_version != self.collections.embedder_id:
            raise InvalidParameter(
                f"collection {self.collection_id} holds vectors of face model {info.face_model_version}; "
                f"the configured embedder is {self.collections.embedder_id}"
            )

    def commit(self, rows: Sequence[Row]) -> None:
        """Store the faces of the ok rows (one transaction) and rewrite their results in place."""
        todo = [r for r in rows if r.status == "ok" and "Faces" in r.result]
        images = [
            EmbeddedImage(
                image_id_for(self.job_id, r.uri),
                int(r.result["ImageWidth"]),
                int(r.result["ImageHeight"]),
                [decode_face(f) for f in r.result["Faces"]],
                r.result.get("ExternalImageId"),
            )
            for r in todo
        ]
        if not images:
            return
        stored = self.collections.index_embedded_faces(self.collection_id, images)
        for row, faces in zip(todo, stored, strict=True):
            details = [f["FaceDetail"] for f in row.result["Faces"]]
            row.result = {
                "FaceRecords": [
                    {"Face": stored_face(s), "FaceDetail": d} for s, d in zip(faces, details, strict=False)
                ],
                "FaceModelVersion": self.collections.embedder_id,
                "UnindexedFaces": row.result.get("UnindexedFaces", []),
            }

    def close(self) -> None:
        self.collections.close()
        self.store.close()


class AuditCollector:
    """Accountability for batch jobs: adding faces to a collection and searching one are audited as
    the server's IndexFaces / SearchFacesByImage are, one record per part written (the CLI acts as the
    operator: access key ``cli``). Wraps the index collector when there is one; the record is written
    after the faces are stored, before the part is (a part on disk is an audited part)."""

    def __init__(self, spec: TaskSpec, job_id: str, inner: IndexCollector | None = None) -> None:
        settings = settings_for(spec)
        self.spec, self.job_id, self.inner = spec, job_id, inner
        self.store = Store.open(settings.data_dir, settings.database_url)
        self.audit = AuditLog(self.store)

    def commit(self, rows: Sequence[Row]) -> None:
        if self.inner is not None:
            self.inner.commit(rows)
        ok = [r for r in rows if r.status == "ok"]
        if not ok:
            return
        matches: list[dict[str, Any]] = []
        if self.spec.name == "index-faces":
            for r in ok:
                matches += [
                    {"FaceId": rec["Face"]["FaceId"], "Input": r.uri}
                    for rec in r.result.get("FaceRecords", [])
                ]
        else:
            for r in ok:
                matches += [
                    {"FaceId": m["Face"]["FaceId"], "Similarity": m["Similarity"], "Input": r.uri}
                    for m in r.result.get("FaceMatches", [])
                ]
        threshold = self.spec.options.get("threshold", 80.0) if self.spec.name == "search-faces" else None
        self.audit.append(
            f"keeneye batch {self.spec.name}",
            access_key="cli",
            collection_id=str(self.spec.options["collection_id"]),
            request_faces=len(ok),
            matches=matches,
            threshold=None if threshold is None else float(threshold),
            details={"job_id": self.job_id},
        )

    def close(self) -> None:
        try:
            if self.inner is not None:
                self.inner.close()
        finally:
            self.store.close()
