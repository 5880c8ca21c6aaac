"""Video jobs as Ray tasks on a two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py): the same output as
on the server, the runner's errors as the job's, a stopped job's task cancelled, nothing left behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from keeneye.config import Settings, VideoJobSettings
from keeneye.core.errors import InvalidParameter
from keeneye.service.video.jobs import JobStopped
from keeneye.service.video.ray_jobs import ray_runners
from keeneye.service.video.runners import person_tracking_runner
from tests.ray_cluster import Placeholder, exposed, local_cluster, ray_module, shut_down

pytestmark = [pytest.mark.models, pytest.mark.data]


def test_without_an_address_jobs_run_here() -> None:
    assert ray_runners(Settings()) == {}


def test_jobs_run_as_ray_tasks(shared_data: Path, models_dir: Path, tmp_path: Path) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    with local_cluster() as cluster:
        settings = Settings(
            data_dir=tmp_path,
            models_path=models_dir,
            video_jobs=VideoJobSettings(ray_address=cluster.cluster.address),
        )
        runners = ray_runners(settings)
        assert set(runners) == {"PersonTracking", "Redaction"}

        started = time.monotonic()
        got = runners["PersonTracking"](clip, {"job_id": "j1"}, lambda: None)
        ray_s = time.monotonic() - started
        started = time.monotonic()
        want = person_tracking_runner(settings)(clip, {"job_id": "j1"}, lambda: None)
        local_s = time.monotonic() - started
        assert want.items, "the clip has persons: the comparison would prove nothing"
        assert got == want
        print(
            f"PersonTracking on the clip: {ray_s:.1f} s as a Ray task (models loaded), {local_s:.1f} s here"
        )

        with pytest.raises(InvalidParameter, match="mode must be"):
            runners["Redaction"](clip, {"job_id": "j2", "mode": "smudge"}, lambda: None)

        calls = []

        def stopping() -> None:
            calls.append(1)
            if len(calls) > 1:
                raise JobStopped

        started = time.monotonic()
        with pytest.raises(JobStopped):
            runners["PersonTracking"](clip, {"job_id": "j3"}, stopping)
        assert time.monotonic() - started < 5

        assert exposed(cluster.before) == [], "Ray listens beyond loopback"

        # A job whose node dies mid-run: Ray runs its task again on the other node, same output.
        ray = ray_module()
        head = cluster.cluster.head_node.node_id
        blocker = (
            ray.remote(num_cpus=1)(Placeholder)
            .options(scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False))
            .remote()
        )
        assert ray.get(blocker.ready.remote(), timeout=60)  # the head is full: the task goes to the worker
        outcome: list[Any] = []
        job = threading.Thread(
            target=lambda: outcome.append(runners["PersonTracking"](clip, {"job_id": "j4"}, lambda: None))
        )
        started = time.monotonic()
        job.start()
        time.sleep(4)  # the task is on the worker node, tracking
        assert not outcome, "the job ended before its node was killed: the test would prove nothing"
        ray.kill(blocker)
        cluster.cluster.remove_node(cluster.worker, allow_graceful=False)
        job.join(120)
        assert outcome == [want]
        print(
            f"a job whose node died 4 s in finished on the other node {time.monotonic() - started:.1f} s in"
        )

        alive = shut_down(cluster)
    assert alive == [], f"left behind: {[(p.pid, p.name()) for p in alive]}"
