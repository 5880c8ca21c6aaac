"""Stored-video jobs and their notifications (docs/notifications.md): ``/v1/jobs`` (list, one, cancel),
``/v1/notification-channels`` (SNS topic ARN -> webhook, MQTT or JSONL sink) and ``/v1/notifications``
(the delivery outbox)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from keeneye.api.deps import ApiState, Caller, allowed, need
from keeneye.core.errors import InvalidParameter
from keeneye.service.container import Services
from keeneye.service.streams.rights import sink_rights
from keeneye.service.video.jobs import VideoJobs
from keeneye.service.video.notifications import NotificationService
from keeneye.streams.sinks import SinkSpec

router = APIRouter()

MANAGE_CHANNELS = "keeneye:ManageNotificationChannels"
JOB_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED")
DELIVERY_STATES = ("pending", "delivered")


def jobs(services: Services) -> VideoJobs:
    result: VideoJobs = need(services.video_jobs, "stored-video jobs")
    return result


def notifications(services: Services) -> NotificationService:
    result: NotificationService = need(jobs(services).notifications, "notifications")
    return result


def topic_of(request: Request, _: ApiState) -> str:
    return str(request.path_params["topic_arn"])


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined (for an operation's openapi_extra)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _channel_schema() -> dict[str, Any]:
    """A notification channel's body: a SinkSpec without ``s3`` (a channel is a webhook, MQTT or JSONL)."""
    schema = _inline_schema(SinkSpec)
    schema.get("properties", {}).pop("s3", None)
    return schema


# -- jobs ----------------------------------------------------------------------------------------------


@router.get(
    "/v1/jobs",
    summary="Stored-video jobs, newest first (authenticated)",
    description="Each job: job_id, kind, status (Rekognition's JobStatus), state (QUEUED, RUNNING, "
    "SUCCEEDED, FAILED), status_message, video, job_tag, created_at/started_at/finished_at, items, "
    "notification_topic and notification (its delivery state).",
)
def list_jobs(
    status: Annotated[str | None, Query(description="IN_PROGRESS, SUCCEEDED or FAILED")] = None,
    kind: Annotated[str | None, Query(description="PersonTracking, FaceDetection, FaceSearch")] = None,
    limit: Annotated[int, Query(description="At most this many jobs (1-1000)")] = 100,
    caller: Caller = allowed("keeneye:ListJobs"),
) -> dict[str, Any]:
    if status is not None and status not in JOB_STATUSES:
        raise InvalidParameter(f"status must be one of {', '.join(JOB_STATUSES)}")
    found = jobs(caller.services).list_jobs(status=status, kind=kind, limit=limit)  # type: ignore[arg-type]
    return {"jobs": [j.to_dict() for j in found]}


@router.get("/v1/jobs/{job_id}", summary="One stored-video job: state, video, times, notification delivery")
def get_job(job_id: str, caller: Caller = allowed("keeneye:ListJobs")) -> dict[str, Any]:
    result: dict[str, Any] = jobs(caller.services).info(job_id).to_dict()
    return result


@router.post(
    "/v1/jobs/{job_id}/cancel",
    summary="Cancel a queued or running job",
    description="A queued job never runs; a running job stops at its next frame. The job ends FAILED "
    'with StatusMessage "cancelled by the operator" and its notification is sent. A job that has '
    "already ended: 409.",
)
def cancel_job(job_id: str, caller: Caller = allowed("keeneye:CancelJob")) -> dict[str, Any]:
    info = jobs(caller.services).cancel(job_id)
    caller.audit("CancelJob", {"job_id": job_id, "kind": info.kind})
    result: dict[str, Any] = info.to_dict()
    return result


# -- notification channels and the outbox -------------------------------------------------------------


@router.get("/v1/notification-channels", summary="Notification channels (SNS topic ARN -> sink), redacted")
def list_channels(caller: Caller = allowed(MANAGE_CHANNELS)) -> dict[str, Any]:
    return {"channels": [c.to_dict() for c in notifications(caller.services).list_channels()]}


@router.get("/v1/notification-channels/{topic_arn}", summary="One notification channel, redacted")
def get_channel(topic_arn: str, caller: Caller = allowed(MANAGE_CHANNELS, topic_of)) -> dict[str, Any]:
    result: dict[str, Any] = notifications(caller.services).get_channel(topic_arn).to_dict()
    return result


@router.put(
    "/v1/notification-channels/{topic_arn}",
    summary="Map an SNS topic ARN to a webhook, an MQTT topic or a JSONL file",
    description="Body: exactly one of webhook, mqtt, jsonl. Replaces the topic's channel; messages "
    "waiting for the topic are sent to the new sink at once. Answers the channel, secrets redacted.",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _channel_schema()}}}
    },
)
def put_channel(topic_arn: str, caller: Caller = allowed(MANAGE_CHANNELS, topic_of)) -> dict[str, Any]:
    raw = caller.json('{"webhook": {"url": ...}}')
    try:
        spec = SinkSpec.model_validate(raw)
    except ValidationError:
        spec = None  # put_channel says what is wrong
    if spec is not None:  # the destination's own right, as a processor's Output naming it would need
        caller.require(sink_rights(spec), where=f"PUT /v1/notification-channels/{topic_arn}")
    channel = notifications(caller.services).put_channel(topic_arn, spec if spec is not None else raw)
    # What changed, not the sink's settings (they may hold secrets).
    caller.audit("PutNotificationChannel", {"topic_arn": topic_arn, "kind": channel.spec.kind})
    result: dict[str, Any] = channel.to_dict()
    return result


@router.delete(
    "/v1/notification-channels/{topic_arn}",
    status_code=204,
    response_class=Response,
    summary="Remove a notification channel (its undelivered messages wait for a new one)",
)
def delete_channel(topic_arn: str, caller: Caller = allowed(MANAGE_CHANNELS, topic_of)) -> Response:
    notifications(caller.services).delete_channel(topic_arn)
    caller.audit("DeleteNotificationChannel", {"topic_arn": topic_arn})
    return Response(status_code=204)


def _outbox_resource(request: Request, _: ApiState) -> str:
    return request.query_params.get("topic_arn") or "*"


@router.get(
    "/v1/notifications",
    summary="The notification outbox, newest first: messages and their delivery state",
    description="Each message: message_id, topic_arn, job_id, state (pending, delivered), attempts, "
    "last_error, created_at, last_attempt_at, next_attempt_at, delivered_at and the SNS envelope.",
)
def list_notifications(
    state: Annotated[str | None, Query(description="pending or delivered")] = None,
    topic_arn: Annotated[str | None, Query(description="Only messages to this topic")] = None,
    job_id: Annotated[str | None, Query(description="Only messages about this job")] = None,
    limit: Annotated[int, Query(description="At most this many messages (1-1000)")] = 100,
    caller: Caller = allowed("keeneye:ReadNotifications", _outbox_resource),
) -> dict[str, Any]:
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidParameter("state must be pending or delivered")
    if not 1 <= limit <= 1000:
        raise InvalidParameter("limit must be between 1 and 1000")
    found = notifications(caller.services).deliveries(
        state=state,  # type: ignore[arg-type]
        topic_arn=topic_arn,
        job_ids=None if job_id is None else [job_id],
        limit=limit,
    )
    return {"notifications": [d.to_dict(with_message=True) for d in found]}
