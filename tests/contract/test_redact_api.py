"""``POST /v1/redact`` on a real server: every face obscured, or all but a collection's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keeneye.analysis.images import decode_image
from keeneye.service.faces.analysis import FaceService
from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer

pytestmark = [pytest.mark.models, pytest.mark.data]

AUTH = {"Authorization": f"Bearer {SECRET}"}


def test_redact_an_image_keeping_one_person(
    start_server: Callable[..., RunningServer], shared_data: Path, face_service: FaceService
) -> None:
    server = start_server()
    photos = shared_data / "faces" / "face_recognition"
    two = (photos / "two_people.jpg").read_bytes()
    assert len(face_service.detect_faces(two).faces) == 2

    r = httpx.post(f"{server.url}/v1/redact", content=two, timeout=60)
    assert r.status_code == 401
    r = httpx.post(f"{server.url}/v1/redact", content=two, headers=AUTH, params={"mode": "box"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-keeneye-faces-redacted"] == "2" and r.headers["x-keeneye-faces-kept"] == "0"
    assert face_service.detect_faces(r.content).faces == []  # nobody left to see

    client = server.client()
    client.create_collection(CollectionId="keep")
    client.index_faces(
        CollectionId="keep", Image={"Bytes": (photos / "obama3.jpg").read_bytes()}, ExternalImageId="obama"
    )
    r = httpx.post(
        f"{server.url}/v1/redact", content=two, headers=AUTH, params={"keep_collection": "keep"}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-keeneye-faces-redacted"] == "1" and r.headers["x-keeneye-faces-kept"] == "1"
    left = face_service.detect_faces(decode_image(r.content)).faces
    assert len(left) == 1  # the kept face, still detectable
    records = [x for x in server.services.audit.read() if x["operation"] == "RedactImage"]  # type: ignore[union-attr]
    assert len(records) == 1 and records[0]["matches"][0]["Identity"] == "obama"

    missing = httpx.post(
        f"{server.url}/v1/redact", content=two, headers=AUTH, params={"keep_collection": "none"}, timeout=60
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    bad = httpx.post(f"{server.url}/v1/redact", content=b"not an image", headers=AUTH, timeout=60)
    assert bad.status_code == 400 and "error" in bad.json()
