"""Two servers on one PostgreSQL database, each with its own data directory (its own index files), as
behind a load balancer (docs/deployment.md): what one writes, the other serves at once; a stored-video
job started through one is run by the other; a stream processor runs in one of them and moves to the
other when its server stops or its lease lapses. Jobs claimed once and killed servers:
tests/service/test_several_servers.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from keeneye.config import VideoJobSettings
from keeneye.store.db import Store
from keeneye.store.tables import StreamProcessorRow
from tests.contract.conftest import RunningServer, wait_for_job
from tests.contract.test_collections import people_with_photos, photo
from tests.receivers import free_port, wait_until

pytestmark = [pytest.mark.models, pytest.mark.data]

ROLE = "arn:aws:iam::000000000000:role/keeneye"
LEASE_S = 3.0
START_S = 60.0


@pytest.fixture
def two_servers(
    start_server: Callable[..., RunningServer], pg_url: str, tmp_path: Path
) -> tuple[RunningServer, RunningServer]:
    return (
        start_server(tmp_path / "one", database_url=pg_url),
        start_server(tmp_path / "two", database_url=pg_url),
    )


def _search(client: Any, image: bytes) -> list[str]:
    r = client.search_faces_by_image(CollectionId="shared", Image={"Bytes": image}, FaceMatchThreshold=80)
    return [m["Face"]["ExternalImageId"] for m in r["FaceMatches"]]


def test_a_face_indexed_through_one_server_is_found_through_the_other(
    two_servers: tuple[RunningServer, RunningServer], shared_data: Path
) -> None:
    one, two = (s.client() for s in two_servers)
    first, second = people_with_photos(shared_data, 2)
    one.create_collection(CollectionId="shared")
    one.index_faces(
        CollectionId="shared", Image={"Bytes": photo(shared_data, first, 1)}, ExternalImageId=first
    )
    assert _search(two, photo(shared_data, first, 2)) == [first]  # two loads the index: generation 1
    assert _search(two, photo(shared_data, second, 2)) == []
    # two holds generation 1 in memory; one writes generation 2: two's next search sees it at once.
    r = one.index_faces(
        CollectionId="shared", Image={"Bytes": photo(shared_data, second, 1)}, ExternalImageId=second
    )
    assert _search(two, photo(shared_data, second, 2)) == [second]
    one.delete_faces(CollectionId="shared", FaceIds=[r["FaceRecords"][0]["Face"]["FaceId"]])
    assert _search(two, photo(shared_data, second, 2)) == []
    assert two.describe_collection(CollectionId="shared")["FaceCount"] == 1
    two.delete_collection(CollectionId="shared")
    with pytest.raises(one.exceptions.ResourceNotFoundException):
        one.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo(shared_data, first, 2)})


def test_a_job_started_through_one_server_is_run_by_the_other(
    start_server: Callable[..., RunningServer], pg_url: str, shared_data: Path, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    shutil.copyfile(shared_data / "video/face_clips/short_hamilton_clip.mp4", bucket / "clip.mp4")
    jobs = VideoJobSettings(workers=1, target_fps=2.0, max_duration_s=2.0, poll_interval_s=0.2)
    front = start_server(
        tmp_path / "front", {"videos": bucket}, jobs.model_copy(update={"workers": 0}), None, pg_url
    )
    back = start_server(tmp_path / "back", {"videos": bucket}, jobs, None, pg_url)
    video = {"S3Object": {"Bucket": "videos", "Name": "clip.mp4"}}
    job_id = front.client().start_face_detection(Video=video)["JobId"]  # front runs no jobs
    done = wait_for_job(front.client(), "get_face_detection", job_id, timeout_s=60)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    faces = front.client().get_face_detection(JobId=job_id)["Faces"]
    assert faces and back.client().get_face_detection(JobId=job_id)["Faces"] == faces


def _status(client: Any, name: str) -> str:
    return str(client.describe_stream_processor(Name=name)["Status"])


def test_a_stream_processor_runs_in_one_server_and_moves_when_it_goes(
    start_server: Callable[..., RunningServer],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEENEYE_STREAMS__LEASE_S", str(LEASE_S))
    one = start_server(tmp_path / "one", database_url=pg_url)
    two = start_server(tmp_path / "two", database_url=pg_url)
    assert one.services is not None and two.services is not None
    first, second = one.services.stream_processors, two.services.stream_processors
    assert first is not None and second is not None
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nobody serves it: the worker runs and reconnects
    one.client().create_stream_processor(
        Name="door",
        Input={"KinesisVideoStream": {"Arn": url}},
        Output={"KinesisDataStream": {"Arn": "file://door.jsonl"}},
        Settings={"ConnectedHome": {"Labels": ["PERSON"]}},
        RoleArn=ROLE,
    )
    one.client().start_stream_processor(Name="door")
    wait_until(lambda: _status(two.client(), "door") == "RUNNING", START_S, "door RUNNING")
    assert "door" in first and "door" not in second
    client = two.client()
    with pytest.raises(client.exceptions.ResourceInUseException):
        client.start_stream_processor(Name="door")
    time.sleep(LEASE_S)  # two's lease thread looks twice, and leaves it alone
    assert "door" in first and "door" not in second

    # Stopped through the other server: the one that runs it stops its worker.
    two.client().stop_stream_processor(Name="door")
    wait_until(lambda: _status(one.client(), "door") == "STOPPED", START_S, "door STOPPED")
    assert "door" not in first

    # Running in one, which shuts down: two takes it over (the lease released).
    one.client().start_stream_processor(Name="door")
    wait_until(lambda: "door" in first, START_S, "door running in one")
    one.stop()
    wait_until(lambda: "door" in second, START_S, "door taken over by two")
    wait_until(lambda: _status(two.client(), "door") == "RUNNING", START_S, "door RUNNING in two")

    # A server on another machine runs it, then goes silent: its lease is left alone until it lapses.
    two.client().stop_stream_processor(Name="door")
    wait_until(lambda: _status(two.client(), "door") == "STOPPED", START_S, "door STOPPED again")
    expires = datetime.now(UTC) + timedelta(seconds=2 * LEASE_S)
    store = Store(pg_url, Path("."))
    with store.transaction() as s:
        s.execute(
            update(StreamProcessorRow)
            .where(StreamProcessorRow.name == "door")
            .values(
                status="RUNNING", desired="running", lease_owner="elsewhere:1:0", lease_expires_at=expires
            )
        )
    store.close()
    time.sleep(LEASE_S)
    assert "door" not in second  # held elsewhere
    wait_until(lambda: "door" in second, 4 * LEASE_S + START_S, "door taken over after the lease lapsed")
    assert datetime.now(UTC) >= expires
    two.client().stop_stream_processor(Name="door")
    wait_until(lambda: _status(two.client(), "door") == "STOPPED", START_S, "door STOPPED at the end")
