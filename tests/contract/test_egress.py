"""The SSRF findings of issue 13 (item 2) as an attacker with a key would try them against a real server:
every place a URL is registered refuses the metadata address (also as IPv4-mapped IPv6), keeneye's own
port and, for sinks, the LAN, with InvalidParameter(Exception) naming the rule. Nothing is started:
refusals happen at registration (and again at Start, once the policy is narrowed), and the one address
accepted (a LAN camera) is never connected to.
The server allows loopback (its test cameras listen there) and knows its own port
(tests/contract/conftest.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from keeneye.config import EgressSettings
from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer

pytestmark = [pytest.mark.models]

AUTH = {"Authorization": f"Bearer {SECRET}"}
ROLE = "arn:aws:iam::000000000000:role/keeneye"
TOPIC = "arn:aws:sns:us-east-1:123456789012:jobs"
IMDS = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
IMDS_MAPPED = "http://[::ffff:169.254.169.254]/latest/meta-data/"


def _refused(response: httpx.Response, rule: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter" and "egress policy" in error["message"], error
    assert rule in error["message"], error


def _aws_error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_native_registrations_refuse_ssrf_targets(server: RunningServer) -> None:
    with httpx.Client(base_url=f"{server.url}/v1", headers=AUTH, timeout=10) as api:
        _registrations_refuse(api, f"http://127.0.0.1:{server.url.rsplit(':', 1)[1]}/v1/metrics")


def _registrations_refuse(api: httpx.Client, own: str) -> None:
    for url, rule in (
        (IMDS, "cloud metadata address"),
        ("rtsp://[::ffff:169.254.169.254]/stream", "cloud metadata address"),
        (own, "keeneye's own listening address and port"),
        ("http://0.0.0.0:9000/", "unspecified address"),
    ):
        _refused(api.put("/cameras/lobby", json={"url": url}), rule)
    _refused(
        api.put("/data-streams/alerts", json={"webhook": {"url": IMDS_MAPPED}}), "cloud metadata address"
    )
    _refused(api.put("/data-streams/alerts", json={"webhook": {"url": own}}), "own listening")
    _refused(
        api.put("/data-streams/alerts", json={"mqtt": {"host": "10.0.0.1", "topic": "t"}}),
        "private-network address",
    )
    _refused(api.put(f"/notification-channels/{TOPIC}", json={"webhook": {"url": IMDS}}), "cloud metadata")
    _refused(
        api.put(f"/notification-channels/{TOPIC}", json={"mqtt": {"host": "192.168.1.2", "topic": "t"}}),
        "private-network address",
    )
    # A LAN camera is the normal case: accepted (a decision only: it is never started here).
    assert api.put("/cameras/lan", json={"url": "rtsp://10.0.0.1/stream"}).status_code == 200
    assert api.get("/cameras").json()["cameras"][0]["name"] == "lan"
    assert api.get("/data-streams").json()["data_streams"] == []
    assert api.get("/notification-channels").json()["channels"] == []


def test_upload_rule_sinks_are_checked(server: RunningServer) -> None:
    client = server.client()
    client.create_collection(CollectionId="staff")
    rule = {"task": "search-faces", "collection_id": "staff", "sink": {"webhook": {"url": IMDS_MAPPED}}}
    response = httpx.put(f"{server.url}/v1/upload-rules/photos", json=rule, headers=AUTH, timeout=10)
    _refused(response, "cloud metadata address")


def test_create_stream_processor_refuses_ssrf_inputs_and_outputs(server: RunningServer) -> None:
    client = server.client()
    own = f"http://127.0.0.1:{server.url.rsplit(':', 1)[1]}/v1/metrics"
    person = {"ConnectedHome": {"Labels": ["PERSON"]}}
    cases = [
        (IMDS, "file://out.jsonl", "cloud metadata address"),
        ("rtsp://[::ffff:a9fe:a9fe]/cam", "file://out.jsonl", "cloud metadata address"),
        (own, "file://out.jsonl", "keeneye's own listening address and port"),
        ("rtsp://127.0.0.1:8554/cam", IMDS_MAPPED, "cloud metadata address"),
        ("rtsp://127.0.0.1:8554/cam", own, "own listening"),
        ("rtsp://127.0.0.1:8554/cam", "mqtt://10.0.0.1:1883/keeneye", "private-network address"),
    ]
    for input_url, output_url, rule in cases:
        code, message = _aws_error(
            lambda i=input_url, o=output_url: client.create_stream_processor(  # type: ignore[misc]
                Name="probe",
                Input={"KinesisVideoStream": {"Arn": i}},
                Output={"KinesisDataStream": {"Arn": o}},
                Settings=person,
                RoleArn=ROLE,
            )
        )
        assert code == "InvalidParameterException" and rule in message, (input_url, output_url, message)
        assert "egress policy" in message
    assert client.list_stream_processors()["StreamProcessors"] == []


def test_start_checks_the_egress_policy_again(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """A processor created while its camera's network was allowed is refused at Start once the policy
    no longer allows it (the operator narrowed it, and the server started again): Start checks again,
    with the same neutral message naming the rule, and the camera is never connected to."""
    with socket.socket() as camera:  # a listener on 127.0.0.1 that records any connection
        camera.bind(("127.0.0.1", 0))
        camera.listen()
        port = camera.getsockname()[1]
        server = start_server(data_dir=tmp_path / "data")
        server.client().create_stream_processor(
            Name="door",
            Input={"KinesisVideoStream": {"Arn": f"rtsp://127.0.0.1:{port}/cam"}},
            Output={"KinesisDataStream": {"Arn": "file://door.jsonl"}},
            Settings={"ConnectedHome": {"Labels": ["PERSON"]}},
            RoleArn=ROLE,
        )
        server.stop()
        narrowed = start_server(data_dir=tmp_path / "data", egress=EgressSettings())  # the defaults
        client = narrowed.client()
        code, message = _aws_error(lambda: client.start_stream_processor(Name="door"))
        assert code == "InvalidParameterException" and "egress policy" in message, message
        assert "loopback address" in message and str(port) not in message, message  # the rule, not the port
        assert client.describe_stream_processor(Name="door")["Status"] == "STOPPED"
        camera.settimeout(1.0)
        with pytest.raises(TimeoutError):
            camera.accept()  # nobody came
