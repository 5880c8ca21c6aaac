"""keeneye.core.errors: one base class, a stable code per error (adapters and scripts rely on it)."""

from __future__ import annotations

import pytest

from keeneye.core import errors

CODES: list[tuple[type[errors.KeeneyeError], str]] = [
    (errors.KeeneyeError, "KeeneyeError"),
    (errors.NotFound, "NotFound"),
    (errors.AlreadyExists, "AlreadyExists"),
    (errors.ResourceInUse, "Conflict"),
    (errors.InvalidImage, "InvalidImage"),
    (errors.ImageTooLarge, "ImageTooLarge"),
    (errors.InvalidParameter, "InvalidParameter"),
    (errors.NoFaceFound, "InvalidParameter"),  # Rekognition answers InvalidParameterException
    (errors.InvalidPaginationToken, "InvalidPaginationToken"),
    (errors.IdempotentParameterMismatch, "IdempotentParameterMismatch"),
    (errors.InvalidVideo, "InvalidVideo"),
    (errors.LimitExceeded, "LimitExceeded"),
    (errors.ServerBusy, "Throttling"),  # ThrottlingException, HTTP 429: the server-wide budgets
    (errors.AccessDenied, "AccessDenied"),
    (errors.BackendUnavailable, "BackendUnavailable"),
]


@pytest.mark.parametrize(("cls", "code"), CODES, ids=[cls.__name__ for cls, _ in CODES])
def test_each_error_has_its_stable_code_and_message(cls: type[errors.KeeneyeError], code: str) -> None:
    error = cls("what went wrong")
    assert isinstance(error, errors.KeeneyeError) and isinstance(error, Exception)
    assert error.code == code and error.message == "what went wrong" and str(error) == "what went wrong"


def test_every_error_in_the_module_is_listed() -> None:
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.KeeneyeError)
    }
    assert defined == {cls for cls, _ in CODES}


@pytest.mark.parametrize("cls", [errors.NoFaceFound, errors.InvalidPaginationToken])
def test_narrower_errors_are_caught_as_invalid_parameter(cls: type[errors.KeeneyeError]) -> None:
    with pytest.raises(errors.InvalidParameter):
        raise cls("x")
