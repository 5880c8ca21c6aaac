"""Users of a collection: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces.

A user is a named group of up to 100 of the collection's faces (SearchUsers ranks users by their best
face, keeneye/service/faces/search.py). Its status is ACTIVE while it has faces, CREATED otherwise.
These change no vector, so the collection's index is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keeneye.analysis.similarity import calibration_for
from keeneye.core import regions
from keeneye.core.errors import AlreadyExists, LimitExceeded, NotFound
from keeneye.core.types import FloatArray
from keeneye.service.faces import validation as v
from keeneye.service.faces.scope import CollectionScope, now
from keeneye.store.collections import (
    CollectionSession,
    Unsuccessful,
    UserInfo,
    UserStatus,
    user_status,
)
from keeneye.store.paging import Page, decode_token


def check_user(tx: CollectionSession, key: str, user_id: str) -> None:
    """NotFound unless the collection has the user (InvalidParameter for a malformed UserId)."""
    v.check(v.USER_ID, user_id, "UserId")
    if not tx.has_user(key, user_id):
        raise NotFound(f"user {user_id} does not exist in collection {regions.name_of(key)}")


class FaceUsers:
    """The users of collections in ``scope``'s region."""

    def __init__(self, scope: CollectionScope) -> None:
        self._scope = scope

    def create_user(self, collection_id: str, user_id: str) -> None:
        key = self._scope.key(collection_id)
        v.check(v.USER_ID, user_id, "UserId")
        with self._scope.write() as tx:
            tx.collection(key)
            if tx.has_user(key, user_id):
                raise AlreadyExists(f"user {user_id} already exists in collection {regions.name_of(key)}")
            tx.add_user(key, user_id, now())

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Delete the user; its faces stay in the collection, disassociated (as Rekognition does)."""
        key = self._scope.key(collection_id)
        with self._scope.write() as tx:
            tx.collection(key)
            check_user(tx, key, user_id)
            tx.delete_user(key, user_id)
        self._scope.repository.scrub()

    def user_face_count(self, collection_id: str, user_id: str) -> int | None:
        """How many faces the user has; None when the collection has no such user."""
        key = self._scope.key(collection_id)
        v.check(v.USER_ID, user_id, "UserId")
        with self._scope.repository.read() as tx:
            tx.collection(key)
            return tx.user_face_count(key, user_id) if tx.has_user(key, user_id) else None

    def list_users(
        self, collection_id: str, max_results: int = 500, next_token: str | None = None
    ) -> Page[UserInfo]:
        key = self._scope.key(collection_id)
        size = v.page_size(max_results, v.MAX_LIST_USERS)
        after = decode_token(next_token, "users")
        with self._scope.repository.read() as tx:
            tx.collection(key)
            return tx.list_users(key, size, after)

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], threshold: float = 75.0
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """Associate faces with a user. Unsuccessful: FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER,
        or LOW_MATCH_CONFIDENCE when the face's best Similarity to the user's faces (those already
        associated and those accepted earlier in this call) is below ``threshold`` (UserMatchThreshold)."""
        key = self._scope.key(collection_id)
        v.check_range(threshold, 0, 100, "UserMatchThreshold")
        wanted = v.user_face_ids(face_ids)
        associated: list[str] = []
        newly: list[str] = []  # associated by this call
        failed: list[Unsuccessful] = []
        with self._scope.write() as tx:
            collection = tx.collection(key)
            check_user(tx, key, user_id)
            calibration = calibration_for(collection.embedder_id)
            refs: list[FloatArray] = tx.user_vectors(key, user_id)
            current = len(refs)
            found = tx.faces_with_vectors(key, wanted)
            for face_id in wanted:
                if face_id not in found:
                    failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                    continue
                face, vec = found[face_id]
                if face.user_id == user_id:
                    associated.append(face_id)  # already this user's: nothing to do, not an error
                    continue
                if face.user_id is not None:
                    failed.append(Unsuccessful(face_id, face.user_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"]))
                    continue
                if refs:
                    best = float(calibration.similarity(np.stack(refs) @ vec).max())
                    if best < threshold:
                        failed.append(Unsuccessful(face_id, user_id, ["LOW_MATCH_CONFIDENCE"], best))
                        continue
                if current >= v.MAX_FACES_PER_USER:
                    raise LimitExceeded(f"a user can have at most {v.MAX_FACES_PER_USER} faces")
                refs.append(vec)
                current += 1
                newly.append(face_id)
                associated.append(face_id)
            tx.set_faces_user(key, newly, user_id)
            status = user_status(current)
            tx.set_user_status(key, user_id, status)
        return associated, failed, status

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]:
        """Remove faces from a user (they stay in the collection)."""
        key = self._scope.key(collection_id)
        wanted = v.user_face_ids(face_ids)
        done: list[str] = []
        failed: list[Unsuccessful] = []
        with self._scope.write() as tx:
            tx.collection(key)
            check_user(tx, key, user_id)
            found = tx.faces_by_id(key, wanted)
            for face_id in wanted:
                face = found.get(face_id)
                if face is None:
                    failed.append(Unsuccessful(face_id, None, ["FACE_NOT_FOUND"]))
                elif face.user_id != user_id:
                    failed.append(Unsuccessful(face_id, face.user_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"]))
                else:
                    done.append(face_id)
            tx.set_faces_user(key, done, None)
            status = user_status(tx.user_face_count(key, user_id))
            tx.set_user_status(key, user_id, status)
        return done, failed, status
