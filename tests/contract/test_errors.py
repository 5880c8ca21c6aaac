"""Every error a client can get, as boto3 sees it; unauthenticated calls leave no trace; the audit log."""

from __future__ import annotations

import contextlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws.signing import AKID, SECRET
from tests.contract.conftest import RunningServer
from tests.factories import huge_png

pytestmark = [pytest.mark.models, pytest.mark.data]


def code_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    r = info.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def setup(server: RunningServer, shared_data: Path) -> dict[str, Any]:
    client = server.client()
    client.create_collection(CollectionId="known")
    return {
        "client": client,
        "face": (shared_data / "faces/face_recognition/obama3.jpg").read_bytes(),
        "no_face": (shared_data / "faces/no_face/skimage_brick.png").read_bytes(),
    }


def test_each_error_reaches_boto3(setup: dict[str, Any], server: RunningServer) -> None:
    c = setup["client"]
    cases: list[tuple[str, Any, dict[str, Any]]] = [
        ("ResourceNotFoundException", c.describe_collection, {"CollectionId": "missing"}),
        ("ResourceAlreadyExistsException", c.create_collection, {"CollectionId": "known"}),
        (
            "InvalidParameterException",  # no face in the search image
            c.search_faces_by_image,
            {"CollectionId": "known", "Image": {"Bytes": setup["no_face"]}},
        ),
        ("InvalidImageFormatException", c.detect_faces, {"Image": {"Bytes": b"GIF89a not supported"}}),
        ("ImageTooLargeException", c.detect_faces, {"Image": {"Bytes": huge_png()}}),
        (
            "InvalidS3ObjectException",
            c.detect_faces,
            {"Image": {"S3Object": {"Bucket": "nope", "Name": "x.jpg"}}},
        ),
        ("ValidationException", c.detect_faces, {"Image": {"Bytes": b"x" * (5 * 1024 * 1024 + 1)}}),
        (
            "ServiceQuotaExceededException",  # more than 50 tags on a resource
            c.tag_resource,
            {
                "ResourceArn": c.describe_collection(CollectionId="known")["CollectionARN"],
                "Tags": {f"k{i}": "v" for i in range(51)},
            },
        ),
    ]
    for code, call, kwargs in cases:
        assert code_of(call, **kwargs) == (code, 400), code
    # Throttling: every admission slot taken.
    sem = server.app.state.inflight
    taken = 0
    while sem.acquire(blocking=False):
        taken += 1
    try:
        assert code_of(c.detect_faces, Image={"Bytes": setup["face"]}) == ("ThrottlingException", 400)
    finally:
        for _ in range(taken):
            sem.release()
    assert c.detect_faces(Image={"Bytes": setup["face"]})["FaceDetails"]


def test_validation_the_sdk_would_catch(server: RunningServer) -> None:
    raw = server.client(config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    assert code_of(raw.list_faces, CollectionId="a b") == ("ValidationException", 400)
    assert code_of(raw.search_faces, CollectionId="known") == ("ValidationException", 400)
    assert code_of(raw.list_collections, MaxResults=-1) == ("ValidationException", 400)


def test_unsupported_operation(rekognition: Any) -> None:
    with pytest.raises(ClientError) as info:
        rekognition.detect_labels(Image={"Bytes": b"x"})
    assert info.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "docs/rekognition-coverage.md" in info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"aws_secret_access_key": SECRET + "wrong"}, "InvalidSignatureException"),
        ({"aws_access_key_id": "AKIANOTAKEYWEKNOW000"}, "UnrecognizedClientException"),
        (
            {"config": Config(signature_version=UNSIGNED, retries={"max_attempts": 1})},
            "MissingAuthenticationTokenException",
        ),
    ],
)
def test_bad_credentials_leave_no_trace(server: RunningServer, kwargs: dict[str, Any], code: str) -> None:
    bad = server.client(**kwargs)
    assert code_of(bad.create_collection, CollectionId="intruder")[0] == code
    assert code_of(bad.index_faces, CollectionId="intruder", Image={"Bytes": b"x"})[0] == code
    good = server.client()
    assert good.list_collections()["CollectionIds"] == []
    assert server.services is not None and server.services.audit is not None
    assert server.services.audit.read() == []


def test_clock_skew_over_five_minutes(server: RunningServer) -> None:
    late = datetime.now(UTC) - timedelta(minutes=6)
    client = server.client()
    with mock.patch("botocore.auth.get_current_datetime", return_value=late):
        code, _ = code_of(client.create_collection, CollectionId="late")
    assert code == "InvalidSignatureException"
    assert client.list_collections()["CollectionIds"] == []


def test_audit_records_identity_operations(server: RunningServer, shared_data: Path) -> None:
    c = server.client()
    c.create_collection(CollectionId="audited")
    face = (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()
    face_id = c.index_faces(CollectionId="audited", Image={"Bytes": face})["FaceRecords"][0]["Face"]["FaceId"]
    c.search_faces_by_image(CollectionId="audited", Image={"Bytes": face}, FaceMatchThreshold=90)
    c.search_faces_by_image(CollectionId="audited", Image={"Bytes": face}, FaceMatchThreshold=99.5)
    c.delete_faces(CollectionId="audited", FaceIds=[face_id])
    c.describe_collection(CollectionId="audited")  # not an identity operation: no record
    r = httpx.get(
        f"{server.url}/v1/audit",
        params={"collection": "audited"},
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=10,
    )
    assert r.status_code == 200
    records = r.json()["records"]
    assert [x["operation"] for x in records] == [
        "IndexFaces",
        "SearchFacesByImage",
        "SearchFacesByImage",
        "DeleteFaces",
    ]
    assert {x["access_key"] for x in records} == {AKID}
    search90, search995 = records[1], records[2]
    assert search90["threshold"] == 90 and search90["flagged_below_99"]
    assert search90["matches"][0]["FaceId"] == face_id and search90["matches"][0]["Similarity"] >= 90
    assert not search995["flagged_below_99"]
    assert httpx.get(f"{server.url}/v1/audit", timeout=10).status_code == 401


def test_failed_requests_leave_no_partial_state(setup: dict[str, Any]) -> None:
    c = setup["client"]
    assert code_of(c.index_faces, CollectionId="known", Image={"Bytes": b"\xff\xd8\xff broken jpeg"})[0] == (
        "InvalidImageFormatException"
    )
    assert code_of(c.index_faces, CollectionId="nowhere", Image={"Bytes": setup["face"]})[0] == (
        "ResourceNotFoundException"
    )
    assert c.describe_collection(CollectionId="known")["FaceCount"] == 0
    assert c.list_collections()["CollectionIds"] == ["known"]


def test_garbage_on_the_wire_does_not_stop_the_server(server: RunningServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    for junk in (
        b"\x00\x01\x02 not http\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n{",
        b"GET",
    ):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                s.recv(1024)
    r = httpx.post(
        server.url + "/",
        content=b"{",
        headers={"X-Amz-Target": "RekognitionService.ListCollections"},
        timeout=10,
    )
    assert r.json()["__type"] == "MissingAuthenticationTokenException"
    assert server.client().list_collections()["CollectionIds"] == []
