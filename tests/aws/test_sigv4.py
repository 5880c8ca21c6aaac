"""SigV4 verification: what botocore signs passes; every way of getting it wrong is refused."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from keeneye.auth.errors import AuthError
from keeneye.auth.sigv4 import SignedRequest, verify
from tests.aws.signing import AKID, KEYS, SECRET, rekognition_request, sign

NOW = datetime(2026, 1, 27, 12, 0, 0, tzinfo=UTC)


def _request(body: bytes, headers: dict[str, str]) -> SignedRequest:
    lower = {k.lower(): v for k, v in headers.items()}
    lower.setdefault("host", "testserver")
    return SignedRequest("POST", "/", "", lower, body)


def _verify(body: bytes, headers: dict[str, str], now: datetime = NOW) -> str:
    return verify(_request(body, headers), KEYS.secret_for, now=now).access_key_id


def _signed(**kwargs: object) -> tuple[bytes, dict[str, str]]:
    kwargs.setdefault("when", NOW)
    return rekognition_request("DetectFaces", {"Image": {"Bytes": "AAAA"}}, **kwargs)  # type: ignore[arg-type]


def _code(body: bytes, headers: dict[str, str], now: datetime = NOW) -> tuple[str, str]:
    with pytest.raises(AuthError) as info:
        _verify(body, headers, now)
    return info.value.type_name, info.value.message


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"])
def test_botocore_signature_verifies_in_any_region(region: str) -> None:
    body, headers = _signed(region=region)
    assert _verify(body, headers) == AKID


@pytest.mark.parametrize("region", ["local", "..", "US-EAST-1", "us-east-1;x", "a" * 40])
def test_a_region_that_is_not_a_region_name_is_refused(region: str) -> None:
    """The region scopes collections (it becomes part of their keys): only AWS-shaped names."""
    body, headers = _signed(region=region)
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException" and "valid region" in message


def test_unsigned_headers_may_change() -> None:
    body, headers = _signed()
    headers["User-Agent"] = "something else"  # not signed by SigV4
    assert _verify(body, headers) == AKID


def test_missing_authorization() -> None:
    body, headers = _signed()
    del headers["Authorization"]
    assert _code(body, headers)[0] == "MissingAuthenticationTokenException"


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256 Credential=x",
        "AWS4-HMAC-SHA256 Credential=AKIA/20260127/us-east-1/rekognition, SignedHeaders=host, Signature=ab",
        "Basic dXNlcjpwYXNz",
        "AWS AKIA:abc",
    ],
)
def test_malformed_authorization(value: str) -> None:
    body, headers = _signed()
    headers["Authorization"] = value
    assert _code(body, headers)[0] == "IncompleteSignatureException"


def test_unknown_access_key() -> None:
    body, headers = _signed(akid="AKIAUNKNOWNKEY000000")
    assert _code(body, headers) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_wrong_secret() -> None:
    body, headers = _signed(secret=SECRET + "x")
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException"
    assert SECRET not in message


def test_tampered_body() -> None:
    body, headers = _signed()
    assert _code(body.replace(b"AAAA", b"BBBB"), headers)[0] == "InvalidSignatureException"


def test_tampered_body_with_declared_hash() -> None:
    body, headers = _signed()
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    tampered = body.replace(b"AAAA", b"BBBB")
    code, message = _code(tampered, headers)
    assert code == "InvalidSignatureException" and "x-amz-content-sha256" in message


def test_unsigned_payload_refused() -> None:
    body, headers = _signed()
    headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    assert _code(body, headers)[0] == "InvalidSignatureException"


def test_tampered_signed_header() -> None:
    body, headers = _signed()
    headers["X-Amz-Target"] = "RekognitionService.DeleteCollection"
    assert _code(body, headers)[0] == "InvalidSignatureException"


def test_wrong_service() -> None:
    body, headers = _signed(service="s3")
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException" and "rekognition" in message


@pytest.mark.parametrize("minutes", [-6, 6, -60 * 24])
def test_clock_skew_over_five_minutes(minutes: int) -> None:
    body, headers = _signed(when=NOW + timedelta(minutes=minutes))
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException"
    assert "Signature expired" in message or "not yet current" in message


@pytest.mark.parametrize("minutes", [-4, 4])
def test_clock_skew_within_five_minutes(minutes: int) -> None:
    body, headers = _signed(when=NOW + timedelta(minutes=minutes))
    assert _verify(body, headers) == AKID


def test_date_must_match_scope() -> None:
    body, headers = _signed()
    headers["X-Amz-Date"] = "20260126T120000Z"
    assert _code(body, headers, now=datetime(2026, 1, 26, 12, tzinfo=UTC))[0] == "InvalidSignatureException"


def test_signed_header_missing_from_request() -> None:
    body, headers = _signed()
    del headers["X-Amz-Target"]
    assert _code(body, headers)[0] == "IncompleteSignatureException"


def test_an_operation_header_outside_the_signature_is_refused() -> None:
    """A request signed over host and x-amz-date only, captured and replayed with another
    X-Amz-Target, must not run that operation (a signed DescribeCollection became DeleteCollection)."""
    body = b'{"CollectionId": "victim"}'
    headers = sign(body, {"Content-Type": "application/x-amz-json-1.1"}, when=NOW)
    assert "x-amz-target" not in headers["Authorization"].lower()
    headers["X-Amz-Target"] = "RekognitionService.DeleteCollection"
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException" and "x-amz-target" in message


def test_every_x_amz_header_sent_must_be_signed() -> None:
    body, headers = _signed()
    headers["X-Amz-Meta-Anything"] = "added after signing"
    code, message = _code(body, headers)
    assert code == "InvalidSignatureException" and "x-amz-meta-anything" in message


def test_session_tokens_are_refused() -> None:
    """keeneye has no STS: a session token is never valid (it used to be accepted and ignored)."""
    body = json.dumps({"Image": {"Bytes": "AAAA"}}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "RekognitionService.DetectFaces",
        "X-Amz-Security-Token": "FwoGZXIvYXdzEBYaDAnything",
    }
    code, message = _code(body, sign(body, headers, when=NOW))
    assert code == "UnrecognizedClientException" and "session tokens" in message
