"""Policy evaluation (keeneye.service.governance.policies): IAM's decision rules, wildcards, validation
errors."""

from __future__ import annotations

from typing import Any

import pytest

from keeneye.core.errors import InvalidParameter
from keeneye.service.governance.policies import (
    Policy,
    Right,
    file_arn,
    matches,
    request_rights,
    resource_for,
    s3_object_arn,
    s3_prefix_arn,
    url_arn,
)

STAFF = "arn:aws:rekognition:us-east-1:000000000000:collection/staff"
VIP = "arn:aws:rekognition:us-east-1:000000000000:collection/vip"
OK, DENY, NONE = "allowed", "explicit deny", "no matching allow"


def policy(*statements: dict[str, Any]) -> Policy:
    return Policy.parse({"Version": "2012-10-17", "Statement": list(statements)})


def doc(statements: list[Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


TYPO = "Statement[0].Action[1]: unknown action 'rekognition:SearchFaceByImage'"


def allow(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("glob", "value", "expected"),
    [
        ("*", "anything:at/all", True),
        ("rekognition:Search*", "rekognition:SearchFacesByImage", True),
        ("rekognition:Search*", "rekognition:IndexFaces", False),
        ("arn:aws:rekognition:*:*:collection/staff", STAFF, True),
        ("arn:aws:rekognition:*:*:collection/st?ff", STAFF, True),
        ("arn:aws:rekognition:*:*:collection/st?ff", "arn:aws:rekognition:a:b:collection/stuuff", False),
        ("arn:aws:rekognition:*:*:collection/staff", STAFF + "-2", False),  # whole-string match
        ("arn:aws:rekognition:*:*:collection/*", VIP, True),
        ("a.b", "axb", False),  # regex characters are literal
        ("[ab]", "a", False),
    ],
)
def test_wildcards(glob: str, value: str, expected: bool) -> None:
    assert matches(glob, value) is expected


def test_actions_match_case_insensitively_resources_do_not() -> None:
    p = policy(allow("REKOGNITION:describecollection", STAFF))
    assert p.decide("rekognition:DescribeCollection", STAFF)
    assert not p.decide("rekognition:DescribeCollection", STAFF.upper())


R = "rekognition:"
COLLECTIONS = "arn:aws:rekognition:*:*:collection/*"


@pytest.mark.parametrize(
    ("statements", "action", "resource", "allowed", "reason"),
    [
        ([], R + "DetectFaces", "*", False, NONE),
        ([allow(R + "DetectFaces")], R + "DetectFaces", "*", True, OK),
        ([allow(R + "DetectFaces")], R + "CompareFaces", "*", False, NONE),
        ([allow(R + "*"), deny(R + "Delete*")], R + "DeleteFaces", STAFF, False, DENY),
        ([deny(R + "Delete*"), allow("*")], R + "DeleteFaces", STAFF, False, DENY),
        ([allow("*"), deny(R + "*", STAFF)], R + "SearchFaces", VIP, True, OK),
        ([allow([R + "Search*", R + "ListFaces"], [STAFF])], R + "SearchFaces", STAFF, True, OK),
        ([allow([R + "Search*"], [STAFF])], R + "SearchFaces", VIP, False, NONE),
        ([allow(R + "*", COLLECTIONS)], R + "DetectFaces", "*", False, NONE),
        ([allow("keeneye:*")], "keeneye:ReadAudit", "*", True, OK),
        ([allow("keeneye:*")], R + "DetectFaces", "*", False, NONE),
    ],
)
def test_decide(
    statements: list[dict[str, Any]], action: str, resource: str, allowed: bool, reason: str
) -> None:
    p = policy(*statements) if statements else policy(deny("keeneye:CancelJob"))
    decision = p.decide(action, resource)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_single_statement_object_and_string_fields_are_accepted() -> None:
    p = Policy.parse({"Version": "2012-10-17", "Statement": allow("rekognition:DetectFaces")})
    assert p.decide("rekognition:DetectFaces", "*")


def test_may_ever_for_list_collections() -> None:
    assert policy(allow("rekognition:ListCollections", STAFF)).may_ever("rekognition:ListCollections")
    assert not policy(allow("rekognition:DescribeCollection")).may_ever("rekognition:ListCollections")
    everything_denied = policy(allow("*"), deny("rekognition:List*"))
    assert not everything_denied.may_ever("rekognition:ListCollections")
    one_denied = policy(allow("*"), deny("rekognition:List*", STAFF))
    assert one_denied.may_ever("rekognition:ListCollections")


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ([], "JSON object"),
        ({"Statement": [allow("*")]}, "policy.Version"),
        ({"Version": "2008-10-17", "Statement": [allow("*")]}, "policy.Version"),
        ({"Version": "2012-10-17"}, "policy.Statement"),
        (doc([]), "policy.Statement"),
        ({**doc([allow("*")]), "Extra": 1}, "Extra"),
        (doc([{"Effect": "Permit", "Action": "*", "Resource": "*"}]), "Statement[0].Effect"),
        (doc([allow("*"), {"Effect": "Allow", "Resource": "*"}]), "Statement[1].Action is missing"),
        (doc([{"Effect": "Allow", "Action": "*"}]), "Statement[0].Resource is missing"),
        (doc([allow([R + "DetectFaces", R + "SearchFaceByImage"])]), TYPO),
        (doc([allow("s3:DeleteObject")]), "Statement[0].Action: unknown action 's3:DeleteObject'"),
        (doc([allow("sns:Publish")]), "Statement[0].Action"),
        (doc([allow("keeneye:ReadEverything")]), "keeneye:ReadAudit"),
        (doc([allow([])]), "Statement[0].Action must be"),
        (doc([allow("*", "collection/staff")]), "Statement[0].Resource"),
        (doc([allow("*", ["*", 3])]), "Statement[0].Resource must be"),
        (doc([{**allow("*"), "Condition": {}}]), "Statement[0].Condition is not supported"),
        (doc([{**allow("*"), "NotAction": "x"}]), "NotAction"),
    ],
)
def test_invalid_policies_name_the_bad_field(document: Any, needle: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        Policy.parse(document)
    assert needle in err.value.message


def test_every_rekognition_operation_and_native_action_is_known() -> None:
    known = [
        "rekognition:DetectLabels",  # not served by keeneye, but a valid IAM action
        "rekognition:StartFaceSearch",
        "keeneye:ManageNotificationChannels",
        "keeneye:ReadNotifications",
        "keeneye:CancelJob",
        "keeneye:ListJobs",
        "keeneye:UseCamera",
        "keeneye:UseDataStream",
        "keeneye:UseUrl",
        "keeneye:WriteFile",
        "keeneye:UseNotificationChannel",
        "s3:GetObject",
        "s3:PutObject",
        "s3:*",
    ]
    assert policy(allow(known)).decide("keeneye:ListJobs", "*")


def test_resource_for_operations() -> None:
    def arn(cid: str) -> str:
        return f"arn:aws:rekognition:us-east-1:000000000000:collection/{cid}"

    assert resource_for({"CollectionId": "staff", "Image": {}}, arn) == STAFF
    assert resource_for({"ResourceArn": VIP}, arn) == VIP
    assert resource_for({"Image": {}}, arn) == "*"
    assert resource_for({"JobId": "j"}, arn) == "*"


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        ("rtsp://user:hunter2@10.0.0.21:554/stream1", "rtsp://10.0.0.21:554/stream1"),  # no secret
        ("HTTPS://Hooks.Example.org/k?token=s3cret#x", "https://hooks.example.org/k"),
        ("https://h/hooks/%2e%2e/admin", "https://h/admin"),  # dot segments resolved after decoding
        ("https://h/hooks/../../../admin/", "https://h/admin/"),
        ("https://h//hooks", "https://h/hooks"),
        ("http://good.example@evil.example/", "http://evil.example/"),  # the host connected to
        ("mqtt://u:p@[::1]:1883/a/b", "mqtt://[::1]:1883/a/b"),
        ("rtmp://cam", "rtmp://cam"),
    ],
)
def test_url_resources_name_where_keeneye_connects(url: str, resource: str) -> None:
    assert url_arn(url) == "arn:keeneye:url:::" + resource


@pytest.mark.parametrize("url", ["rtsp://u:p@host:bad/x", "rtsp://[::1/x", "http:///nohost", "nothing"])
def test_url_resources_refuse_what_does_not_parse(url: str) -> None:
    with pytest.raises(InvalidParameter):
        url_arn(url)


def test_s3_and_file_resources() -> None:
    assert s3_object_arn("photos", "a/b.jpg") == "arn:aws:s3:::photos/a/b.jpg"
    assert s3_prefix_arn("out", "/cams/lobby/") == "arn:aws:s3:::out/cams/lobby/*"
    assert s3_prefix_arn("out", "") == "arn:aws:s3:::out/*"
    assert file_arn("lobby.jsonl") == "arn:keeneye:file:::notifications/lobby.jsonl"
    # A prefix right is allowed by a pattern over that prefix or wider, not by a narrower one.
    writer = policy(allow("s3:PutObject", "arn:aws:s3:::out/cams/*"))
    assert writer.decide("s3:PutObject", s3_prefix_arn("out", "cams"))
    assert writer.decide("s3:PutObject", s3_prefix_arn("out", "cams/lobby"))
    assert not writer.decide("s3:PutObject", s3_prefix_arn("out", ""))
    assert not writer.decide("s3:PutObject", s3_prefix_arn("out", "camsx"))


def test_request_rights_name_s3_objects_and_channels() -> None:
    topic = "arn:aws:sns:us-east-1:000000000000:done"
    params = {
        "SourceImage": {"S3Object": {"Bucket": "a", "Name": "x.jpg"}},
        "TargetImage": {"Bytes": b"..."},
        "Video": {"S3Object": {"Bucket": "v", "Name": "clip.mp4", "Version": "1"}},
        "NotificationChannel": {"SNSTopicArn": topic, "RoleArn": "arn:aws:iam::0:role/r"},
    }
    assert request_rights(params) == [
        Right("s3:GetObject", "arn:aws:s3:::a/x.jpg"),
        Right("s3:GetObject", "arn:aws:s3:::v/clip.mp4"),
        Right("keeneye:UseNotificationChannel", topic),
    ]
    assert request_rights({"Image": {"Bytes": b"..."}, "CollectionId": "staff"}) == []
