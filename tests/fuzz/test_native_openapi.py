"""schemathesis against the native API's OpenAPI document (``/openapi.json``), in process.

Every operation the document describes is called with generated parameters and bodies, valid ones
(schemathesis' positive mode) and ones that break the schema (negative mode), authenticated with the
test key's bearer token. Each answer must not be a server error, must have a documented status and
content type, and must match the schema the document gives for its status (errors: the ``default``
response, ``{"error": {"code", "message"}}``; keeneye.api.openapi).

The operations are driven with ``operation.as_strategy()`` and hypothesis directly: schemathesis'
pytest plugin (``from_fixture``) does not work with this pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.aws.conftest import Client
from tests.aws.signing import SECRET
from tests.fuzz.apps import fuzz_app
from tests.fuzz.strategies import EXAMPLES

AUTH = {"Authorization": f"Bearer {SECRET}"}
TOPIC = "arn:aws:sns:us-east-1:123456789012:AmazonRekognitionJobs"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    with fuzz_app(tmp_path_factory.mktemp("native-fuzz")) as app:
        yield app


def _operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_native_api(app: FastAPI, mode: GenerationMode) -> None:
    operations = _operations(app)
    assert len(operations) >= 5  # the document lists the native routes
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES or 20,
            deadline=timedelta(seconds=5),
            derandomize=EXAMPLES is None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call(headers=AUTH)
            case.validate_response(response, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # negative mode: nothing in this operation can be made invalid
            assert mode is GenerationMode.NEGATIVE


@pytest.mark.parametrize("path", [f"/v1/notification-channels/{TOPIC}", "/v1/collections/c/retention"])
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"webhook": ' * 5000 + b"1" + b"}" * 5000, b'{"days": NaN}'],
    ids=["deep-list", "deep-object", "nan"],
)
def test_body_nested_too_deep_is_400(app: FastAPI, path: str, body: bytes) -> None:
    """Python's JSON parser raises RecursionError past ~1000 levels: that was a 500."""
    r = Client(app).request("PUT", path, content=body, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", r.text
