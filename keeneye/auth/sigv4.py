"""AWS Signature Version 4 verification, computed with botocore's own signer.

The server parses the ``Authorization`` header, looks up the secret of the access key, rebuilds an
``AWSRequest`` from exactly the headers the client signed (``SignedHeaders``) and the raw body, and
asks ``botocore.auth.SigV4Auth`` for the canonical request, string to sign and signature with the
credential scope's date, region and service. So keeneye and the SDKs share one implementation of the
canonical form; keeneye only adds the checks a server must make:

* service ``rekognition`` in the scope, a well-formed region name (the caller's region scopes its
  collections, processors and jobs: keeneye.core.regions), terminator ``aws4_request``;
* ``X-Amz-Date`` present, signed, on the scope's date, within 5 minutes of the server clock;
* every ``x-amz-*`` header sent is signed (``X-Amz-Target`` names the operation: unsigned, a captured
  request could be replayed as another operation; a request without one names no operation);
* no ``X-Amz-Security-Token``: keeneye has no STS, so no temporary credentials are valid;
* the body's SHA-256 equals ``X-Amz-Content-SHA256`` when the client sends it (``UNSIGNED-PAYLOAD``
  is refused: the body is always part of the signature here);
* constant-time comparison of signatures.

Everything but the last two needs only the headers: :func:`check_headers` makes those checks before a
server reads the body (so a caller who cannot be authenticated never gets to send one), :func:`verify`
all of them once the body is there.

Secrets never appear in exceptions or logs. Query-string (pre-signed URL) authentication is not
supported: Rekognition's JSON API is only called with signed headers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keeneye.auth.errors import AuthError
from keeneye.core import regions

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)

SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class SignedRequest:
    """What the server received, as needed to check its signature.

    headers: lower-case names -> value (repeated headers joined with ``,`` as SigV4 canonicalises them);
    path: the path as sent (still percent-encoded); query: the raw query string.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def signed_request(
    method: str, raw_path: bytes, query: bytes, header_items: Iterable[tuple[str, str]], body: bytes
) -> SignedRequest:
    """A :class:`SignedRequest` from what an HTTP server received (an ASGI scope's raw path and query,
    its headers in order): repeated headers are joined with ``,``, as SigV4 canonicalises them."""
    headers: dict[str, str] = {}
    for name, value in header_items:
        name = name.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return SignedRequest(
        method=method,
        path=raw_path.decode("latin-1"),
        query=query.decode("latin-1"),
        headers=headers,
        body=body,
    )


@dataclass(frozen=True)
class Caller:
    access_key_id: str
    region: str


@dataclass(frozen=True)
class Credential:
    """What the headers of a SigV4 request say, once checked: who claims to sign, for which region,
    which headers, the signature and the time (``X-Amz-Date`` as sent)."""

    access_key_id: str
    region: str
    signed_headers: list[str]
    signature: str
    amz_date: str


UNKNOWN_KEY = "The security token included in the request is invalid."


def _parse_authorization(value: str | None) -> tuple[str, str, str, str, list[str], str]:
    """The Authorization header's access key, date, region, service, signed headers and signature."""
    if not value:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    if not value.strip().startswith(ALGORITHM):
        raise AuthError("IncompleteSignatureException", f"only {ALGORITHM} signatures are supported")
    m = _AUTH_RE.match(value.strip())
    if m is None:
        raise AuthError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "with the AWS4-HMAC-SHA256 algorithm",
        )
    parts = m["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError(
            "IncompleteSignatureException",
            "Credential must be <access key>/<date>/<region>/<service>/aws4_request",
        )
    akid, date, region, service, _ = parts
    signed = m["signed"].lower().split(";")
    return akid, date, region, service, signed, m["signature"].lower()


def check_headers(
    headers: Mapping[str, str], *, service: str = "rekognition", now: datetime | None = None
) -> Credential:
    """The checks that need no body, in this order (the first that fails is the error): the
    Authorization header, the credential scope, the signed headers, X-Amz-Date (present, signed, within
    5 minutes of ``now``), no session token."""
    akid, date, region, scope_service, signed, signature = _parse_authorization(headers.get("authorization"))
    _check_scope(region, scope_service, service)
    _check_signed_headers(headers, signed)
    amz_date = _check_date(headers, signed, date, now or datetime.now(UTC))
    if "x-amz-security-token" in headers:
        # Temporary credentials come from AWS STS, which keeneye is not: no session token is valid here
        # (accepting and ignoring one would let an expired or revoked token keep working).
        raise AuthError(
            "UnrecognizedClientException",
            "The security token included in the request is invalid. keeneye does not accept session "
            "tokens (temporary credentials): sign with an access key made by `keeneye keys create`",
        )
    return Credential(akid, region, signed, signature, amz_date)


def verify(
    request: SignedRequest,
    lookup: SecretLookup,
    *,
    service: str = "rekognition",
    now: datetime | None = None,
) -> Caller:
    """Check the request's SigV4 signature; return the caller or raise the AWS error a client expects.
    The checks run in this order (the first that fails is the error): :func:`check_headers`, the body's
    hash, the key, the signature."""
    cred = check_headers(request.headers, service=service, now=now)
    _check_body(request)
    secret = lookup(cred.access_key_id)
    if secret is None:
        raise AuthError("UnrecognizedClientException", UNKNOWN_KEY)
    expected = _signature(
        request, cred.signed_headers, secret, cred.access_key_id, cred.region, service, cred.amz_date
    )
    if not hmac.compare_digest(expected, cred.signature):
        raise AuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return Caller(cred.access_key_id, cred.region)


def _check_scope(region: str, scope_service: str, service: str) -> None:
    if not regions.is_region(region):  # it becomes part of resource keys: refuse anything odd
        raise AuthError("InvalidSignatureException", "Credential should be scoped to a valid region.")
    if scope_service != service:
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )


def _check_signed_headers(headers: Mapping[str, str], signed: list[str]) -> None:
    if "host" not in signed:
        raise AuthError("InvalidSignatureException", "the Host header must be signed")
    missing = [h for h in signed if h not in headers]
    if missing:
        raise AuthError(
            "IncompleteSignatureException", f"signed header(s) missing from the request: {missing}"
        )
    # Every x-amz-* header sent must be signed (X-Amz-Target names the operation: unsigned, a captured
    # DescribeCollection could be replayed as DeleteCollection), as AWS requires.
    unsigned = sorted(h for h in headers if h.startswith("x-amz-") and h not in signed)
    if unsigned:
        raise AuthError(
            "InvalidSignatureException",
            f"the request's {', '.join(unsigned)} header(s) must be signed (list them in SignedHeaders)",
        )


def _check_date(headers: Mapping[str, str], signed: list[str], date: str, now: datetime) -> str:
    """X-Amz-Date: signed, on the scope's date, within MAX_SKEW of ``now``; returned as sent."""
    amz_date = headers.get("x-amz-date")
    if not amz_date or "x-amz-date" not in signed:
        raise AuthError("IncompleteSignatureException", "X-Amz-Date must be present and signed")
    try:
        when = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise AuthError(
            "IncompleteSignatureException", "X-Amz-Date must look like 20260127T120000Z"
        ) from None
    if amz_date[:8] != date:
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid date: '{amz_date[:8]}'.",
        )
    if abs(now - when) > MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)"
            if when < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} + 5 min.)",
        )
    return amz_date


def _check_body(request: SignedRequest) -> None:
    """The body's SHA-256 must equal X-Amz-Content-SHA256 when the client sends it."""
    declared = request.headers.get("x-amz-content-sha256")
    if declared is not None:
        actual = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(declared.lower(), actual):
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )


def _signature(
    request: SignedRequest,
    signed: list[str],
    secret: str,
    akid: str,
    region: str,
    service: str,
    amz_date: str,
) -> str:
    """The signature botocore's SigV4 signer computes over the signed headers and the body."""
    host = request.headers["host"]
    url = f"http://{host}{request.path or '/'}" + (f"?{request.query}" if request.query else "")
    headers = {name: request.headers[name] for name in signed}
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    aws_request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    canonical = signer.canonical_request(aws_request)
    # botocore drops a few hop-by-hop headers (user-agent, ...) from what it signs; a client that
    # signed one of them cannot be verified through it.
    if signer.signed_headers(signer.headers_to_sign(aws_request)) != ";".join(sorted(signed)):
        raise AuthError("InvalidSignatureException", "SignedHeaders name a header that SigV4 does not sign")
    string_to_sign = signer.string_to_sign(aws_request, canonical)
    return str(signer.signature(string_to_sign, aws_request))
