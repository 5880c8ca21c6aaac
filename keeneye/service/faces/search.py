"""Search in a collection: SearchFaces, SearchFacesByImage, SearchUsers, SearchUsersByImage, and the
search with a vector computed elsewhere (a face seen in a video or a live stream).

Each search reads the database in ONE session: the collection, the query's vectors, the cached index
(keeneye/store/index_cache.py, current with the collection's generation) and the matching faces'
rows, under the lock that writers hold across a commit and its index update. The image searches check
the collection before the models run (a missing collection or a foreign embedder fails fast) and
release that session's transaction while they run, so no connection is held through the models.

Similarity is on the calibrated 0-100 scale of keeneye/analysis/similarity.py; the threshold is applied
before MaxFaces, best match first.

Users: one rule, :func:`best_per_user`: a user scores the best Similarity of any of their faces. SearchUsers
ranks users by it; the search with a vector computed elsewhere (video, streams, batch) reports each user
once, with that best face, and MaxFaces counts users (faces not associated with a user count one each).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from keeneye.analysis.quality_filter import QualityFilter, quality_reasons
from keeneye.analysis.similarity import calibration_for
from keeneye.core import regions
from keeneye.core.errors import InvalidParameter, NoFaceFound, NotFound
from keeneye.core.types import Face, FloatArray, UInt8Image
from keeneye.service.faces import validation as v
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.scope import CollectionScope, configured_embedder
from keeneye.service.faces.users import check_user
from keeneye.store.collections import CollectionSession, FaceMatch, UserInfo, UserMatch

T = TypeVar("T")
FIRST_SEARCH = 64  # faces of the first, short index search of _matches (see there)


def best_per_user(scored: Iterable[tuple[T, str | None, float]]) -> list[tuple[T, float]]:
    """``(item, user id or None, Similarity)`` -> the items kept, best first: for each user the item with
    its best Similarity (the user's score, as SearchUsers ranks users), every item without a user."""
    best: dict[str, tuple[T, float]] = {}
    alone: list[tuple[T, float]] = []
    for item, user_id, sim in scored:
        if user_id is None:
            alone.append((item, sim))
        elif user_id not in best or sim > best[user_id][1]:
            best[user_id] = (item, sim)
    return sorted([*best.values(), *alone], key=lambda m: -m[1])


@dataclass
class ImageSearchResult:
    searched: Face  # the largest face of the image, the one searched
    image_width: int
    image_height: int
    matches: list[FaceMatch] = field(default_factory=list)
    unsearched: list[Face] = field(default_factory=list)  # other faces (SearchUsersByImage reports them)
    face_model_version: str = ""


@dataclass
class _SearchedImage:
    face: Face  # embedded
    others: list[Face]
    width: int
    height: int


class FaceSearch:
    """Searches of collections in ``scope``'s region.

    images: the face pipeline with the image limits, for the searches by image and for the vector
    length of an empty collection's index; None where no model is loaded."""

    def __init__(self, scope: CollectionScope, images: FaceService | None) -> None:
        self._scope = scope
        self._images = images

    def _default_dim(self) -> int:
        embedder = None if self._images is None else self._images.analyzer.embedder
        return embedder.dim if embedder is not None else 0

    # -- faces --------------------------------------------------------------------------------------
    def _matches(
        self,
        tx: CollectionSession,
        key: str,
        query: FloatArray,
        embedder_id: str | None,
        threshold: float,
        max_faces: int,
        exclude: str | None = None,
    ) -> list[FaceMatch]:
        """Faces of the collection at Similarity >= threshold to ``query``, best first (caller holds
        the lock)."""
        collection = tx.collection(key)
        self._scope.check_embedder(collection, embedder_id)
        index = self._scope.cache.index(tx, collection, self._default_dim())
        calibration = calibration_for(collection.embedder_id)
        k = max_faces + (1 if exclude else 0)
        # A first, short search: when its last face is already below the threshold, no further face can
        # pass (results are best first and the calibration is monotonic), so the answer is the same as
        # with k = MaxFaces (4096 by default) at a fraction of the cost (the faiss index re-ranks every
        # one of k candidates on full vectors read from disk; docs/vector-index.md).
        ids, cosines = index.search(query, min(k, FIRST_SEARCH))
        sims = calibration.similarity(cosines)
        if len(ids) == FIRST_SEARCH < k and float(sims[-1]) >= threshold:
            ids, cosines = index.search(query, k)
            sims = calibration.similarity(cosines)
        hits = [
            (i, float(s)) for i, s in zip(ids, sims, strict=True) if i != exclude and float(s) >= threshold
        ][:max_faces]
        if not hits:
            return []
        rows = tx.stored_faces([i for i, _ in hits])
        return [FaceMatch(rows[i], s) for i, s in hits if i in rows]

    def _identities(
        self,
        tx: CollectionSession,
        key: str,
        query: FloatArray,
        embedder_id: str | None,
        threshold: float,
        max_faces: int,
    ) -> list[FaceMatch]:
        """:meth:`_matches` with each user once, at their best face (:func:`best_per_user`); ``max_faces``
        counts users and faces without a user. Faces are fetched in growing batches until enough
        identities are found or no more faces pass the threshold (caller holds the lock)."""
        k = max_faces
        while True:
            matches = self._matches(tx, key, query, embedder_id, threshold, k)
            kept = [m for m, _ in best_per_user((m, m.face.user_id, m.similarity) for m in matches)]
            if len(kept) >= max_faces or len(matches) < k or k >= v.MAX_SEARCH_FACES * 16:
                return kept[:max_faces]
            k *= 4

    def search_faces(
        self, collection_id: str, face_id: str, threshold: float = 80.0, max_faces: int = 4096
    ) -> list[FaceMatch]:
        """Faces similar to a stored face (the face itself excluded), best first."""
        key = self._scope.key(collection_id)
        v.check(v.FACE_ID, face_id, "FaceId")
        v.check_range(threshold, 0, 100, "FaceMatchThreshold")
        v.check_range(max_faces, 1, v.MAX_SEARCH_FACES, "MaxFaces")
        with self._scope.lock, self._scope.repository.read() as tx:
            tx.collection(key)
            found = tx.face_with_vector(key, face_id)
            if found is None:
                raise NotFound(f"face {face_id} is not in collection {regions.name_of(key)}")
            face, query = found
            return self._matches(tx, key, query, face.embedder_id, threshold, max_faces, exclude=face_id)

    def search_faces_by_vector(
        self,
        collection_id: str,
        embedding: FloatArray,
        embedder_id: str,
        threshold: float = 80.0,
        max_faces: int = 4096,
    ) -> list[FaceMatch]:
        """Who an embedding computed elsewhere (a face or a fused face track seen in a video or a stream,
        a batch item) is, best first: each user once, at their best face's Similarity, and the faces
        not associated with a user; ``max_faces`` counts both. Raises NotFound for a missing collection,
        InvalidParameter for another embedder's vector."""
        key = self._scope.key(collection_id)
        v.check_range(threshold, 0, 100, "FaceMatchThreshold")
        v.check_range(max_faces, 1, v.MAX_SEARCH_FACES, "MaxFaces")
        with self._scope.lock, self._scope.repository.read() as tx:
            return self._identities(tx, key, embedding, embedder_id, threshold, max_faces)

    def _searched_face(
        self, tx: CollectionSession, key: str, image: bytes | UInt8Image, quality_filter: QualityFilter
    ) -> _SearchedImage:
        """The largest face of the image that passes the bar, embedded; the others; the image size.
        The collection is checked first, then ``tx``'s transaction ends before the models run."""
        quality_reasons(Face(np.zeros(4, np.float32), 1.0), quality_filter)  # validates the name
        self._scope.check_embedder(tx.collection(key), configured_embedder(self._images))
        tx.release()
        assert self._images is not None  # an embedder is configured
        pixels = self._images.decode(image)
        analyzer = self._images.analyzer
        faces = analyzer.analyze(pixels, attributes="none" if quality_filter == "NONE" else "default")
        candidates = [f for f in faces if not quality_reasons(f, quality_filter)]
        if not candidates:
            raise NoFaceFound("There are no faces in the image. Should be at least 1.")
        searched = candidates[0]
        analyzer.embed(pixels, [searched])
        others = [f for f in faces if f is not searched]
        return _SearchedImage(searched, others, int(pixels.shape[1]), int(pixels.shape[0]))

    def search_faces_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_faces: int = 4096,
        quality_filter: QualityFilter = "NONE",
    ) -> ImageSearchResult:
        """Search the collection with the largest face of the image (InvalidParameter if none)."""
        key = self._scope.key(collection_id)
        v.check_range(threshold, 0, 100, "FaceMatchThreshold")
        v.check_range(max_faces, 1, v.MAX_SEARCH_FACES, "MaxFaces")
        with self._scope.repository.read() as tx:
            img = self._searched_face(tx, key, image, quality_filter)
            assert img.face.embedding is not None
            with self._scope.lock:
                matches = self._matches(
                    tx, key, img.face.embedding, img.face.embedder_id, threshold, max_faces
                )
        return ImageSearchResult(
            img.face, img.width, img.height, matches, img.others, configured_embedder(self._images)
        )

    # -- users --------------------------------------------------------------------------------------
    def _user_matches(
        self,
        tx: CollectionSession,
        key: str,
        queries: FloatArray,
        embedder_id: str | None,
        threshold: float,
        max_users: int,
        exclude: tuple[str | None, str | None] = (None, None),
    ) -> list[UserMatch]:
        """Users ranked by the best Similarity between any query vector and any of their faces
        (caller holds the lock). exclude: a FaceId and a UserId left out of the ranking."""
        exclude_face, exclude_user = exclude
        collection = tx.collection(key)
        self._scope.check_embedder(collection, embedder_id)
        index = self._scope.cache.index(tx, collection, self._default_dim())
        pairs = [
            (f, u) for f, u in tx.user_faces(key) if f != exclude_face and u != exclude_user and f in index
        ]
        if not pairs:
            return []
        vectors = index.vectors_of([f for f, _ in pairs])
        cosines = (np.asarray(queries, np.float32).reshape(-1, vectors.shape[1]) @ vectors.T).max(axis=0)
        sims = calibration_for(collection.embedder_id).similarity(cosines)
        best = best_per_user((u, u, float(s)) for (_face, u), s in zip(pairs, sims, strict=True))
        ranked = sorted(((u, s) for u, s in best if s >= threshold), key=lambda m: (-m[1], m[0]))
        return [UserMatch(UserInfo(u, "ACTIVE"), s) for u, s in ranked[:max_users]]

    def search_users(
        self,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 5,
    ) -> list[UserMatch]:
        """Users similar to a user's faces (the user excluded) or to one stored face (itself excluded)."""
        key = self._scope.key(collection_id)
        v.check_range(threshold, 0, 100, "UserMatchThreshold")
        v.check_range(max_users, 1, v.MAX_SEARCH_USERS, "MaxUsers")
        if (user_id is None) == (face_id is None):
            raise InvalidParameter("give exactly one of UserId and FaceId")
        with self._scope.lock, self._scope.repository.read() as tx:
            collection = tx.collection(key)
            if user_id is not None:
                check_user(tx, key, user_id)
                vecs = tx.user_vectors(key, user_id)
                if not vecs:
                    return []  # a user without faces (CREATED) has nothing to search with
                queries = np.stack(vecs)
            else:
                assert face_id is not None
                v.check(v.FACE_ID, face_id, "FaceId")
                found = tx.face_with_vector(key, face_id)
                if found is None:
                    raise NotFound(f"face {face_id} is not in collection {regions.name_of(key)}")
                queries = found[1][None, :]
            return self._user_matches(
                tx, key, queries, collection.embedder_id, threshold, max_users, (face_id, user_id)
            )

    def search_users_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_users: int = 5,
        quality_filter: QualityFilter = "NONE",
    ) -> tuple[ImageSearchResult, list[UserMatch]]:
        """Users matching the largest face of the image; the result's ``matches`` stay empty and
        ``unsearched`` lists the other faces."""
        key = self._scope.key(collection_id)
        v.check_range(threshold, 0, 100, "UserMatchThreshold")
        v.check_range(max_users, 1, v.MAX_SEARCH_USERS, "MaxUsers")
        with self._scope.repository.read() as tx:
            img = self._searched_face(tx, key, image, quality_filter)
            assert img.face.embedding is not None
            with self._scope.lock:
                users = self._user_matches(
                    tx, key, img.face.embedding[None, :], img.face.embedder_id, threshold, max_users
                )
        result = ImageSearchResult(
            img.face, img.width, img.height, [], img.others, configured_embedder(self._images)
        )
        return result, users
