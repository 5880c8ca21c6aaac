"""Rights on every resource a request names (issue 13, items 3, 5 and 7), through boto3 on a real server:
each attack a key limited by its policy tried is refused, and the allowed path still works.

* S3 objects: ``s3:GetObject`` on ``arn:aws:s3:::<bucket>/<key>`` for every S3Object an image or video
  operation reads; one InvalidS3ObjectException message, naming no bucket, for whoever may read it.
* Stream processors: the camera, data stream, URLs, files, buckets and notification channel a processor
  uses need rights of their own, at Create and again at Start and Update; its options (native API and
  console lines) are checked as Update is, and its snapshot needs its input's rights, as Start does.
* DescribeStreamProcessor shows no URL password.
* ClientRequestToken: another key re-using a token starts its own job, audited under its own collection.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from keeneye.aws.images import NO_OBJECT
from keeneye.config import VideoJobSettings
from keeneye.service.streams.processors import StreamProcessors
from tests.aws.signing import AKID
from tests.contract.conftest import RunningServer
from tests.contract.test_access_keys import (
    access_keys,
    allow,
    bearer,
    client_for,
    deny,
    error_of,
    new_key,
    policy,
)
from tests.contract.test_console_http import _browser, _csrf, _sign_in

pytestmark = [pytest.mark.models, pytest.mark.data]

ROLE = "arn:aws:iam::000000000000:role/keeneye"
PROCESSORS = "arn:aws:rekognition:*:*:streamprocessor/*"
LOBBY_CAMERA = "arn:aws:kinesisvideo:us-east-1:000000000000:stream/lobby/1"
ALERTS = "arn:aws:kinesis:us-east-1:000000000000:stream/alerts"
TOPIC = "arn:aws:sns:us-east-1:000000000000:done"
NOWHERE = "rtsp://127.0.0.1:1/cam"  # nothing listens: a started processor keeps reconnecting
VIDEO = "vtest_480x360.mp4"


@pytest.fixture
def photos(shared_data: Path, tmp_path: Path) -> Path:
    """A served bucket: public/ and private/ hold the same photo; private/ also a file that is no image,
    and a video."""
    folder = tmp_path / "photos"
    for sub in ("public", "private"):
        (folder / sub).mkdir(parents=True)
        shutil.copyfile(shared_data / "faces/face_recognition/obama-480p.jpg", folder / sub / "obama.jpg")
        shutil.copyfile(shared_data / "video/pets09_s2l1" / VIDEO, folder / sub / VIDEO)
    (folder / "private" / "notes.jpg").write_bytes(b"not an image at all, only words")
    return folder


@pytest.fixture
def served(start_server: Callable[..., RunningServer], photos: Path, tmp_path: Path) -> RunningServer:
    """A server with the bucket ``photos`` and an empty bucket ``out``; video jobs are queued, not run."""
    (tmp_path / "out").mkdir()
    return start_server(
        buckets={"photos": photos, "out": tmp_path / "out"}, video_jobs=VideoJobSettings(workers=0)
    )


def s3(name: str, bucket: str = "photos") -> dict[str, Any]:
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def refused(call: Callable[[], Any], action: str, resource: str) -> str:
    """Assert ``call`` is refused for ``action`` on ``resource``; the message."""
    code, message = error_of(call)
    assert code == "AccessDeniedException", (code, message)
    assert f"{action} on resource: {resource} " in message, message
    return message


def processors(server: RunningServer) -> StreamProcessors:
    assert server.services is not None and server.services.stream_processors is not None
    return server.services.stream_processors


# -- item 7: S3 objects ----------------------------------------------------------------------------------


def test_reading_an_s3_object_needs_s3_get_object_on_it(served: RunningServer) -> None:
    admin = served.client()
    admin.create_collection(CollectionId="staff")
    key = new_key(
        served,
        "public-photos",
        policy(
            allow(["rekognition:DetectFaces", "rekognition:CompareFaces"]),
            allow(["rekognition:IndexFaces", "rekognition:Search*", "rekognition:CreateUser"]),
            allow("rekognition:Start*"),
            allow("s3:GetObject", "arn:aws:s3:::photos/public/*"),
        ),
    )
    reader = client_for(served, key)
    public, private = s3("public/obama.jpg"), s3("private/obama.jpg")
    secret = "arn:aws:s3:::photos/private/obama.jpg"
    # Allowed: objects under public/.
    assert len(reader.detect_faces(Image=public)["FaceDetails"]) == 1
    assert reader.compare_faces(SourceImage=public, TargetImage=public)["FaceMatches"]
    reader.index_faces(CollectionId="staff", Image=public)
    assert reader.search_faces_by_image(CollectionId="staff", Image=public)["FaceMatches"]
    assert reader.start_person_tracking(Video=s3(f"public/{VIDEO}"))["JobId"]
    # The attack: any other object of a served bucket, by every operation that reads one.
    for call in (
        lambda: reader.detect_faces(Image=private),
        lambda: reader.compare_faces(SourceImage=private, TargetImage=public),
        lambda: reader.compare_faces(SourceImage=public, TargetImage=private),
        lambda: reader.index_faces(CollectionId="staff", Image=private),
        lambda: reader.search_faces_by_image(CollectionId="staff", Image=private),
        lambda: reader.search_users_by_image(CollectionId="staff", Image=private),
    ):
        refused(call, "s3:GetObject", secret)
    video = f"arn:aws:s3:::photos/private/{VIDEO}"
    for start in (reader.start_person_tracking, reader.start_face_detection):
        refused(partial(start, Video=s3(f"private/{VIDEO}")), "s3:GetObject", video)
    refused(
        lambda: reader.start_face_search(CollectionId="staff", Video=s3(f"private/{VIDEO}")),
        "s3:GetObject",
        video,
    )
    assert admin.describe_collection(CollectionId="staff")["FaceCount"] == 1  # nothing indexed by the attack
    # Missing, not an image, a bucket not served: one refusal, whatever is (or is not) there.
    messages = set()
    for bucket, name in (
        ("photos", "private/missing.jpg"),
        ("photos", "private/notes.jpg"),
        ("elsewhere", "private/obama.jpg"),
    ):
        resource = f"arn:aws:s3:::{bucket}/{name}"
        message = refused(partial(reader.detect_faces, Image=s3(name, bucket)), "s3:GetObject", resource)
        messages.add(message.replace(resource, "OBJECT"))
    assert len(messages) == 1


def test_s3_object_errors_name_no_bucket_and_tell_no_case_apart(served: RunningServer, photos: Path) -> None:
    """Whoever may read an object is told Rekognition's one message for every object it cannot get."""
    admin = served.client()
    for image in (
        s3("private/missing.jpg"),
        s3("private/obama.jpg", "elsewhere"),  # not served
        s3("../photos/private/obama.jpg", "photos"),  # out of its folder
        s3("private"),  # a folder
    ):
        code, message = error_of(partial(admin.detect_faces, Image=image))
        assert (code, message) == ("InvalidS3ObjectException", NO_OBJECT)
    for video in (s3(f"private/{VIDEO}", "elsewhere"), s3("private/none.mp4")):
        code, message = error_of(partial(admin.start_person_tracking, Video=video))
        assert (code, message) == ("InvalidS3ObjectException", NO_OBJECT)
    assert (
        error_of(lambda: admin.detect_faces(Image=s3("private/notes.jpg")))[0]
        == "InvalidImageFormatException"
    )
    assert "photos" not in NO_OBJECT and str(photos) not in NO_OBJECT


# -- item 3: what a stream processor uses ----------------------------------------------------------------


def create(client: Any, name: str, **change: Any) -> Any:
    """CreateStreamProcessor: ConnectedHome PERSON from ``NOWHERE`` to ``file://<name>.jsonl`` unless
    ``change`` says otherwise (``input``, ``output`` (the KinesisDataStream Arn), ``Output``, any other
    request member)."""
    args: dict[str, Any] = {
        "Name": name,
        "Input": {"KinesisVideoStream": {"Arn": change.pop("input", NOWHERE)}},
        "Output": {"KinesisDataStream": {"Arn": change.pop("output", f"file://{name}.jsonl")}},
        "Settings": {"ConnectedHome": {"Labels": ["PERSON"]}},
        "RoleArn": ROLE,
    }
    args.update(change)
    return client.create_stream_processor(**args)


def test_a_stream_processor_needs_rights_on_what_it_uses(served: RunningServer, photos: Path) -> None:
    """A key allowed only the stream-processor actions can no longer use another's camera (with its
    stored password), send records to its own webhook, write into a bucket folder, append to a
    notifications file or read a served file, however the request spells them."""
    cameras = processors(served).cameras
    cameras.put_camera("lobby", "rtsp://admin:hunter2@127.0.0.1:1/lobby")
    cameras.put_data_stream("alerts", {"jsonl": {"name": "alerts.jsonl"}})
    url = "arn:keeneye:url:::"
    # The key may use NOWHERE and its own files, so each attack is refused for the one thing it adds.
    key = new_key(
        served,
        "processors-only",
        policy(
            allow("rekognition:*StreamProcessor*", PROCESSORS),
            allow("keeneye:UseUrl", url + NOWHERE),
            allow("keeneye:WriteFile", "arn:keeneye:file:::notifications/attack-*"),
        ),
    )
    attacker = client_for(served, key)
    attacks: list[tuple[dict[str, Any], str, str]] = [
        ({"input": LOBBY_CAMERA}, "keeneye:UseCamera", LOBBY_CAMERA),
        # Another region and account, another suffix: the same camera, named as registered.
        (
            {"input": "arn:aws:kinesisvideo:eu-west-1:111111111111:stream/lobby/x"},
            "keeneye:UseCamera",
            LOBBY_CAMERA,
        ),
        # A camera that is not registered is refused the same way: nothing tells whether it exists.
        (
            {"input": "arn:aws:kinesisvideo:us-east-1:000000000000:stream/ghost/1"},
            "keeneye:UseCamera",
            "arn:aws:kinesisvideo:us-east-1:000000000000:stream/ghost/1",
        ),
        ({"input": "rtsp://u:pw@127.0.0.1:1/other"}, "keeneye:UseUrl", url + "rtsp://127.0.0.1:1/other"),
        (
            {"input": f"file://{photos}/private/{VIDEO}"},
            "s3:GetObject",
            f"arn:aws:s3:::photos/private/{VIDEO}",
        ),
        ({"output": "http://127.0.0.1:9/hook?key=k"}, "keeneye:UseUrl", url + "http://127.0.0.1:9/hook"),
        (
            {"output": "mqtt://127.0.0.1:1883/t/lobby"},
            "keeneye:UseUrl",
            url + "mqtt://127.0.0.1:1883/t/lobby",
        ),
        ({"output": ALERTS}, "keeneye:UseDataStream", ALERTS),
        (
            {"output": "file://victim.jsonl"},
            "keeneye:WriteFile",
            "arn:keeneye:file:::notifications/victim.jsonl",
        ),
        (
            {"Output": {"S3Destination": {"Bucket": "out", "KeyPrefix": "/cams/lobby/"}}},
            "s3:PutObject",
            "arn:aws:s3:::out/cams/lobby/*",
        ),
        (
            {"NotificationChannel": {"SNSTopicArn": TOPIC}},
            "keeneye:UseNotificationChannel",
            TOPIC,
        ),
    ]
    for i, (change, action, resource) in enumerate(attacks):
        message = refused(partial(create, attacker, f"attack-{i}", **change), action, resource)
        assert "hunter2" not in message and "pw@" not in message
    assert served.client().list_stream_processors()["StreamProcessors"] == []
    assert not (served.data_dir / "notifications" / "victim.jsonl").exists()
    assert not any((photos.parent / "out").iterdir())
    # The allowed path: what the policy allows, it may use.
    create(attacker, "attack-ok")
    assert attacker.describe_stream_processor(Name="attack-ok")["Status"] == "STOPPED"


def test_rights_are_checked_again_at_start_and_update(served: RunningServer) -> None:
    """Rights a key had at Create, or that another key had, do not carry over to Start and Update."""
    processors(served).cameras.put_camera("lobby", "rtsp://admin:hunter2@127.0.0.1:1/lobby")
    admin = served.client()
    create(admin, "door", input=LOBBY_CAMERA, output="file://door.jsonl")
    may_use = policy(
        allow("rekognition:*StreamProcessor*", PROCESSORS),
        allow("keeneye:UseCamera", "arn:aws:kinesisvideo:*:*:stream/lobby/*"),
        allow("keeneye:WriteFile", "arn:keeneye:file:::notifications/door.jsonl"),
    )
    key = new_key(served, "door-keeper", policy(allow("rekognition:*StreamProcessor*", PROCESSORS)))
    keeper = client_for(served, key)
    update = {"Name": "door", "RegionsOfInterestForUpdate": [{"BoundingBox": {"Width": 0.5, "Height": 0.5}}]}
    # The admin's processor, started or changed by a key without the camera: refused.
    refused(lambda: keeper.start_stream_processor(Name="door"), "keeneye:UseCamera", LOBBY_CAMERA)
    refused(lambda: keeper.update_stream_processor(**update), "keeneye:UseCamera", LOBBY_CAMERA)
    # A key whose right was taken after it created its processor: refused at Start.
    keys = access_keys(served)
    keys.set_policy("door-keeper", may_use, actor="cli")
    create(keeper, "side-door", input=LOBBY_CAMERA, output="file://door.jsonl")
    keys.set_policy("door-keeper", policy(allow("*"), deny("keeneye:WriteFile")), actor="cli")
    door_file = "arn:keeneye:file:::notifications/door.jsonl"
    refused(lambda: keeper.start_stream_processor(Name="side-door"), "keeneye:WriteFile", door_file)
    assert keeper.describe_stream_processor(Name="door")["Status"] == "STOPPED"
    # With the rights: Update and Start work (the worker keeps reconnecting to a camera not there).
    keys.set_policy("door-keeper", may_use, actor="cli")
    keeper.update_stream_processor(**update)
    assert keeper.start_stream_processor(Name="door")["SessionId"]
    keeper.stop_stream_processor(Name="door")
    assert processors(served).wait_stopped("door", 60.0)


def native_refused(response: httpx.Response, action: str, resource: str) -> str:
    """Assert a native API answer is the AccessDenied for ``action`` on ``resource``; the message."""
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "AccessDenied", response.text
    message = str(response.json()["error"]["message"])
    assert f"{action} on resource: {resource} " in message, message
    return message


def test_a_snapshot_needs_the_rights_start_needs_on_the_input(served: RunningServer) -> None:
    """A key allowed DescribeStreamProcessor but not the camera cannot pull a frame from someone else's
    camera through a processor's snapshot: a stopped processor's would be read from the camera with its
    stored password (issue 13). Refused before anything connects; a running processor's snapshot too."""
    with socket.socket() as camera:  # the admin's camera: a listener that counts who connects
        camera.bind(("127.0.0.1", 0))
        camera.listen(8)
        camera.setblocking(False)
        port = camera.getsockname()[1]
        processors(served).cameras.put_camera("lobby", f"rtsp://admin:hunter2@127.0.0.1:{port}/lobby")
        admin = served.client()
        create(admin, "door", input=LOBBY_CAMERA)
        create(admin, "side", input=f"rtsp://viewer:s3cr3t@127.0.0.1:{port}/side")
        key = new_key(served, "describer", policy(allow("rekognition:*StreamProcessor*", PROCESSORS)))
        url = "arn:keeneye:url:::" + f"rtsp://127.0.0.1:{port}/side"
        attacks = (("door", "keeneye:UseCamera", LOBBY_CAMERA), ("side", "keeneye:UseUrl", url))
        with _browser(served) as console:
            assert _sign_in(console, key.access_key_id, key.secret_access_key).status_code == 303
            for name, action, resource in attacks:
                r = httpx.get(
                    f"{served.url}/v1/stream-processors/{name}/snapshot", headers=bearer(key), timeout=30
                )
                message = native_refused(r, action, resource)
                assert "hunter2" not in message and "s3cr3t" not in message
                page = console.get(f"/console/processors/{name}/snapshot.jpg")
                assert page.status_code == 403 and f"{action} on resource: {resource}" in page.text
            with pytest.raises(BlockingIOError):  # the camera was never connected to
                camera.accept()
        # Running: the worker's latest frame is the same input, refused the same way.
        admin.start_stream_processor(Name="door")
        r = httpx.get(f"{served.url}/v1/stream-processors/door/snapshot", headers=bearer(key), timeout=30)
        native_refused(r, "keeneye:UseCamera", LOBBY_CAMERA)
        admin.stop_stream_processor(Name="door")
        assert processors(served).wait_stopped("door", 60.0)
    # The allowed path: with the camera's right the snapshot reads the camera (gone now: 503, no 403).
    access_keys(served).set_policy(
        "describer",
        policy(
            allow("rekognition:*StreamProcessor*", PROCESSORS),
            allow("keeneye:UseCamera", "arn:aws:kinesisvideo:*:*:stream/lobby/*"),
        ),
        actor="cli",
    )
    r = httpx.get(f"{served.url}/v1/stream-processors/door/snapshot", headers=bearer(key), timeout=30)
    assert r.status_code == 503 and "camera gave no frame" in r.text, r.text


def test_options_and_console_lines_check_what_update_checks(served: RunningServer) -> None:
    """PUT .../options and the console's lines change a processor as UpdateStreamProcessor does, and check
    the same rights on its stored request: a key allowed Update on someone else's processor but not its
    camera (or its output) cannot redraw its lines."""
    processors(served).cameras.put_camera("lobby", "rtsp://admin:hunter2@127.0.0.1:1/lobby")
    create(served.client(), "door", input=LOBBY_CAMERA, output="file://door.jsonl")
    key = new_key(served, "line-drawer", policy(allow("rekognition:*StreamProcessor*", PROCESSORS)))
    lines = [{"name": "in", "p1": [0.1, 0.5], "p2": [0.9, 0.5]}]
    options = f"{served.url}/v1/stream-processors/door/options"
    door_file = "arn:keeneye:file:::notifications/door.jsonl"
    camera_only = policy(
        allow("rekognition:*StreamProcessor*", PROCESSORS),
        allow("keeneye:UseCamera", "arn:aws:kinesisvideo:*:*:stream/lobby/*"),
    )
    with _browser(served) as console:
        assert _sign_in(console, key.access_key_id, key.secret_access_key).status_code == 303
        csrf = _csrf(console, "/console/processors/door")
        form = {"csrf_token": csrf, "lines": json.dumps(lines), "zones": "[]"}
        for doc, action, resource in (
            (None, "keeneye:UseCamera", LOBBY_CAMERA),
            (camera_only, "keeneye:WriteFile", door_file),  # every right Update checks, not only the input
        ):
            if doc is not None:
                access_keys(served).set_policy("line-drawer", doc, actor="cli")
            r = httpx.put(options, json={"lines": lines}, headers=bearer(key), timeout=10)
            native_refused(r, action, resource)
            page = console.post("/console/processors/door/lines", data=form)
            assert page.status_code == 403 and f"{action} on resource: {resource}" in page.text
            assert processors(served).describe("door").options.get("lines", []) == []
        # The allowed path: with the rights Update needs, both work.
        access_keys(served).set_policy(
            "line-drawer",
            policy(
                allow("rekognition:*StreamProcessor*", PROCESSORS),
                allow("keeneye:UseCamera", "arn:aws:kinesisvideo:*:*:stream/lobby/*"),
                allow("keeneye:WriteFile", door_file),
            ),
            actor="cli",
        )
        r = httpx.put(options, json={"lines": lines}, headers=bearer(key), timeout=10)
        assert r.status_code == 200, r.text
        assert console.post("/console/processors/door/lines", data=form).status_code == 303
    assert [x["name"] for x in processors(served).describe("door").options["lines"]] == ["in"]


# -- item 5: no URL password in DescribeStreamProcessor ---------------------------------------------------


def test_describe_stream_processor_shows_no_url_password(served: RunningServer) -> None:
    admin = served.client()
    create(
        admin,
        "secretive",
        input="rtsp://viewer:hunter2@127.0.0.1:1/cam",
        output="mqtt://bob:s3cr3t@127.0.0.1:1883/keeneye/door",
    )
    create(
        admin, "hooked", input="http://cam:pa%40ss@127.0.0.1:1/mjpeg", output="https://u:tok@127.0.0.1:9/h"
    )
    for name in ("secretive", "hooked"):
        shown = admin.describe_stream_processor(Name=name)
        text = json.dumps(shown, default=str)
        for secret in ("hunter2", "s3cr3t", "pa%40ss", "tok@"):
            assert secret not in text, (name, text)
    shown = admin.describe_stream_processor(Name="secretive")
    assert shown["Input"]["KinesisVideoStream"]["Arn"] == "rtsp://viewer:***@127.0.0.1:1/cam"
    assert shown["Output"]["KinesisDataStream"]["Arn"] == "mqtt://bob:***@127.0.0.1:1883/keeneye/door"


# -- item 4: ClientRequestToken per key, audited under the caller's collection ----------------------------


def test_a_reused_token_is_audited_under_each_callers_collection(served: RunningServer) -> None:
    admin = served.client()
    for cid in ("staff", "vip"):
        admin.create_collection(CollectionId=cid)
    video = s3(f"public/{VIDEO}")
    first = admin.start_face_search(CollectionId="vip", Video=video, ClientRequestToken="same")["JobId"]
    key = new_key(
        served,
        "searcher",
        policy(
            allow("rekognition:StartFaceSearch", "arn:aws:rekognition:*:*:collection/staff"),
            allow("s3:GetObject", "arn:aws:s3:::photos/public/*"),
        ),
    )
    other = client_for(served, key)
    second = other.start_face_search(CollectionId="staff", Video=video, ClientRequestToken="same")["JobId"]
    assert second != first
    assert (
        other.start_face_search(CollectionId="staff", Video=video, ClientRequestToken="same")["JobId"]
        == second
    )
    assert (
        error_of(
            lambda: other.start_face_search(
                CollectionId="staff", Video=s3("private/obama.jpg"), ClientRequestToken="same"
            )
        )[0]
        == "AccessDeniedException"
    )
    assert served.services is not None and served.services.audit is not None
    starts = [r for r in served.services.audit.read() if r["operation"] == "StartFaceSearch"]
    seen = [(r["access_key"], r["collection_id"], r["details"]["job_id"]) for r in starts]
    assert seen == [
        (AKID, "vip", first),
        (key.access_key_id, "staff", second),
        (key.access_key_id, "staff", second),
    ]


def test_a_registered_sink_needs_rights_on_its_destination(served: RunningServer) -> None:
    """A data stream, a notification channel and an upload rule's sink are destinations registered once
    and used later: registering one needs the right a processor's Output naming the destination directly
    would, or ManageDataStreams with UseDataStream would reach any notifications file, bucket folder or
    URL (found after items 3 and 7 were closed)."""
    key = new_key(
        served,
        "sink-manager",
        policy(
            allow(
                [
                    "keeneye:ManageDataStreams",
                    "keeneye:ManageNotificationChannels",
                    "keeneye:ManageUploadRules",
                    "rekognition:SearchFacesByImage",
                ]
            ),
            allow("keeneye:WriteFile", "arn:keeneye:file:::notifications/mine-*"),
        ),
    )
    files, urls = "arn:keeneye:file:::notifications/", "arn:keeneye:url:::"
    victim = {"jsonl": {"name": "victim.jsonl"}}
    attacks: list[tuple[str, dict[str, Any], str, str]] = [
        ("/v1/data-streams/a", victim, "keeneye:WriteFile", files + "victim.jsonl"),
        (
            "/v1/data-streams/b",
            {"s3": {"bucket": "out", "prefix": "cams/"}},
            "s3:PutObject",
            "arn:aws:s3:::out/cams/*",
        ),
        # One sink the key may use does not carry another it may not.
        (
            "/v1/data-streams/c",
            {
                "sinks": [
                    {"jsonl": {"name": "mine-a.jsonl"}},
                    {"webhook": {"url": "http://u:pw@127.0.0.1:9/h?k=1"}},
                ]
            },
            "keeneye:UseUrl",
            urls + "http://127.0.0.1:9/h",
        ),
        (
            "/v1/data-streams/d",
            {"mqtt": {"host": "127.0.0.1", "topic": "t/x"}},
            "keeneye:UseUrl",
            urls + "mqtt://127.0.0.1/t/x",
        ),
        (
            "/v1/data-streams/e",
            {"mqtt": {"host": "127.0.0.1", "port": 1884, "topic": "t/x", "tls": True}},
            "keeneye:UseUrl",
            urls + "mqtts://127.0.0.1:1884/t/x",
        ),
        (f"/v1/notification-channels/{TOPIC}", victim, "keeneye:WriteFile", files + "victim.jsonl"),
        (
            "/v1/upload-rules/photos",
            {"task": "search-faces", "collection_id": "watch", "threshold": 90, "sink": victim},
            "keeneye:WriteFile",
            files + "victim.jsonl",
        ),
    ]
    for path, body, action, resource in attacks:
        r = httpx.put(served.url + path, json=body, headers=bearer(key), timeout=10)
        assert r.status_code == 403, (path, r.text)
        message = r.json()["error"]["message"]
        assert f"{action} on resource: {resource} " in message, message
        assert "pw" not in message and "k=1" not in message
    assert processors(served).cameras.list_data_streams() == []
    assert httpx.get(f"{served.url}/v1/notification-channels", headers=bearer(key), timeout=10).json() == {
        "channels": []
    }
    # The allowed path: a file the policy allows.
    r = httpx.put(
        f"{served.url}/v1/data-streams/mine",
        json={"jsonl": {"name": "mine-a.jsonl"}},
        headers=bearer(key),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert [s["name"] for s in processors(served).cameras.list_data_streams()] == ["mine"]


def test_a_processor_resumes_after_a_restart_only_while_its_key_may_start_it(
    served: RunningServer, start_server: Callable[..., RunningServer], photos: Path, tmp_path: Path
) -> None:
    """A running processor runs again when the server restarts, under the key that started it: one whose
    right to the camera was taken away meanwhile is not resumed (FAILED, saying why); the admin's is."""
    processors(served).cameras.put_camera("lobby", "rtsp://admin:hunter2@127.0.0.1:1/lobby")
    may_use = policy(
        allow("rekognition:*StreamProcessor*", PROCESSORS),
        allow("keeneye:UseCamera", "arn:aws:kinesisvideo:*:*:stream/lobby/*"),
        allow("keeneye:WriteFile", "arn:keeneye:file:::notifications/*"),
    )
    key = new_key(served, "door-keeper", may_use)
    keeper, admin = client_for(served, key), served.client()
    create(keeper, "door", input=LOBBY_CAMERA, output="file://door.jsonl")
    create(admin, "hall", input=LOBBY_CAMERA, output="file://hall.jsonl")
    keeper.start_stream_processor(Name="door")
    admin.start_stream_processor(Name="hall")
    access_keys(served).set_policy("door-keeper", policy(allow("*"), deny("keeneye:UseCamera")), actor="cli")
    served.stop()  # both stay desired-running
    again = start_server(
        data_dir=served.data_dir,
        buckets={"photos": photos, "out": tmp_path / "out"},
        video_jobs=VideoJobSettings(workers=0),
    )
    client = again.client()
    door = client.describe_stream_processor(Name="door")
    assert door["Status"] == "FAILED", door
    message = door["StatusMessage"]
    assert "could not be started again after a server restart" in message
    assert f"keeneye:UseCamera on {LOBBY_CAMERA}" in message and key.access_key_id in message
    assert "hunter2" not in message
    assert client.describe_stream_processor(Name="hall")["Status"] in ("STARTING", "RUNNING")
    client.stop_stream_processor(Name="hall")
    assert processors(again).wait_stopped("hall", 60.0)
