"""``GET /v1/health`` (open: liveness and what this server offers) and ``GET /v1/metrics`` (open:
Prometheus counts of requests and live stream processors; no identities, no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from keeneye.api.deps import state_of
from keeneye.service.metrics import render_stream_metrics

router = APIRouter()


@router.get("/v1/health", summary="Liveness and what this server offers")
def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", **state_of(request).about()}


@router.get("/v1/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(request: Request) -> str:
    services = state_of(request).services
    text = services.metrics.render() if services.metrics is not None else ""
    if services.stream_processors is not None:
        text += render_stream_metrics(services.stream_processors.all_stats())
    return text
