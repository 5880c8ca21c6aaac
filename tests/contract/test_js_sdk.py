"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-rekognition``, pinned in tests/js/package-lock.json,
installed by ``make test`` with ``npm ci``) against a real server, pointed at it only by the environment.

``tests/js/rekognition_flow.mjs`` runs one collection's life under ``node`` and prints what each call
returned as JSON; the assertions are here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.contract.conftest import RunningServer
from tests.contract.other_clients import CALL_TIMEOUT_S, ENROL, PROBE, client_environment
from tests.system import install_hint

pytestmark = [pytest.mark.models, pytest.mark.data]

JS = Path(__file__).resolve().parents[1] / "js"
SDK = JS / "node_modules/@aws-sdk/client-rekognition"
NODE_MAJOR = 20  # the SDK's engines field: node >= 20


def node() -> str:
    """The node program, checked to be one the SDK supports, with the SDK installed beside the script."""
    exe = shutil.which("node")
    assert exe, f"node is not installed: {install_hint('nodejs', 'npm')}"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    assert match and int(match[1]) >= NODE_MAJOR, (
        f"node {version}: the AWS SDK for JavaScript v3 needs Node.js >= {NODE_MAJOR}"
    )
    assert SDK.is_dir(), f"{SDK} missing: run `make js-deps` (make test does: npm ci in tests/js)"
    return exe


def test_collection_life(server: RunningServer, shared_data: Path, tmp_path: Path) -> None:
    env = client_environment(server.url, tmp_path / "home")
    probe_name, probe_path = PROBE
    enrol = [f"{name}={shared_data / path}" for name, path in ENROL.items()]
    cmd = [node(), str(JS / "rekognition_flow.mjs"), "js", str(shared_data / probe_path), *enrol]
    run = subprocess.run(
        cmd, cwd=JS, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT_S * (len(ENROL) + 2)
    )
    assert run.returncode == 0, f"node exited {run.returncode}: {run.stderr[-3000:]}"
    out = json.loads(run.stdout)

    assert out["created"]["StatusCode"] == 200 and out["created"]["CollectionArn"].endswith("collection/js")
    assert [len(i["faceIds"]) for i in out["indexed"]] == [1] * len(ENROL), out["indexed"]
    face_ids = {i["name"]: i["faceIds"][0] for i in out["indexed"]}

    assert out["search"], "SearchFacesByImage found nobody"
    assert out["search"][0]["name"] == probe_name and out["search"][0]["similarity"] >= 80

    assert [len(p) for p in out["pages"]] == [2, 2, 1]
    assert sorted(f for p in out["pages"] for f in p) == sorted(face_ids.values())
    assert out["paginated"] == out["pages"]

    error = out["error"]
    assert error is not None, "DescribeCollection of a missing collection succeeded"
    assert error["name"] == "ResourceNotFoundException" and error["status"] == 400
    assert error["fault"] == "client" and error["message"], error
    # This SDK's decorateServiceException deletes e.Message on purpose (e.message is the one it keeps);
    # the body carries both (tests/contract/test_drop_in.py), which older v3 releases read.
    assert error["message"].endswith("-missing does not exist"), error  # the server's text, not a default

    assert out["deleted"] == 200 and out["afterDelete"] == "ResourceNotFoundException"
