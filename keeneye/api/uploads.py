"""Analysis on upload (docs/uploads.md): ``POST /v1/upload-events`` (S3 / MinIO notifications,
``keeneye:PostUploadEvent``), ``GET /v1/upload-events`` and ``/v1/upload-rules/{bucket}``
(``keeneye:ManageUploadRules``, on ``arn:aws:s3:::<bucket>`` for one bucket's rule)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from keeneye.api.deps import ApiState, Caller, allowed, json_value, need
from keeneye.core.errors import InvalidParameter
from keeneye.service.streams.rights import sink_rights
from keeneye.service.uploads.service import UploadService
from keeneye.streams.sinks import SinkSpec

router = APIRouter()

MANAGE_UPLOAD_RULES = "keeneye:ManageUploadRules"
RULE_ACTIONS = {"index-faces": "rekognition:IndexFaces", "search-faces": "rekognition:SearchFacesByImage"}


def uploads(caller: Caller) -> UploadService:
    # Built for every server with collections: without them there is nothing to analyse into.
    result: UploadService = need(caller.services.uploads, "collections")
    return result


def bucket_arn(request: Request, _: ApiState) -> str:
    return f"arn:aws:s3:::{request.path_params['bucket']}"


@router.post(
    "/v1/upload-events",
    status_code=202,
    summary="S3 / MinIO object-created notifications: analyse the new images (authenticated)",
    description='Body: an S3 event notification {"Records": [...]} (MinIO\'s extra top-level Key and '
    "EventName are accepted). Each ObjectCreated record of a bucket with an upload rule is queued "
    "once per object version (accepted), or found already recorded (duplicate); other records are "
    "ignored with a reason. Answers 202 with the counts and one entry per record.",
)
def post_upload_events(caller: Caller = allowed("keeneye:PostUploadEvent")) -> dict[str, Any]:
    result: dict[str, Any] = uploads(caller).submit(json_value(caller.body), caller.access_key_id)
    return result


@router.get(
    "/v1/upload-events",
    summary="Upload events, newest first: state, attempts, last error, result (authenticated)",
)
def list_upload_events(
    state: Annotated[str | None, Query(description="queued, running, held, succeeded or failed")] = None,
    limit: Annotated[int, Query(description="At most this many events (1-1000)")] = 100,
    caller: Caller = allowed(MANAGE_UPLOAD_RULES),
) -> dict[str, Any]:
    return {"events": [e.to_dict() for e in uploads(caller).list_events(state, limit)]}


@router.get("/v1/upload-events/{event_id}", summary="One upload event (authenticated)")
def get_upload_event(event_id: str, caller: Caller = allowed(MANAGE_UPLOAD_RULES)) -> dict[str, Any]:
    result: dict[str, Any] = uploads(caller).info(event_id).to_dict()
    return result


@router.get("/v1/upload-rules", summary="Every bucket's upload rule, sinks redacted (authenticated)")
def list_upload_rules(caller: Caller = allowed(MANAGE_UPLOAD_RULES)) -> dict[str, Any]:
    return {"rules": {b: r.public() for b, r in uploads(caller).list_rules().items()}}


@router.get("/v1/upload-rules/{bucket}", summary="A bucket's upload rule, sink redacted (authenticated)")
def get_upload_rule(bucket: str, caller: Caller = allowed(MANAGE_UPLOAD_RULES, bucket_arn)) -> dict[str, Any]:
    return {"bucket": bucket, "rule": uploads(caller).get_rule(bucket).public()}


@router.put(
    "/v1/upload-rules/{bucket}",
    summary="Set what is done with a bucket's new images (authenticated)",
    description='Body: {"task": "index-faces", "collection_id", "external_image_id": "key"|"basename", '
    '"max_faces", "quality_filter"} or {"task": "search-faces", "collection_id", "threshold", "sink": '
    "<webhook|mqtt|jsonl>}. The caller's key must also be allowed rekognition:IndexFaces or "
    "rekognition:SearchFacesByImage on the collection. Audited.",
)
def put_upload_rule(
    request: Request, bucket: str, caller: Caller = allowed(MANAGE_UPLOAD_RULES, bucket_arn)
) -> dict[str, Any]:
    service = uploads(caller)
    doc = json_value(caller.body)
    if not isinstance(doc, dict):
        raise InvalidParameter('the body must be a JSON object such as {"task": "index-faces", ...}')
    task, collection_id = doc.get("task"), doc.get("collection_id")
    collections = caller.services.collections
    if isinstance(task, str) and task in RULE_ACTIONS and isinstance(collection_id, str):
        arn = collections.arn(collection_id) if collections is not None else "*"
        caller.state.gate.authorize(
            caller.principal, RULE_ACTIONS[task], arn, where=f"PUT {request.url.path}"
        )
    sink = doc.get("sink")
    if isinstance(sink, dict):
        try:
            spec = SinkSpec.model_validate(sink)
        except ValidationError:
            pass  # put_rule says what is wrong
        else:  # the destination's own right, as a processor's Output naming it would need
            caller.require(sink_rights(spec), where=f"PUT {request.url.path}")
    rule = service.put_rule(bucket, doc)
    caller.audit("PutUploadRule", {"bucket": bucket, "task": rule.task}, collection_id=rule.collection_id)
    return {"bucket": bucket, "rule": rule.public()}


@router.delete(
    "/v1/upload-rules/{bucket}",
    status_code=204,
    response_class=Response,
    summary="Remove a bucket's upload rule",
)
def delete_upload_rule(bucket: str, caller: Caller = allowed(MANAGE_UPLOAD_RULES, bucket_arn)) -> Response:
    uploads(caller).delete_rule(bucket)
    caller.audit("DeleteUploadRule", {"bucket": bucket})
    return Response(status_code=204)
