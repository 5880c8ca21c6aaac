"""The Ray engine: rows for every input, one task set-up per actor, loopback only, nothing left behind.

One local Ray serves the whole module (it takes seconds to start); the last test closes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from keeneye.batch.base import BatchInput, Row, Task, TaskSpec
from keeneye.batch.ray_engine import RayEngine
from keeneye.core.errors import InvalidParameter

WORKERS = 2
LOOPBACK_IPS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


class ToyTask:
    """Pure Python: ``ok-N`` inputs give ``{"n": N, ...}``, ``bad-...`` inputs an InvalidImage row; the
    result tells which actor ran it, how often that actor's task was set up and the batch's size."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1
        with open(self.spec.options["setup_log"], "a") as f:
            f.write(f"{os.getpid()}\n")

    def run_batch(self, inputs: Sequence[BatchInput]) -> list[Row]:
        rows = []
        for item in inputs:
            if item.uri.startswith("bad-"):
                rows.append(Row(item.uri, "error", 0.0, {}, "InvalidImage", f"{item.uri} is not an image"))
            else:
                info = {"pid": os.getpid(), "setups": self.setups, "batch_len": len(inputs)}
                rows.append(Row(item.uri, "ok", 0.001, {"n": int(item.uri[3:]), **info}))
        return rows


def make_task(spec: TaskSpec) -> Task:
    """Toy tasks for the fast tests, keeneye's own tasks otherwise."""
    if spec.options.get("toy"):
        return ToyTask(spec)
    from keeneye.batch.tasks import build_task

    return build_task(spec)


# This process's children before Ray starts (e.g. multiprocessing's resource tracker, started by other
# tests' process pools): not Ray's, so not counted as left behind.
_BEFORE_RAY: set[int] = set()


@pytest.fixture(scope="module")
def engine() -> Iterator[RayEngine]:
    _BEFORE_RAY.update(p.pid for p in psutil.Process().children(recursive=True))
    eng = RayEngine(address=None, workers=WORKERS, task_factory=make_task)
    yield eng
    eng.close()


def toy_spec(tmp_path: Path) -> TaskSpec:
    return TaskSpec("detect-faces", options={"toy": True, "setup_log": str(tmp_path / "setups.log")})


def ray_processes() -> list[psutil.Process]:
    """This process's descendants started with the local Ray: its GCS, raylet, agents and workers."""
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in _BEFORE_RAY]


def test_bad_arguments_are_refused_before_ray_starts() -> None:
    with pytest.raises(InvalidParameter, match="--workers"):
        RayEngine(address=None, workers=0)


def test_bad_batch_size_is_refused(engine: RayEngine, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="batch size"):
        list(engine.run(toy_spec(tmp_path), [BatchInput("ok-1")], batch_size=0))


def test_rows_for_all_inputs_errors_pass_through(engine: RayEngine, tmp_path: Path) -> None:
    inputs = [BatchInput(f"ok-{i}") for i in range(23)] + [BatchInput("bad-1"), BatchInput("bad-2")]
    rows = list(engine.run(toy_spec(tmp_path), inputs, batch_size=4))

    by_uri = {r.uri: r for r in rows}
    assert len(rows) == len(by_uri) == len(inputs)
    assert set(by_uri) == {i.uri for i in inputs}
    for i in range(23):
        assert by_uri[f"ok-{i}"].status == "ok"
        assert by_uri[f"ok-{i}"].result["n"] == i
    bad = by_uri["bad-2"]
    assert (bad.status, bad.error_code, bad.error_message) == (
        "error",
        "InvalidImage",
        "bad-2 is not an image",
    )
    assert bad.result == {}


def test_task_set_up_once_per_actor_and_sees_whole_batches(engine: RayEngine, tmp_path: Path) -> None:
    spec = toy_spec(tmp_path)
    rows = list(engine.run(spec, [BatchInput(f"ok-{i}") for i in range(40)], batch_size=5))

    assert len(rows) == 40
    assert {r.result["setups"] for r in rows} == {1}  # no actor's task set up twice
    setups = Path(spec.options["setup_log"]).read_text().split()
    assert 1 <= len(setups) <= WORKERS  # 8 batches, at most one set-up per actor
    assert len(set(setups)) == len(setups)
    assert {str(r.result["pid"]) for r in rows} <= set(setups)
    assert {r.result["batch_len"] for r in rows} == {5}


def test_empty_inputs_give_no_rows(engine: RayEngine, tmp_path: Path) -> None:
    assert list(engine.run(toy_spec(tmp_path), [], batch_size=8)) == []


def test_local_ray_listens_on_loopback_only(engine: RayEngine, tmp_path: Path) -> None:
    # Run something first, so the actors (core workers with their own gRPC servers) exist.
    list(engine.run(toy_spec(tmp_path), [BatchInput(f"ok-{i}") for i in range(4)], batch_size=2))
    processes = [psutil.Process(), *ray_processes()]
    assert any(p.name() in ("gcs_server", "raylet") for p in processes)

    listening = []
    for proc in processes:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:  # an idle worker that exited meanwhile
            continue
        listening += [
            (proc.name(), c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN
        ]
    assert listening, "no listening socket found: the check would prove nothing"
    exposed = [entry for entry in listening if entry[1] not in LOOPBACK_IPS]
    assert exposed == [], f"Ray listens beyond loopback: {exposed}"


@pytest.mark.models
@pytest.mark.data
def test_detect_faces_through_ray_matches_the_task_run_directly(
    engine: RayEngine, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    from keeneye.batch.tasks import build_task

    photos = sorted((shared_data / "faces" / "lfw").glob("*/*.jpg"))[:10]
    inputs = [BatchInput(str(p)) for p in photos] + [BatchInput(str(tmp_path / "missing.jpg"))]
    spec = TaskSpec("detect-faces", data_dir=str(models_dir.parent), models_path=str(models_dir))
    direct = build_task(spec)
    direct.setup()
    expected = {r.uri: r for r in direct.run_batch(inputs)}

    got = {r.uri: r for r in engine.run(spec, inputs, batch_size=4)}

    assert set(got) == set(expected)
    assert expected[str(tmp_path / "missing.jpg")].status == "error"
    assert sum(len(r.result.get("FaceDetails", [])) for r in expected.values()) >= 10
    for uri, want in expected.items():
        row = got[uri]
        assert (row.status, row.error_code) == (want.status, want.error_code), uri
        faces, want_faces = row.result.get("FaceDetails", []), want.result.get("FaceDetails", [])
        assert len(faces) == len(want_faces), uri
        for face, want_face in zip(faces, want_faces, strict=True):
            for key, value in want_face["BoundingBox"].items():
                assert face["BoundingBox"][key] == pytest.approx(value, abs=1e-3), (uri, key)


# The module's engine is shared: this test closes it, so it stays last in the file.
def test_close_leaves_no_ray_process(engine: RayEngine) -> None:
    import ray

    processes = ray_processes()
    assert processes
    engine.close()
    engine.close()  # idempotent

    assert not ray.is_initialized()
    _, alive = psutil.wait_procs(processes, timeout=20)
    assert alive == [], f"left behind: {[(p.pid, p.name()) for p in alive]}"
