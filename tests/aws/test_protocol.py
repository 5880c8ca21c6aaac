"""The AWS JSON 1.1 protocol over raw HTTP: shapes of answers and errors, limits, malformed input.

The SDK validates parameters client-side, so these tests send what an SDK never would (bad JSON,
wrong types, unknown targets, huge bodies) and check the server answers with the error a client
expects, keeps serving, and never leaks internals.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from keeneye.aws.errors import AwsError
from keeneye.aws.images import ImageLoader
from tests.aws.conftest import Client, make_client
from tests.aws.signing import AKID, SECRET, rekognition_request, sign
from tests.factories import encode, fake_services, gradient, huge_png

JPEG = encode(gradient(120, 160), "JPEG")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def call(
    client: Client, operation: str | None, params: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    body, headers = rekognition_request(operation, params, **kwargs)
    r = client.post("/", content=body, headers=headers)
    assert r.headers["content-type"].startswith("application/x-amz-json-1.1")
    assert r.headers.get("x-amzn-requestid")
    return r.status_code, r.json()


def assert_error(result: tuple[int, dict[str, Any]], code: str, status: int = 400) -> str:
    got_status, body = result
    assert body.get("__type") == code, body
    assert got_status == status
    assert set(body) == {"__type", "message", "Message"} and body["Message"] == body["message"]
    assert "Traceback" not in body["message"]
    return str(body["message"])


def test_detect_faces_happy_path(client: Client) -> None:
    status, body = call(client, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}, "Attributes": ["DEFAULT"]})
    assert status == 200
    (face,) = body["FaceDetails"]
    assert face["BoundingBox"] == pytest.approx({"Width": 0.5, "Height": 0.5, "Left": 0.25, "Top": 0.25})
    assert face["Confidence"] == pytest.approx(99, abs=0.01)


def test_no_face_is_an_empty_list(client: Client) -> None:
    black = encode(gradient(90, 120) * 0, "PNG")
    assert call(client, "DetectFaces", {"Image": {"Bytes": b64(black)}}) == (200, {"FaceDetails": []})


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "SerializationException"),
        (b"[1, 2]", "SerializationException"),
        (b'"text"', "SerializationException"),
        (b"\xff\xfe\x00", "SerializationException"),
        (b"{}", "ValidationException"),  # Image is required
        (b'{"Image": "AAAA"}', "ValidationException"),
        (b'{"Image": {"Bytes": 5}}', "ValidationException"),
        (b'{"Image": {"Bytes": "not base64!"}}', "ValidationException"),
        (b'{"Image": {"Bytes": "AAAA"}, "Attributes": "ALL"}', "ValidationException"),
        (b'{"Image": {"Bytes": "AAAA"}, "Attributes": ["HAIRSTYLE"]}', "ValidationException"),
        (b'{"Image": {}}', "InvalidParameterException"),
        (
            b'{"Image": {"Bytes": "AAAA", "S3Object": {"Bucket": "bkt", "Name": "n"}}}',
            "InvalidParameterException",
        ),
        (b'{"Image": {"Bytes": "AAAA"}}', "InvalidImageFormatException"),
    ],
)
def test_malformed_detect_faces(client: Client, body: bytes, code: str) -> None:
    assert_error(call(client, "DetectFaces", body=body), code)


def test_missing_required_message_like_aws(client: Client) -> None:
    message = assert_error(
        call(client, "CompareFaces", {"SourceImage": {"Bytes": b64(JPEG)}}), "ValidationException"
    )
    assert message == (
        "1 validation error detected: Value null at 'targetImage' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_threshold_out_of_range(client: Client) -> None:
    params = {
        "SourceImage": {"Bytes": b64(JPEG)},
        "TargetImage": {"Bytes": b64(JPEG)},
        "SimilarityThreshold": 101,
    }
    assert "less than or equal to 100" in assert_error(
        call(client, "CompareFaces", params), "ValidationException"
    )


def test_unknown_parameters_are_ignored(client: Client) -> None:
    status, _ = call(client, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}, "SomethingNew": 1})
    assert status == 200


def test_bytes_over_five_megabytes(client: Client) -> None:
    big = os.urandom(5 * 1024 * 1024 + 1)
    message = assert_error(call(client, "DetectFaces", {"Image": {"Bytes": b64(big)}}), "ValidationException")
    assert "'image.bytes'" in message and "5242880" in message


def test_pixel_bomb_is_image_too_large(client: Client) -> None:
    assert_error(call(client, "DetectFaces", {"Image": {"Bytes": b64(huge_png())}}), "ImageTooLargeException")


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        (None, "unknown operation target"),
        ("Nope", "unknown operation"),
        ("DetectLabels", "docs/rekognition-coverage.md"),
        ("DetectLabels", "does not support yet"),
        # "not planned" operations say so (they used to answer "does not support yet")
        ("RecognizeCelebrities", "does not plan to support (needs a celebrity database"),
        ("DetectModerationLabels", "does not plan to support"),
        # implemented, but this server has no stored-video jobs
        ("StartFaceSearch", "not available on this server"),
    ],
)
def test_unknown_and_unsupported_operations(client: Client, target: str | None, needle: str) -> None:
    assert needle in assert_error(call(client, target, {}), "UnknownOperationException")


def test_wrong_target_prefix(client: Client) -> None:
    body = b"{}"
    headers = sign(
        body, {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "DynamoDB_20120810.ListTables"}
    )
    r = client.post("/", content=body, headers=headers)
    assert_error((r.status_code, r.json()), "UnknownOperationException")


def test_wrong_content_type(client: Client) -> None:
    body = json.dumps({"Image": {"Bytes": b64(JPEG)}}).encode()
    headers = sign(body, {"Content-Type": "text/plain", "X-Amz-Target": "RekognitionService.DetectFaces"})
    r = client.post("/", content=body, headers=headers)
    assert r.json()["__type"] == "SerializationException"


def test_unsigned_request(client: Client) -> None:
    r = client.post("/", content=b"{}", headers={"X-Amz-Target": "RekognitionService.ListCollections"})
    assert r.status_code == 400 and r.json()["__type"] == "MissingAuthenticationTokenException"


def test_signature_checked_before_anything_else(client: Client) -> None:
    # A bad signature on an unknown operation with a bad body: the signature error wins.
    assert_error(call(client, "Nope", body=b"{bad", secret=SECRET[::-1]), "InvalidSignatureException")


def test_body_limit_from_content_length(tmp_path: Path) -> None:
    with make_client(tmp_path, max_body_bytes=4096) as c:
        big = b64(os.urandom(8000))
        assert_error(call(c, "DetectFaces", {"Image": {"Bytes": big}}), "RequestEntityTooLargeException", 413)
        assert call(c, "DetectFaces", {"Image": {"Bytes": b64(encode(gradient(80, 80), "PNG"))}})[0] == 200


def test_body_limit_while_streaming(tmp_path: Path) -> None:
    with make_client(tmp_path, max_body_bytes=4096) as c:
        body, headers = rekognition_request("DetectFaces", {"Image": {"Bytes": b64(os.urandom(8000))}})

        async def chunks() -> Any:  # no Content-Length: chunked transfer
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        r = c.post("/", content=chunks(), headers=headers)
        assert r.status_code == 413 and r.json()["__type"] == "RequestEntityTooLargeException"


def test_throttling_when_busy(tmp_path: Path) -> None:
    with make_client(tmp_path, max_inflight=1) as c:
        sem = c.app.state.inflight
        assert sem.acquire(blocking=False)
        try:
            assert_error(call(c, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}}), "ThrottlingException")
        finally:
            sem.release()
        assert call(c, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}})[0] == 200


def test_unexpected_error_is_internal_and_opaque(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services = fake_services()

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internal detail /etc/passwd")

    services.faces.detect_faces = explode  # type: ignore[method-assign]
    with make_client(tmp_path, services) as c:
        message = assert_error(
            call(c, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}}), "InternalServerError", 500
        )
        assert "secret internal detail" not in message
        assert "secret internal detail" in caplog.text  # logged server-side, with the traceback
        assert c.get("/v1/health").status_code == 200


# -- S3Object from mapped buckets ------------------------------------------------------------------------


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    folder = tmp_path / "bucket"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "photo.jpg").write_bytes(JPEG)
    (tmp_path / "outside.jpg").write_bytes(JPEG)
    (folder / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    (folder / "inner-link.jpg").symlink_to(folder / "sub" / "photo.jpg")
    return folder


def test_s3object_from_mapped_bucket(tmp_path: Path, bucket: Path) -> None:
    with make_client(tmp_path, fake_services({"photos": bucket})) as c:
        ok = {"Image": {"S3Object": {"Bucket": "photos", "Name": "sub/photo.jpg"}}}
        assert len(call(c, "DetectFaces", ok)[1]["FaceDetails"]) == 1
        inner = {"Image": {"S3Object": {"Bucket": "photos", "Name": "inner-link.jpg"}}}
        assert call(c, "DetectFaces", inner)[0] == 200


@pytest.mark.parametrize(
    ("bucket_name", "name"),
    [
        ("photos", "../outside.jpg"),
        ("photos", "sub/../../outside.jpg"),
        ("photos", "/etc/passwd"),
        ("photos", "link.jpg"),  # symlink out of the folder
        ("photos", "missing.jpg"),
        ("photos", "sub"),  # a folder, not an object
        ("other", "sub/photo.jpg"),  # bucket not served
    ],
)
def test_s3object_refused(tmp_path: Path, bucket: Path, bucket_name: str, name: str) -> None:
    with make_client(tmp_path, fake_services({"photos": bucket})) as c:
        params = {"Image": {"S3Object": {"Bucket": bucket_name, "Name": name}}}
        message = assert_error(call(c, "DetectFaces", params), "InvalidS3ObjectException")
        assert str(tmp_path) not in message  # the server's folders are not revealed


class FakeS3:
    """botocore's S3 client, as far as ImageLoader uses it."""

    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no"}}, "GetObject")
        data = self.objects[(Bucket, Key)]
        return {"ContentLength": len(data), "Body": io.BytesIO(data)}


def test_s3object_from_s3_endpoint(bucket: Path) -> None:
    loader = ImageLoader({"photos": bucket}, s3_endpoint="http://s3.invalid", max_s3_bytes=len(JPEG))
    loader._s3 = FakeS3({("remote", "a.jpg"): JPEG, ("remote", "big.jpg"): JPEG + b"x"})
    assert loader.load({"S3Object": {"Bucket": "remote", "Name": "a.jpg"}}) == JPEG
    assert loader.load({"S3Object": {"Bucket": "photos", "Name": "sub/photo.jpg"}}) == JPEG  # local first
    for name, code in (("missing.jpg", "InvalidS3ObjectException"), ("big.jpg", "ImageTooLargeException")):
        with pytest.raises(AwsError) as info:
            loader.load({"S3Object": {"Bucket": "remote", "Name": name}})
        assert info.value.type_name == code


def test_s3object_over_limit(bucket: Path) -> None:
    loader = ImageLoader({"photos": bucket}, max_s3_bytes=100)
    with pytest.raises(AwsError) as info:
        loader.load({"S3Object": {"Bucket": "photos", "Name": "sub/photo.jpg"}})
    assert info.value.type_name == "ImageTooLargeException"


# -- native API ----------------------------------------------------------------------------------------


def test_health_metrics_openapi(client: Client) -> None:
    call(client, "DetectFaces", {"Image": {"Bytes": b64(JPEG)}})
    call(client, "DetectFaces", body=b"{bad")
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and "DetectFaces" in health["operations"]
    text = client.get("/v1/metrics").text
    assert 'keeneye_requests_total{operation="DetectFaces",status="200"} 1' in text
    assert 'keeneye_requests_total{operation="DetectFaces",status="400"} 1' in text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/metrics", "/v1/audit"} <= set(paths)


def test_audit_needs_authentication(client: Client) -> None:
    assert client.get("/v1/audit").status_code == 401
    assert client.get("/v1/audit", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/v1/audit", headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 200 and r.json() == {"records": [], "order": "oldest", "next_after": None}
    signed = sign(b"", {}, url="http://testserver/v1/audit", method="GET")
    assert client.get("/v1/audit", headers=signed).status_code == 200
    assert AKID  # the key id alone is not a credential
    assert client.get("/v1/audit", headers={"Authorization": f"Bearer {AKID}"}).status_code == 401
