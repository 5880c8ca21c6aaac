"""Render docs/rekognition-coverage.md from the service model and the handler table.

``python -m keeneye.aws.coverage > docs/rekognition-coverage.md``; a test checks the file agrees, so
the list of operations (all of botocore's ``service-2.json``) and their status cannot drift.
"""

from __future__ import annotations

from keeneye.aws.handlers import OPERATIONS
from keeneye.aws.model import operation_names, service_model

# Operations keeneye means to serve later (video, streams, liveness), and why the rest are not planned.
NOT_YET: dict[str, str] = {
    "CreateFaceLivenessSession": "liveness models are installed; the session flow is not",
    "GetFaceLivenessSessionResults": "liveness models are installed; the session flow is not",
    "DetectLabels": "only the Person label could be offered (person detector)",
    "DetectProtectiveEquipment": "needs a PPE model",
}
_NOT_PLANNED_REASONS: tuple[tuple[str, str], ...] = (
    ("Celebrit", "needs a celebrity database: out of scope for a self-hosted service"),
    ("Project", "Custom Labels training: out of scope"),
    ("Dataset", "Custom Labels training: out of scope"),
    ("CustomLabels", "Custom Labels: out of scope"),
    ("Moderation", "content moderation: out of scope"),
    ("Text", "text detection: out of scope"),
    ("Segment", "video segment detection: out of scope"),
    ("MediaAnalysis", "bulk analysis jobs of Custom Moderation adapters: out of scope"),
    ("LabelDetection", "video labels: out of scope"),
)

NOTIFICATION_NOTE = (
    "supported without SNS: the SNSTopicArn must be mapped to a webhook, MQTT topic or JSONL file with "
    "`PUT /v1/notification-channels/{SNSTopicArn}` (else InvalidParameterException); the completion "
    "message comes in an SNS Notification envelope, at least once; RoleArn is not used. "
    "See docs/notifications.md"
)

STREAM_INPUT_NOTE = (
    "`KinesisVideoStream.Arn`: a camera registered with `PUT /v1/cameras/{name}` "
    "(`arn:aws:kinesisvideo:<region>:<account>:stream/<name>/1`; it may push to keeneye with `listen`), "
    "or a URL: `rtsp://`, `rtsps://`, `rtmp://`, `http(s)://` (MJPEG, HLS), `file://` inside a folder served "
    "as a bucket. See docs/streams.md"
)
STREAM_OUTPUT_NOTE = (
    "`KinesisDataStream.Arn`: a data stream registered with `PUT /v1/data-streams/{name}` "
    "(`arn:aws:kinesis:<region>:<account>:stream/<name>`: one or several webhook / MQTT / JSONL sinks) or a "
    "sink URL (`http(s)://`, `mqtt://host:port/topic`, `file://NAME.jsonl`, `s3://bucket/prefix`); "
    "`S3Destination` writes each record as a JSON object to a bucket the server serves. Records wait on "
    "disk (up to `streams.spool_max_bytes`) while a sink is down"
)

# Parameters of supported operations that keeneye accepts but does not honour (fully).
PARAMETER_NOTES: dict[str, dict[str, str]] = {
    "CreateStreamProcessor": {
        "Input": STREAM_INPUT_NOTE,
        "Output": STREAM_OUTPUT_NOTE,
        "Settings": "`FaceSearch` (CollectionId, FaceMatchThreshold, default 80) and/or `ConnectedHome` "
        "(Labels: `PERSON` only, `ALL` means PERSON; MinConfidence, default 50)",
        "RegionsOfInterest": "boxes and polygons: only faces whose centre, and persons whose feet, are "
        "inside one are analysed",
        "NotificationChannel": "told when a session ends (`STREAM_PROCESSING_COMPLETE`, keeneye's shape); "
        "the SNSTopicArn must be mapped with `PUT /v1/notification-channels/{SNSTopicArn}`",
        "RoleArn": "accepted, not used (no IAM roles)",
        "KmsKeyId": "accepted, not used (records are not encrypted by keeneye)",
        "DataSharingPreference": "accepted, stored; nothing is ever shared",
        "Tags": "stored with the processor; TagResource on processor ARNs is not supported",
    },
    "StartStreamProcessor": {
        "StartSelector": "refused (InvalidParameterException): cameras are read live, with no archive",
        "StopSelector": "`MaxDurationInSeconds`: the processor stops itself after it",
    },
    "UpdateStreamProcessor": {
        "SettingsForUpdate": "ConnectedHome Labels and MinConfidence; only while the processor is stopped",
        "RegionsOfInterestForUpdate": "only while the processor is stopped",
    },
    "DetectFaces": {
        "Attributes": "BEARD, EYEGLASSES, EYE_DIRECTION, FACE_OCCLUDED, MUSTACHE, SUNGLASSES are accepted "
        "and omitted from FaceDetail (no model); see docs/attributes.md",
    },
    "IndexFaces": {"DetectionAttributes": "as DetectFaces' Attributes"},
    "CompareFaces": {"QualityFilter": "accepted, ignored (every detected face is compared)"},
    "CreateUser": {"ClientRequestToken": "accepted, ignored (no idempotent replay)"},
    "DeleteUser": {"ClientRequestToken": "accepted, ignored (no idempotent replay)"},
    "AssociateFaces": {"ClientRequestToken": "accepted, ignored (no idempotent replay)"},
    "DisassociateFaces": {"ClientRequestToken": "accepted, ignored (no idempotent replay)"},
    "StartPersonTracking": {
        "Video": "S3Object from a bucket mapped with `--bucket NAME=FOLDER`, or from `--s3-endpoint` "
        "(downloaded for the job and deleted after it; `Version` used); at most `video_jobs.max_bytes` "
        "(10 GiB, else `VideoTooLargeException`); frames over `video_jobs.max_pixels` fail the job; "
        "the job analyses `video_jobs.target_fps` frames a second (default 5), at most "
        "`video_jobs.max_duration_s` of video (docs/limits.md)",
        "ClientRequestToken": "supported: the same token returns the first job's JobId",
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "StartFaceDetection": {
        "Video": "as StartPersonTracking",
        "ClientRequestToken": "supported: the same token returns the first job's JobId",
        "FaceAttributes": "DEFAULT or ALL (as DetectFaces' Attributes)",
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "StartFaceSearch": {
        "Video": "as StartPersonTracking",
        "ClientRequestToken": "supported: the same token returns the first job's JobId",
        "FaceMatchThreshold": "supported (default 80); a missing CollectionId is ResourceNotFoundException "
        "at once; the identifications are written to the audit log under the caller's key",
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "GetFaceSearch": {
        "Persons": "faces are tracked (Person.Index is a face track; Person.BoundingBox is the face's box, "
        "as Person.Face.BoundingBox); each track's best face is searched, and every analysed frame where a "
        "matched track is seen is listed with the track's FaceMatches; unmatched persons are not listed",
        "SortBy": "supported (default TIMESTAMP); INDEX orders by Index, then Timestamp",
        "MaxResults": "supported (default 1000)",
    },
    "GetFaceDetection": {"MaxResults": "supported (default 1000); Faces are ordered by Timestamp"},
    "GetPersonTracking": {
        "SortBy": "supported (default TIMESTAMP); INDEX orders by Index, then Timestamp",
        "MaxResults": "supported (default 1000)",
    },
    "TagResource": {"ResourceArn": "collection ARNs only"},
    "UntagResource": {"ResourceArn": "collection ARNs only"},
    "ListTagsForResource": {"ResourceArn": "collection ARNs only"},
}
IMAGE_NOTE = (
    "Bytes (<= 5 MB) or S3Object from a bucket mapped with `--bucket NAME=FOLDER` (<= 15 MB; "
    "`Version` ignored) or read from `--s3-endpoint`; at least 80 pixels in height and width "
    "(`images.min_side_px`, else `InvalidParameterException`)"
)

HEADER = """# Rekognition API coverage

Generated by `python -m keeneye.aws.coverage > docs/rekognition-coverage.md` from botocore's
`rekognition/2016-06-27/service-2.json` ({count} operations) and keeneye's handler table; a test
checks this file is current. Status: **supported** (served on `POST /`), **not yet** (planned),
**not planned**. Calling an operation that is not supported answers `UnknownOperationException`
naming this page.

## Protocol and errors

* AWS JSON 1.1: `POST /`, `X-Amz-Target: RekognitionService.<Operation>`,
  `Content-Type: application/x-amz-json-1.1`; bodies over `server.max_body_bytes` (20 MB) get
  `RequestEntityTooLargeException` (HTTP 413) before they are read, bodies not received within
  `server.body_timeout_s` (60 s) `RequestTimeoutException` (HTTP 408); every limit is in
  [limits.md](limits.md).
* Authentication: SigV4 on every request (service `rekognition`, any region), verified with
  botocore's signer. Missing `Authorization`: `MissingAuthenticationTokenException`; malformed:
  `IncompleteSignatureException`; unknown access key: `UnrecognizedClientException`; wrong
  signature, tampered body or `X-Amz-Date` more than 5 minutes off: `InvalidSignatureException`
  ("Signature expired"). All HTTP 400, as AWS's JSON services answer them. Pre-signed URLs (query
  string SigV4) and session tokens are not supported.
* Validation: the model's constraints (required members, types, lengths, ranges, enums, patterns)
  give `ValidationException` with AWS's message style; members the model does not know are ignored;
  a body that is not a JSON object (or holds NaN or Infinity, or nests too deep to parse) is
  `SerializationException`. `Image.Bytes` over 5 MB is a `ValidationException` on `image.bytes`, as
  on AWS; `ImageTooLargeException` is for S3 objects over 15 MB, images over `images.max_pixels`
  and JPEGs of more than 50 scans.
* Errors from the service: `ResourceNotFoundException`, `ResourceAlreadyExistsException`,
  `InvalidParameterException` (e.g. no face in a search image, a bad pagination token),
  `InvalidImageFormatException`, `ImageTooLargeException`, `InvalidS3ObjectException`,
  `ServiceQuotaExceededException` (e.g. more than 50 tags, more than 100 faces per user),
  `ConflictException` (CreateUser of an existing user), `ThrottlingException` (more than
  `server.max_inflight` requests being analysed; boto3 retries it), `AccessDeniedException` (mapped
  from keeneye's AccessDenied; no operation raises it today), `InternalServerError` (HTTP 500, details
  only in the server log).
* `ResourceInUseException`: a stream processor name already taken (CreateStreamProcessor), or a
  processor in a state that does not allow the call (starting a running one, stopping a stopped one,
  updating or deleting a running one).
* `LimitExceededException`, `ProvisionedThroughputExceededException` and
  `IdempotentParameterMismatchException` are never sent.

## Operations

| operation | status | notes |
| --- | --- | --- |
"""


def status_of(operation: str) -> tuple[str, str]:
    if operation in OPERATIONS:
        return "supported", ""
    if operation in NOT_YET:
        return "not yet", NOT_YET[operation]
    for needle, reason in _NOT_PLANNED_REASONS:
        if needle in operation:
            return "not planned", reason
    return "not planned", ""


def _parameters(operation: str) -> list[str]:
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return []
    notes = PARAMETER_NOTES.get(operation, {})
    rows = []
    for name, member in shape.members.items():
        note = notes.get(name, "")
        if not note and member.name == "Image":
            note = IMAGE_NOTE
        rows.append(f"| `{name}` | {note or 'supported'} |")
    return rows


def render() -> str:
    names = operation_names()
    out = [HEADER.format(count=len(names))]
    for name in names:
        status, note = status_of(name)
        out.append(f"| {name} | {status} | {note} |\n")
    out.append("\n## Parameters of the supported operations\n")
    for name in names:
        if name not in OPERATIONS:
            continue
        out.append(f"\n### {name}\n\n| parameter | support |\n| --- | --- |\n")
        out.append("\n".join(_parameters(name)) + "\n")
    return "".join(out)


if __name__ == "__main__":
    print(render(), end="")
