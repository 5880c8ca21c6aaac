"""Stream processors through boto3 against a real server: lifecycle and errors, live face search over real
RTSP delivered to a real MQTT broker and an HTTP webhook, camera and server restarts.

Each started processor is a real worker process loading its own models (a few seconds); the cameras are
GStreamer's RTSP server on 127.0.0.1 (tests/rtsp/rig.py), the broker is mosquitto.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from keeneye.aws.stream_records import shape_problems
from tests.aws.signing import SECRET
from tests.contract.conftest import RunningServer
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, wait_until, webhook_receiver
from tests.rtsp.rig import RtspServer, hamilton_rtsp, rtsp_server
from tests.streams.test_push import publisher

__all__ = ["hamilton_rtsp"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.models, pytest.mark.data]

AUTH = {"Authorization": f"Bearer {SECRET}"}
ROLE = "arn:aws:iam::000000000000:role/keeneye"
LIN_SINGS_S = 2.8  # Lin-Manuel Miranda's first clear appearance in the Hamilton clip
MAX_DELAY_S = 2.0
EMOTIONS = {"HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR"}
START_S = 60.0  # bound on a worker process starting (spawn, imports, models) on a busy 2-core machine


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def _person_settings(confidence: float = 50.0) -> dict[str, Any]:
    return {"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": confidence}}


def _create(client: Any, name: str, input_arn: str, output_arn: str, settings: dict[str, Any]) -> str:
    return str(
        client.create_stream_processor(
            Name=name,
            Input={"KinesisVideoStream": {"Arn": input_arn}},
            Output={"KinesisDataStream": {"Arn": output_arn}},
            Settings=settings,
            RoleArn=ROLE,
        )["StreamProcessorArn"]
    )


def _wait_status(client: Any, name: str, want: str, timeout_s: float = START_S) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.update(client.describe_stream_processor(Name=name))
        return bool(last["Status"] == want)

    wait_until(reached, timeout_s, f"{name} {want} (last {last.get('Status')}: {last.get('StatusMessage')})")
    return last


def _stats(server: RunningServer, name: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/stream-processors/{name}/stats", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_create_validates_what_it_is_given(server: RunningServer, tmp_path: Path) -> None:
    client = server.client()
    url = "rtsp://127.0.0.1:1/cam"
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"Settings": {}}, "InvalidParameterException", "FaceSearch or ConnectedHome"),
        (
            {"Settings": {"FaceSearch": {"CollectionId": "nobody", "FaceMatchThreshold": 80}}},
            "InvalidParameterException",
            "nobody",
        ),
        (
            {"Settings": {"ConnectedHome": {"Labels": ["PET"]}}},
            "InvalidParameterException",
            "PERSON only",
        ),
        (
            {"Input": "arn:aws:kinesisvideo:us-east-1:000000000000:stream/nowhere/1"},
            "InvalidParameterException",
            "PUT /v1/cameras/nowhere",
        ),
        ({"Input": "ftp://camera/stream"}, "ValidationException", "pattern"),
        ({"Input": f"file://{tmp_path}/x.mp4"}, "InvalidParameterException", "bucket"),
        (
            {"Output": "arn:aws:kinesis:us-east-1:000000000000:stream/nothing"},
            "InvalidParameterException",
            "PUT /v1/data-streams/nothing",
        ),
        ({"Output": "file://../escape.jsonl"}, "InvalidParameterException", "file"),
    ]
    for change, code, words in cases:
        args: dict[str, Any] = {
            "Name": "bad",
            "Input": {"KinesisVideoStream": {"Arn": change.get("Input", url)}},
            "Output": {"KinesisDataStream": {"Arn": change.get("Output", "file://bad.jsonl")}},
            "Settings": change.get("Settings", _person_settings()),
            "RoleArn": ROLE,
        }
        got_code, message = _error(lambda args=args: client.create_stream_processor(**args))  # type: ignore[misc]
        assert got_code == code and words in message, (change, got_code, message)
    assert client.list_stream_processors()["StreamProcessors"] == []
    assert _error(lambda: client.describe_stream_processor(Name="bad"))[0] == "ResourceNotFoundException"
    assert _error(lambda: client.start_stream_processor(Name="bad"))[0] == "ResourceNotFoundException"


def test_lifecycle_with_a_camera_that_is_down(server: RunningServer) -> None:
    client = server.client()
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nobody serves it
    arn = _create(client, "door", url, "file://door.jsonl", _person_settings(60))
    assert arn == "arn:aws:rekognition:us-east-1:000000000000:streamprocessor/door"
    described = client.describe_stream_processor(Name="door")
    assert described["Status"] == "STOPPED" and described["StreamProcessorArn"] == arn
    assert described["Input"]["KinesisVideoStream"]["Arn"] == url
    assert described["Settings"]["ConnectedHome"] == {"Labels": ["PERSON"], "MinConfidence": 60.0}
    code, _ = _error(lambda: _create(client, "door", url, "file://door.jsonl", _person_settings()))
    assert code == "ResourceInUseException"
    _create(client, "yard", url, "file://yard.jsonl", _person_settings())
    page = client.list_stream_processors(MaxResults=1)
    assert page["StreamProcessors"] == [{"Name": "door", "Status": "STOPPED"}] and "NextToken" in page
    rest = client.list_stream_processors(MaxResults=1, NextToken=page["NextToken"])
    assert rest["StreamProcessors"] == [{"Name": "yard", "Status": "STOPPED"}] and "NextToken" not in rest

    client.update_stream_processor(
        Name="door",
        SettingsForUpdate={"ConnectedHomeForUpdate": {"MinConfidence": 70}},
        RegionsOfInterestForUpdate=[{"BoundingBox": {"Left": 0.0, "Top": 0.2, "Width": 1.0, "Height": 0.8}}],
    )
    described = client.describe_stream_processor(Name="door")
    assert described["Settings"]["ConnectedHome"]["MinConfidence"] == 70.0
    assert described["RegionsOfInterest"][0]["BoundingBox"]["Top"] == 0.2
    options = {"lines": [{"name": "entrance", "p1": [0.0, 0.6], "p2": [1.0, 0.6]}], "record_interval_s": 5}
    r = httpx.put(f"{server.url}/v1/stream-processors/door/options", json=options, headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["lines"][0]["name"] == "entrance", r.text
    bad = httpx.put(
        f"{server.url}/v1/stream-processors/door/options", json={"lines": [{"name": "x"}]}, headers=AUTH
    )
    assert bad.status_code == 400 and "ratio coordinates" in bad.json()["error"]["message"]

    code, message = _error(
        lambda: client.start_stream_processor(
            Name="door", StartSelector={"KVSStreamStartSelector": {"FragmentNumber": "1"}}
        )
    )
    assert code == "InvalidParameterException" and "StartSelector" in message
    session = client.start_stream_processor(Name="door")["SessionId"]
    assert session
    # The camera is down: the processor runs, retries with backoff and says so (never silently).
    running = _wait_status(client, "door", "RUNNING")

    def says_reconnecting() -> bool:
        running.update(client.describe_stream_processor(Name="door"))
        return "reconnecting" in (running.get("StatusMessage") or "")

    wait_until(
        says_reconnecting, START_S, f"a StatusMessage about the camera ({running.get('StatusMessage')})"
    )
    stats = _stats(server, "door")
    assert stats["status"] == "RUNNING" and stats["capture"]["state"] == "reconnecting"
    assert stats["capture"]["last_error"], stats
    metrics = httpx.get(f"{server.url}/v1/metrics", timeout=10).text
    assert 'keeneye_stream_frames_total{processor="door"} 0' in metrics
    for call in (
        lambda: client.start_stream_processor(Name="door"),
        lambda: client.delete_stream_processor(Name="door"),
        lambda: client.update_stream_processor(Name="door", ParametersToDelete=["RegionsOfInterest"]),
    ):
        assert _error(call)[0] == "ResourceInUseException"
    assert _error(lambda: client.stop_stream_processor(Name="yard"))[0] == "ResourceInUseException"

    client.stop_stream_processor(Name="door")
    stopped = _wait_status(client, "door", "STOPPED", 30)
    assert "StatusMessage" not in stopped, stopped
    client.delete_stream_processor(Name="door")
    assert _error(lambda: client.describe_stream_processor(Name="door"))[0] == "ResourceNotFoundException"
    audit = httpx.get(f"{server.url}/v1/audit", headers=AUTH, timeout=10).json()["records"]
    operations = [r["operation"] for r in audit]
    for op in (
        "CreateStreamProcessor",
        "StartStreamProcessor",
        "StopStreamProcessor",
        "DeleteStreamProcessor",
    ):
        assert op in operations, operations


def _index_hamilton(client: Any, shared_data: Path) -> None:
    client.create_collection(CollectionId="hamilton")
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        photo = (shared_data / "faces" / "face_recognition" / f"{name}.png").read_bytes()
        client.index_faces(CollectionId="hamilton", Image={"Bytes": photo}, ExternalImageId=name, MaxFaces=1)


def test_hamilton_live_face_search_reaches_mqtt_and_a_webhook(
    server: RunningServer, shared_data: Path, hamilton_rtsp: RtspServer, tmp_path: Path
) -> None:
    """The issue's check: Lin-Manuel Miranda's match records within 2 s of his first clear appearance,
    delivered to an MQTT subscriber and a webhook, and no record matching anyone else."""
    client = server.client()
    _index_hamilton(client, shared_data)
    with (
        mosquitto_broker(tmp_path / "mqtt") as broker,
        mqtt_subscriber(broker.port, "keeneye/stage") as subscriber,
        webhook_receiver() as hook,
    ):
        r = httpx.put(f"{server.url}/v1/cameras/stage", json={"url": hamilton_rtsp.url}, headers=AUTH)
        assert r.status_code == 200, r.text
        camera_arn = r.json()["arn"]
        sinks = {
            "sinks": [
                {"webhook": {"url": hook.url}},
                {"mqtt": {"host": "127.0.0.1", "port": broker.port, "topic": "keeneye/stage"}},
            ]
        }
        r = httpx.put(f"{server.url}/v1/data-streams/alerts", json=sinks, headers=AUTH)
        assert r.status_code == 200, r.text
        settings = {"FaceSearch": {"CollectionId": "hamilton", "FaceMatchThreshold": 80}}
        _create(client, "stage", camera_arn, r.json()["arn"], settings)
        client.start_stream_processor(Name="stage")
        _wait_status(client, "stage", "RUNNING")
        # The clip plays once (10 s) from the moment the worker connects; wait until it has ended.
        wait_until(
            lambda: _stats(server, "stage").get("capture", {}).get("reconnects", 0) >= 1,
            START_S,
            "the clip to end",
        )
        client.stop_stream_processor(Name="stage")
        _wait_status(client, "stage", "STOPPED", 30)
        webhook = hook.messages()
        mqtt = subscriber.wait_for(len(webhook), 10)
        arrivals = list(subscriber.arrivals)

    records = [m.body for m in webhook]
    assert records and mqtt == records, (len(records), len(mqtt))
    for record in records:
        assert shape_problems(record) == [], record
    first_session = [r for r in records if r["InputInformation"]["KinesisVideo"]["FragmentNumber"] == "0"]
    stream_start = min(
        r["InputInformation"]["KinesisVideo"]["ServerTimestamp"]
        - r["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"]
        for r in first_session
    )
    matched = [
        (m.at, arrivals[i], m.body)
        for i, m in enumerate(webhook)
        if m.body["FaceSearchResponse"] and m.body["FaceSearchResponse"][0]["MatchedFaces"]
    ]
    names = {
        f["Face"]["ExternalImageId"]
        for _, _, r in matched
        for f in r["FaceSearchResponse"][0]["MatchedFaces"]
    }
    assert names == {"lin-manuel-miranda"}, names
    close_up = [
        (hook_at, mqtt_at)
        for hook_at, mqtt_at, r in matched
        if r["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"] >= LIN_SINGS_S
    ]
    assert close_up, "no match from his close-up"
    hook_delay = close_up[0][0] - stream_start - LIN_SINGS_S
    mqtt_delay = close_up[0][1] - stream_start - LIN_SINGS_S
    assert hook_delay <= MAX_DELAY_S and mqtt_delay <= MAX_DELAY_S, (hook_delay, mqtt_delay)
    # The apparent expression of the face reported (Rekognition's emotion names), computed for the record,
    # as are its face-mesh Landmarks and Pose (live frames are described without the mesh: only the
    # reported face gets it).
    assert all(r["Keeneye"].get("Expression") in EMOTIONS for _, _, r in matched), matched
    detected = [r["FaceSearchResponse"][0]["DetectedFace"] for _, _, r in matched]
    assert all({"Pose", "Quality"} <= set(d) for d in detected), detected
    # Rekognition's five DEFAULT landmarks: the mouth corners come from the mesh (BlazeFace has none).
    assert any("mouthLeft" in {lm["Type"] for lm in d["Landmarks"]} for d in detected), detected
    keys = [(r["Keeneye"]["TrackId"], r["Keeneye"]["Identity"]) for _, _, r in matched]
    assert len(keys) == len(set(keys)), keys  # one match record per track and identity
    audit = httpx.get(f"{server.url}/v1/audit", headers=AUTH, timeout=10).json()["records"]
    identified = [r for r in audit if r["operation"] == "StreamProcessorMatch"]
    assert len(identified) == len(matched) and all(r["collection_id"] == "hamilton" for r in identified)
    print(f"close-up matched {hook_delay:.2f} s (webhook) / {mqtt_delay:.2f} s (MQTT) after he appears")


def test_camera_restart_and_server_restart_resume(
    start_server: Callable[..., RunningServer], shared_data: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    client = server.client()
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    with rtsp_server(clip, loop=True) as camera:
        _create(client, "lobby", camera.url, "file://lobby.jsonl", _person_settings())
        client.start_stream_processor(Name="lobby")
        _wait_status(client, "lobby", "RUNNING")
        wait_until(lambda: _stats(server, "lobby").get("frames_processed", 0) > 5, START_S, "frames")
        camera.stop(hard=True)  # the camera loses power

        def says_reconnecting() -> bool:
            message = client.describe_stream_processor(Name="lobby").get("StatusMessage") or ""
            return "reconnecting" in message

        wait_until(says_reconnecting, 30, "the StatusMessage to report the camera")
        frames = _stats(server, "lobby")["frames_processed"]
        camera.start()
        wait_until(lambda: _stats(server, "lobby")["frames_processed"] > frames + 5, 30, "frames again")
        assert "StatusMessage" not in client.describe_stream_processor(Name="lobby")
        assert _stats(server, "lobby")["capture"]["reconnects"] >= 1

        server.stop()  # a running processor stops with the server and runs again when it starts
        server = start_server(data_dir=data)
        client = server.client()
        _wait_status(client, "lobby", "RUNNING")
        wait_until(
            lambda: _stats(server, "lobby").get("frames_processed", 0) > 5, START_S, "frames after restart"
        )
        client.stop_stream_processor(Name="lobby")
        _wait_status(client, "lobby", "STOPPED", 30)
    records = [json.loads(x) for x in (data / "notifications" / "lobby.jsonl").read_text().splitlines()]
    assert records and all(shape_problems(r) == [] for r in records)
    assert {r["Keeneye"]["Kind"] for r in records} >= {"person"}


def test_a_camera_that_pushes_feeds_its_processor(server: RunningServer, shared_data: Path) -> None:
    """A camera registered with ``listen``: keeneye waits on its URL and the camera pushes to it (what
    ``ffmpeg -re -i clip.mp4 -c copy -f rtsp rtsp://127.0.0.1:PORT/NAME`` does; tests/rtsp/push.py)."""
    client = server.client()
    url = f"rtsp://127.0.0.1:{free_port()}/door"
    r = httpx.put(f"{server.url}/v1/cameras/door", json={"url": url, "listen": True}, headers=AUTH)
    assert r.status_code == 200 and r.json()["listen"] is True, r.text
    _create(client, "door", r.json()["arn"], "file://door.jsonl", _person_settings())
    client.start_stream_processor(Name="door")

    def waiting() -> bool:
        message = client.describe_stream_processor(Name="door").get("StatusMessage") or ""
        return "waiting for the camera to push" in message

    wait_until(waiting, START_S, "the processor to wait for its camera")
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    with publisher(clip, url):
        wait_until(lambda: _stats(server, "door").get("frames_processed", 0) > 10, 30, "pushed frames")
    client.stop_stream_processor(Name="door")
    _wait_status(client, "door", "STOPPED", 30)
    records = [
        json.loads(x) for x in (server.data_dir / "notifications" / "door.jsonl").read_text().splitlines()
    ]
    assert records and all(shape_problems(r) == [] for r in records)
    assert all(r["InputInformation"]["KinesisVideo"]["StreamArn"].endswith(":stream/door/1") for r in records)


def test_a_worker_that_dies_is_failed_and_notified(server: RunningServer, shared_data: Path) -> None:
    """Never silently: a worker killed with SIGKILL makes the processor FAILED with the reason, and its
    NotificationChannel is told; it can be started again; a Start whose collection is gone is refused."""
    client = server.client()
    _index_hamilton(client, shared_data)
    topic = "arn:aws:sns:us-east-1:123456789012:keeneye-streams"
    clip = shared_data / "video" / "face_clips" / "short_hamilton_clip.mp4"
    with webhook_receiver() as hook, rtsp_server(clip, loop=True) as camera:
        r = httpx.put(
            f"{server.url}/v1/notification-channels/{topic}",
            json={"webhook": {"url": hook.url}},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        client.create_stream_processor(
            Name="fragile",
            Input={"KinesisVideoStream": {"Arn": camera.url}},
            Output={"KinesisDataStream": {"Arn": "file://fragile.jsonl"}},
            Settings={"FaceSearch": {"CollectionId": "hamilton"}},
            NotificationChannel={"SNSTopicArn": topic},
            RoleArn=ROLE,
        )
        client.start_stream_processor(Name="fragile")
        _wait_status(client, "fragile", "RUNNING")
        wait_until(lambda: _stats(server, "fragile").get("frames_processed", 0) > 0, START_S, "frames")
        os.kill(_stats(server, "fragile")["worker_pid"], signal.SIGKILL)
        failed = _wait_status(client, "fragile", "FAILED", 30)
        assert "code -9" in failed["StatusMessage"], failed
        message = json.loads(hook.wait_for(1, timeout_s=30)[0].body["Message"])
        assert message["eventNamespace"]["type"] == "STREAM_PROCESSING_COMPLETE"
        assert message["status"] == "FAILED" and message["streamProcessorArn"].endswith("/fragile")

        client.start_stream_processor(Name="fragile")  # FAILED is not a dead end
        _wait_status(client, "fragile", "RUNNING")
        client.stop_stream_processor(Name="fragile")
        _wait_status(client, "fragile", "STOPPED", 30)
        client.delete_collection(CollectionId="hamilton")
        code, message_text = _error(lambda: client.start_stream_processor(Name="fragile"))
        assert code == "InvalidParameterException" and "hamilton" in message_text
    ended = [r for r in httpx.get(f"{server.url}/v1/audit", headers=AUTH).json()["records"]]
    assert [r["details"]["status"] for r in ended if r["operation"] == "StreamProcessorEnded"] == [
        "FAILED",
        "STOPPED",
    ]
