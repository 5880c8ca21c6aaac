"""``keeneye watch`` as a user runs it: a subprocess over the Hamilton clip served by a real RTSP server.

The collection (one photo each of Lin-Manuel Miranda and Alex Lacamoire) is built in a temporary data
directory as tests/cli/test_track_collection.py does; the clip's 2.8-7.0 s shot shows Lin-Manuel singing.
Every wait is bounded: the subprocess by ``--duration`` and run()'s timeout, the interrupted one by a
deadline on reading its output.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

from keeneye.aws.stream_records import shape_problems
from keeneye.service.governance.audit import AuditLog
from keeneye.store.db import Store
from tests.cli.test_cli import KEENEYE, assert_one_line_error, run
from tests.cli.test_track_collection import _data_dir
from tests.receivers import free_port, webhook_receiver
from tests.rtsp.rig import RtspServer, hamilton_rtsp

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here


def _matched_names(record: dict[str, object]) -> set[str]:
    faces = record["FaceSearchResponse"]
    assert isinstance(faces, list)
    return {m["Face"]["ExternalImageId"] for f in faces for m in f["MatchedFaces"]}


@pytest.mark.models
@pytest.mark.data
def test_json_records_name_lin_manuel_only(
    tmp_path: Path, models_dir: Path, shared_data: Path, hamilton_rtsp: RtspServer
) -> None:
    data = _data_dir(tmp_path, models_dir, shared_data)
    jsonl = tmp_path / "out" / "records.jsonl"
    jsonl.parent.mkdir()
    with webhook_receiver() as receiver:
        proc = run(
            "watch",
            hamilton_rtsp.url,
            "--collection",
            "hamilton",
            "--json",
            "--duration",
            "12",
            "--sink",
            f"file://{jsonl}",
            "--sink",
            receiver.url,
            data_dir=data,
        )
        received = [m.body for m in receiver.messages()]
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records, proc.stderr
    for record in records:
        assert shape_problems(record) == [], record
        assert record["Keeneye"]["Kind"] == "face"
    names = set().union(*(_matched_names(r) for r in records))
    assert names == {"lin-manuel-miranda"}, names
    assert {r["Keeneye"]["Identity"] for r in records} <= {"lin-manuel-miranda", None}
    # The sinks got exactly what was printed, in order.
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == records == received
    summary = [line for line in proc.stderr.splitlines() if line.startswith("keeneye: stopped:")]
    assert len(summary) == 1 and "latency p50" in summary[0], proc.stderr
    # The matches reported are audited once for the run.
    store = Store.open(data, None)
    try:
        audit = [
            r
            for r in AuditLog(store).read(collection_id="hamilton")
            if r["operation"] == "keeneye watch --collection"
        ]
    finally:
        store.close()
    matched = [r for r in records if _matched_names(r)]
    assert len(audit) == 1 and len(audit[0]["matches"]) == len(matched) and audit[0]["threshold"] == 80.0


def _saw_both(lines: list[str]) -> bool:
    return any("lin-manuel-miranda" in x for x in lines) and any("person appeared" in x for x in lines)


@pytest.mark.models
@pytest.mark.data
def test_human_output_and_ctrl_c(
    tmp_path: Path, models_dir: Path, shared_data: Path, hamilton_rtsp: RtspServer
) -> None:
    """Readable lines as events happen (faces and persons together); SIGINT ends with a summary, exit 0."""
    data = _data_dir(tmp_path, models_dir, shared_data)
    env = dict(os.environ, KEENEYE_DATA_DIR=str(data), COLUMNS="200")
    args = ["watch", hamilton_rtsp.url, "--collection", "hamilton", "--persons", "--duration", "60"]
    proc = subprocess.Popen(
        [*KEENEYE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 45.0
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and not _saw_both(lines):
                if sel.select(timeout=1.0):
                    line = proc.stdout.readline()
                    if not line:
                        break
                    lines.append(line)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    lines += out.splitlines()
    assert proc.returncode == 0, err
    matched = [x for x in lines if "lin-manuel-miranda" in x]
    assert matched and "Similarity" in matched[0], lines
    assert any("person appeared" in x for x in lines), lines
    assert "keeneye: stopped:" in err and "Traceback" not in err, err


@pytest.mark.models
def test_unreachable_camera_is_reported_not_silent(models_dir: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens there
    proc = run("watch", url, "--persons", "--duration", "3")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{url}: reconnecting after: " in proc.stderr and "Connection refused" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("keeneye: error: StreamUnavailable: no frame from")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["rtsp://127.0.0.1:8554/cam"], "--collection ID (face search), --persons"),
        (["ftp://127.0.0.1/cam", "--persons"], "expected a camera URL"),
        (["rtsp://", "--persons"], "names no host"),
        (["file:///no/such/clip.mp4", "--persons"], "no such file"),
        (["rtsp://127.0.0.1/cam", "--collection", "c", "--line", "door:0.5,1,0.5,0"], "add --persons"),
        (["rtsp://127.0.0.1/cam", "--persons", "--line", "door:0.5,1,0.5"], "4 numbers"),
        (["rtsp://127.0.0.1/cam", "--persons", "--line", "a:0,0,1,1", "--line", "a:1,0,0,1"], "unique"),
        (["rtsp://127.0.0.1/cam", "--persons", "--sink", "mqtt://broker"], "needs a topic"),
        (["rtsp://127.0.0.1/cam", "--persons", "--sink", "file://"], "needs a file name"),
        (
            ["rtsp://127.0.0.1/cam", "--persons", "--sink", "ftp://host/x"],
            "sink 'ftp://host/x': not a sink URL",
        ),
        (["file:///x.mp4", "--persons", "--listen"], "--listen takes an rtsp:// or rtmp://"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], needle: str) -> None:
    assert_one_line_error(run("watch", *args), needle)


@pytest.mark.models
@pytest.mark.data
def test_unknown_collection_is_one_line_error(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    data = _data_dir(tmp_path, models_dir, shared_data)
    proc = run("watch", "rtsp://127.0.0.1/cam", "--collection", "nobody", data_dir=data)
    assert_one_line_error(proc, "nobody")
