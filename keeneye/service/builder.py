"""One builder of the services a process uses: the server (keeneye.app), every CLI command and batch.

Each part is built on first use and kept, so a process opens one :class:`~keeneye.store.db.Store` and
loads each model once, whichever commands ask for it::

    services = ServiceBuilder(settings)
    services.collections.search_faces_by_image("staff", photo)   # models + store opened here
    services.audit.append(...)                                    # the same store

Nothing starts a thread or connects anywhere here: background work is started by the composition
root's lifecycle (keeneye.app) or by the command that needs it.
"""

from __future__ import annotations

from functools import cached_property

from keeneye.analysis.builder import build_face_analyzer
from keeneye.analysis.faces import FaceAnalyzer
from keeneye.config import Settings
from keeneye.core.budget import Budget
from keeneye.service.faces.analysis import FaceService
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.faces.request_tokens import RequestTokens
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.keys import AccessKeys
from keeneye.service.governance.retention import RetentionService, stored_collections
from keeneye.store.db import Store


class ServiceBuilder:
    """The services of one process over ``settings``, each built once, when first used."""

    def __init__(self, settings: Settings, *, analyzer: FaceAnalyzer | None = None) -> None:
        self.settings = settings
        self._analyzer = analyzer

    @cached_property
    def store(self) -> Store:
        """The process's one store (database and data directory), migrated to the latest schema."""
        return Store.open(self.settings.data_dir, self.settings.database_url)

    @cached_property
    def analyzer(self) -> FaceAnalyzer:
        """The configured face pipeline with its embedder (models load and warm up here)."""
        return self._analyzer or build_face_analyzer(self.settings, with_embedder=True)

    @cached_property
    def pixel_budget(self) -> Budget:
        """The process's image pixels in flight (``server.max_pixels_inflight``), shared by every service
        that decodes images (keeneye.core.budget)."""
        return Budget(self.settings.server.max_pixels_inflight, "pixels")

    @cached_property
    def faces(self) -> FaceService:
        return FaceService(self.analyzer, self.settings.images, self.pixel_budget)

    @cached_property
    def collections(self) -> FaceCollections:
        """Collections with the face pipeline (index, search)."""
        return FaceCollections(
            self.store,
            self.analyzer,
            self.settings.images,
            budget=self.pixel_budget,
            vector_index=self.settings.vector_index,
        )

    @cached_property
    def stored_collections(self) -> FaceCollections:
        """Collections for changes to stored faces only (retention, purge): no model is loaded."""
        return stored_collections(self.store)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.store)

    @cached_property
    def access_keys(self) -> AccessKeys:
        return AccessKeys(self.store, self.settings.data_dir, self.audit)

    @cached_property
    def retention(self) -> RetentionService:
        """The retention purge; over the full collections if they are built already, else stored ones."""
        collections = self.__dict__.get("collections") or self.stored_collections
        settings = self.settings.retention
        return RetentionService(self.store, settings, collections=collections, audit=self.audit)

    @cached_property
    def request_tokens(self) -> RequestTokens:
        return RequestTokens(self.store)
