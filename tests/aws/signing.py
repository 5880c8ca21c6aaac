"""Requests signed by botocore's own SigV4 signer, for tests that speak raw HTTP to the server."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keeneye.auth.keyring import KeyRing
from keeneye.service.governance.credentials import AccessKey

AKID = "AKIAKEENEYETESTKEY01"
SECRET = "keeneye/test/secret/0123456789abcdefghijk"
KEYS = KeyRing((AccessKey(AKID, SECRET),))
CONTENT_TYPE = "application/x-amz-json-1.1"


def sign(
    body: bytes,
    headers: dict[str, str],
    *,
    url: str = "http://testserver/",
    method: str = "POST",
    akid: str = AKID,
    secret: str = SECRET,
    region: str = "eu-west-1",
    service: str = "rekognition",
    when: datetime | None = None,
) -> dict[str, str]:
    """The headers (with Authorization and X-Amz-Date) botocore would send for this request."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    if when is None:
        signer.add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(req)
    return dict(req.headers.items())


def rekognition_request(
    operation: str | None, params: Any = None, *, body: bytes | None = None, **sign_kwargs: Any
) -> tuple[bytes, dict[str, str]]:
    """Body and signed headers of a Rekognition JSON 1.1 call (``body`` overrides ``params``)."""
    data = body if body is not None else json.dumps(params if params is not None else {}).encode()
    headers = {"Content-Type": CONTENT_TYPE}
    if operation is not None:
        headers["X-Amz-Target"] = f"RekognitionService.{operation}"
    return data, sign(data, headers, **sign_kwargs)
