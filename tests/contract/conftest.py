"""A real server for the contract tests: uvicorn on 127.0.0.1 (free port) in a thread, real models.

The server's data directory is a temporary folder; its models come from the installed ``var/models``
(``models_path``). The face pipeline is loaded once per session and shared by every server start,
so stopping and starting a server on the same data directory (restart persistence) is cheap.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config

from keeneye.app import (
    build_collection_services,
    build_stream_processors,
    build_video_jobs,
    create_app,
)
from keeneye.aws.images import ImageLoader
from keeneye.config import EgressSettings, ServerSettings, Settings, VideoJobSettings
from keeneye.service.container import Services
from keeneye.service.faces.analysis import FaceService
from keeneye.store.db import Store
from tests.aws.signing import AKID, KEYS, SECRET
from tests.factories import LOOPBACK_EGRESS
from tests.pg import on_postgres

STARTUP_TIMEOUT_S = 20.0


@dataclass
class RunningServer:
    """One uvicorn server on a free port of 127.0.0.1, serving ``data_dir``."""

    data_dir: Path
    faces: FaceService
    buckets: dict[str, Path] = field(default_factory=dict)
    models_dir: Path | None = None
    video_jobs: VideoJobSettings = field(default_factory=VideoJobSettings)
    s3_endpoint: str | None = None
    database_url: str | None = None
    egress: EgressSettings = LOOPBACK_EGRESS
    url: str = ""
    services: Services | None = None
    app: Any = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _stores: list[Store] = field(default_factory=list)

    def start(self) -> RunningServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # The settings name the real socket (the egress policy refuses it as a camera or sink) and allow
        # loopback: the test cameras, webhooks and brokers listen on 127.0.0.1.
        settings = Settings(
            data_dir=self.data_dir,
            database_url=self.database_url,
            models_path=self.models_dir,
            server=ServerSettings(host="127.0.0.1", port=port, buckets=self.buckets),
            video_jobs=self.video_jobs,
            egress=self.egress,
        )
        collections, audit = build_collection_services(settings, self.faces)
        images = ImageLoader(dict(self.buckets), self.s3_endpoint)
        store = collections.store  # one store per server, as build_services makes (closed at its stop)
        jobs = build_video_jobs(
            settings, images, self.faces, collections=collections, audit=audit, store=store
        )
        processors = build_stream_processors(settings, collections, audit, jobs, store=store)
        self.services = Services(self.faces, images, collections, audit, jobs, stream_processors=processors)
        self.app = create_app(settings, services=self.services, keys=KEYS)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            assert not self._thread.is_alive(), "the test server did not stop"
        self._server = self._thread = None
        for store in self._stores:  # on PostgreSQL an open pool keeps connections (ResourceWarning)
            store.close()
        self._stores.clear()

    def open_store(self) -> Store:
        """A store on this server's database, as ``keeneye keys`` opens one beside a running server;
        closed when the server stops."""
        store = Store.open(self.data_dir, self.database_url)
        self._stores.append(store)
        return store

    def client(self, **kwargs: Any) -> Any:
        """A boto3 Rekognition client for this server (keyword arguments override the defaults)."""
        config = kwargs.pop("config", None) or Config(retries={"max_attempts": 1, "mode": "standard"})
        args: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": "us-east-1",
            "aws_access_key_id": AKID,
            "aws_secret_access_key": SECRET,
            "config": config,
        }
        args.update(kwargs)
        client = boto3.session.Session().client("rekognition", **args)
        client.meta.events.register("after-call.rekognition.*", check_response_shape)
        return client


def check_response_shape(http_response: Any, model: Any, **_: Any) -> None:
    """Fail on any member the service model does not define: botocore would silently drop it."""
    if http_response.status_code >= 300 or model.output_shape is None:
        return
    problems: list[str] = []
    _check(json.loads(http_response.content or b"{}"), model.output_shape, model.name, problems)
    assert not problems, f"{model.name} response does not match the model: {problems}"


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "timestamp": (int, float),
}


def _check(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object")
            return
        for key, v in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not in the model")
            else:
                _check(v, shape.members[key], f"{path}.{key}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            _check(v, shape.member, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
    elif kind in _JSON_TYPES:
        if not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            problems.append(f"{path}: {value!r} is not a {kind}")
        elif kind == "string" and shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")


@pytest.fixture(scope="session")
def face_service(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceService:
    from keeneye.analysis.builder import build_face_analyzer

    settings = Settings(data_dir=tmp_path_factory.mktemp("unused"), models_path=models_dir)
    return FaceService(build_face_analyzer(settings, with_embedder=True), settings.images)


@pytest.fixture
def start_server(
    face_service: FaceService, tmp_path: Path, models_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningServer]]:
    """Start servers (stopped at the end of the test); pass ``data_dir`` to reuse one, ``video_jobs``
    for the stored-video job settings, ``s3_endpoint`` for buckets behind an S3 API, ``database_url``
    to share a database between data directories (several servers on one PostgreSQL database),
    ``egress`` for another egress policy than the tests' (loopback allowed).

    With ``KEENEYE_TEST_DATABASE=postgresql`` each data directory gets a new PostgreSQL database of its
    own (the same one when a server starts again on it), as it gets its own SQLite file otherwise."""
    running: list[RunningServer] = []
    databases: dict[Path, str | None] = {}

    def start(
        data_dir: Path | None = None,
        buckets: dict[str, Path] | None = None,
        video_jobs: VideoJobSettings | None = None,
        s3_endpoint: str | None = None,
        database_url: str | None = None,
        egress: EgressSettings = LOOPBACK_EGRESS,
    ) -> RunningServer:
        data_dir = data_dir or tmp_path / "data"
        if database_url is None and data_dir not in databases:
            databases[data_dir] = (
                request.getfixturevalue("postgres").create_database() if on_postgres() else None
            )
        server = RunningServer(
            data_dir,
            face_service,
            buckets or {},
            models_dir,
            video_jobs or VideoJobSettings(),
            s3_endpoint,
            database_url or databases[data_dir],
            egress,
        ).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


@pytest.fixture
def rekognition(server: RunningServer) -> Any:
    return server.client()


def wait_for_job(
    client: Any, get: str, job_id: str, *, timeout_s: float = 60.0, max_results: int = 1
) -> dict[str, Any]:
    """Poll a stored-video job with ``client.<get>`` (e.g. ``get_face_search``) until it is no longer
    IN_PROGRESS (bounded by ``timeout_s``); the last response."""
    deadline = time.monotonic() + timeout_s
    while True:
        r: dict[str, Any] = getattr(client, get)(JobId=job_id, MaxResults=max_results)
        if r["JobStatus"] != "IN_PROGRESS":
            return r
        assert time.monotonic() < deadline, f"job {job_id} still IN_PROGRESS after {timeout_s} s"
        time.sleep(0.2)


def all_persons(client: Any, get: str, job_id: str, sort_by: str, page_size: int) -> list[dict[str, Any]]:
    """Every ``Persons`` item of a job, page by page (each page checked against ``page_size``)."""
    persons: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"JobId": job_id, "MaxResults": page_size, "SortBy": sort_by}
    while True:
        r = getattr(client, get)(**kwargs)
        assert len(r["Persons"]) <= page_size
        persons += r["Persons"]
        if "NextToken" not in r:
            return persons
        kwargs["NextToken"] = r["NextToken"]
