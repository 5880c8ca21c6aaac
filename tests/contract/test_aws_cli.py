"""The AWS CLI (v1, from PyPI: a dev dependency) against a real server, pointed at it only by the
environment (AWS_ENDPOINT_URL_REKOGNITION / AWS_ENDPOINT_URL and the standard key-pair variables).

The CLI runs as a subprocess, as a user would run it: its own imports' warnings do not reach pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import RunningServer
from tests.contract.other_clients import CALL_TIMEOUT_S, ENROL, PROBE, client_environment

pytestmark = [pytest.mark.models, pytest.mark.data]

AWS = Path(sys.executable).parent / "aws"


def aws(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``aws rekognition ARGS --output json`` with bounded connect and read timeouts."""
    assert AWS.is_file(), f"{AWS} missing: the AWS CLI is a dev dependency (make test installs it)"
    cmd = [str(AWS), "rekognition", *args, "--output", "json"]
    cmd += ["--cli-connect-timeout", "5", "--cli-read-timeout", str(CALL_TIMEOUT_S)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT_S + 30)


def ok(env: dict[str, str], *args: str) -> Any:
    """The JSON output of a call that must succeed."""
    result = aws(env, *args)
    assert result.returncode == 0, f"aws rekognition {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_collection_life(server: RunningServer, shared_data: Path, tmp_path: Path) -> None:
    env = client_environment(server.url, tmp_path / "home")
    created = ok(env, "create-collection", "--collection-id", "cli")
    assert created["StatusCode"] == 200 and created["CollectionArn"].endswith("collection/cli")

    face_ids: dict[str, str] = {}
    for name, path in ENROL.items():
        out = ok(
            env,
            "index-faces",
            "--collection-id",
            "cli",
            "--image-bytes",
            f"fileb://{shared_data / path}",
            "--external-image-id",
            name,
            "--max-faces",
            "1",
        )
        assert len(out["FaceRecords"]) == 1, f"{path}: {out}"
        face_ids[name] = out["FaceRecords"][0]["Face"]["FaceId"]

    probe_name, probe_path = PROBE
    probe = f"fileb://{shared_data / probe_path}"
    found = ok(env, "search-faces-by-image", "--collection-id", "cli", "--image-bytes", probe)
    assert found["FaceMatches"], found
    best = found["FaceMatches"][0]
    assert best["Face"]["ExternalImageId"] == probe_name and best["Face"]["FaceId"] == face_ids[probe_name]
    assert best["Similarity"] >= 80

    # Pages by hand: the server's MaxResults and NextToken, the CLI's own paginator off.
    pages: list[list[str]] = []
    token: list[str] = []
    while True:
        page = ok(env, "list-faces", "--collection-id", "cli", "--max-results", "2", "--no-paginate", *token)
        pages.append([f["FaceId"] for f in page["Faces"]])
        if "NextToken" not in page:
            break
        token = ["--next-token", page["NextToken"]]
        assert len(pages) <= len(ENROL), "NextToken never ends"
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(f for p in pages for f in p) == sorted(face_ids.values())
    # The CLI's paginator: it follows NextToken itself, two faces a request, and merges the pages.
    merged = ok(env, "list-faces", "--collection-id", "cli", "--page-size", "2")
    assert sorted(f["FaceId"] for f in merged["Faces"]) == sorted(face_ids.values())

    missing = aws(env, "describe-collection", "--collection-id", "cli-missing")
    assert missing.returncode != 0 and not missing.stdout
    expected = "An error occurred (ResourceNotFoundException) when calling the DescribeCollection operation: "
    assert expected in missing.stderr, missing.stderr
    assert missing.stderr.split("operation: ", 1)[1].strip(), "the error has no message"

    ok(env, "delete-collection", "--collection-id", "cli")
    gone = aws(env, "describe-collection", "--collection-id", "cli")
    assert "(ResourceNotFoundException)" in gone.stderr, gone.stderr


def test_aws_endpoint_url_serves_too(server: RunningServer, tmp_path: Path) -> None:
    """The general variable works too (for a user who points every AWS client at one place)."""
    env = client_environment(server.url, tmp_path / "home", variable="AWS_ENDPOINT_URL")
    ok(env, "create-collection", "--collection-id", "general")
    assert ok(env, "list-collections")["CollectionIds"] == ["general"]
