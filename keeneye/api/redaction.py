"""``POST /v1/redact``: bystander redaction of one image (keeneye.service.governance.redaction;
docs/redaction.md), ``keeneye:RedactImage``; keeping a collection's faces visible also needs
``rekognition:SearchFacesByImage`` on it and is audited as an identification. Analysed under the same
caps as ``POST /``: ``server.max_inflight`` requests and ``server.max_pixels_inflight`` pixels (HTTP 429
past either)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keeneye.api.deps import Caller, allowed, analysing, need
from keeneye.service.governance.redaction import redact_image

router = APIRouter()


@router.post(
    "/v1/redact",
    summary="Obscure every face of an image, except those of a collection if asked (authenticated)",
    description="Body: the image bytes (JPEG or PNG). Answers the redacted image (same format, no "
    "metadata) with headers X-Keeneye-Faces-Redacted and X-Keeneye-Faces-Kept. keep_collection keeps "
    "faces matching that collection visible (needs rekognition:SearchFacesByImage on it; audited as "
    "an identification).",
    response_class=Response,
)
def redact(
    request: Request,
    mode: Annotated[Literal["blur", "pixelate", "box"], Query(description="How faces are obscured")] = "blur",
    keep_collection: Annotated[
        str | None, Query(description="Keep faces matching this collection visible")
    ] = None,
    face_match_threshold: Annotated[
        float, Query(ge=0, le=100, description="Least Similarity to keep a face (with keep_collection)")
    ] = 80.0,
    caller: Caller = allowed("keeneye:RedactImage"),
) -> Response:
    services = caller.services
    search = None
    if keep_collection is not None:
        collections = services.collections
        arn = collections.arn(keep_collection) if collections is not None else "*"
        caller.state.gate.authorize(
            caller.principal, "rekognition:SearchFacesByImage", arn, where=f"POST {request.url.path}"
        )
        collections = need(collections, "collections")
        collections.describe_collection(keep_collection)  # NotFound before any work

        def search(embedding: Any, embedder_id: str) -> Any:
            return collections.search_faces_by_vector(
                keep_collection, embedding, embedder_id, face_match_threshold
            )

    analyzer = caller.state.redaction_analyzer()
    with analysing(caller.state):  # under server.max_inflight, its pixels under the server's budget
        result = redact_image(
            caller.body,
            analyzer,
            mode=mode,
            search=search,
            limits=caller.state.settings.images,
            budget=services.faces.budget,
        )
    kept = [f for f in result.faces if f.kept]
    if keep_collection is not None and services.audit is not None:
        services.audit.append(
            "RedactImage",
            access_key=caller.access_key_id,
            collection_id=keep_collection,
            request_faces=len(result.faces),
            matches=[{"Identity": f.identity, "Similarity": f.similarity} for f in kept],
            threshold=face_match_threshold,
        )
    return Response(
        result.image,
        media_type="image/jpeg" if result.format == "JPEG" else "image/png",
        headers={
            "X-Keeneye-Faces-Redacted": str(len(result.faces) - len(kept)),
            "X-Keeneye-Faces-Kept": str(len(kept)),
        },
    )
