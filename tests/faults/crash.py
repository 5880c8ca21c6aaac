"""Kill-and-restart harness: ``keeneye serve`` SIGKILLed in the middle of concurrent IndexFaces.

Used by tests/faults/test_crash.py (N cycles in CI) and bench/crash_loop.py (20 cycles, JSON).

One cycle, on a server that is already running and whose collection has just been checked:

1. ``LOAD_THREADS`` threads, each with its own boto3 client (no retries, so a call is sent once),
   call IndexFaces in a loop with real LFW photos (one photo of each of ``PHOTOS`` people,
   ``MaxFaces`` 1, ``QualityFilter`` NONE); every FaceId a call returned is recorded with its photo.
   One call in ``DELETE_EVERY`` of the first thread is instead a DeleteFaces of a face kept from an
   earlier cycle;
2. after a random delay the server gets SIGKILL (no shutdown code runs: the in-memory vector index
   and anything not yet committed are lost, as in a crash); calls in flight then fail, which is
   expected: such a face may or may not be stored (or deleted), but whole or not at all;
3. the server is started again on the same data directory and :func:`check_collection` verifies
   that every acknowledged face survived, exactly once, that no acknowledged deletion came back,
   and that the database, the listing, the search index and the index files on disk all hold the
   same faces. Whatever a restart shows must then survive the following crashes too.

The server runs exactly as a user starts it (the ``keeneye`` console script) on a free port of
127.0.0.1, with the installed models (``KEENEYE_MODELS_PATH``) and the key pair it creates itself in
``<data_dir>/credentials.json`` on first start. ONNX Runtime and OpenBLAS use one thread each
(``KEENEYE_THREADS=1``): the load threads give the concurrency, and the machine is shared.
Every wait is bounded; every process started here is killed by its pid (``ServerProcess.kill``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLLECTION = "crash"
PHOTOS = 12  # distinct people, so a search at Similarity 99 finds exactly one photo's faces
LOAD_THREADS = 4  # below the server's max_inflight (8): no ThrottlingException in this test
KILL_AFTER_S = (0.2, 3.0)  # the SIGKILL comes at a uniformly random moment of the load
STARTUP_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 20.0
DELETE_EVERY = 4  # thread 0: one call in 4 is a DeleteFaces of an earlier face
LIST_PAGE = 100  # small pages, so the listing's pagination is part of what is checked
MAX_FACES = 4096  # SearchFaces / SearchFacesByImage ceiling: the collection stays below it


def lfw_photos(shared_data: Path, count: int = PHOTOS) -> list[bytes]:
    """The first ``count`` gallery photos of LFW's identification protocol (one person each)."""
    protocol = shared_data / "faces" / "lfw_protocol" / "identification_protocol.csv"
    with protocol.open(newline="") as f:
        images = sorted(row["image"] for row in csv.DictReader(f) if row["role"] == "gallery")
    return [(shared_data / "faces" / "lfw" / image).read_bytes() for image in images[:count]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("keeneye")
    return [str(script), "serve"] if script.is_file() else [sys.executable, "-m", "keeneye.cli", "serve"]


@dataclass
class ServerProcess:
    """``keeneye serve`` in a subprocess on 127.0.0.1; ``start`` again after ``kill`` to restart it."""

    data_dir: Path
    models_dir: Path
    log_path: Path
    url: str = ""
    startup_s: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> float:
        """Start the server and wait for ``GET /v1/health``; the seconds it took."""
        if self._proc is not None:
            raise RuntimeError("the server is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEENEYE_")}
        env.update(
            KEENEYE_MODELS_PATH=str(self.models_dir),
            KEENEYE_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
        )
        cmd = [
            *_serve_command(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir),
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            while not self._healthy():
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"keeneye serve exited with {self._proc.returncode}:\n{self.log_tail()}"
                    )
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(
                        f"keeneye serve did not answer in {timeout_s:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(0.1)
        except BaseException:
            self.kill()
            raise
        self.startup_s = time.monotonic() - started
        return self.startup_s

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL the process this object started (by its pid) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGINT (graceful shutdown, writes the index files), SIGKILL if it does not exit in time."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        self.kill()

    def client(self) -> Any:
        """A boto3 client signing with the key pair the server keeps in ``credentials.json``."""
        import boto3
        from botocore.config import Config

        creds = json.loads((self.data_dir / "credentials.json").read_text())
        config = Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=CALL_TIMEOUT_S,
            max_pool_connections=2,
        )
        return boto3.session.Session().client(
            "rekognition",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=config,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def external_id(photo: int, cycle: int, thread: int, n: int) -> str:
    return f"p{photo:02d}-c{cycle}-t{thread}-{n}"


def photo_of(external_image_id: str) -> int:
    return int(external_image_id.split("-", 1)[0][1:])


@dataclass
class LoadResult:
    acked: dict[str, int] = field(default_factory=dict)  # FaceId -> photo, IndexFaces answered
    deleted: set[str] = field(default_factory=set)  # DeleteFaces answered: must stay deleted
    in_doubt: set[str] = field(default_factory=set)  # DeleteFaces cut by the kill: either way
    failed_after_kill: int = 0  # calls that failed once the kill was decided (expected)
    unexpected: list[str] = field(default_factory=list)  # failures before the kill (a bug)


def run_load_and_kill(
    server: ServerProcess, photos: list[bytes], cycle: int, kill_after_s: float, deletable: list[str]
) -> LoadResult:
    """IndexFaces from ``LOAD_THREADS`` threads, SIGKILL after ``kill_after_s``; what was answered.

    Thread 0 also deletes: every ``DELETE_EVERY``-th call of it is a DeleteFaces of one face taken
    from ``deletable`` (faces acknowledged in earlier cycles), so the kill can also cut a deletion.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    result = LoadResult()
    lock = threading.Lock()
    killed = threading.Event()
    clients = [server.client() for _ in range(LOAD_THREADS)]
    ready = threading.Barrier(LOAD_THREADS + 1, timeout=JOIN_TIMEOUT_S)
    rnd = random.Random(cycle)
    victims = list(deletable)
    rnd.shuffle(victims)

    def work(thread: int) -> None:
        client = clients[thread]
        ready.wait()
        n = 0
        while not killed.is_set():
            photo = (thread + n * LOAD_THREADS) % len(photos)
            victim = victims.pop() if thread == 0 and n % DELETE_EVERY == 1 and victims else None
            try:
                if victim is not None:
                    out = client.delete_faces(CollectionId=COLLECTION, FaceIds=[victim])
                else:
                    out = client.index_faces(
                        CollectionId=COLLECTION,
                        Image={"Bytes": photos[photo]},
                        ExternalImageId=external_id(photo, cycle, thread, n),
                        MaxFaces=1,
                        QualityFilter="NONE",
                    )
            except (BotoCoreError, ClientError) as exc:
                with lock:
                    if killed.is_set():
                        result.failed_after_kill += 1
                        if victim is not None:
                            result.in_doubt.add(victim)
                    else:
                        result.unexpected.append(f"thread {thread}: {exc!r}")
                return
            with lock:  # an answer means the change was committed, whenever it arrives
                if victim is not None:
                    if out["DeletedFaces"] != [victim]:
                        result.unexpected.append(f"DeleteFaces of {victim}: {out}")
                    result.deleted.add(victim)
                for record in out.get("FaceRecords", []):
                    result.acked[record["Face"]["FaceId"]] = photo
            n += 1

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(kill_after_s)
    with lock:  # from here on, a failed call is the kill's doing
        killed.set()
    server.kill()
    for t in threads:
        t.join(timeout=JOIN_TIMEOUT_S)
    if any(t.is_alive() for t in threads):
        raise RuntimeError("load threads did not finish after the server was killed")
    return result


@dataclass
class Checked:
    listed: dict[str, int]  # FaceId -> photo of every face in the collection after the restart
    index_files_count: int


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_collection(
    server: ServerProcess, photos: list[bytes], acked: dict[str, int], gone: set[str]
) -> Checked:
    """Everything acknowledged is there once, nothing deleted is back; the database, the listing,
    the search index and the index files hold the same faces.

    ``acked``: FaceId -> photo of every face that must be there (IndexFaces answered, or seen after
    an earlier restart, and not deleted since); ``gone``: every face whose DeleteFaces answered.
    """
    client = server.client()
    listed: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"CollectionId": COLLECTION, "MaxResults": LIST_PAGE}
    while True:
        page = client.list_faces(**kwargs)
        listed.extend(page["Faces"])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    ids = [f["FaceId"] for f in listed]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    _require(not dupes, f"ListFaces lists faces more than once: {dupes[:5]}")
    listed_ids = set(ids)
    missing = sorted(set(acked) - listed_ids)
    _require(not missing, f"{len(missing)} acknowledged faces are gone after the restart: {missing[:5]}")
    back = sorted(gone & listed_ids)
    _require(not back, f"{len(back)} deleted faces are back after the restart: {back[:5]}")
    for face in listed:
        _require(
            face.get("ExternalImageId") is not None and photo_of(face["ExternalImageId"]) < len(photos),
            f"face {face['FaceId']} has no valid ExternalImageId: {face.get('ExternalImageId')!r}",
        )
        if face["FaceId"] in acked:
            _require(
                photo_of(face["ExternalImageId"]) == acked[face["FaceId"]],
                f"face {face['FaceId']} came back with another photo's ExternalImageId",
            )
    count = client.describe_collection(CollectionId=COLLECTION)["FaceCount"]
    _require(count == len(listed_ids), f"DescribeCollection FaceCount {count} != ListFaces {len(listed_ids)}")
    _require(len(listed_ids) < MAX_FACES, "the collection outgrew what one search can list")

    # Every listed face (acknowledged or committed just before the kill) is found by a search with
    # its own photo at Similarity 99, and such a search finds nothing that is not listed.
    by_photo: dict[int, set[str]] = {}
    for face in listed:
        by_photo.setdefault(photo_of(face["ExternalImageId"]), set()).add(face["FaceId"])
    for photo, faces in sorted(by_photo.items()):
        hits = client.search_faces_by_image(
            CollectionId=COLLECTION, Image={"Bytes": photos[photo]}, FaceMatchThreshold=99, MaxFaces=MAX_FACES
        )
        hit_ids = {m["Face"]["FaceId"] for m in hits["FaceMatches"]}
        _require(
            not hit_ids - listed_ids, f"search returned faces ListFaces does not list: {hit_ids - listed_ids}"
        )
        lost = faces - hit_ids
        _require(
            not lost, f"{len(lost)} listed faces of photo {photo} are not found by search: {sorted(lost)[:5]}"
        )

    # The index holds exactly the listed faces: SearchFaces at threshold 0 returns all but the face.
    if listed_ids:
        probe = ids[0]
        hits = client.search_faces(
            CollectionId=COLLECTION, FaceId=probe, FaceMatchThreshold=0, MaxFaces=MAX_FACES
        )
        in_index = {m["Face"]["FaceId"] for m in hits["FaceMatches"]} | {probe}
        _require(
            in_index == listed_ids,
            f"the index answers {len(in_index)} faces, ListFaces lists {len(listed_ids)}",
        )

    # The index files on disk (written when the server rebuilt or loaded the index after the
    # restart) hold the same faces: no row half-written, none left over.
    folder = server.data_dir / "index" / f"c-{COLLECTION}"
    files_count = 0
    if listed_ids:
        meta = json.loads((folder / "meta.json").read_text())
        file_ids = (folder / "ids.txt").read_text().splitlines()
        files_count = int(meta["count"])
        _require(
            files_count == len(file_ids) == len(listed_ids) and set(file_ids) == listed_ids,
            f"index files hold {files_count} faces ({len(set(file_ids))} ids), ListFaces {len(listed_ids)}",
        )
    return Checked({f["FaceId"]: photo_of(f["ExternalImageId"]) for f in listed}, files_count)


@dataclass
class CycleResult:
    cycle: int
    kill_after_s: float
    acked: int  # IndexFaces answered in this cycle
    deleted: int  # DeleteFaces answered in this cycle
    failed_after_kill: int  # calls cut by the kill
    committed_unacknowledged: int  # faces stored although the answer was lost to the kill (allowed)
    restart_s: float
    check_s: float
    faces_total: int


def run_cycles(
    data_dir: Path, models_dir: Path, shared_data: Path, cycles: int, seed: int, log_path: Path
) -> list[CycleResult]:
    """Create the collection, then ``cycles`` load -> SIGKILL -> restart -> check rounds.

    Raises AssertionError at the first inconsistency (with the cycle number), RuntimeError if the
    server does not start. The server is stopped (killed at worst) whatever happens.
    """
    photos = lfw_photos(shared_data)
    rnd = random.Random(seed)
    server = ServerProcess(data_dir, models_dir, log_path)
    results: list[CycleResult] = []
    known: dict[str, int] = {}  # faces that must be there: answered, or seen after a restart
    gone: set[str] = set()  # faces whose deletion was answered
    try:
        server.start()
        server.client().create_collection(CollectionId=COLLECTION)
        for cycle in range(cycles):
            kill_after_s = round(rnd.uniform(*KILL_AFTER_S), 2)
            load = run_load_and_kill(server, photos, cycle, kill_after_s, sorted(known))
            _require(not load.unexpected, f"cycle {cycle}: calls failed before the kill: {load.unexpected}")
            before = set(known)
            must = {f: p for f, p in {**known, **load.acked}.items() if f not in load.deleted | load.in_doubt}
            gone |= load.deleted
            restart_s = server.start()
            t0 = time.monotonic()
            try:
                checked = check_collection(server, photos, must, gone)
            except AssertionError as exc:
                raise AssertionError(
                    f"cycle {cycle} (seed {seed}, kill after {kill_after_s} s): {exc}"
                ) from exc
            gone |= load.in_doubt - set(checked.listed)  # a cut deletion that did happen
            known = checked.listed  # whatever a restart shows must survive the next crashes too
            results.append(
                CycleResult(
                    cycle=cycle,
                    kill_after_s=kill_after_s,
                    acked=len(load.acked),
                    deleted=len(load.deleted),
                    failed_after_kill=load.failed_after_kill,
                    committed_unacknowledged=len(set(checked.listed) - before - set(load.acked)),
                    restart_s=round(restart_s, 2),
                    check_s=round(time.monotonic() - t0, 2),
                    faces_total=len(checked.listed),
                )
            )
    finally:
        server.stop()
    return results
