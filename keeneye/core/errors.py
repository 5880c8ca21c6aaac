"""The error vocabulary every layer shares.

Services raise these; each adapter (AWS JSON, native API, CLI) maps them in one place.
Each error has a stable ``code`` that adapters and scripts can rely on.
"""

from __future__ import annotations


class KeeneyeError(Exception):
    """Base of every error keeneye raises on purpose."""

    code = "KeeneyeError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(KeeneyeError):
    code = "NotFound"


class AlreadyExists(KeeneyeError):
    code = "AlreadyExists"


class ResourceInUse(KeeneyeError):
    """The resource is in a state that does not allow the request (a running stream processor cannot be
    deleted or updated, a stopped one cannot be stopped); HTTP 409 in the native API."""

    code = "Conflict"


class InvalidImage(KeeneyeError):
    """The bytes are not a decodable JPEG/PNG (empty, truncated, another format)."""

    code = "InvalidImage"


class ImageTooLarge(KeeneyeError):
    """The image exceeds a byte or pixel limit; refused before pixels are decoded where possible."""

    code = "ImageTooLarge"


class InvalidParameter(KeeneyeError):
    """A parameter is out of range, or the request cannot be served as asked (e.g. no face found)."""

    code = "InvalidParameter"


class NoFaceFound(InvalidParameter):
    """A search needs a face and the image has none (Rekognition answers InvalidParameterException, so
    the code stays InvalidParameter; callers that treat "no face" as a result catch this class)."""


class InvalidPaginationToken(InvalidParameter):
    """A NextToken this listing did not give out (Rekognition: InvalidPaginationTokenException)."""

    code = "InvalidPaginationToken"


class IdempotentParameterMismatch(KeeneyeError):
    """A ClientRequestToken re-used with other parameters (HTTP 409 in the native API)."""

    code = "IdempotentParameterMismatch"


class InvalidVideo(KeeneyeError):
    """The input is not a decodable video (empty, truncated, corrupt, another format, unreachable URL)."""

    code = "InvalidVideo"


class LimitExceeded(KeeneyeError):
    code = "LimitExceeded"


class ServerBusy(KeeneyeError):
    """The server has no room for the request now (its images' pixels, or its body, do not fit the
    server-wide budget: keeneye.core.budget); retrying later can succeed. Rekognition's
    ThrottlingException; HTTP 429 in the native API."""

    code = "Throttling"


class AccessDenied(KeeneyeError):
    code = "AccessDenied"


class BackendUnavailable(KeeneyeError):
    """A model or optional runtime is missing; the message says how to install it."""

    code = "BackendUnavailable"
