"""keeneye's native API (``/v1``): one router per resource, on the same services and the same gate as
Rekognition's API (keeneye.aws). Mounted by the composition root (keeneye.app)."""

from __future__ import annotations

from fastapi import APIRouter

from keeneye.api import audit, collections, enrol, health, jobs, redaction, review, streams, tokens, uploads

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    tokens.router,
    audit.router,
    collections.router,
    enrol.router,
    jobs.router,
    redaction.router,
    uploads.router,
    streams.router,
    review.router,
)
