"""Fuzzing the AWS JSON 1.1 layer through the real ASGI app (signed requests, real store, stand-in models).

Two kinds of input: whole bodies that are any JSON (or not JSON at all), and parameters built from
botocore's input shape of the operation, right in structure but with hostile values (NaN and
infinities, huge and negative numbers, long and odd strings, wrong types here and there, blobs that
are photos, tiny images, bombs or noise). Whatever is sent, the answer is a success or an AWS error
whose ``__type`` the operation declares in the service model (or a protocol error), with the status
AWS uses for it; never a 500.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import Shape
from hypothesis import given
from hypothesis import strategies as st

from keeneye.aws.errors import STATUS
from keeneye.aws.handlers import OPERATIONS
from keeneye.aws.model import service_model
from tests.aws.conftest import Client
from tests.aws.signing import rekognition_request
from tests.factories import encode, gradient
from tests.fuzz.apps import PHOTO, fuzz_app
from tests.fuzz.strategies import fuzz_settings
from tests.fuzz.test_image_decoder import bomb_png

# Errors any operation may answer: the protocol's own (keeneye.aws.errors), whatever the model lists.
PROTOCOL_ERRORS = frozenset(
    {
        "SerializationException",
        "ValidationException",
        "UnknownOperationException",
        "ThrottlingException",
        "AccessDeniedException",
        "RequestEntityTooLargeException",
        "RequestTimeoutException",
    }
)
FUZZED = sorted(
    {
        "DetectFaces",
        "CompareFaces",
        "CreateCollection",
        "DescribeCollection",
        "ListCollections",
        "IndexFaces",
        "ListFaces",
        "SearchFaces",
        "SearchFacesByImage",
        "DeleteFaces",
        "CreateUser",
        "ListUsers",
        "AssociateFaces",
        "SearchUsers",
        "SearchUsersByImage",
        "TagResource",
        "ListTagsForResource",
        "StartPersonTracking",
        "GetPersonTracking",
        "StartFaceSearch",
        "GetFaceDetection",
        "CreateStreamProcessor",
        "DescribeStreamProcessor",
        "ListStreamProcessors",
        "StartStreamProcessor",
        "StopStreamProcessor",
        "UpdateStreamProcessor",
        "DeleteStreamProcessor",
    }
    & set(OPERATIONS)
)
IMAGES = [
    PHOTO,
    encode(gradient(60, 90), "PNG"),  # under Rekognition's 80 px
    bomb_png(30_000, 30_000),
    b"\xff\xd8\xff" + bytes(range(256)),
    b"",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with fuzz_app(tmp_path_factory.mktemp("aws-fuzz")) as app:
        yield Client(app)


def check_answer(client: Client, operation: str, body: bytes) -> None:
    data, headers = rekognition_request(operation, body=body)
    r = client.post("/", content=data, headers=headers)
    assert r.status_code != 500, r.text
    assert r.headers["content-type"].startswith("application/x-amz-json-1.1")
    answer = r.json()
    assert isinstance(answer, dict)
    if r.status_code == 200:
        assert "__type" not in answer
        return
    declared = {s.name for s in service_model().operation_model(operation).error_shapes}
    kind = answer.get("__type")
    assert kind in declared | PROTOCOL_ERRORS, answer
    assert STATUS[kind] == r.status_code and set(answer) == {"__type", "message", "Message"}


# -- parameters shaped like the model, with hostile values ---------------------------------------------

ODD_STRINGS = st.sampled_from(
    [
        "c",
        "c",
        "bkt",
        "u1",
        "photo.jpg",
        "clip.mp4",
        "",
        " ",
        "..",
        "../photo.jpg",
        "a" * 300,
        "\0",
        "a\0b",
        "\ud800",  # a lone surrogate: JSON can carry it (as an escape), UTF-8 cannot
        "é\u202e",
    ]
)
# Any text, lone surrogates included (hypothesis leaves them out unless asked).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def sometimes_wrong(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` 9 times in 10, any JSON value otherwise (so most calls get past validation)."""
    return st.integers(0, 9).flatmap(lambda i: ANY_JSON if i == 0 else good)


def for_shape(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of ``shape``'s type, hostile within it; now and then a value of another type."""
    return sometimes_wrong(_for_shape(shape, depth))


def _for_shape(shape: Shape, depth: int) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        required = set(shape.required_members)
        if depth > 4:
            return st.just({})
        fields = {name: for_shape(m, depth + 1) for name, m in members.items()}
        if "Bucket" in fields:  # mostly the served bucket, so the object names get tried
            fields["Bucket"] = st.just("bkt") | fields["Bucket"]
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "list":
        return st.lists(for_shape(shape.member, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=12), for_shape(shape.value, depth + 1), max_size=3)
    if kind == "string":
        if shape.enum:
            return st.sampled_from(shape.enum) | st.text(max_size=12)
        return ODD_STRINGS | ANY_TEXT
    if kind in ("integer", "long"):
        return st.integers(-5, 5000) | st.sampled_from([-(2**63), 2**31, 2**63, 10**30]) | st.floats()
    if kind in ("float", "double"):
        return st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.sampled_from(IMAGES).map(lambda b: base64.b64encode(b).decode())
    return ANY_JSON


@st.composite
def shaped_calls(draw: st.DrawFn) -> tuple[str, bytes]:
    operation = draw(st.sampled_from(FUZZED))
    shape = service_model().operation_model(operation).input_shape
    params = draw(_for_shape(shape, 0)) if shape is not None else {}
    # Python's json writes NaN and Infinity, as a careless client would; the server must cope.
    return operation, json.dumps(params, allow_nan=True).encode()


@fuzz_settings(max_examples=400, deadline_s=5.0)
@given(call=shaped_calls())
def test_shaped_parameters(client: Client, call: tuple[str, bytes]) -> None:
    check_answer(client, *call)


@fuzz_settings(max_examples=150, deadline_s=5.0)
@given(operation=st.sampled_from(FUZZED), body=ANY_JSON.map(lambda v: json.dumps(v).encode()) | st.binary())
def test_any_body(client: Client, operation: str, body: bytes) -> None:
    check_answer(client, operation, body)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308, 10**30, -(2**63)])
def test_non_finite_and_huge_numbers(client: Client, value: float) -> None:
    """Each numeric member a client can send, with values JSON cannot hold exactly (or at all)."""
    image = {"Bytes": base64.b64encode(IMAGES[0]).decode()}
    calls = [
        ("CompareFaces", {"SourceImage": image, "TargetImage": image, "SimilarityThreshold": value}),
        ("SearchFacesByImage", {"CollectionId": "c", "Image": image, "FaceMatchThreshold": value}),
        ("SearchFacesByImage", {"CollectionId": "c", "Image": image, "MaxFaces": value}),
        ("ListFaces", {"CollectionId": "c", "MaxResults": value}),
        ("ListCollections", {"MaxResults": value}),
        ("IndexFaces", {"CollectionId": "c", "Image": image, "MaxFaces": value}),
        ("GetPersonTracking", {"JobId": "x" * 20, "MaxResults": value}),
    ]
    for operation, params in calls:
        check_answer(client, operation, json.dumps(params, allow_nan=True).encode())


DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,  # nested past the parser's recursion limit
        b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        b'{"Image": {"Bytes": "AAAA"}, "Attributes": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"MaxResults": 1' + b"0" * 5000 + b"}",  # over Python's 4300-digit int conversion limit
        b'{"Image": {"Bytes": "AAAA"}, "MaxResults": NaN}',
        b'{"SimilarityThreshold": Infinity}',
        b'"\\ud800"',
        b"\x00",
    ],
    ids=["deep-list", "deep-object", "deep-member", "digits", "nan", "infinity", "surrogate", "nul"],
)
def test_pathological_bodies(client: Client, body: bytes) -> None:
    """Bodies the generators above do not make: a SerializationException each (was: a 500 for the deep,
    the long and, as a silent pass of every range check, NaN)."""
    for operation in ("DetectFaces", "CompareFaces", "ListFaces"):
        check_answer(client, operation, body)
    data, headers = rekognition_request("DetectFaces", body=body)
    assert client.post("/", content=data, headers=headers).json()["__type"] == "SerializationException"


@pytest.mark.parametrize("name", ["\ud800.jpg", "a\0b.jpg"], ids=["lone-surrogate", "nul"])
def test_object_names_no_file_system_can_take(client: Client, name: str) -> None:
    """A NUL or a lone surrogate in an S3Object name reached the file system (ValueError,
    UnicodeEncodeError) and was answered InternalServerError; now InvalidS3ObjectException."""
    for operation, params in [
        ("DetectFaces", {"Image": {"S3Object": {"Bucket": "bkt", "Name": name}}}),
        ("StartPersonTracking", {"Video": {"S3Object": {"Bucket": "bkt", "Name": name}}}),
    ]:
        data, headers = rekognition_request(operation, body=json.dumps(params).encode())
        answer = client.post("/", content=data, headers=headers).json()
        assert answer["__type"] == "InvalidS3ObjectException", answer
