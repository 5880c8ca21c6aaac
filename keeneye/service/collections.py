"""Face collections: the use cases behind Rekognition's collection, face, user and search operations.

CONTRACT STUB (to be implemented): signatures and result types are fixed here so that the AWS layer
(keeneye/aws/handlers.py) and the store can be written in parallel. Values are backend-neutral:
pixel boxes plus the indexed image's size (the AWS layer turns them into ratio BoundingBoxes),
scores 0-1, Similarity 0-100 (the calibrated scale of keeneye/analysis/similarity.py).
Errors: NotFound (collection/face/user missing), AlreadyExists, InvalidParameter (e.g. no face in
the image, bad threshold), LimitExceeded, InvalidImage/ImageTooLarge from decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

from keeneye.core.types import Face, UInt8Image

T = TypeVar("T")

QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
UnindexedReason = Literal[
    "EXCEEDS_MAX_FACES", "EXTREME_POSE", "LOW_BRIGHTNESS", "LOW_SHARPNESS", "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX", "LOW_FACE_QUALITY",
]
UserStatus = Literal["ACTIVE", "UPDATING", "CREATING", "CREATED"]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is opaque and None on the last page."""

    items: list[T]
    next_token: str | None = None


@dataclass(frozen=True)
class CollectionInfo:
    collection_id: str
    arn: str
    created_at: datetime
    face_count: int
    user_count: int
    face_model_version: str  # the embedder id the collection's vectors come from


@dataclass(frozen=True)
class StoredFace:
    """A face kept in a collection: metadata and vector, never the image."""

    face_id: str  # UUID
    collection_id: str
    image_id: str  # UUID shared by all faces indexed from one image
    external_image_id: str | None
    xyxy: tuple[float, float, float, float]  # pixels of the indexed image
    image_width: int
    image_height: int
    score: float  # detector score 0-1
    indexed_at: datetime
    embedder_id: str
    user_id: str | None = None


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    status: UserStatus


@dataclass
class IndexResult:
    image_width: int
    image_height: int
    indexed: list[tuple[StoredFace, Face]] = field(default_factory=list)  # Face carries the FaceDetail data
    unindexed: list[tuple[Face, list[UnindexedReason]]] = field(default_factory=list)
    face_model_version: str = ""


@dataclass
class FaceMatch:
    face: StoredFace
    similarity: float  # 0-100


@dataclass
class ImageSearchResult:
    searched: Face  # the largest face of the image, the one searched
    image_width: int
    image_height: int
    matches: list[FaceMatch] = field(default_factory=list)
    unsearched: list[Face] = field(default_factory=list)  # other faces (SearchUsersByImage reports them)
    face_model_version: str = ""


@dataclass
class UserMatch:
    user: UserInfo
    similarity: float  # 0-100


@dataclass
class Unsuccessful:
    face_id: str
    user_id: str | None
    reasons: list[str]
    confidence: float | None = None  # AssociateFaces: similarity to the user when below threshold


class FaceCollections:
    """Collections, faces, users, search and tags over the store and the face pipeline."""

    # -- collections ------------------------------------------------------------------------
    def create_collection(self, collection_id: str, tags: dict[str, str] | None = None) -> CollectionInfo: ...
    def describe_collection(self, collection_id: str) -> CollectionInfo: ...
    def list_collections(self, max_results: int = 1000, next_token: str | None = None) -> Page[CollectionInfo]: ...
    def delete_collection(self, collection_id: str) -> None: ...

    # -- faces ------------------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = "AUTO",
        attributes: frozenset[str] = frozenset(),
    ) -> IndexResult: ...
    def list_faces(
        self,
        collection_id: str,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[StoredFace]: ...
    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> tuple[list[str], list[Unsuccessful]]: ...
    def search_faces(
        self, collection_id: str, face_id: str, threshold: float = 80.0, max_faces: int = 4096
    ) -> list[FaceMatch]: ...
    def search_faces_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_faces: int = 4096,
        quality_filter: QualityFilter = "NONE",
    ) -> ImageSearchResult: ...

    # -- users ------------------------------------------------------------------------------
    def create_user(self, collection_id: str, user_id: str) -> None: ...
    def delete_user(self, collection_id: str, user_id: str) -> None: ...
    def list_users(self, collection_id: str, max_results: int = 500, next_token: str | None = None) -> Page[UserInfo]: ...
    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], threshold: float = 75.0
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]: ...
    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], list[Unsuccessful], UserStatus]: ...
    def search_users(
        self,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 5,
    ) -> list[UserMatch]: ...
    def search_users_by_image(
        self,
        collection_id: str,
        image: bytes | UInt8Image,
        threshold: float = 80.0,
        max_users: int = 5,
        quality_filter: QualityFilter = "NONE",
    ) -> tuple[ImageSearchResult, list[UserMatch]]: ...

    # -- tags (collections are the taggable resource here) -------------------------------------
    def tag_resource(self, arn: str, tags: dict[str, str]) -> None: ...
    def untag_resource(self, arn: str, keys: Sequence[str]) -> None: ...
    def list_tags(self, arn: str) -> dict[str, str]: ...
