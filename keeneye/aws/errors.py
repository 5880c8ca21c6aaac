"""AWS JSON 1.1 errors: the one place that maps keeneye's errors to Rekognition's ``__type`` names.

An error response is ``{"__type": "<Name>", "message": "...", "Message": "..."}`` with content type
``application/x-amz-json-1.1``, an ``x-amzn-RequestId`` header and the HTTP status AWS uses (400 for
client errors, 500 for ``InternalServerError``). botocore reads the code from ``__type``, so
``ClientError.response["Error"]["Code"]`` is the name here and ``client.exceptions.<Name>`` catches it
where the service model declares the error.

Authentication errors follow AWS's JSON services: ``MissingAuthenticationTokenException`` (no
``Authorization``), ``IncompleteSignatureException`` (malformed), ``UnrecognizedClientException``
(unknown access key), ``InvalidSignatureException`` (bad signature, tampered body, expired
timestamp). Protocol errors: ``SerializationException`` (body is not a JSON object),
``UnknownOperationException`` (unknown or unsupported ``X-Amz-Target``), ``ValidationException``
(the request breaks the service model's constraints, e.g. a missing required member).
"""

from __future__ import annotations

from typing import Final

from keeneye.auth.errors import AuthError, Throttled
from keeneye.core import errors as core

# AWS error name -> HTTP status. Every error keeneye can send is listed here.
STATUS: Final[dict[str, int]] = {
    "AccessDeniedException": 400,
    "ConflictException": 400,
    "IdempotentParameterMismatchException": 400,
    "ImageTooLargeException": 400,
    "IncompleteSignatureException": 400,
    "InternalServerError": 500,
    "InvalidImageFormatException": 400,
    "InvalidPaginationTokenException": 400,
    "InvalidParameterException": 400,
    "InvalidS3ObjectException": 400,
    "InvalidSignatureException": 400,
    "MissingAuthenticationTokenException": 400,
    "RequestEntityTooLargeException": 413,
    "RequestTimeoutException": 408,  # body not received in time (botocore retries it as transient)
    "ResourceAlreadyExistsException": 400,
    "ResourceNotFoundException": 400,
    "ResourceInUseException": 400,
    "SerializationException": 400,
    "ServiceQuotaExceededException": 400,
    "ThrottlingException": 400,
    "UnknownOperationException": 400,
    "UnrecognizedClientException": 400,
    "ValidationException": 400,
    "VideoTooLargeException": 400,
}

# keeneye's own error classes -> AWS names (most specific class first).
_CORE: Final[tuple[tuple[type[core.KeeneyeError], str], ...]] = (
    (core.NotFound, "ResourceNotFoundException"),
    (core.AlreadyExists, "ResourceAlreadyExistsException"),
    (core.ResourceInUse, "ResourceInUseException"),
    (core.InvalidImage, "InvalidImageFormatException"),
    (core.ImageTooLarge, "ImageTooLargeException"),
    # Stored-video jobs report undecodable videos as FAILED with a StatusMessage; where a request
    # itself carries a bad video, it is a bad parameter.
    (core.InvalidVideo, "InvalidParameterException"),
    (core.InvalidPaginationToken, "InvalidPaginationTokenException"),
    (core.InvalidParameter, "InvalidParameterException"),
    (core.IdempotentParameterMismatch, "IdempotentParameterMismatchException"),
    (core.LimitExceeded, "ServiceQuotaExceededException"),
    (core.ServerBusy, "ThrottlingException"),
    (core.AccessDenied, "AccessDeniedException"),
    # A missing model is the operator's problem, not the caller's: a server error whose message says
    # how to install it (the message names no secret and no path outside the data directory).
    (core.BackendUnavailable, "InternalServerError"),
)

INTERNAL_MESSAGE = "Amazon Rekognition (keeneye) experienced an internal error; see the server log"


class AwsError(Exception):
    """An error with its AWS name; raised by the protocol layer, or made from a keeneye error."""

    def __init__(self, type_name: str, message: str) -> None:
        if type_name not in STATUS:
            raise ValueError(f"unknown AWS error name {type_name!r}")
        super().__init__(message)
        self.type_name = type_name
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.type_name]

    def body(self) -> dict[str, str]:
        # botocore reads ``message``; the AWS SDK for JavaScript v3 (and AWS's own services) also
        # send ``Message``, which it exposes as ``err.Message``.
        return {"__type": self.type_name, "message": self.message, "Message": self.message}


def from_exception(exc: BaseException) -> AwsError:
    """The AWS error for any exception: keeneye errors by class, anything else InternalServerError.

    Unexpected exceptions never leak their text (it may hold paths or data); the caller logs them.
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, AuthError):  # SigV4 failures carry AWS's names already
        return AwsError(exc.type_name, exc.message)
    if isinstance(exc, Throttled):  # too many failed authentications (keeneye.auth.failures)
        return AwsError("ThrottlingException", exc.message)
    if isinstance(exc, core.KeeneyeError):
        for cls, name in _CORE:
            if isinstance(exc, cls):
                return AwsError(name, exc.message)
    return AwsError("InternalServerError", INTERNAL_MESSAGE)


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)
