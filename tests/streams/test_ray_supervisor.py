"""Stream processors as Ray actors on a two-node Ray cluster on 127.0.0.1, with the worker node killed.

The cluster is tests/ray_cluster.py's (Ray's ``cluster_utils.Cluster``, loopback only, every listening
socket checked). The processor runs person tracking on the Hamilton clip over the RTSP rig
(tests/rtsp/rig.py), driven through the service (keeneye.service.streams.processors) as the API drives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeneye.aws import stream_records
from keeneye.config import Settings, StreamSettings
from keeneye.service.streams.processors import StreamProcessors
from keeneye.store.db import Store
from keeneye.streams.ray_supervisor import RaySupervisor, supervisor_for
from keeneye.streams.supervisor import WorkerSupervisor
from tests.factories import LOOPBACK_EGRESS
from tests.ray_cluster import LocalCluster, Placeholder, exposed, local_cluster, ray_module, shut_down
from tests.receivers import wait_until
from tests.rtsp.rig import rtsp_server

START_S = 90.0  # a worker actor starting (process, imports, models) on a busy 2-core machine
FAILOVER_S = 30.0  # the bound: running again, and producing records, on another node
NAME = "lobby"


def test_without_an_address_workers_are_local_processes() -> None:
    assert type(supervisor_for(Settings())) is WorkerSupervisor


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with local_cluster() as c:
        yield c


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.models
@pytest.mark.data
def test_processor_fails_over_when_its_node_dies(
    cluster: LocalCluster, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray = ray_module()
    c, worker_node = cluster.cluster, cluster.worker
    head_id, worker_id = c.head_node.node_id, worker_node.node_id
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"} and len(ray.nodes()) == 2

    # The head's CPU is taken for now, so the processor goes to the worker node.
    blocker = (
        ray.remote(num_cpus=1)(Placeholder)
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(head_id, soft=False))
        .remote()
    )
    assert ray.get(blocker.ready.remote(), timeout=60)

    settings = Settings(
        data_dir=tmp_path,
        models_path=models_dir,
        egress=LOOPBACK_EGRESS,
        streams=StreamSettings(ray_address=c.address, status_interval_s=0.5, stop_timeout_s=5.0),
    )
    supervisor = supervisor_for(settings)
    assert isinstance(supervisor, RaySupervisor)
    store = Store.open(tmp_path)
    service = StreamProcessors(store, settings, encode=stream_records.encode, supervisor=supervisor)
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    sink = tmp_path / "notifications" / f"{NAME}.jsonl"
    try:
        with rtsp_server(clip, loop=True) as camera:
            service.create(
                NAME,
                {
                    "Input": {"KinesisVideoStream": {"Arn": camera.url}},
                    "Output": {"KinesisDataStream": {"Arn": f"file://{NAME}.jsonl"}},
                    "Settings": {"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 50.0}},
                    "RoleArn": "arn:aws:iam::000000000000:role/keeneye",
                },
            )
            service.set_options(NAME, {"record_interval_s": 1.0, "target_fps": 5})
            started = time.monotonic()
            session = service.start(NAME)
            wait_until(lambda: service.describe(NAME).status == "RUNNING", START_S, "RUNNING")
            wait_until(lambda: "ray_node_id" in service.stats(NAME), 10, "the actor's node")
            assert service.stats(NAME)["ray_node_id"] == worker_id
            wait_until(lambda: len(_records(sink)) > 0, 60, "records from the worker node")
            first_start_s = time.monotonic() - started

            # Nodes and the driver listen on loopback only (with the actor running, its gRPC servers too).
            assert exposed(cluster.before) == [], "Ray listens beyond loopback"

            ray.kill(blocker)  # room on the head again
            statuses: list[str] = []
            records_before = len(_records(sink))
            killed = time.monotonic()
            c.remove_node(worker_node, allow_graceful=False)  # the worker node dies (SIGKILL)

            def running_elsewhere() -> bool:
                statuses.append(service.describe(NAME).status)
                return statuses[-1] == "RUNNING" and service.stats(NAME).get("ray_node_id") == head_id

            wait_until(running_elsewhere, FAILOVER_S + 30, "RUNNING on the head node")
            running_s = time.monotonic() - killed
            wait_until(lambda: len(_records(sink)) > records_before, FAILOVER_S + 30, "records again")
            records_s = time.monotonic() - killed

            info = service.describe(NAME)
            assert info.session_id == session  # the same session resumed
            assert "STARTING" in statuses  # it said so meanwhile
            print(
                f"first start {first_start_s:.1f} s; after the node was killed: RUNNING on the head in "
                f"{running_s:.1f} s, records again in {records_s:.1f} s"
            )
            assert records_s < FAILOVER_S, f"failover took {records_s:.1f} s"

            service.stop(NAME)
            wait_until(lambda: service.describe(NAME).status == "STOPPED", 30, "STOPPED")
    finally:
        service.close()
        store.close()
    records = _records(sink)
    assert records and all(stream_records.shape_problems(r) == [] for r in records)
    assert {r["Keeneye"]["Kind"] for r in records} >= {"person"}

    alive = shut_down(cluster)
    assert alive == [], f"left behind: {[(p.pid, p.name()) for p in alive]}"
