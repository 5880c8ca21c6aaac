"""Parsing S3 / MinIO notifications and the key that makes each object version processed once."""

from __future__ import annotations

from typing import Any

import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.service.uploads.service import (
    ObjectRef,
    UploadRule,
    external_image_id,
    is_transient,
    parse_s3_event,
)


def _record(name: str, key: str, **obj: Any) -> dict[str, Any]:
    return {"eventName": name, "s3": {"bucket": {"name": "photos"}, "object": {"key": key, **obj}}}


def test_aws_and_minio_records_are_parsed_and_keys_url_decoded() -> None:
    doc = {
        "EventName": "s3:ObjectCreated:Put",
        "Key": "photos/a%20b/c+d.jpg",
        "Records": [
            _record("s3:ObjectCreated:Put", "a%20b/c+d.jpg", eTag='"abc"', sequencer="01", size=5),
            _record("ObjectCreated:CompleteMultipartUpload", "x.png", versionId="v1", sequencer="02"),
            _record("s3:ObjectRemoved:Delete", "x.png"),
        ],
    }
    put, multipart, removed = parse_s3_event(doc)
    assert isinstance(put, ObjectRef) and put.key == "a b/c d.jpg" and put.version == "etag:abc"
    assert put.size == 5
    assert isinstance(multipart, ObjectRef) and multipart.version == "id:v1"
    assert isinstance(removed, dict) and removed["status"] == "ignored"


def test_minio_top_level_shape_without_records() -> None:
    (ref,) = parse_s3_event({"EventName": "s3:ObjectCreated:Put", "Key": "photos/in/a+b.jpg"})
    assert isinstance(ref, ObjectRef) and (ref.bucket, ref.key) == ("photos", "in/a b.jpg")


def test_s3_test_event_is_accepted_and_empty() -> None:
    assert parse_s3_event({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "photos"}) == []


@pytest.mark.parametrize("doc", [None, [], {"Records": "x"}, {"nothing": 1}])
def test_not_a_notification_is_refused(doc: Any) -> None:
    with pytest.raises(InvalidParameter):
        parse_s3_event(doc)


def test_dedup_key_is_per_object_version_and_event() -> None:
    def ref(etag: str, sequencer: str, version_id: str | None = None) -> ObjectRef:
        return ObjectRef("photos", "a.jpg", version_id, etag, sequencer, None, "s3:ObjectCreated:Put")

    assert ref("e1", "01").dedup_key == ref("e1", "01").dedup_key  # the same event delivered twice
    assert ref("e1", "01").dedup_key != ref("e2", "02").dedup_key  # the object replaced
    assert ref("e1", "01", "v1").dedup_key != ref("e1", "01", "v2").dedup_key


def test_external_image_id_is_made_valid() -> None:
    assert external_image_id("people/jo smith.jpg", "key") == "people:jo_smith.jpg"
    assert external_image_id("people/jo smith.jpg", "basename") == "jo_smith.jpg"
    assert len(external_image_id("x" * 400, "key")) == 255


def test_rules_are_validated() -> None:
    assert UploadRule.model_validate({"task": "index-faces", "collection_id": "c"}).external_image_id == "key"
    for bad in (
        {"task": "index-faces"},
        {"task": "delete-everything", "collection_id": "c"},
        {"task": "index-faces", "collection_id": "c", "sink": {"jsonl": {"name": "a.jsonl"}}},
        {"task": "search-faces", "collection_id": "c", "threshold": 101},
    ):
        with pytest.raises(ValueError):
            UploadRule.model_validate(bad)


def test_transient_failures_are_told_apart() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert is_transient(down)
    missing = ClientError(
        {"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject"
    )
    busy = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    assert not is_transient(missing) and is_transient(busy)
    try:
        try:
            raise down
        except EndpointConnectionError:
            raise InvalidParameter("Unable to get object from S3") from None
    except InvalidParameter as wrapped:
        assert is_transient(wrapped)  # found in __context__
    assert not is_transient(InvalidParameter("not an image"))
