"""The review queue on a real SQLite store: record / list / get / crop / counts, decisions audited under
the reviewer's key, one identification per track and person, a rejected pair suppressed, rejected probes
kept as negatives (the rule of keeneye/service/review/negatives.py), review_required per collection,
retention and collection deletion leaving no crop bytes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from keeneye.config import RetentionSettings
from keeneye.core.errors import InvalidParameter, NotFound
from keeneye.core.types import FloatArray
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.governance.audit import AuditLog
from keeneye.service.governance.retention import RetentionService
from keeneye.service.review.negatives import filter_matches
from keeneye.service.review.queue import Identification, ReviewQueue
from keeneye.store.db import Store
from tests.factories import fake_collections, noise_image

EMBEDDER = "pixels-v1"
CROP = b"\xff\xd8\xff\xe0KEENEYE-TEST-CROP-0123456789\xff\xd9"  # a marker to look for in the files


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.store = Store.open(tmp_path / "data")
        self.collections: FaceCollections = fake_collections(self.store, EMBEDDER)
        self.collections.create_collection("staff")
        faces = [self.collections.index_faces("staff", noise_image(s), quality_filter="NONE") for s in (1, 2)]
        self.alice, self.bob = (r.indexed[0][1] for r in faces)  # the indexed Faces, with embeddings
        self.alice_id, self.bob_id = (r.indexed[0][0].face_id for r in faces)
        self.audit = AuditLog(self.store)
        self.clock = Clock()
        self.queue = ReviewQueue(self.store, audit=self.audit, clock=self.clock)

    def record(self, track_id: int | None = 1, **kwargs: object) -> Identification | None:
        args: dict[str, object] = {
            "source_kind": "stream",
            "source_name": "door",
            "session_id": "s1",
            "collection_id": "staff",
            "face_id": self.alice_id,
            "similarity": 91.5,
            "track_id": track_id,
            "pts_ms": 1200,
            "crop_jpeg": CROP,
        }
        args.update(kwargs)
        return self.queue.record(**args)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()


def _unit(v: FloatArray) -> FloatArray:
    out: FloatArray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def test_record_list_get_crop_and_counts(world: World) -> None:
    first = world.record()
    assert first is not None and first.status == "PENDING" and first.has_crop
    assert (first.source_kind, first.source_name, first.track_id, first.pts_ms) == ("stream", "door", 1, 1200)
    world.clock.now += timedelta(seconds=5)
    second = world.record(track_id=2, face_id=world.bob_id, similarity=85.0, crop_jpeg=None)
    assert second is not None and not second.has_crop
    assert [i.identification_id for i in world.queue.list()] == [
        second.identification_id,
        first.identification_id,
    ]  # newest first
    assert world.queue.get(first.identification_id) == first
    assert world.queue.crop(first.identification_id) == CROP
    assert world.queue.crop(second.identification_id) is None
    assert world.queue.counts() == {"PENDING": 2, "CONFIRMED": 0, "REJECTED": 0, "UNSURE": 0}
    assert [i.face_id for i in world.queue.list(status="PENDING", limit=1)] == [world.bob_id]
    assert world.queue.list(collection_id="other") == [] and world.queue.list(source_kind="video") == []
    with pytest.raises(NotFound):
        world.queue.get("nope")
    with pytest.raises(InvalidParameter):
        world.queue.list(status="MAYBE")
    with pytest.raises(InvalidParameter):
        world.record(source_kind="camera")


def test_one_identification_per_track_and_person(world: World) -> None:
    first = world.record()
    assert first is not None
    assert world.record() == first  # the track's record repeated every interval: not queued again
    assert world.record(identification_id=first.identification_id, track_id=9) == first
    other_track = world.record(track_id=2)
    other_person = world.record(face_id=world.bob_id)
    assert other_track is not None and other_person is not None
    assert len({first, other_track, other_person}) == 3
    # A collection that is gone: nothing is queued.
    assert world.record(collection_id="deleted") is None


def test_decisions_are_audited_and_a_rejected_pair_is_suppressed(world: World) -> None:
    seen: list[Identification] = []
    world.queue.add_listener(seen.append)
    one, two = world.record(track_id=1), world.record(track_id=2)
    assert one is not None and two is not None
    world.clock.now += timedelta(minutes=1)
    confirmed = world.queue.decide(one.identification_id, "CONFIRMED", access_key="AKREVIEWER")
    assert (confirmed.status, confirmed.decided_by, confirmed.decided_at) == (
        "CONFIRMED",
        "AKREVIEWER",
        world.clock.now,
    )
    rejected = world.queue.decide(two.identification_id, "REJECTED", access_key="AKREVIEWER")
    assert [s.status for s in seen] == ["CONFIRMED", "REJECTED"] and seen[1] == rejected
    # The rejected (person, track) pair is not queued again in that run; another run's track 2 is.
    assert world.record(track_id=2) is None
    assert world.record(track_id=2, session_id="s2") is not None
    with pytest.raises(InvalidParameter):
        world.queue.decide(one.identification_id, "MAYBE", access_key="AKREVIEWER")
    with pytest.raises(NotFound):
        world.queue.decide("nope", "CONFIRMED", access_key="AKREVIEWER")
    records = world.audit.read(operation="ReviewIdentification")
    assert [r["details"]["decision"] for r in records] == ["CONFIRMED", "REJECTED"]
    assert all(r["access_key"] == "AKREVIEWER" and r["collection_id"] == "staff" for r in records)
    assert records[1]["details"]["identification_id"] == two.identification_id
    assert records[1]["details"]["face_id"] == world.alice_id
    assert records[1]["details"]["source_name"] == "door" and records[1]["details"]["track_id"] == 2
    assert world.queue.counts()["REJECTED"] == 1 and world.queue.counts()["CONFIRMED"] == 1


def test_rejected_probes_become_negatives_of_that_person(world: World) -> None:
    assert world.alice.embedding is not None and world.bob.embedding is not None
    alice = world.alice.embedding
    stranger = _unit(np.random.default_rng(7).normal(size=alice.shape).astype(np.float32))
    matches = world.collections.search_faces_by_vector("staff", stranger, EMBEDDER, threshold=0.0)
    assert world.alice_id in [m.face.face_id for m in matches]
    to_alice = next(m for m in matches if m.face.face_id == world.alice_id)
    item = world.record(similarity=to_alice.similarity, probe_embedding=stranger, embedder_id=EMBEDDER)
    assert item is not None
    probe = world.queue.probe_embedding(item.identification_id)
    assert probe is not None and np.allclose(probe, stranger)
    world.queue.decide(item.identification_id, "REJECTED", access_key="AKREVIEWER")
    assert world.queue.negative_count("staff") == 1
    # The same stranger on another track and run: closer to the negative than to Alice, suppressed.
    again = world.record(
        session_id="s2", similarity=to_alice.similarity, probe_embedding=stranger, embedder_id=EMBEDDER
    )
    assert again is None
    kept = filter_matches(world.store, "staff", stranger, EMBEDDER, matches)
    assert world.alice_id not in [m.face.face_id for m in kept]
    assert {m.face.face_id for m in kept} == {m.face.face_id for m in matches} - {world.alice_id}
    # Alice herself is closer to her own face than to the negative: still matched and queued.
    herself = world.collections.search_faces_by_vector("staff", alice, EMBEDDER, threshold=0.0)
    assert world.alice_id in [
        m.face.face_id for m in filter_matches(world.store, "staff", alice, EMBEDDER, herself)
    ]
    assert world.record(session_id="s3", similarity=99.9, probe_embedding=alice, embedder_id=EMBEDDER)
    # Another embedder's vectors are never compared.
    assert filter_matches(world.store, "staff", stranger, "other-v1", matches) == matches
    # Changing the decision removes the negative again.
    world.queue.decide(item.identification_id, "UNSURE", access_key="AKREVIEWER")
    assert world.queue.negative_count("staff") == 0


def test_review_required_per_collection(world: World) -> None:
    assert world.collections.review_required("staff") is False
    assert world.queue.review_required("staff") is False
    world.collections.set_review_required("staff", True)
    assert world.collections.review_required("staff") and world.queue.review_required("staff")
    assert world.queue.review_required("nope") is False
    with pytest.raises(NotFound):
        world.collections.set_review_required("nope", True)
    with pytest.raises(InvalidParameter):
        world.collections.set_review_required("staff", "yes")  # type: ignore[arg-type]


def _files_hold(folder: Path, marker: bytes) -> bool:
    return any(marker in p.read_bytes() for p in folder.rglob("keeneye.db*") if p.is_file())


def test_retention_purges_identifications_and_deletion_leaves_no_crop(world: World, tmp_path: Path) -> None:
    world.collections.set_retention("staff", 30)
    old = world.record(track_id=1)
    stranger = _unit(np.ones(world.alice.embedding.shape, np.float32))  # type: ignore[union-attr]
    rejected = world.record(track_id=2, probe_embedding=stranger, embedder_id=EMBEDDER)
    assert old is not None and rejected is not None
    world.queue.decide(rejected.identification_id, "REJECTED", access_key="AK")
    world.clock.now += timedelta(days=31)
    fresh = world.record(track_id=3, crop_jpeg=CROP.replace(b"TEST", b"KEEP"))
    assert fresh is not None
    retention = RetentionService(
        world.store,
        RetentionSettings(),
        collections=world.collections,
        audit=world.audit,
        clock=lambda: world.clock.now + timedelta(days=1),
    )
    assert retention.purge(dry_run=True).identifications == {"staff": 2}
    assert len(world.queue.list()) == 3
    report = retention.purge()
    assert report.identifications == {"staff": 2}
    assert [i.identification_id for i in world.queue.list()] == [fresh.identification_id]
    assert world.queue.negative_count("staff") == 0  # the negative is as old as its decision
    with pytest.raises(NotFound):
        world.queue.crop(old.identification_id)
    assert world.audit.read(operation="Purge")[-1]["details"]["identifications"] == {"staff": 2}
    assert not _files_hold(world.store.data_dir, CROP)
    # Deleting the collection deletes its identifications (and their crops) with it.
    assert _files_hold(world.store.data_dir, CROP.replace(b"TEST", b"KEEP"))
    world.collections.delete_collection("staff")
    assert world.queue.list() == [] and world.queue.counts()["PENDING"] == 0
    assert not _files_hold(world.store.data_dir, CROP.replace(b"TEST", b"KEEP"))
