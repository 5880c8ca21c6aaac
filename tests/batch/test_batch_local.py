"""keeneye batch with the local engine: real models, real LFW photos, bad files, resume after kill -9."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from keeneye.analysis.builder import build_face_analyzer
from keeneye.batch.base import TaskSpec
from keeneye.batch.inputs import Sources, list_inputs
from keeneye.batch.job import PARTS_DIR, open_job, read_rows, run_job
from keeneye.batch.local_engine import LocalEngine
from keeneye.batch.tasks import IndexCollector
from keeneye.config import Settings
from keeneye.core.errors import InvalidParameter
from keeneye.service.faces.collections import FaceCollections
from keeneye.store.db import Store
from tests.factories import enrol_user, huge_png, index_photos

pytestmark = [pytest.mark.models, pytest.mark.data]

N_GOOD = 30
BAD = {
    "empty.jpg": "InvalidImage",
    "notes.jpg": "InvalidImage",
    "truncated.jpg": "InvalidImage",
    "huge.png": "ImageTooLarge",
}


@pytest.fixture(scope="module")
def protocol(shared_data: Path) -> dict[str, list[tuple[str, Path]]]:
    root = shared_data / "faces" / "lfw"
    out: dict[str, list[tuple[str, Path]]] = {}
    with (shared_data / "faces" / "lfw_protocol" / "identification_protocol.csv").open() as f:
        for row in csv.DictReader(f):
            out.setdefault(row["role"], []).append((row["identity"], root / row["image"]))
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """30 LFW photos in two sub-folders, three bad files and a non-media file (ignored)."""
    root = tmp_path_factory.mktemp("photos")
    photos = sorted((shared_data / "faces" / "lfw").glob("*/*.jpg"))[:N_GOOD]
    for i, p in enumerate(photos):
        (root / f"set{i % 2}").mkdir(exist_ok=True)
        shutil.copy(p, root / f"set{i % 2}" / p.name)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not a photo\n")
    (root / "truncated.jpg").write_bytes(photos[0].read_bytes()[:2000])
    (root / "huge.png").write_bytes(huge_png())  # over images.max_pixels, refused from its header
    (root / "readme.txt").write_text("ignored: not an image or video name\n")
    return root


def _spec(tmp_path: Path, models_dir: Path, name: str = "detect-faces", **options: object) -> TaskSpec:
    return TaskSpec(name, dict(options), data_dir=str(tmp_path / "data"), models_path=str(models_dir))  # type: ignore[arg-type]


def test_one_row_per_input_with_error_codes(tmp_path: Path, models_dir: Path, folder: Path) -> None:
    inputs = list_inputs(str(folder), Sources())
    assert len(inputs) == N_GOOD + len(BAD)
    out = tmp_path / "out"
    summary = run_job(LocalEngine(workers=2), "local", _spec(tmp_path, models_dir), inputs, out, batch_size=4)
    rows = read_rows(out).to_pylist()
    assert sorted(r["uri"] for r in rows) == sorted(i.uri for i in inputs)
    by_name = {Path(r["uri"]).name: r for r in rows}
    for name, code in BAD.items():
        assert by_name[name]["status"] == "error" and by_name[name]["error_code"] == code
        assert by_name[name]["error_message"]
    good = [r for r in rows if Path(r["uri"]).name not in BAD]
    assert all(r["status"] == "ok" for r in good)
    with_face = [r for r in good if json.loads(r["result"])["FaceDetails"]]
    assert len(with_face) >= N_GOOD - 1  # LFW: a face in (nearly) every photo
    detail = json.loads(with_face[0]["result"])["FaceDetails"][0]
    assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= detail.keys()
    assert summary["rows"] == N_GOOD + len(BAD)
    assert summary["errors_by_code"] == {"ImageTooLarge": 1, "InvalidImage": 3}
    assert json.loads((out / "summary.json").read_text())["ok"] == N_GOOD


def _cli(tmp_path: Path, models_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "keeneye.cli", "batch", *args]


def _env(tmp_path: Path, models_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KEENEYE_DATA_DIR=str(tmp_path / "data"), KEENEYE_MODELS_PATH=str(models_dir))
    return env


def test_kill_9_midway_then_resume_does_only_the_rest(tmp_path: Path, models_dir: Path, folder: Path) -> None:
    out = tmp_path / "out"
    cmd = _cli(tmp_path, models_dir, str(folder), "--task", "detect-faces", "-o", str(out))
    cmd += ["--workers", "1", "--batch-size", "1", "--part-rows", "4"]
    env = _env(tmp_path, models_dir)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list((out / PARTS_DIR).glob("part-*.parquet")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker, as a crash would
        proc.communicate(timeout=30)
    before = read_rows(out, ["uri"]).num_rows
    total = N_GOOD + len(BAD)
    assert 0 < before < total
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(done.stdout)
    assert summary["run"]["skipped_already_done"] == before
    assert summary["run"]["processed"] == total - before
    uris = Counter(read_rows(out, ["uri"]).column("uri").to_pylist())
    assert len(uris) == total and set(uris.values()) == {1}
    # read without the de-duplication too: no input was written twice
    import pyarrow.parquet as pq

    raw = pq.read_table(out / PARTS_DIR).column("uri").to_pylist()
    assert len(raw) == total
    assert summary["rows"] == total and summary["errors"] == len(BAD) and summary["remaining"] == 0


def test_ctrl_c_writes_what_is_done(tmp_path: Path, models_dir: Path, folder: Path) -> None:
    out = tmp_path / "out"
    cmd = _cli(tmp_path, models_dir, str(folder), "--task", "detect-faces", "-o", str(out))
    cmd += ["--workers", "1", "--batch-size", "1", "--part-rows", "4"]
    proc = subprocess.Popen(
        cmd,
        env=_env(tmp_path, models_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((out / PARTS_DIR).glob("part-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:
        pytest.skip("the job finished before the interrupt")
    assert proc.returncode == 130 and b"Interrupted" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["rows"] == summary["run"]["processed"] == read_rows(out, ["uri"]).num_rows > 0


def test_index_faces_then_search(
    tmp_path: Path, models_dir: Path, protocol: dict[str, list[tuple[str, Path]]]
) -> None:
    """A watchlist indexed by a batch job is found by FaceCollections, and by search-faces rows."""
    gallery = {identity: path for identity, path in protocol["gallery"]}
    first_probe: dict[str, Path] = {}
    for identity, path in protocol["probe_known"]:
        if identity in gallery:
            first_probe.setdefault(identity, path)
    probes = sorted(first_probe.items())[:6]  # six people, one probe photo each
    watch = tmp_path / "watch"
    watch.mkdir()
    for identity, _ in probes:
        shutil.copy(gallery[identity], watch / gallery[identity].name)
    spec = _spec(tmp_path, models_dir, "index-faces", collection_id="staff")
    summary = run_job(
        LocalEngine(workers=2),
        "local",
        spec,
        list_inputs(str(watch), Sources()),
        tmp_path / "index",
        batch_size=2,
        collector_factory=lambda job_id: IndexCollector(spec, job_id, create=True),
    )
    assert summary["ok"] == len(probes)
    rows = read_rows(tmp_path / "index").to_pylist()
    records = [json.loads(r["result"])["FaceRecords"] for r in rows]
    assert all(len(rec) >= 1 for rec in records)
    assert {rec[0]["Face"]["ExternalImageId"] for rec in records} == {gallery[i].name for i, _ in probes}

    settings = Settings(data_dir=tmp_path / "data", models_path=models_dir)
    store = Store.open(settings.data_dir)
    try:
        fc = FaceCollections(store, build_face_analyzer(settings))
        assert fc.describe_collection("staff").face_count == sum(len(r) for r in records)
        identity, probe = probes[0]
        found = fc.search_faces_by_image("staff", probe.read_bytes(), threshold=80)
        assert found.matches and found.matches[0].face.external_image_id == gallery[identity].name
    finally:
        store.close()

    probe_dir = tmp_path / "probes"
    probe_dir.mkdir()
    for _, p in probes:
        shutil.copy(p, probe_dir / p.name)
    search = _spec(tmp_path, models_dir, "search-faces", collection_id="staff", threshold=80.0)
    run_job(
        LocalEngine(workers=1), "local", search, list_inputs(str(probe_dir), Sources()), tmp_path / "search"
    )
    hits = {Path(r["uri"]).name: json.loads(r["result"]) for r in read_rows(tmp_path / "search").to_pylist()}
    right = sum(
        1
        for identity, p in probes
        if hits[p.name]["FaceMatches"]
        and hits[p.name]["FaceMatches"][0]["Face"]["ExternalImageId"] == gallery[identity].name
    )
    assert right >= len(probes) - 1


def test_search_faces_names_a_user_once(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    """When the collection has users, a batch search reports each user once (their best face), and
    max_faces counts users: Lin-Manuel is the user ``lin`` with three faces, Alex a face without a user."""
    settings = Settings(data_dir=tmp_path / "data", models_path=models_dir)
    store = Store.open(settings.data_dir)
    try:
        fc = FaceCollections(store, build_face_analyzer(settings, with_embedder=True), settings.images)
        index_photos(fc, "cast", shared_data, ("alex-lacamoire",))
        lin_faces = enrol_user(fc, "cast", shared_data, "lin-manuel-miranda", "lin")
    finally:
        store.close()
    probes = tmp_path / "probes"
    probes.mkdir()
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        shutil.copy(shared_data / "faces" / "face_recognition" / f"{name}.png", probes / f"{name}.png")
    # Threshold 0: everyone matches; MaxFaces 2 counts users, so each probe gets both identities.
    spec = _spec(tmp_path, models_dir, "search-faces", collection_id="cast", threshold=0.0, max_faces=2)
    run_job(LocalEngine(workers=1), "local", spec, list_inputs(str(probes), Sources()), tmp_path / "out")
    hits = {Path(r["uri"]).stem: json.loads(r["result"]) for r in read_rows(tmp_path / "out").to_pylist()}
    lin = hits["lin-manuel-miranda"]["FaceMatches"]
    assert [m["Face"].get("UserId") for m in lin] == ["lin", None], lin  # three faces, one user
    assert lin[0]["Face"]["FaceId"] in lin_faces and lin[0]["Similarity"] >= 99
    alex = hits["alex-lacamoire"]["FaceMatches"]
    assert [m["Face"].get("UserId") for m in alex] == [None, "lin"], alex
    assert alex[0]["Face"]["ExternalImageId"] == "alex-lacamoire" and alex[0]["Similarity"] >= 99


def test_replayed_index_batch_is_not_indexed_twice(tmp_path: Path, models_dir: Path, folder: Path) -> None:
    """A batch committed to the store but not yet written as a part (killed in between) is replayed by
    the resumed job: the derived ImageIds make the replay a no-op."""
    spec = _spec(tmp_path, models_dir, "index-faces", collection_id="c")
    inputs = list_inputs(str(folder / "set0"), Sources())[:3]
    from keeneye.batch.tasks import build_task

    task = build_task(spec)
    task.setup()
    collector = IndexCollector(spec, "9b2f5a56-0f61-4c55-9f3a-2a8b0d0f4e11", create=True)
    try:
        first = task.run_batch(inputs)
        collector.commit(first)
        again = task.run_batch(inputs)
        collector.commit(again)
        ids = [[f["Face"]["FaceId"] for f in r.result["FaceRecords"]] for r in first]
        assert ids == [[f["Face"]["FaceId"] for f in r.result["FaceRecords"]] for r in again]
        count = collector.collections.describe_collection("c").face_count
        assert count == sum(len(x) for x in ids)
    finally:
        collector.close()


def test_manifests_plain_and_json_lines(tmp_path: Path, models_dir: Path, folder: Path) -> None:
    photos = sorted((folder / "set1").glob("*.jpg"))[:3]
    plain = tmp_path / "list.txt"
    plain.write_text(f"# three photos\n{photos[0]}\n\nset1/{photos[1].name}\n{photos[0]}\n")
    shutil.copy(plain, folder / "list.txt")  # relative lines are relative to the manifest
    got = list_inputs(str(folder / "list.txt"), Sources())
    assert [i.uri for i in got] == [str(photos[0]), str(folder / "set1" / photos[1].name)]

    jsonl = tmp_path / "manifest.jsonl"
    lines = [json.dumps({"source-ref": f"s3://photos/set1/{p.name}"}) for p in photos]
    jsonl.write_text("\n".join([*lines, json.dumps({"source-ref": "s3://photos/missing.jpg"})]) + "\n")
    sources = Sources({"photos": str(folder)})
    inputs = list_inputs(str(jsonl), sources)
    assert [i.uri for i in inputs][:3] == [f"s3://photos/set1/{p.name}" for p in photos]
    spec = _spec(tmp_path, models_dir, **sources.to_options())
    summary = run_job(LocalEngine(workers=1), "local", spec, inputs, tmp_path / "out")
    assert summary["ok"] == 3 and summary["errors_by_code"] == {"NotFound": 1}
    # the same bucket by prefix
    assert len(list_inputs("s3://photos/set1/", sources)) == N_GOOD // 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source_ref": "s3://photos/a.jpg"}\n')
    with pytest.raises(InvalidParameter, match="source-ref"):
        list_inputs(str(bad), sources)


def test_another_task_on_the_same_output_is_refused(tmp_path: Path, models_dir: Path) -> None:
    out = tmp_path / "out"
    job_id = open_job(out, _spec(tmp_path, models_dir))
    assert open_job(out, _spec(tmp_path, models_dir)) == job_id  # same task: resume
    with pytest.raises(InvalidParameter, match="another task"):
        open_job(out, _spec(tmp_path, models_dir, "search-faces", collection_id="c"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(InvalidParameter, match="not a keeneye batch output"):
        open_job(tmp_path / "other", _spec(tmp_path, models_dir))


def test_track_videos_of_a_folder(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4", videos / "clip.mp4")
    (videos / "broken.mp4").write_text("not a video\n")
    (videos / "photo.jpg").write_bytes(b"")  # an image: not listed for a video task
    spec = _spec(
        tmp_path,
        models_dir,
        "track",
        fps=2.0,
        lines=[{"name": "door", "p1": [0.5, 1], "p2": [0.5, 0]}],
        zones=[],
    )
    inputs = list_inputs(str(videos), Sources(), frozenset({"video"}))
    assert [Path(i.uri).name for i in inputs] == ["broken.mp4", "clip.mp4"]
    run_job(LocalEngine(workers=1), "local", spec, inputs, tmp_path / "out")
    rows = {Path(r["uri"]).name: r for r in read_rows(tmp_path / "out").to_pylist()}
    assert rows["broken.mp4"]["error_code"] == "InvalidVideo"
    result = json.loads(rows["clip.mp4"]["result"])
    assert result["persons_tracked"] >= 1 and result["frames_analysed"] > 0
    assert set(result["lines"]) == {"door"}


def test_inputs_behind_an_s3_endpoint(
    tmp_path: Path, models_dir: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)  # the spawned workers inherit them
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="photos")
        photos = sorted((folder / "set0").glob("*.jpg"))[:3]
        for p in photos:
            s3.put_object(Bucket="photos", Key=f"in/{p.name}", Body=p.read_bytes())
        s3.put_object(Bucket="photos", Key="in/empty.jpg", Body=b"")
        s3.put_object(Bucket="photos", Key="in/notes.txt", Body=b"skipped")
        s3.put_object(Bucket="photos", Key="other/x.jpg", Body=b"")
        sources = Sources(s3_endpoint=url)
        inputs = list_inputs("s3://photos/in/", sources)
        assert [i.uri for i in inputs] == sorted(
            f"s3://photos/in/{n}" for n in [p.name for p in photos] + ["empty.jpg"]
        )
        spec = _spec(tmp_path, models_dir, **sources.to_options())
        summary = run_job(LocalEngine(workers=1), "local", spec, inputs, tmp_path / "out")
        assert summary["ok"] == 3 and summary["errors_by_code"] == {"InvalidImage": 1}
    finally:
        server.stop()
