"""Stored-video jobs: Start* (queued, audited; ClientRequestToken replayed) and Get* (state, VideoMetadata,
one page of results shaped here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keeneye.aws import shapes
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers.context import (
    DEFAULT_THRESHOLD,
    Context,
    Handler,
    Params,
    Response,
    audit,
    regional_collections,
    scoped,
)
from keeneye.service.faces import request_tokens
from keeneye.service.video.jobs import JobPage, VideoJobs, VideoRef


def _video_jobs(ctx: Context) -> VideoJobs:
    if ctx.services.video_jobs is None:
        raise AwsError("InternalServerError", "stored-video jobs are not available on this server")
    return ctx.services.video_jobs


def _job_state(page: JobPage) -> dict[str, Any]:
    """JobId, JobStatus, StatusMessage, Video and JobTag of a Get* response."""
    video: dict[str, Any] = {"Bucket": page.video.bucket, "Name": page.video.name}
    if page.video.version:
        video["Version"] = page.video.version
    out: dict[str, Any] = {"JobId": page.job_id, "JobStatus": page.status, "Video": {"S3Object": video}}
    if page.job_tag:
        out["JobTag"] = page.job_tag
    if page.status_message:
        out["StatusMessage"] = page.status_message
    return out


def _notification_topic(ctx: Context, p: Params) -> str | None:
    """The NotificationChannel's SNSTopicArn of a Start* request, or None without one.

    There is no SNS: the topic must have a notification channel configured on this server (native API
    ``PUT /v1/notification-channels/{topic_arn}``), else InvalidParameterException says how to add
    one. RoleArn is accepted and not used (no IAM here).
    """
    channel = p.get("NotificationChannel")
    if channel is None:
        return None
    topic_arn = str(channel["SNSTopicArn"])
    _video_jobs(ctx).check_notification_topic(topic_arn)
    return topic_arn


def _audit_job(
    ctx: Context,
    operation: str,
    job_id: str,
    p: Params,
    topic: str | None,
    collection_id: str | None = None,
    threshold: float | None = None,
) -> None:
    """Audit a Start* call: who asked for which video to be analysed, and the JobId it got (a repeated
    ClientRequestToken gets the first job's id and is recorded again: it is another call)."""
    s3 = p["Video"]["S3Object"]
    video = {
        "Bucket": s3["Bucket"],
        "Name": s3["Name"],
        **({"Version": s3["Version"]} if s3.get("Version") else {}),
    }
    details: dict[str, Any] = {"job_id": job_id, "video": video}
    if p.get("JobTag"):
        details["job_tag"] = p["JobTag"]
    if topic is not None:
        details["notification_topic"] = topic
    audit(ctx, operation, collection_id, threshold=threshold, details=details)


def _start_job(
    ctx: Context,
    p: Params,
    kind: str,
    operation: str,
    params: dict[str, Any] | None = None,
    *,
    check: Callable[[], object] | None = None,
    collection_id: str | None = None,
    threshold: float | None = None,
) -> Response:
    """Start* of a stored-video job: a ClientRequestToken this key used in this region before gets that
    job's JobId back without anything being checked again (IdempotentParameterMismatchException with
    other parameters); else ``check()``, the notification topic and the video (it must be there now,
    as Rekognition does) are checked and a job is queued. Audited either way: each call is a call."""

    jobs = _video_jobs(ctx)
    token = p.get("ClientRequestToken")
    fingerprint = request_tokens.fingerprint(p)
    job_id = jobs.replay(kind, token, owner=ctx.access_key_id, region=ctx.region, fingerprint=fingerprint)
    topic = (p.get("NotificationChannel") or {}).get("SNSTopicArn")
    if job_id is None:
        if check is not None:
            check()
        topic = _notification_topic(ctx, p)
        s3 = p["Video"].get("S3Object")
        ctx.services.images.check_video(s3)
        assert s3 is not None
        ref = VideoRef(s3["Bucket"], s3["Name"], s3.get("Version"))
        job_id = jobs.start(
            kind,
            ref,
            p.get("JobTag"),
            token,
            params,
            notification_topic=topic,
            owner=ctx.access_key_id,
            region=ctx.region,
            fingerprint=fingerprint,
        )
    _audit_job(ctx, operation, job_id, p, topic, collection_id, threshold)
    return {"JobId": job_id}


def start_person_tracking(ctx: Context, p: Params) -> Response:
    return _start_job(ctx, p, "PersonTracking", "StartPersonTracking")


def _get_sorted_job(
    ctx: Context, p: Params, kind: str, shape: Callable[[dict[str, Any], int, int], dict[str, Any]]
) -> Response:
    """A Get* of a job whose items are Persons (SortBy INDEX | TIMESTAMP): state, VideoMetadata, one
    page of ``shape(item, width, height)`` and the NextToken."""
    page = _video_jobs(ctx).get(
        p["JobId"],
        kind,
        max_results=int(p.get("MaxResults", 1000)),
        next_token=p.get("NextToken"),
        sort_by=p.get("SortBy", "TIMESTAMP"),
        region=ctx.region,
    )
    out = _job_state(page)
    if page.metadata is not None:
        w, h = int(page.metadata["width"]), int(page.metadata["height"])
        out["VideoMetadata"] = shapes.video_metadata(page.metadata)
        out["Persons"] = [shape(item, w, h) for item in page.items]
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def get_person_tracking(ctx: Context, p: Params) -> Response:
    return _get_sorted_job(ctx, p, "PersonTracking", shapes.person_detection)


def start_face_detection(ctx: Context, p: Params) -> Response:
    extras = shapes.requested_attributes(p.get("FaceAttributes") and [p["FaceAttributes"]])
    return _start_job(ctx, p, "FaceDetection", "StartFaceDetection", {"extras": sorted(extras)})


def get_face_detection(ctx: Context, p: Params) -> Response:
    page = _video_jobs(ctx).get(
        p["JobId"],
        "FaceDetection",
        max_results=int(p.get("MaxResults", 1000)),
        next_token=p.get("NextToken"),
        region=ctx.region,
    )
    out = _job_state(page)
    if page.metadata is not None:
        out["VideoMetadata"] = shapes.video_metadata(page.metadata)
        w, h = int(page.metadata["width"]), int(page.metadata["height"])
        extras = frozenset(page.request.get("extras", ()))
        out["Faces"] = [shapes.face_detection(it, w, h, extras) for it in page.items]
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def start_face_search(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    if not 0 <= threshold <= 100:
        raise AwsError("InvalidParameterException", "FaceMatchThreshold must be between 0 and 100")
    collection_id = p["CollectionId"]
    key = scoped(ctx, collection_id)  # the job searches this region's collection
    # The caller's key goes with the job (Start* records it): its identifications are audited under it.
    return _start_job(
        ctx,
        p,
        "FaceSearch",
        "StartFaceSearch",
        {"collection_id": key, "threshold": threshold},
        check=lambda: regional_collections(ctx).describe_collection(collection_id),  # missing: fails now
        collection_id=key,
        threshold=threshold,
    )


def get_face_search(ctx: Context, p: Params) -> Response:
    return _get_sorted_job(ctx, p, "FaceSearch", shapes.person_match)


VIDEO_OPERATIONS: dict[str, Handler] = {
    "StartPersonTracking": start_person_tracking,
    "GetPersonTracking": get_person_tracking,
    "StartFaceDetection": start_face_detection,
    "GetFaceDetection": get_face_detection,
    "StartFaceSearch": start_face_search,
    "GetFaceSearch": get_face_search,
}
