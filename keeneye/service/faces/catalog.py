"""Collections and their faces: the use cases behind CreateCollection ... DeleteCollection, IndexFaces,
ListFaces, DeleteFaces, the tags, and the retention of faces.

:class:`FaceCatalog` changes and reads what is stored and needs no face model (so the retention purge
and ``keeneye collections set-retention`` load none); :class:`FaceIndexer` is IndexFaces, which runs the
face pipeline and stores what passes the quality filter through the catalog.

Every write is one transaction, committed (durably) before the method returns; the collection's cached
index is brought up to it under the same lock (keeneye/service/faces/scope.py), so a deleted face is
never returned by a later search. Deletions then scrub the database files (keeneye/store/db.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from keeneye.analysis.quality_filter import QualityFilter, UnindexedReason, quality_reasons
from keeneye.core import regions
from keeneye.core.errors import AlreadyExists, InvalidParameter, LimitExceeded, NotFound
from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.service.faces import validation as v
from keeneye.service.faces.analysis import ATTRIBUTE_KEYS, FaceService
from keeneye.service.faces.scope import CollectionScope, configured_embedder, now
from keeneye.store.collections import (
    CollectionInfo,
    CollectionSession,
    StoredFace,
    Unsuccessful,
)
from keeneye.store.paging import Page, decode_token


@dataclass
class IndexResult:
    image_width: int
    image_height: int
    indexed: list[tuple[StoredFace, Face]] = field(default_factory=list)  # Face carries the FaceDetail data
    unindexed: list[tuple[Face, list[UnindexedReason]]] = field(default_factory=list)
    face_model_version: str = ""


@dataclass(frozen=True)
class EmbeddedImage:
    """An image's faces, already detected, filtered and embedded, to store with
    :meth:`FaceCatalog.store_embedded`. image_id: a UUID the caller chooses (a batch job derives it from
    the job and the input, so a replayed batch is recognised); width/height: pixels."""

    image_id: str
    width: int
    height: int
    faces: list[Face]
    external_image_id: str | None = None


class FaceCatalog:
    """Collections, their stored faces, tags and retention, in ``scope``'s region. No face model."""

    def __init__(self, scope: CollectionScope) -> None:
        self._scope = scope
        self._repository = scope.repository

    # -- collections --------------------------------------------------------------------------------
    def create_collection(
        self, collection_id: str, embedder_id: str, tags: dict[str, str] | None = None
    ) -> CollectionInfo:
        """A new, empty collection bound to ``embedder_id`` (its FaceModelVersion)."""
        key = self._scope.key(collection_id)
        v.check_tags(tags or {})
        with self._scope.write() as tx:
            if tx.find(key) is not None:
                raise AlreadyExists(f"The collection id: {regions.name_of(key)} already exists")
            info = tx.add_collection(key, self._scope.arn(key), now(), embedder_id, tags or {})
        # A collection of the same name may have left index files behind (deleted while the process died).
        self._scope.cache.delete_files(key)
        return info

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        key = self._scope.key(collection_id)
        with self._repository.read() as tx:
            return tx.info(tx.collection(key))

    def list_collections(
        self, max_results: int = 1000, next_token: str | None = None
    ) -> Page[CollectionInfo]:
        """Collections in id order; ``next_token`` continues after the last id returned."""
        size = v.page_size(max_results, v.MAX_LIST_COLLECTIONS)
        after = decode_token(next_token, "collections")
        with self._repository.read() as tx:
            return tx.list_collections(self._scope.region, size, after)

    def delete_collection(self, collection_id: str) -> None:
        """The collection, its faces, users and tags, then its index files."""
        key = self._scope.key(collection_id)
        with self._scope.write() as tx:
            tx.delete_collection(tx.collection(key))
        with self._scope.lock:
            self._scope.cache.forget(key)
        self._repository.scrub()

    # -- tags (collections are the taggable resource here) -----------------------------------------
    def _arn_collection(self, tx: CollectionSession, arn: str) -> None:
        """NotFound unless ``arn`` is a collection of this region (another region's names nothing here)."""
        parts = arn.split(":")
        if tx.by_arn(arn) is None or len(parts) < 4 or parts[3] != self._scope.region:
            raise NotFound(f"resource {arn} does not exist")

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        if not tags:
            raise InvalidParameter("Tags must hold at least one tag")
        v.check_tags(tags)
        with self._scope.write() as tx:
            self._arn_collection(tx, arn)
            if len(set(tx.tags(arn)) | set(tags)) > v.MAX_TAGS:
                raise LimitExceeded(f"a resource can have at most {v.MAX_TAGS} tags")
            tx.put_tags(arn, tags)

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise InvalidParameter("TagKeys must be a list of strings")
        with self._scope.write() as tx:
            self._arn_collection(tx, arn)
            tx.delete_tags(arn, keys)

    def list_tags(self, arn: str) -> dict[str, str]:
        with self._repository.read() as tx:
            self._arn_collection(tx, arn)
            return tx.tags(arn)

    # -- faces --------------------------------------------------------------------------------------
    def store_faces(
        self, key: str, images: Sequence[EmbeddedImage], *, skip_stored: bool
    ) -> list[list[StoredFace]]:
        """Store the embedded faces of ``images`` in ONE transaction and bring the index up to it; the
        stored faces of each image, in order. skip_stored: an image whose ``image_id`` is already in the
        collection (or earlier in ``images``) is not stored again, its stored faces are returned."""
        stamp = now()
        out: list[list[StoredFace]] = []
        added: dict[str, FloatArray] = {}
        # The lock spans commit and index update, so no search sees one without the other.
        with self._scope.lock:
            with self._scope.write() as tx:
                collection = tx.collection(key)
                existing = tx.faces_of_images(key, [i.image_id for i in images]) if skip_stored else {}
                for item in images:
                    if item.image_id in existing:
                        out.append(existing[item.image_id])
                        continue
                    for face in item.faces:
                        self._scope.check_embedder(collection, face.embedder_id)
                    size = (item.width, item.height)
                    stored = tx.add_faces(
                        collection, item.image_id, item.external_image_id, item.faces, size, stamp
                    )
                    added.update((s.face_id, vec) for s, vec in stored)
                    existing[item.image_id] = [s for s, _ in stored]  # the same image twice: once
                    out.append(existing[item.image_id])
                if not added:
                    return out
                generation = tx.bump_generation(key)
            self._scope.cache.apply(key, generation, add=added)
        return out

    def store_embedded(self, collection_id: str, images: Sequence[EmbeddedImage]) -> list[list[StoredFace]]:
        """Store faces detected and embedded elsewhere (``keeneye batch --task index-faces``: workers
        run the models, the driver writes), all images in ONE transaction: a batch is in the
        collection entirely or not at all. Returns the stored faces of each image, in order.

        The caller has applied IndexFaces' rules per image (QualityFilter, MaxFaces, largest first).
        An image whose ``image_id`` is already in the collection is not stored again: its stored
        faces are returned, so a batch replayed after a crash (a resumed job) indexes nothing twice.
        Raises NotFound (collection), InvalidParameter (ExternalImageId, a vector of another embedder).
        """
        key = self._scope.key(collection_id)
        for item in images:
            if item.external_image_id is not None:
                v.check(v.EXTERNAL_IMAGE_ID, item.external_image_id, "ExternalImageId")
            for face in item.faces:
                if face.embedding is None:
                    raise InvalidParameter(f"image {item.image_id}: a face has no embedding")
        return self.store_faces(key, images, skip_stored=True)

    def list_faces(
        self,
        collection_id: str,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[StoredFace]:
        """Faces in FaceId order, optionally only those of ``user_id`` and/or among ``face_ids``."""
        key = self._scope.key(collection_id)
        size = v.page_size(max_results, v.MAX_LIST_FACES)
        after = decode_token(next_token, "faces")
        if user_id is not None:
            v.check(v.USER_ID, user_id, "UserId")
        for face_id in face_ids or ():
            v.check(v.FACE_ID, face_id, "FaceId")
        with self._repository.read() as tx:
            tx.collection(key)
            return tx.list_faces(key, size, after, user_id, face_ids)

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful]]:
        """Delete faces (rows and vectors at once). Faces associated with a user are refused
        (ASSOCIATED_TO_AN_EXISTING_USER: disassociate them first); unknown ids are FACE_NOT_FOUND."""
        key = self._scope.key(collection_id)
        if not 1 <= len(face_ids) <= v.MAX_DELETE:
            raise InvalidParameter(f"FaceIds must hold 1 to {v.MAX_DELETE} ids")
        for face_id in face_ids:
            v.check(v.FACE_ID, face_id, "FaceId")
        wanted = list(dict.fromkeys(face_ids))
        deleted: list[str] = []
        failed: list[Unsuccessful] = []
        with self._scope.lock:  # commit and index update under one lock: a deleted face is never found
            with self._scope.write() as tx:
                tx.collection(key)
                found = tx.faces_by_id(key, wanted)
                for face_id in wanted:
                    face = found.get(face_id)
                    if face is None:
                        failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                    elif face.user_id is not None:
                        failed.append(Unsuccessful(face_id, face.user_id, ["ASSOCIATED_TO_AN_EXISTING_USER"]))
                    else:
                        deleted.append(face_id)
                generation = None
                if deleted:
                    tx.delete_faces(deleted)
                    generation = tx.bump_generation(key)
            if generation is not None:
                self._scope.cache.apply(key, generation, remove=deleted)
        if deleted:
            self._repository.scrub()
        return deleted, failed

    # -- retention ----------------------------------------------------------------------------------
    def set_retention(self, collection_id: str, days: int | None) -> CollectionInfo:
        """Keep the collection's faces ``days`` days after they were indexed (None: until deleted).
        The purge (keeneye/service/governance/retention.py) deletes older ones."""
        key = self._scope.key(collection_id)
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            raise InvalidParameter(f"retention days must be a whole number of days, got {days!r}")
        if days is not None:
            v.check_range(days, 1, v.MAX_RETENTION_DAYS, "retention days")
        with self._scope.write() as tx:
            tx.collection(key)
            return tx.set_retention(key, days)

    def expired_faces(self, now: datetime) -> dict[str, list[str]]:
        """FaceIds indexed longer ago than their collection's retention, by collection (id order)."""
        with self._repository.read() as tx:
            return tx.expired_faces(now)

    def purge_faces(self, collection_id: str, face_ids: Sequence[str]) -> int:
        """Delete faces for retention: like DeleteFaces (rows, vectors, index files, log scrubbed)
        but also faces associated with a user (the user stays, with its status updated). How many
        were deleted (ids already gone are skipped)."""
        key = self._scope.key(collection_id)
        total = 0
        for start in range(0, len(face_ids), v.PURGE_CHUNK):
            chunk = list(face_ids[start : start + v.PURGE_CHUNK])
            with self._scope.lock:
                with self._scope.write() as tx:
                    tx.collection(key)
                    gone = tx.purge_faces(key, chunk)
                    if not gone:
                        continue
                    generation = tx.bump_generation(key)
                self._scope.cache.apply(key, generation, remove=gone)
            total += len(gone)
        if total:
            self._repository.scrub()
        return total


class FaceIndexer:
    """IndexFaces: the face pipeline, Rekognition's quality filter and MaxFaces, then the catalog.

    images: the face pipeline with the image limits; None where no model is loaded (every call then
    fails as it would without an embedder, before anything is decoded)."""

    def __init__(self, scope: CollectionScope, catalog: FaceCatalog, images: FaceService | None) -> None:
        self._scope = scope
        self._catalog = catalog
        self._images = images

    def index_faces(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = "AUTO",
        attributes: frozenset[str] = frozenset(),
    ) -> IndexResult:
        """Detect all faces (largest first), drop those below the quality bar, keep the largest
        ``max_faces`` (the rest: EXCEEDS_MAX_FACES), embed and store them in one transaction.

        attributes: Rekognition attribute names beyond DEFAULT (e.g. AGE_RANGE, EMOTIONS) to fill
        in the returned ``Face`` objects (they are not stored, like Rekognition).
        """
        key = self._scope.key(collection_id)
        if external_image_id is not None:
            v.check(v.EXTERNAL_IMAGE_ID, external_image_id, "ExternalImageId")
        if max_faces is not None:
            v.check_range(max_faces, 1, float("inf"), "MaxFaces")
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        with self._scope.repository.read() as tx:
            collection = tx.collection(key)
            embedder_id = configured_embedder(self._images)
            self._scope.check_embedder(collection, embedder_id)
        pixels, passing, unindexed = self.screen(image, quality_filter, attributes)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        result = IndexResult(width, height, unindexed=unindexed, face_model_version=embedder_id)
        if max_faces is not None and len(passing) > max_faces:
            for face in passing[max_faces:]:
                result.unindexed.append((face, ["EXCEEDS_MAX_FACES"]))
            passing = passing[:max_faces]
        if not passing:
            return result
        self.embed(pixels, passing)
        image_id = str(uuid.uuid4())
        [stored] = self._catalog.store_faces(
            key, [EmbeddedImage(image_id, width, height, passing, external_image_id)], skip_stored=False
        )
        result.indexed.extend(zip(stored, passing, strict=True))
        return result

    def screen(
        self,
        image: bytes | UInt8Image,
        quality_filter: QualityFilter = "AUTO",
        attributes: frozenset[str] = frozenset(),
    ) -> tuple[UInt8Image, list[Face], list[tuple[Face, list[UnindexedReason]]]]:
        """IndexFaces' first half, storing nothing: decode (InvalidImage, ImageTooLarge), detect all
        faces (largest first) and split them by ``quality_filter``. Returns the decoded pixels (HxWx3
        uint8 RGB, for :meth:`FaceAnalyzer.embed`), the faces that pass (not yet embedded) and those
        that do not with their UnindexedFaces reasons. InvalidParameter when no embedder is configured.
        """
        configured_embedder(self._images)
        assert self._images is not None  # an embedder is configured
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        pixels = self._images.decode(image)
        want = frozenset(ATTRIBUTE_KEYS[a] for a in attributes if a in ATTRIBUTE_KEYS)
        faces = self._images.analyzer.analyze(
            pixels, attributes="all" if want else "default", want=want or None
        )
        passing: list[Face] = []
        unindexed: list[tuple[Face, list[UnindexedReason]]] = []
        for face in faces:
            reasons = quality_reasons(face, quality_filter)
            if reasons:
                unindexed.append((face, reasons))
            else:
                passing.append(face)
        return pixels, passing, unindexed

    def embed(self, pixels: UInt8Image, faces: list[Face]) -> None:
        """Fill in the embeddings of ``faces`` found by :meth:`screen` in ``pixels``."""
        configured_embedder(self._images)
        assert self._images is not None  # an embedder is configured
        self._images.analyzer.embed(pixels, faces)
