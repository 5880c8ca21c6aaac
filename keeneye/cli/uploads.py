"""``keeneye watch-folder``: index or search the faces of every new or replaced image in a folder.

The folder is watched with watchdog (inotify on Linux) and scanned once at start. A file is read once
its size and modification time have not changed for ``uploads.stable_s`` (a copy still being
written is not read half-way). Each file version is recorded in the data directory's store like an
S3 upload event (keeneye/service/uploads/service.py) under the key (folder, relative path, SHA-256 of the
content): a restart, or the same bytes copied again, does not process it again; new bytes under the
same name do. One JSON line per processed file on stdout (another when a transient failure, such as
a sink down, is retried); audited like upload events (no access key: the operator who started the
command). Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from keeneye.cli.common import DataDirOption, load_settings, user_errors
from keeneye.core.errors import InvalidParameter

if TYPE_CHECKING:
    from keeneye.config import Settings
    from keeneye.service.faces.collections import FaceCollections
    from keeneye.service.uploads.service import EventInfo, UploadRule, UploadService
    from keeneye.streams.sinks import SinkSpec

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
POLL_S = 0.2


def parse_sink(text: str) -> SinkSpec:
    """``--sink``: an http(s) URL (webhook), a plain ``NAME.jsonl`` (a JSONL file in the data
    directory's notifications folder) or a JSON sink spec (``{"mqtt": {...}}``)."""
    from pydantic import ValidationError

    from keeneye.streams.sinks import SinkSpec

    text = text.strip()
    if text.startswith(("http://", "https://")):
        doc: Any = {"webhook": {"url": text}}
    elif text.endswith(".jsonl") and not text.startswith("{"):
        doc = {"jsonl": {"name": text}}
    else:
        try:
            doc = json.loads(text)
        except ValueError:
            raise InvalidParameter("--sink wants an http(s) URL, NAME.jsonl or a JSON sink spec") from None
    try:
        return SinkSpec.model_validate(doc)
    except ValidationError as exc:
        raise InvalidParameter(f"--sink: {exc.errors()[0]['msg']}") from None


class _Pending:
    """Files seen changing, with the (size, mtime_ns) last seen and since when it has not changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[tuple[int, int] | None, float]] = {}

    def add(self, path: Path) -> None:
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            with self._lock:
                self._files[path] = (None, time.monotonic())

    def stable(self, stable_s: float) -> list[Path]:
        """The files unchanged for ``stable_s`` (taken off the list); vanished ones are dropped."""
        ready: list[Path] = []
        now = time.monotonic()
        with self._lock:
            for path, (seen, since) in list(self._files.items()):
                try:
                    st = path.stat()
                except OSError:
                    del self._files[path]
                    continue
                current = (st.st_size, st.st_mtime_ns)
                if current != seen:
                    self._files[path] = (current, now)
                elif now - since >= stable_s and st.st_size > 0:
                    ready.append(path)
                    del self._files[path]
        return ready


def _process_file(service: UploadService, rule: UploadRule, root: Path, path: Path) -> dict[str, Any] | None:
    """Record and process one file version; its JSON line, or None when it was processed before."""
    from keeneye.service.uploads.service import ObjectRef

    try:
        data = path.read_bytes()
    except OSError:
        return None  # gone (or unreadable) since it was seen: a new event will bring it back
    ref = ObjectRef(
        bucket=str(root),
        key=path.relative_to(root).as_posix(),
        version_id=None,
        etag=hashlib.sha256(data).hexdigest(),
        sequencer="",
        size=len(data),
        event_name="watch-folder",
        source="folder",
    )
    event_id, new = service.record(ref, rule, None)
    if not new:
        return None
    return _line_of(root, service.process(event_id, data))


def _line_of(root: Path, info: EventInfo) -> dict[str, Any]:
    """The JSON line of a processed file (queued: a transient failure, retried later)."""
    line: dict[str, Any] = {"file": str(root / info.key), "event_id": info.event_id, "state": info.state}
    if info.result is not None:
        line.update(info.result)
    if info.last_error is not None and info.state != "succeeded":
        line["error"] = info.last_error
    return line


def _print_line(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _read_file(root: Path, bucket: str, key: str) -> bytes:
    """A watched file again (the retry of an event): only inside the watched folder."""
    path = (Path(bucket) / key).resolve()
    if Path(bucket) != root or not path.is_relative_to(root):
        raise InvalidParameter(f"{key!r} is not in the watched folder")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror or exc}") from None


def watch_folder(
    folder: Path = typer.Argument(..., help="The folder to watch (and its subfolders)"),
    task: str = typer.Option(..., "--task", help="index-faces or search-faces"),
    collection: str = typer.Option(..., "--collection", help="The collection to index into or search"),
    threshold: float = typer.Option(80.0, "--threshold", help="search-faces: least Similarity (0-100)"),
    sink: str | None = typer.Option(
        None, "--sink", help="search-faces: where matches go: http(s) URL, NAME.jsonl or a JSON sink spec"
    ),
    external_image_id: str = typer.Option(
        "key", "--external-image-id", help="index-faces: ExternalImageId from the relative path (key) or name"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Index or search the faces of each new or replaced image in FOLDER, once; one JSON line each."""
    with user_errors():
        settings = load_settings(data_dir)
        root = folder.resolve()
        if not root.is_dir():
            raise InvalidParameter(f"{folder} is not a folder")
        rule = _rule(task, collection, threshold, sink, external_image_id)
        service, collections = _folder_service(settings, root, collection)
        try:
            _watch(root, service, rule, settings.uploads.stable_s, f"({task}, collection {collection})")
        finally:
            collections.close()


def _rule(
    task: str, collection: str, threshold: float, sink: str | None, external_image_id: str
) -> UploadRule:
    """The command's options as an upload rule (InvalidParameter for a bad combination)."""
    from keeneye.service.uploads.service import UploadRule

    if task not in ("index-faces", "search-faces"):
        raise InvalidParameter("--task is index-faces or search-faces")
    if external_image_id not in ("key", "basename"):
        raise InvalidParameter("--external-image-id is key or basename")
    mode: Literal["key", "basename"] = "key" if external_image_id == "key" else "basename"
    spec = parse_sink(sink) if sink is not None else None
    if spec is not None and task != "search-faces":
        raise InvalidParameter("--sink is for --task search-faces")
    return UploadRule(
        task="index-faces" if task == "index-faces" else "search-faces",
        collection_id=collection,
        external_image_id=mode,
        threshold=threshold,
        sink=spec,
    )


def _folder_service(settings: Settings, root: Path, collection: str) -> tuple[UploadService, FaceCollections]:
    """The upload service of the data directory, reading files of ``root``; the collection must exist
    (NotFound now, not at the first file). Events interrupted by an earlier run are queued again."""
    from keeneye.service.builder import ServiceBuilder
    from keeneye.service.review.queue import ReviewQueue
    from keeneye.service.uploads.service import UploadService
    from keeneye.streams.egress import EgressPolicy

    services = ServiceBuilder(settings)
    collections = services.collections
    collections.describe_collection(collection)
    service = UploadService(
        services.store,
        collections,
        settings.uploads,
        read=lambda bucket, key, _version: _read_file(root, bucket, key),
        audit=services.audit,
        jsonl_dir=settings.data_dir / "notifications",
        egress=EgressPolicy.unrestricted(),  # the operator's own --sink (docs/security.md)
        # Matches are queued for review as the server's are; a collection that requires review holds
        # the --sink record until a reviewer (on the server) confirms it: run_due sees the decision.
        review=ReviewQueue(services.store, audit=services.audit),
    )
    service.requeue_interrupted("folder")
    return service, collections


def _watch(root: Path, service: UploadService, rule: UploadRule, stable_s: float, what: str) -> None:
    """Process what is in ``root`` and what appears there, until Ctrl-C or SIGTERM (``what``: said on
    stderr once watching)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    pending = _Pending()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.is_directory:
                return
            for name in (event.src_path, getattr(event, "dest_path", "")):
                if name:
                    pending.add(Path(str(name)))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    observer = Observer()
    observer.schedule(Handler(), str(root), recursive=True)
    observer.start()
    for path in sorted(root.rglob("*")):  # what is there already (a restart skips what was done)
        if path.is_file():
            pending.add(path)
    typer.echo(f"keeneye: watching {root} {what}", err=True)
    try:
        while not stop.is_set():
            for path in pending.stable(stable_s):
                line = _process_file(service, rule, root, path)
                if line is not None:
                    _print_line(line)
            for info in service.run_due("folder"):  # retries of transient failures (a sink down)
                _print_line(_line_of(root, info))
            stop.wait(POLL_S)
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        observer.join(timeout=5)
