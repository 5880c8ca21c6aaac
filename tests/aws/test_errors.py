"""One mapping from keeneye's errors to AWS names and statuses, checked as botocore parses them."""

from __future__ import annotations

import json

import pytest
from botocore.parsers import create_parser

from keeneye.aws.errors import STATUS, AwsError, from_exception
from keeneye.core import errors as core

CASES = [
    (core.NotFound("x"), "ResourceNotFoundException", 400),
    (core.AlreadyExists("x"), "ResourceAlreadyExistsException", 400),
    (core.InvalidImage("x"), "InvalidImageFormatException", 400),
    (core.ImageTooLarge("x"), "ImageTooLargeException", 400),
    (core.InvalidParameter("x"), "InvalidParameterException", 400),
    (core.LimitExceeded("x"), "ServiceQuotaExceededException", 400),
    (core.AccessDenied("x"), "AccessDeniedException", 400),
    (core.BackendUnavailable("x"), "InternalServerError", 500),
    (RuntimeError("/secret/path"), "InternalServerError", 500),
    (AwsError("ThrottlingException", "x"), "ThrottlingException", 400),
    (AwsError("ValidationException", "x"), "ValidationException", 400),
    (AwsError("InvalidS3ObjectException", "x"), "InvalidS3ObjectException", 400),
]


@pytest.mark.parametrize(("exc", "code", "status"), CASES)
def test_mapping_as_botocore_reads_it(exc: Exception, code: str, status: int) -> None:
    err = from_exception(exc)
    assert (err.type_name, err.status) == (code, status)
    parsed = create_parser("json").parse(
        {
            "status_code": err.status,
            "headers": {"x-amzn-requestid": "r-1", "content-type": "application/x-amz-json-1.1"},
            "body": json.dumps(err.body()).encode(),
        },
        None,
    )
    assert parsed["Error"]["Code"] == code
    assert "/secret/path" not in parsed["Error"]["Message"]


def test_every_name_is_known() -> None:
    with pytest.raises(ValueError):
        AwsError("MadeUpException", "x")
    assert all(s in (400, 408, 413, 500) for s in STATUS.values())
