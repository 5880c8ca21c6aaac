"""Authentication failures, named as AWS's SigV4 services name them.

Both adapters authenticate with keeneye.auth: the AWS adapter answers these names as ``__type`` (HTTP
400, as AWS's JSON services do), the native API as HTTP 401 with the same code.
"""

from __future__ import annotations

from typing import Final

# The names a client can receive, and when:
NAMES: Final = frozenset(
    {
        "MissingAuthenticationTokenException",  # no Authorization header
        "IncompleteSignatureException",  # a malformed Authorization header or X-Amz-Date
        "UnrecognizedClientException",  # an unknown, disabled or deleted access key; a session token
        "InvalidSignatureException",  # a wrong signature, body, scope or clock, an unsigned x-amz-* header
    }
)


class AuthError(Exception):
    """The request is not authenticated: ``type_name`` (one of :data:`NAMES`) and a message that names
    no secret."""

    def __init__(self, type_name: str, message: str) -> None:
        if type_name not in NAMES:
            raise ValueError(f"unknown authentication error {type_name!r}")
        super().__init__(message)
        self.type_name = type_name
        self.message = message


class Throttled(Exception):
    """The access key is over its rate limit: retry in ``wait_s`` seconds (ThrottlingException / 429)."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.wait_s = wait_s
