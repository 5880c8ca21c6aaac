"""The retention purge: faces past their collection's retention, old job results, delivered
notifications; dry runs delete nothing; every purge is audited with counts; the background thread."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keeneye.config import RetentionSettings
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.retention import PurgeThread, RetentionService, stored_collections
from keeneye.store.db import Store
from keeneye.store.tables import NotificationOutboxRow, VideoJobRow
from tests.factories import fake_collections, noise_image

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _job(job_id: str, status: str, finished: datetime | None) -> VideoJobRow:
    return VideoJobRow(
        job_id=job_id,
        kind="PersonTracking",
        status=status,
        bucket="b",
        name="v.mp4",
        request={},
        created_at=NOW - timedelta(days=60),
        finished_at=finished,
        results=[{"index": 0, "pts_ms": 0}] if finished else None,
    )


def _message(i: int, delivered: datetime | None) -> NotificationOutboxRow:
    return NotificationOutboxRow(
        message_id=f"m{i}",
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        message={"Message": "{}"},
        created_at=NOW - timedelta(days=60),
        next_attempt_at=NOW,
        delivered_at=delivered,
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Store, FaceCollections, AuditLog]:
    store = Store.open(tmp_path)
    fc = fake_collections(store)
    for cid in ("short", "forever"):
        fc.create_collection(cid)
        for seed in range(3):
            fc.index_faces(cid, noise_image(seed), quality_filter="NONE")
    with store.transaction() as s:  # one face of each collection is old
        s.add_all(
            [
                _job("old-done", "SUCCEEDED", NOW - timedelta(days=10)),
                _job("old-failed", "FAILED", NOW - timedelta(days=8)),
                _job("recent", "SUCCEEDED", NOW - timedelta(days=1)),
                _job("running", "IN_PROGRESS", None),
                _message(1, NOW - timedelta(days=40)),
                _message(2, NOW - timedelta(days=1)),
                _message(3, None),  # undelivered: never purged
            ]
        )
    return store, fc, AuditLog(store)


def _age_faces(store: Store, collection_id: str, days: float, n: int) -> None:
    from sqlalchemy import select, update

    from keeneye.store.tables import FaceRow

    with store.transaction() as s:
        ids = list(s.scalars(select(FaceRow.face_id).where(FaceRow.collection_id == collection_id).limit(n)))
        s.execute(
            update(FaceRow).where(FaceRow.face_id.in_(ids)).values(indexed_at=NOW - timedelta(days=days))
        )


def test_purge_deletes_what_is_past_retention_and_audits_counts(
    world: tuple[Store, FaceCollections, AuditLog],
) -> None:
    store, fc, audit = world
    _age_faces(store, "short", 40, 2)
    _age_faces(store, "forever", 400, 1)
    fc.set_retention("short", 30)
    fc.create_user("short", "u")
    face = fc.list_faces("short").items[0]  # an old one or not: associated faces are purged too
    fc.associate_faces("short", "u", [face.face_id], threshold=0)
    settings = RetentionSettings(job_results_days=7, notifications_days=30)
    service = RetentionService(store, settings, collections=fc, audit=audit, clock=lambda: NOW)

    dry = service.purge(dry_run=True)
    assert (dry.faces, dry.job_results, dry.notifications) == ({"short": 2}, 2, 1)
    assert fc.describe_collection("short").face_count == 3 and audit.read() == []

    report = service.purge(access_key="AK1")
    assert report.to_dict()["faces_total"] == 2 and (report.job_results, report.notifications) == (2, 1)
    assert (
        fc.describe_collection("short").face_count == 1 and fc.describe_collection("forever").face_count == 3
    )
    with store.sessions() as s:
        assert sorted(j.job_id for j in s.query(VideoJobRow)) == ["recent", "running"]
        assert sorted(m.message_id for m in s.query(NotificationOutboxRow)) == ["m2", "m3"]
    [record] = audit.read()
    assert record["operation"] == "Purge" and record["access_key"] == "AK1"
    assert record["details"] == {"faces": {"short": 2}, "job_results": 2, "notifications": 1}
    assert audit.verify().ok
    # Nothing left to purge: the run is still recorded (it shows retention was enforced).
    again = service.purge()
    assert again.total == 0 and len(audit.read()) == 2


def test_no_retention_configured_deletes_nothing(world: tuple[Store, FaceCollections, AuditLog]) -> None:
    store, fc, audit = world
    _age_faces(store, "short", 4000, 3)
    report = RetentionService(
        store, RetentionSettings(), collections=fc, audit=audit, clock=lambda: NOW
    ).purge()
    assert report.total == 0 and fc.describe_collection("short").face_count == 3


@pytest.mark.parametrize("days", [0, -1, 36_501, 1.5, True, "30"])
def test_bad_retention_values_are_refused(
    world: tuple[Store, FaceCollections, AuditLog], days: object
) -> None:
    _, fc, _ = world
    with pytest.raises(InvalidParameter):
        fc.set_retention("short", days)  # type: ignore[arg-type]


def test_retention_is_shown_and_cleared(world: tuple[Store, FaceCollections, AuditLog]) -> None:
    store, fc, _ = world
    assert fc.set_retention("short", 30).retention_days == 30
    assert stored_collections(store).describe_collection("short").retention_days == 30  # no models needed
    assert fc.set_retention("short", None).retention_days is None
    with pytest.raises(NotFound):
        fc.set_retention("missing", 3)


def test_purge_thread_runs_at_start_and_stops(world: tuple[Store, FaceCollections, AuditLog]) -> None:
    store, fc, audit = world
    service = RetentionService(store, RetentionSettings(), collections=fc, audit=audit)
    thread = PurgeThread(service, interval_s=3600)
    thread.start()
    deadline = time.monotonic() + 10
    while not audit.read() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    thread.stop()
    assert time.monotonic() - started < 5  # it does not sleep out its interval
    assert [r["operation"] for r in audit.read()] == ["Purge"]
