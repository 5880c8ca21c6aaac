"""Stream processors take a camera URL (Input) or a sink URL (Output) where AWS wants a Kinesis ARN
(docs/streams.md). ``s3://bucket/prefix`` sink URLs were documented but refused by the request model
(issue 13, item 9); each ARN field takes exactly the schemes its side can use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keeneye.aws import model
from keeneye.aws.errors import AwsError

ARN_IN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/door/1"
ARN_OUT = "arn:aws:kinesis:us-east-1:123456789012:stream/events"


def _create(input_arn: str, output_arn: str) -> dict[str, Any]:
    operation = model.service_model().operation_model("CreateStreamProcessor")
    body = {
        "Name": "door",
        "Input": {"KinesisVideoStream": {"Arn": input_arn}},
        "Output": {"KinesisDataStream": {"Arn": output_arn}},
        "Settings": {"ConnectedHome": {"Labels": ["PERSON"]}},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
    }
    return model.parse_input(operation, json.dumps(body).encode())


@pytest.mark.parametrize(
    "output",
    [
        ARN_OUT,
        "s3://bucket/prefix",
        "S3://bucket",
        "https://127.0.0.1/hook",
        "mqtt://127.0.0.1/t",
        "mqtts://127.0.0.1/t",
        "file://lobby.jsonl",
    ],
)
def test_output_takes_every_documented_sink_url(output: str) -> None:
    assert _create(ARN_IN, output)["Output"]["KinesisDataStream"]["Arn"] == output


@pytest.mark.parametrize(
    "source",
    [ARN_IN, "rtsp://127.0.0.1/x", "rtsps://127.0.0.1/x", "rtmp://127.0.0.1/x", "http://127.0.0.1/x"],
)
def test_input_takes_camera_urls(source: str) -> None:
    assert _create(source, ARN_OUT)["Input"]["KinesisVideoStream"]["Arn"] == source


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("s3://bucket/clip.mp4", ARN_OUT),  # a camera is not read from a bucket
        ("mqtt://127.0.0.1/t", ARN_OUT),
        (ARN_IN, "rtsp://127.0.0.1/x"),  # records are not written to a camera
        (ARN_IN, "gopher://127.0.0.1/x"),
        (ARN_IN, "s3://"),
    ],
)
def test_other_schemes_must_match_the_arn_pattern(source: str, output: str) -> None:
    with pytest.raises(AwsError) as caught:
        _create(source, output)
    assert caught.value.type_name == "ValidationException"
    assert "regular expression pattern" in caught.value.message
