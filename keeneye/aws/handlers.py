"""One function per Rekognition operation: PascalCase parameters in, service call, shapes out.

Parameters arrive validated against the service model (keeneye.aws.model), blobs decoded. Each
handler reads what it needs, calls keeneye.service, and builds the response with keeneye.aws.shapes.
Identity operations and stored-video Start* calls append an audit record with the caller's access key
id (docs/accountability.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keeneye.aws import shapes
from keeneye.aws.errors import AwsError
from keeneye.core import regions
from keeneye.core.errors import AlreadyExists
from keeneye.service.container import Services as Services  # re-exported: what the handlers call
from keeneye.service.faces import request_tokens

if TYPE_CHECKING:
    from keeneye.service.faces.collections import FaceCollections, FaceMatch, UserMatch
    from keeneye.service.streams.processors import StreamProcessors
    from keeneye.service.streams.spec import ProcessorInfo
    from keeneye.service.video.jobs import JobPage, VideoJobs

Params = dict[str, Any]
Response = dict[str, Any]

DEFAULT_THRESHOLD = 80.0  # FaceMatchThreshold / SimilarityThreshold / UserMatchThreshold defaults
DEFAULT_ASSOCIATE_THRESHOLD = 75.0  # AssociateFaces' UserMatchThreshold default


def _allow_all(action: str, resource: str) -> bool:
    return True


@dataclass(frozen=True)
class Context:
    """One call: the services, who made it, and ``authorize(action, resource)`` of the caller's policy
    (the adapter checks the operation itself; handlers use it to filter what they list)."""

    services: Services
    access_key_id: str
    request_id: str
    authorize: Callable[[str, str], object] = _allow_all
    region: str = regions.HOME_REGION  # the region the caller signed for: it scopes collections & co.


Handler = Callable[[Context, Params], Response]


def _collections(ctx: Context) -> FaceCollections:
    """The collections of the caller's region."""
    if ctx.services.collections is None:
        raise AwsError("InternalServerError", "collections are not available on this server")
    return ctx.services.collections.in_region(ctx.region)


def _key(ctx: Context, collection_id: str) -> str:
    """What the audit log and the jobs record for a collection: its id, qualified with its region
    outside us-east-1 (keeneye.core.regions)."""
    return regions.scoped_key(ctx.region, collection_id)


def _audit(
    ctx: Context,
    operation: str,
    collection_id: str | None,
    *,
    faces_in_request: int = 0,
    matches: Sequence[dict[str, Any]] = (),
    threshold: float | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit record (time, caller, operation, collection, faces, matches, threshold)."""
    audit = ctx.services.audit
    if audit is None:
        return
    audit.append(
        operation,
        access_key=ctx.access_key_id,
        collection_id=collection_id,
        request_faces=faces_in_request,
        matches=list(matches),
        threshold=threshold,
        details=details,
    )


def _face_hits(matches: Sequence[FaceMatch]) -> list[dict[str, Any]]:
    return [{"FaceId": m.face.face_id, "Similarity": float(m.similarity)} for m in matches]


def _user_hits(matches: Sequence[UserMatch]) -> list[dict[str, Any]]:
    return [{"UserId": m.user.user_id, "Similarity": float(m.similarity)} for m in matches]


# -- faces --------------------------------------------------------------------------------------------


def detect_faces(ctx: Context, p: Params) -> Response:
    extras = shapes.requested_attributes(p.get("Attributes"))
    image = ctx.services.images.load(p.get("Image"))
    r = ctx.services.faces.detect_faces(image, extras)
    return {"FaceDetails": [shapes.face_detail(f, r.width, r.height, extras) for f in r.faces]}


def compare_faces(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("SimilarityThreshold", DEFAULT_THRESHOLD))
    source = ctx.services.images.load(p.get("SourceImage"))
    target = ctx.services.images.load(p.get("TargetImage"))
    r = ctx.services.faces.compare_faces(source, target, threshold, p.get("QualityFilter", "NONE"))
    sw, sh, tw, th = r.source.width, r.source.height, r.target.width, r.target.height
    _audit(
        ctx,
        "CompareFaces",
        None,
        faces_in_request=1,
        matches=[{"Similarity": float(sim)} for _, sim in r.matches],
        threshold=threshold,
    )
    return {
        "SourceImageFace": shapes.compared_source_face(r.source.faces[0], sw, sh),
        "FaceMatches": [{"Similarity": sim, "Face": shapes.compared_face(f, tw, th)} for f, sim in r.matches],
        "UnmatchedFaces": [shapes.compared_face(f, tw, th) for f in r.unmatched],
    }


# -- collections ----------------------------------------------------------------------------------------


def create_collection(ctx: Context, p: Params) -> Response:
    info = _collections(ctx).create_collection(p["CollectionId"], p.get("Tags"))
    return {
        "StatusCode": 200,
        "CollectionArn": info.arn,
        "FaceModelVersion": shapes.face_model_version(info.face_model_version),
    }


def describe_collection(ctx: Context, p: Params) -> Response:
    return shapes.collection_description(_collections(ctx).describe_collection(p["CollectionId"]))


def list_collections(ctx: Context, p: Params) -> Response:
    col = _collections(ctx)
    page = col.list_collections(p.get("MaxResults", 1000), p.get("NextToken"))
    # Only the collections the caller may list (a page may come back shorter than MaxResults).
    items = [c for c in page.items if ctx.authorize("rekognition:ListCollections", col.arn(c.collection_id))]
    out: Response = {
        "CollectionIds": [c.collection_id for c in items],
        "FaceModelVersions": [shapes.face_model_version(c.face_model_version) for c in items],
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_collection(ctx: Context, p: Params) -> Response:
    _collections(ctx).delete_collection(p["CollectionId"])
    _audit(ctx, "DeleteCollection", _key(ctx, p["CollectionId"]))
    return {"StatusCode": 200}


# -- faces in collections ---------------------------------------------------------------------------------


def index_faces(ctx: Context, p: Params) -> Response:
    extras = shapes.requested_attributes(p.get("DetectionAttributes"))
    image = ctx.services.images.load(p.get("Image"))
    r = _collections(ctx).index_faces(
        p["CollectionId"],
        image,
        external_image_id=p.get("ExternalImageId"),
        max_faces=p.get("MaxFaces"),
        quality_filter=p.get("QualityFilter", "AUTO"),
        attributes=extras,
    )
    w, h = r.image_width, r.image_height
    _audit(
        ctx,
        "IndexFaces",
        _key(ctx, p["CollectionId"]),
        faces_in_request=len(r.indexed) + len(r.unindexed),
        matches=[{"FaceId": stored.face_id} for stored, _ in r.indexed],
    )
    return {
        "FaceRecords": [
            {"Face": shapes.stored_face(stored), "FaceDetail": shapes.face_detail(face, w, h, extras)}
            for stored, face in r.indexed
        ],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
        "UnindexedFaces": [
            {"Reasons": list(reasons), "FaceDetail": shapes.face_detail(face, w, h, extras)}
            for face, reasons in r.unindexed
        ],
    }


def list_faces(ctx: Context, p: Params) -> Response:
    page = _collections(ctx).list_faces(
        p["CollectionId"],
        max_results=p.get("MaxResults", 1000),
        next_token=p.get("NextToken"),
        user_id=p.get("UserId"),
        face_ids=p.get("FaceIds"),
    )
    out: Response = {
        "Faces": [shapes.stored_face(f) for f in page.items],
        "FaceModelVersion": _model_version(ctx, p["CollectionId"]),
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def _model_version(ctx: Context, collection_id: str) -> str:
    return shapes.face_model_version(_collections(ctx).describe_collection(collection_id).face_model_version)


def delete_faces(ctx: Context, p: Params) -> Response:
    deleted, failed = _collections(ctx).delete_faces(p["CollectionId"], p["FaceIds"])
    _audit(
        ctx,
        "DeleteFaces",
        _key(ctx, p["CollectionId"]),
        faces_in_request=len(p["FaceIds"]),
        matches=[{"FaceId": f} for f in deleted],
    )
    return {
        "DeletedFaces": list(deleted),
        "UnsuccessfulFaceDeletions": [shapes.unsuccessful(u) for u in failed],
    }


def search_faces(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    col = _collections(ctx)
    matches = col.search_faces(p["CollectionId"], p["FaceId"], threshold, p.get("MaxFaces", 4096))
    _audit(
        ctx,
        "SearchFaces",
        _key(ctx, p["CollectionId"]),
        faces_in_request=1,
        matches=_face_hits(matches),
        threshold=threshold,
    )
    return {
        "SearchedFaceId": p["FaceId"],
        "FaceMatches": [shapes.face_match(m) for m in matches],
        "FaceModelVersion": _model_version(ctx, p["CollectionId"]),
    }


def search_faces_by_image(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    image = ctx.services.images.load(p.get("Image"))
    r = _collections(ctx).search_faces_by_image(
        p["CollectionId"],
        image,
        threshold=threshold,
        max_faces=p.get("MaxFaces", 4096),
        quality_filter=p.get("QualityFilter", "NONE"),
    )
    _audit(
        ctx,
        "SearchFacesByImage",
        _key(ctx, p["CollectionId"]),
        faces_in_request=1 + len(r.unsearched),
        matches=_face_hits(r.matches),
        threshold=threshold,
    )
    return {
        "SearchedFaceBoundingBox": shapes.bounding_box(r.searched, r.image_width, r.image_height),
        "SearchedFaceConfidence": shapes.confidence(r.searched),
        "FaceMatches": [shapes.face_match(m) for m in r.matches],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
    }


def _once(ctx: Context, operation: str, p: Params, call: Callable[[], Response]) -> Response:
    """``call()``, or the response an earlier call with the same ClientRequestToken got."""
    tokens = ctx.services.request_tokens
    if tokens is None:
        return call()
    return tokens.run(
        access_key=ctx.access_key_id, region=ctx.region, operation=operation, params=p, call=call
    )


# -- users --------------------------------------------------------------------------------------------------


def create_user(ctx: Context, p: Params) -> Response:
    def call() -> Response:
        try:
            _collections(ctx).create_user(p["CollectionId"], p["UserId"])
        except AlreadyExists as exc:  # Rekognition answers a duplicate user with ConflictException
            raise AwsError("ConflictException", exc.message) from None
        return {}

    return _once(ctx, "CreateUser", p, call)


def delete_user(ctx: Context, p: Params) -> Response:
    def call() -> Response:
        _collections(ctx).delete_user(p["CollectionId"], p["UserId"])
        _audit(ctx, "DeleteUser", _key(ctx, p["CollectionId"]), matches=[{"UserId": p["UserId"]}])
        return {}

    return _once(ctx, "DeleteUser", p, call)


def list_users(ctx: Context, p: Params) -> Response:
    page = _collections(ctx).list_users(p["CollectionId"], p.get("MaxResults", 500), p.get("NextToken"))
    out: Response = {"Users": [shapes.user(u) for u in page.items]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def associate_faces(ctx: Context, p: Params) -> Response:
    return _once(ctx, "AssociateFaces", p, lambda: _associate_faces(ctx, p))


def _associate_faces(ctx: Context, p: Params) -> Response:
    ok, failed, status = _collections(ctx).associate_faces(
        p["CollectionId"],
        p["UserId"],
        p["FaceIds"],
        float(p.get("UserMatchThreshold", DEFAULT_ASSOCIATE_THRESHOLD)),
    )
    return {
        "AssociatedFaces": [{"FaceId": f} for f in ok],
        "UnsuccessfulFaceAssociations": [shapes.unsuccessful(u, with_confidence=True) for u in failed],
        "UserStatus": status,
    }


def disassociate_faces(ctx: Context, p: Params) -> Response:
    return _once(ctx, "DisassociateFaces", p, lambda: _disassociate_faces(ctx, p))


def _disassociate_faces(ctx: Context, p: Params) -> Response:
    ok, failed, status = _collections(ctx).disassociate_faces(p["CollectionId"], p["UserId"], p["FaceIds"])
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in ok],
        "UnsuccessfulFaceDisassociations": [shapes.unsuccessful(u) for u in failed],
        "UserStatus": status,
    }


def search_users(ctx: Context, p: Params) -> Response:
    user_id, face_id = p.get("UserId"), p.get("FaceId")
    if (user_id is None) == (face_id is None):
        raise AwsError("InvalidParameterException", "give exactly one of UserId or FaceId")
    threshold = float(p.get("UserMatchThreshold", DEFAULT_THRESHOLD))
    matches = _collections(ctx).search_users(
        p["CollectionId"],
        user_id=user_id,
        face_id=face_id,
        threshold=threshold,
        max_users=p.get("MaxUsers", 5),
    )
    _audit(
        ctx,
        "SearchUsers",
        _key(ctx, p["CollectionId"]),
        faces_in_request=1,
        matches=_user_hits(matches),
        threshold=threshold,
    )
    out: Response = {
        "UserMatches": [shapes.user_match(m) for m in matches],
        "FaceModelVersion": _model_version(ctx, p["CollectionId"]),
    }
    if face_id is not None:
        out["SearchedFace"] = {"FaceId": face_id}
    else:
        out["SearchedUser"] = {"UserId": user_id}
    return out


def search_users_by_image(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("UserMatchThreshold", DEFAULT_THRESHOLD))
    image = ctx.services.images.load(p.get("Image"))
    r, matches = _collections(ctx).search_users_by_image(
        p["CollectionId"],
        image,
        threshold=threshold,
        max_users=p.get("MaxUsers", 5),
        quality_filter=p.get("QualityFilter", "NONE"),
    )
    w, h = r.image_width, r.image_height
    _audit(
        ctx,
        "SearchUsersByImage",
        _key(ctx, p["CollectionId"]),
        faces_in_request=1 + len(r.unsearched),
        matches=_user_hits(matches),
        threshold=threshold,
    )
    return {
        "UserMatches": [shapes.user_match(m) for m in matches],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
        "SearchedFace": {"FaceDetail": shapes.face_detail(r.searched, w, h)},
        "UnsearchedFaces": [
            {"FaceDetails": shapes.face_detail(f, w, h), "Reasons": ["FACE_NOT_LARGEST"]}
            for f in r.unsearched
        ],
    }


# -- tags ----------------------------------------------------------------------------------------------


def tag_resource(ctx: Context, p: Params) -> Response:
    _collections(ctx).tag_resource(p["ResourceArn"], p["Tags"])
    return {}


def untag_resource(ctx: Context, p: Params) -> Response:
    _collections(ctx).untag_resource(p["ResourceArn"], p["TagKeys"])
    return {}


def list_tags_for_resource(ctx: Context, p: Params) -> Response:
    return {"Tags": dict(_collections(ctx).list_tags(p["ResourceArn"]))}


# -- stored-video jobs -------------------------------------------------------------------------------


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
    _audit(ctx, operation, collection_id, threshold=threshold, details=details)


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
    from keeneye.service.video.jobs import VideoRef

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
    key = _key(ctx, collection_id)  # the job searches this region's collection
    # The caller's key goes with the job (Start* records it): its identifications are audited under it.
    return _start_job(
        ctx,
        p,
        "FaceSearch",
        "StartFaceSearch",
        {"collection_id": key, "threshold": threshold},
        check=lambda: _collections(ctx).describe_collection(collection_id),  # missing: fails now
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

# -- stream processors (live cameras) -------------------------------------------------------------------


def _processors(ctx: Context) -> StreamProcessors:
    if ctx.services.stream_processors is None:
        raise AwsError("InternalServerError", "stream processors are not available on this server")
    return ctx.services.stream_processors


_MAX_PROCESSOR_KEY = 128  # the stream_processors.name column


def _processor(ctx: Context, name: str) -> str:
    """A processor's store key in the caller's region (keeneye.core.regions)."""
    key = regions.scoped_key(ctx.region, name)
    if len(key) > _MAX_PROCESSOR_KEY:
        raise AwsError(
            "InvalidParameterException",
            f"Name is too long: in region {ctx.region} keeneye keeps stream processor names of up to "
            f"{_MAX_PROCESSOR_KEY - len(ctx.region) - 1} characters",
        )
    return key


def create_stream_processor(ctx: Context, p: Params) -> Response:
    face = (p.get("Settings") or {}).get("FaceSearch")
    if face is not None and face.get("CollectionId"):
        # A processor identifies people: its creator must be allowed to search that collection.
        arn = _collections(ctx).arn(str(face["CollectionId"]))
        if not ctx.authorize("rekognition:SearchFaces", arn):
            raise AwsError(
                "AccessDeniedException",
                f"this access key may not search {arn} (rekognition:SearchFaces), which a FaceSearch "
                "stream processor does",
            )
    arn = _processors(ctx).create(_processor(ctx, p["Name"]), p)
    collection = _key(ctx, str(face["CollectionId"])) if face and face.get("CollectionId") else None
    _audit(ctx, "CreateStreamProcessor", collection, details={"name": _processor(ctx, p["Name"])})
    return {"StreamProcessorArn": arn}


def _processor_shape(info: ProcessorInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": regions.name_of(info.name),
        "StreamProcessorArn": info.arn,
        "Status": info.status,
        "CreationTimestamp": shapes.epoch_seconds(info.created_at),
        "LastUpdateTimestamp": shapes.epoch_seconds(info.updated_at),
    }
    if info.status_message:
        out["StatusMessage"] = info.status_message
    for key in (
        "Input",
        "Output",
        "RoleArn",
        "Settings",
        "NotificationChannel",
        "KmsKeyId",
        "RegionsOfInterest",
        "DataSharingPreference",
    ):
        if key in info.request:
            out[key] = info.request[key]
    return out


def describe_stream_processor(ctx: Context, p: Params) -> Response:
    return _processor_shape(_processors(ctx).describe(_processor(ctx, p["Name"])))


def list_stream_processors(ctx: Context, p: Params) -> Response:
    from keeneye.service.faces.collections import decode_token, encode_token

    after = decode_token(p.get("NextToken"), "stream-processors")
    page, last = _processors(ctx).list_processors(p.get("MaxResults", 1000), after, region=ctx.region)
    out: Response = {
        "StreamProcessors": [{"Name": regions.name_of(i.name), "Status": i.status} for i in page]
    }
    if last is not None:
        out["NextToken"] = encode_token("stream-processors", last)
    return out


def start_stream_processor(ctx: Context, p: Params) -> Response:
    if p.get("StartSelector"):
        raise AwsError(
            "InvalidParameterException",
            "StartSelector is not supported: keeneye reads cameras live and keeps no fragment archive to "
            "start from",
        )
    duration = (p.get("StopSelector") or {}).get("MaxDurationInSeconds")
    session = _processors(ctx).start(
        _processor(ctx, p["Name"]), max_duration_s=duration, access_key=ctx.access_key_id
    )
    _audit(
        ctx, "StartStreamProcessor", None, details={"name": _processor(ctx, p["Name"]), "session_id": session}
    )
    return {"SessionId": session}


def stop_stream_processor(ctx: Context, p: Params) -> Response:
    _processors(ctx).stop(_processor(ctx, p["Name"]))
    _audit(ctx, "StopStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


def update_stream_processor(ctx: Context, p: Params) -> Response:
    home = (p.get("SettingsForUpdate") or {}).get("ConnectedHomeForUpdate")
    _processors(ctx).update(
        _processor(ctx, p["Name"]),
        connected_home=home,
        regions=p.get("RegionsOfInterestForUpdate"),
        data_sharing=p.get("DataSharingPreferenceForUpdate"),
        delete=p.get("ParametersToDelete") or (),
    )
    _audit(ctx, "UpdateStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


def delete_stream_processor(ctx: Context, p: Params) -> Response:
    _processors(ctx).delete(_processor(ctx, p["Name"]))
    _audit(ctx, "DeleteStreamProcessor", None, details={"name": _processor(ctx, p["Name"])})
    return {}


STREAM_OPERATIONS: dict[str, Handler] = {
    "CreateStreamProcessor": create_stream_processor,
    "DescribeStreamProcessor": describe_stream_processor,
    "ListStreamProcessors": list_stream_processors,
    "StartStreamProcessor": start_stream_processor,
    "StopStreamProcessor": stop_stream_processor,
    "UpdateStreamProcessor": update_stream_processor,
    "DeleteStreamProcessor": delete_stream_processor,
}

FACE_OPERATIONS: dict[str, Handler] = {"DetectFaces": detect_faces, "CompareFaces": compare_faces}

COLLECTION_OPERATIONS: dict[str, Handler] = {
    "CreateCollection": create_collection,
    "DescribeCollection": describe_collection,
    "ListCollections": list_collections,
    "DeleteCollection": delete_collection,
    "IndexFaces": index_faces,
    "ListFaces": list_faces,
    "DeleteFaces": delete_faces,
    "SearchFaces": search_faces,
    "SearchFacesByImage": search_faces_by_image,
    "CreateUser": create_user,
    "DeleteUser": delete_user,
    "ListUsers": list_users,
    "AssociateFaces": associate_faces,
    "DisassociateFaces": disassociate_faces,
    "SearchUsers": search_users,
    "SearchUsersByImage": search_users_by_image,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}

OPERATIONS: dict[str, Handler] = {
    **FACE_OPERATIONS,
    **COLLECTION_OPERATIONS,
    **VIDEO_OPERATIONS,
    **STREAM_OPERATIONS,
}

# Parameters of supported operations keeneye accepts but does not act on (docs/rekognition-coverage.md).
IGNORED_PARAMETERS: dict[str, tuple[str, ...]] = {
    # No IAM or KMS here; records are not shared with anyone (docs/streams.md).
    "CreateStreamProcessor": ("RoleArn", "KmsKeyId", "DataSharingPreference"),
}
