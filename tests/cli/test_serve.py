"""`keeneye serve` as a user runs it: a subprocess, a fresh data directory, boto3 over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

pytestmark = [pytest.mark.models, pytest.mark.data]

STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(models_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEENEYE_", "AWS_"))}
    env["KEENEYE_MODELS_PATH"] = str(models_dir)
    return env


def _start(data: Path, models_dir: Path, port: int) -> subprocess.Popen[str]:
    """`keeneye serve` on 127.0.0.1:port with a clean environment, once /v1/health answers (bounded wait)."""
    cmd = [sys.executable, "-m", "keeneye.cli", "serve", "--port", str(port), "--data-dir", str(data)]
    env = _clean_env(models_dir)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert proc.poll() is None, proc.communicate(timeout=5)[1]
        assert time.monotonic() < deadline, "keeneye serve did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)


def test_serve_creates_credentials_and_answers_boto3(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    port = free_port()
    data = tmp_path / "data"
    proc = _start(data, models_dir, port)
    try:
        creds_file = data / "credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        creds = json.loads(creds_file.read_text())
        assert len(creds["access_key_id"]) == 20 and creds["access_key_id"].startswith("AKIA")
        assert len(creds["secret_access_key"]) == 40
        client = boto3.session.Session().client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-central-1",
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=Config(retries={"max_attempts": 1}),
        )
        photo = (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()
        client.create_collection(CollectionId="cli")
        client.index_faces(CollectionId="cli", Image={"Bytes": photo})
        out = client.search_faces_by_image(CollectionId="cli", Image={"Bytes": photo})
        assert len(out["FaceMatches"]) == 1
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert str(creds_file) in stderr and creds["access_key_id"] in stderr
    assert creds["secret_access_key"] not in stderr
    # The audit command reads what the server wrote.
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "keeneye.cli",
            "audit",
            "--json",
            "--collection",
            "eu-central-1/cli",  # signed for eu-central-1: the collection is that region's (REGION/ID)
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(models_dir),
    )
    assert audit.returncode == 0, audit.stderr
    records = json.loads(audit.stdout)
    assert [r["operation"] for r in records] == ["IndexFaces", "SearchFacesByImage"]
    assert records[1]["access_key"] == creds["access_key_id"] and records[1]["flagged_below_99"]
    text = subprocess.run(
        [sys.executable, "-m", "keeneye.cli", "audit", "--data-dir", str(data), "--since", "2000-01-01"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(models_dir),
    )
    assert text.returncode == 0 and "[below 99]" in text.stdout
    assert "SearchFacesByImage eu-central-1/cli" in text.stdout


def test_a_fresh_data_dir_serves_with_the_shared_models(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    """Models live in one shared place (~/.local/share/keeneye/models, here under XDG_DATA_HOME), not in
    the data directory: `keeneye serve --data-dir NEW` serves at once, with no models installed in NEW."""
    xdg = tmp_path / "xdg"
    (xdg / "keeneye").mkdir(parents=True)
    (xdg / "keeneye" / "models").symlink_to(models_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEENEYE_", "AWS_", "XDG_"))}
    env["XDG_DATA_HOME"] = str(xdg)
    data, port = tmp_path / "srv-keeneye", free_port()
    cmd = [sys.executable, "-m", "keeneye.cli", "serve", "--port", str(port), "--data-dir", str(data)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.communicate(timeout=5)[1]
            assert time.monotonic() < deadline, "keeneye serve did not start"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert not (data / "models").exists()
        assert health.json()["face_model"]["face_model_version"] == "7.0"
        creds = json.loads((data / "credentials.json").read_text())
        client = boto3.session.Session().client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=Config(retries={"max_attempts": 1}),
        )
        photo = (shared_data / "faces/face_recognition/obama3.jpg").read_bytes()
        assert len(client.detect_faces(Image={"Bytes": photo})["FaceDetails"]) == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_refuses_half_set_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEENEYE_")}
    env["KEENEYE_ACCESS_KEY_ID"] = "AKIAONLYTHEIDISSET00"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "keeneye.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (
        proc.returncode == 1 and "KEENEYE_SECRET_ACCESS_KEY" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_serve_bad_bucket_option(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keeneye.cli", "serve", "--data-dir", str(tmp_path), "--bucket", "nofolder"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "NAME=FOLDER" in proc.stderr


def test_acknowledged_faces_survive_kill_9(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    """IndexFaces answered -> the face is on disk: SIGKILL (no shutdown hook runs, index files are not
    saved) and a restart on the same data directory still list and find every acknowledged face."""
    data, port = tmp_path / "data", free_port()
    proc = _start(data, models_dir, port)
    creds = json.loads((data / "credentials.json").read_text())

    def client() -> object:
        return boto3.session.Session().client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=Config(retries={"max_attempts": 1}),
        )

    lfw = shared_data / "faces/lfw"
    people = ["Colin_Powell", "Tony_Blair", "Gerhard_Schroeder"]
    try:
        rek = client()
        rek.create_collection(CollectionId="durable")  # type: ignore[attr-defined]
        acked = {}
        for name in people:
            out = rek.index_faces(  # type: ignore[attr-defined]
                CollectionId="durable",
                Image={"Bytes": (lfw / name / f"{name}_0001.jpg").read_bytes()},
                ExternalImageId=name,
                MaxFaces=1,
            )
            acked[out["FaceRecords"][0]["Face"]["FaceId"]] = name
    finally:
        proc.kill()  # SIGKILL
        proc.communicate(timeout=30)
    proc = _start(data, models_dir, port)
    try:
        rek = client()
        listed = rek.list_faces(CollectionId="durable")["Faces"]  # type: ignore[attr-defined]
        assert {f["FaceId"] for f in listed} == set(acked)
        for name in people:
            probe = (lfw / name / f"{name}_0002.jpg").read_bytes()
            out = rek.search_faces_by_image(  # type: ignore[attr-defined]
                CollectionId="durable", Image={"Bytes": probe}, FaceMatchThreshold=0, MaxFaces=1
            )
            assert acked[out["FaceMatches"][0]["Face"]["FaceId"]] == name
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
