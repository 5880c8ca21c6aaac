"""``keeneye batch --task index-faces`` builds a collection that the server then searches through boto3.

A small LFW watchlist (the gallery photo of 8 people of the identification protocol) is indexed by the
batch command (a subprocess, local engine) into a data directory; a server started on that directory
finds each person's *other* photo with SearchFacesByImage, and a stranger matches nobody at 99.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.contract.conftest import RunningServer
from tests.factories import settings_with_models

pytestmark = [pytest.mark.models, pytest.mark.data]

PEOPLE = 8


def test_batch_indexed_collection_is_searched_through_boto3(
    start_server: Callable[..., RunningServer],
    shared_data: Path,
    models_dir: Path,
    tmp_path: Path,
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = shared_data / "faces" / "lfw"
    by_role: dict[str, dict[str, list[Path]]] = {"gallery": {}, "probe_known": {}, "probe_unknown": {}}
    with (shared_data / "faces" / "lfw_protocol" / "identification_protocol.csv").open() as f:
        for row in csv.DictReader(f):
            by_role[row["role"]].setdefault(row["identity"], []).append(root / row["image"])
    people = sorted(by_role["gallery"])[:PEOPLE]
    watchlist = tmp_path / "watchlist"
    watchlist.mkdir()
    for person in people:
        photo = by_role["gallery"][person][0]
        (watchlist / f"{person}.jpg").write_bytes(photo.read_bytes())

    data = settings_with_models(tmp_path, models_dir).data_dir
    out = tmp_path / "out"
    if database_url is not None:  # the PostgreSQL run: the command writes where the server reads
        monkeypatch.setenv("KEENEYE_DATABASE_URL", database_url)
    proc = run(
        "batch", watchlist, "--task", "index-faces", "--collection", "lfw", "--create-collection",
        "--output", out, "--workers", "1", data_dir=data,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] == PEOPLE and summary["errors"] == 0

    # Adding faces to a watchlist is audited, as IndexFaces on the server is.
    from keeneye.service.governance.audit import AuditLog
    from keeneye.store.db import Store

    store = Store.open(data, database_url)
    try:
        records = [r for r in AuditLog(store).read() if r["operation"] == "keeneye batch index-faces"]
    finally:
        store.close()
    assert sum(len(r["matches"]) for r in records) == PEOPLE and records[0]["access_key"] == "cli"

    client = start_server(data_dir=data, database_url=database_url).client()
    assert client.describe_collection(CollectionId="lfw")["FaceCount"] == PEOPLE
    for person in people:
        probe = by_role["probe_known"][person][0].read_bytes()
        hits = client.search_faces_by_image(CollectionId="lfw", Image={"Bytes": probe}, MaxFaces=1)
        assert hits["FaceMatches"], f"{person} not found"
        assert hits["FaceMatches"][0]["Face"]["ExternalImageId"] == f"{person}.jpg"
    stranger = next(iter(by_role["probe_unknown"].values()))[0].read_bytes()
    hits = client.search_faces_by_image(CollectionId="lfw", Image={"Bytes": stranger}, FaceMatchThreshold=99)
    assert hits["FaceMatches"] == []
