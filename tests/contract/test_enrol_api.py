"""``POST /v1/collections/{id}/users/{user}/photos`` on a real server: a person enrolled from several
photos is found by SearchUsersByImage through boto3; bad photos are reported one by one; the route
needs IndexFaces, AssociateFaces and (for a new user) CreateUser on the collection."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer
from tests.contract.test_access_keys import allow, bearer, new_key, policy
from tests.factories import encode, gradient

pytestmark = [pytest.mark.models, pytest.mark.data]

ADMIN = {"Authorization": f"Bearer {SECRET}"}
STAFF = "arn:aws:rekognition:*:*:collection/staff"


def photo(path: Path) -> dict[str, str]:
    return {"name": path.name, "bytes": base64.b64encode(path.read_bytes()).decode()}


def colin(shared_data: Path, n: int) -> dict[str, str]:
    return photo(shared_data / f"faces/lfw/Colin_Powell/Colin_Powell_{n:04d}.jpg")


def post(server: RunningServer, user: str, body: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    url = f"{server.url}/v1/collections/staff/users/{user}/photos"
    return httpx.post(url, json=body, headers=headers, timeout=60)


def test_enrol_through_the_native_api(server: RunningServer, shared_data: Path) -> None:
    rek = server.client()
    rek.create_collection(CollectionId="staff")
    wall = {"name": "wall.jpg", "bytes": base64.b64encode(encode(gradient(300, 300))).decode()}
    group = photo(shared_data / "faces/face_recognition/two_people.jpg")
    garbled = {"name": "garbled.jpg", "bytes": "not base64!"}
    good = [colin(shared_data, n) for n in (1, 2, 3)]
    r = post(server, "colin", {"photos": [*good, wall, group, garbled]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["collection_id"], doc["user_id"], doc["indexed"], doc["user_created"]) == (
        "staff",
        "colin",
        3,
        True,
    )
    assert [p.get("reason") for p in doc["photos"][3:]] == [
        "no face",
        "several faces (2): crop to one person",
        "unreadable: bytes are not base64",
    ]
    faces = rek.list_faces(CollectionId="staff", UserId="colin")["Faces"]
    assert sorted(f["FaceId"] for f in faces) == sorted(p["face_id"] for p in doc["photos"][:3])
    query = (shared_data / "faces/lfw/Colin_Powell/Colin_Powell_0004.jpg").read_bytes()
    found = rek.search_users_by_image(CollectionId="staff", Image={"Bytes": query})
    assert [m["User"]["UserId"] for m in found["UserMatches"]] == ["colin"]
    records = [x for x in server.services.audit.read() if x["operation"] == "EnrolUser"]  # type: ignore[union-attr]
    assert len(records) == 1 and records[0]["collection_id"] == "staff"

    # Nothing usable: 400, each photo's reason in the message, nothing written.
    r = post(server, "nobody", {"photos": [wall, group]})
    assert r.status_code == 400
    assert "wall.jpg: no face" in r.json()["error"]["message"]
    assert [u["UserId"] for u in rek.list_users(CollectionId="staff")["Users"]] == ["colin"]
    assert rek.describe_collection(CollectionId="staff")["FaceCount"] == 3

    # Bounded: at most 20 photos; a body of another shape is refused before any analysis.
    assert post(server, "colin", {"photos": [wall] * 21}).status_code == 400
    assert post(server, "colin", {"images": [wall]}).status_code == 400
    assert post(server, "colin", {"photos": [wall], "quality_filter": "BEST"}).status_code == 400
    assert post(server, "bad user", {"photos": [wall]}).status_code == 400


def test_enrol_needs_index_associate_and_create_user_rights(server: RunningServer, shared_data: Path) -> None:
    server.client().create_collection(CollectionId="staff")
    body = {"photos": [colin(shared_data, 1)]}
    no_associate = new_key(
        server, "index", policy(allow(["rekognition:IndexFaces", "rekognition:CreateUser"], STAFF))
    )
    r = post(server, "colin", body, bearer(no_associate))
    assert r.status_code == 403 and "rekognition:AssociateFaces" in r.json()["error"]["message"]

    enrolling = ["rekognition:IndexFaces", "rekognition:AssociateFaces"]
    no_create = new_key(server, "enrol", policy(allow(enrolling, STAFF)))
    r = post(server, "colin", body, bearer(no_create))
    assert r.status_code == 403 and "rekognition:CreateUser" in r.json()["error"]["message"]
    other = new_key(
        server,
        "other",
        policy(allow([*enrolling, "rekognition:CreateUser"], "arn:aws:rekognition:*:*:collection/other")),
    )
    assert post(server, "colin", body, bearer(other)).status_code == 403
    assert server.client().describe_collection(CollectionId="staff")["FaceCount"] == 0

    allowed = new_key(server, "staff", policy(allow([*enrolling, "rekognition:CreateUser"], STAFF)))
    r = post(server, "colin", body, bearer(allowed))
    assert r.status_code == 200 and r.json()["indexed"] == 1, r.text
    # Once the user exists, IndexFaces and AssociateFaces are enough.
    r = post(server, "colin", {"photos": [colin(shared_data, 2)]}, bearer(no_create))
    assert r.status_code == 200 and r.json()["user_created"] is False, r.text
