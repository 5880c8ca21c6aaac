"""The review queue's native API in-process, on a real SQLite store: list (filters, counts), one, the crop
(image/jpeg), decisions audited under the caller's key, review-required per collection; a read-only key
(``keeneye:List*``) reads the queue but cannot decide, and a key limited to one collection sees only
that collection's identifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeneye.app import create_app
from keeneye.config import Settings
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.keys import AccessKeys
from keeneye.service.review.queue import ReviewQueue
from keeneye.store.db import Store
from tests.aws.conftest import Client
from tests.aws.signing import AKID, KEYS, SECRET
from tests.factories import fake_collections, fake_services, noise_image

ADMIN = {"Authorization": f"Bearer {SECRET}"}
CROP = b"\xff\xd8\xff\xe0crop\xff\xd9"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


class Server:
    def __init__(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        self.store = Store.open(data)
        self.audit = AuditLog(self.store)
        services = fake_services()
        self.collections = fake_collections(self.store)
        services.collections, services.audit = self.collections, self.audit
        self.queue = ReviewQueue(self.store, audit=self.audit)
        services.review = self.queue
        face_ids = {}
        for cid in ("staff", "visitors"):
            self.collections.create_collection(cid)
            result = self.collections.index_faces(cid, noise_image(len(cid)), quality_filter="NONE")
            face_ids[cid] = result.indexed[0][0].face_id
        self.items = {
            cid: self.queue.record(
                source_kind="stream",
                source_name="door",
                session_id="s1",
                collection_id=cid,
                face_id=face_ids[cid],
                similarity=95.0,
                track_id=1,
                crop_jpeg=CROP if cid == "staff" else None,
            )
            for cid in ("staff", "visitors")
        }
        keys = AccessKeys(self.store, data, self.audit)
        read_only = _policy({"Effect": "Allow", "Action": ["keeneye:List*", "keeneye:Get*"], "Resource": "*"})
        self.viewer = keys.create("viewer", read_only, actor="test")[1]
        staff_only = _policy(
            {
                "Effect": "Allow",
                "Action": ["keeneye:ListIdentifications", "keeneye:ReviewIdentification"],
                "Resource": "arn:aws:rekognition:*:*:collection/staff",
            }
        )
        self.staff_reviewer = keys.create("staff-reviewer", staff_only, actor="test")[1]
        app = create_app(Settings(data_dir=data), services=services, keys=KEYS.with_database(keys))
        self.client = Client(app)

    def id_of(self, cid: str) -> str:
        item = self.items[cid]
        assert item is not None
        return item.identification_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.store.close()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_list_get_crop_and_decide(server: Server) -> None:
    c = server.client
    listed = c.get("/v1/identifications", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert {i["collection_id"] for i in body["identifications"]} == {"staff", "visitors"}
    assert body["counts"] == {"PENDING": 2, "CONFIRMED": 0, "REJECTED": 0, "UNSURE": 0}
    staff = c.get("/v1/identifications?collection=staff&status=PENDING&limit=5", headers=ADMIN).json()
    assert [i["identification_id"] for i in staff["identifications"]] == [server.id_of("staff")]
    one = c.get(f"/v1/identifications/{server.id_of('staff')}", headers=ADMIN).json()
    assert one["has_crop"] and one["status"] == "PENDING" and one["similarity"] == 95.0
    crop = c.get(f"/v1/identifications/{server.id_of('staff')}/crop", headers=ADMIN)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg" and crop.content == CROP
    assert c.get(f"/v1/identifications/{server.id_of('visitors')}/crop", headers=ADMIN).status_code == 404
    assert c.get("/v1/identifications/nope", headers=ADMIN).status_code == 404
    decided = c.post(
        f"/v1/identifications/{server.id_of('staff')}/decision", headers=ADMIN, json={"Decision": "CONFIRMED"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "CONFIRMED" and decided.json()["decided_by"] == AKID
    bad = c.post(
        f"/v1/identifications/{server.id_of('staff')}/decision", headers=ADMIN, json={"Decision": "OK"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameter"
    assert c.get("/v1/identifications?status=WHATEVER", headers=ADMIN).status_code == 400
    (record,) = server.audit.read(operation="ReviewIdentification")
    assert record["access_key"] == AKID and record["details"]["decision"] == "CONFIRMED"
    assert record["details"]["identification_id"] == server.id_of("staff")


def test_a_read_only_key_reads_but_cannot_decide(server: Server) -> None:
    c, viewer = server.client, _bearer(server.viewer.secret_access_key)
    assert len(c.get("/v1/identifications", headers=viewer).json()["identifications"]) == 2
    assert c.get(f"/v1/identifications/{server.id_of('staff')}/crop", headers=viewer).status_code == 200
    refused = c.post(
        f"/v1/identifications/{server.id_of('staff')}/decision", headers=viewer, json={"Decision": "REJECTED"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AccessDenied"
    assert server.queue.get(server.id_of("staff")).status == "PENDING"
    assert server.audit.read(operation="ReviewIdentification") == []
    put = c.request(
        "PUT", "/v1/collections/staff/review-required", headers=viewer, json={"review_required": True}
    )
    assert put.status_code == 403


def test_a_key_limited_to_one_collection(server: Server) -> None:
    c, staff = server.client, _bearer(server.staff_reviewer.secret_access_key)
    assert c.get("/v1/identifications", headers=staff).status_code == 403  # every collection: not allowed
    listed = c.get("/v1/identifications?collection=staff", headers=staff).json()["identifications"]
    assert [i["collection_id"] for i in listed] == ["staff"]
    counts = c.get("/v1/identifications?collection=staff", headers=staff).json()["counts"]
    assert counts["PENDING"] == 1  # the other collection's are not counted either
    assert c.get("/v1/identifications?collection=visitors", headers=staff).status_code == 403
    assert c.get(f"/v1/identifications/{server.id_of('visitors')}", headers=staff).status_code == 403
    assert c.get("/v1/identifications/unknown-id", headers=staff).status_code == 403  # no existence leak
    ok = c.post(
        f"/v1/identifications/{server.id_of('staff')}/decision", headers=staff, json={"Decision": "UNSURE"}
    )
    assert ok.status_code == 200 and ok.json()["decided_by"] == server.staff_reviewer.access_key_id
    denied = c.post(
        f"/v1/identifications/{server.id_of('visitors')}/decision", headers=staff, json={"Decision": "UNSURE"}
    )
    assert denied.status_code == 403


def test_review_required_per_collection(server: Server) -> None:
    c = server.client
    assert c.get("/v1/collections/staff/review-required", headers=ADMIN).json() == {
        "collection_id": "staff",
        "review_required": False,
    }
    put = c.request(
        "PUT", "/v1/collections/staff/review-required", headers=ADMIN, json={"review_required": True}
    )
    assert put.status_code == 200, put.text
    assert server.collections.review_required("staff") and server.queue.review_required("staff")
    assert (
        c.request("PUT", "/v1/collections/staff/review-required", headers=ADMIN, json={"x": 1}).status_code
        == 400
    )
    assert c.get("/v1/collections/nope/review-required", headers=ADMIN).status_code == 404
    (record,) = server.audit.read(operation="SetCollectionReviewRequired")
    assert record["collection_id"] == "staff" and record["details"] == {"review_required": True}
