"""Render docs/rekognition-coverage.md from the service model and the handler table.

``python -m keeneye.aws.coverage > docs/rekognition-coverage.md``; a test checks the file agrees, so
the list of operations (all of botocore's ``service-2.json``) and their status cannot drift.
"""

from __future__ import annotations

from keeneye.aws.handlers import OPERATIONS
from keeneye.aws.model import operation_names, service_model
from keeneye.aws.plans import plan_of

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

TOKEN_NOTE = (
    "supported: the same token from the same access key and region gets the first response for 24 hours "
    "(other parameters: `IdempotentParameterMismatchException`)"
)
JOB_TOKEN_NOTE = (
    "supported: the same token from the same access key and region gets the first job's JobId "
    "(other parameters: `IdempotentParameterMismatchException`)"
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
    "CompareFaces": {
        "QualityFilter": "supported (default NONE): faces below the bar are not compared (a source face "
        "below it: InvalidParameterException); the bars are IndexFaces'"
    },
    "CreateUser": {"ClientRequestToken": TOKEN_NOTE},
    "DeleteUser": {"ClientRequestToken": TOKEN_NOTE},
    "AssociateFaces": {"ClientRequestToken": TOKEN_NOTE},
    "DisassociateFaces": {"ClientRequestToken": TOKEN_NOTE},
    "StartPersonTracking": {
        "Video": "S3Object from a bucket mapped with `--bucket NAME=FOLDER`, or from `--s3-endpoint` "
        "(downloaded for the job and deleted after it; `Version` used); at most `video_jobs.max_bytes` "
        "(10 GiB, else `VideoTooLargeException`); frames over `video_jobs.max_pixels` fail the job; "
        "the job analyses `video_jobs.target_fps` frames a second (default 5), at most "
        "`video_jobs.max_duration_s` of video (docs/limits.md)",
        "ClientRequestToken": JOB_TOKEN_NOTE,
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "StartFaceDetection": {
        "Video": "as StartPersonTracking",
        "ClientRequestToken": JOB_TOKEN_NOTE,
        "FaceAttributes": "DEFAULT or ALL (as DetectFaces' Attributes)",
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "StartFaceSearch": {
        "Video": "as StartPersonTracking",
        "ClientRequestToken": JOB_TOKEN_NOTE,
        "FaceMatchThreshold": "supported (default 80); a missing CollectionId is ResourceNotFoundException "
        "at once; the identifications are written to the audit log under the caller's key",
        "NotificationChannel": NOTIFICATION_NOTE,
    },
    "GetFaceSearch": {
        "Persons": "faces are tracked (Person.Index is a face track; Person.BoundingBox is the face's box, "
        "as Person.Face.BoundingBox); each track is searched with its best 3 faces fused "
        "(`faces.track_fusion`), and every analysed frame where a matched track is seen is listed with the "
        "track's FaceMatches; unmatched persons are not listed. When the collection has users, FaceMatches "
        "name each user once (Face.UserId), at their best face's Similarity",
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
saying which (not yet, or not planned, and why) and naming this page.

## Protocol and errors

* AWS JSON 1.1: `POST /`, `X-Amz-Target: RekognitionService.<Operation>`,
  `Content-Type: application/x-amz-json-1.1`; bodies over `server.max_body_bytes` (20 MB) get
  `RequestEntityTooLargeException` (HTTP 413) before they are read, bodies not received within
  `server.body_timeout_s` (60 s) `RequestTimeoutException` (HTTP 408); every limit is in
  [limits.md](limits.md).
* Authentication: SigV4 on every request (service `rekognition`, any well-formed region name),
  verified with botocore's signer. Missing `Authorization`: `MissingAuthenticationTokenException`;
  malformed: `IncompleteSignatureException`; unknown access key: `UnrecognizedClientException`; wrong
  signature, tampered body, an `x-amz-*` header (such as `X-Amz-Target`) that is not signed, or
  `X-Amz-Date` more than 5 minutes off: `InvalidSignatureException` ("Signature expired"). All HTTP
  400, as AWS's JSON services answer them. Pre-signed URLs (query string SigV4) are not supported;
  session tokens (temporary credentials from STS) are refused with `UnrecognizedClientException`:
  keeneye has no STS.
* Regions: collections (with their faces and users), stream processors and stored-video jobs belong
  to the region the request is signed for, as on AWS: a collection created while signing for
  `ap-southeast-2` has an `arn:aws:rekognition:ap-southeast-2:...` ARN and is not seen from
  `us-east-1`. keeneye is one account (`000000000000`). Outside the AWS API (native API, CLI, batch,
  upload rules) a collection of another region than `us-east-1` is named `REGION/ID`.
* Validation: the model's constraints (required members, types, lengths, ranges, enums, patterns)
  give `ValidationException` with AWS's message style; members the model does not know are ignored;
  a body that is not a JSON object (or holds NaN or Infinity, or nests too deep to parse) is
  `SerializationException`. `Image.Bytes` over 5 MB is a `ValidationException` on `image.bytes`, as
  on AWS; `ImageTooLargeException` is for S3 objects over 15 MB, images over `images.max_pixels`
  and JPEGs of more than 50 scans.
* Errors from the service: `ResourceNotFoundException`, `ResourceAlreadyExistsException`,
  `InvalidParameterException` (e.g. no face in a search image), `InvalidPaginationTokenException` (a
  `NextToken` this listing did not give out), `IdempotentParameterMismatchException` (a
  `ClientRequestToken` re-used with other parameters),
  `InvalidImageFormatException`, `ImageTooLargeException`, `InvalidS3ObjectException`,
  `ServiceQuotaExceededException` (e.g. more than 50 tags, more than 100 faces per user),
  `ConflictException` (CreateUser of an existing user), `ThrottlingException` (more than
  `server.max_inflight` requests being analysed; boto3 retries it), `AccessDeniedException` (mapped
  from keeneye's AccessDenied; no operation raises it today), `InternalServerError` (HTTP 500, details
  only in the server log).
* `ResourceInUseException`: a stream processor name already taken (CreateStreamProcessor), or a
  processor in a state that does not allow the call (starting a running one, stopping a stopped one,
  updating or deleting a running one).
* `LimitExceededException` and `ProvisionedThroughputExceededException` are never sent.
* Error bodies carry `__type`, `message` and `Message` (the AWS SDK for JavaScript v3 reads the latter).
* `FaceModelVersion` (and a face's `IndexFacesModelVersion`) is a version number of AWS's form: `7.0`
  for keeneye's default face model (dlib ResNet + FaceRes fusion), `7.1` dlib ResNet alone, `7.2`
  FaceRes alone, `7.NNNN` (from a hash of the model's id) for any other; `GET /v1/health` names the
  model behind each (`face_model`). Collections of different versions are never compared.
* `DetectFaces` (and every `FaceDetail`) gives Rekognition's five default landmarks (eyeLeft,
  eyeRight, mouthLeft, mouthRight, nose) unless `ALL` attributes are asked, then all 30.

## Operations

| operation | status | notes |
| --- | --- | --- |
"""


def status_of(operation: str) -> tuple[str, str]:
    if operation in OPERATIONS:
        return "supported", ""
    return plan_of(operation)


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
