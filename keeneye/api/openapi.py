"""The native API's OpenAPI document, told the truth about errors.

FastAPI documents a ``422`` "Validation Error" (``{"detail": [...]}``) for every route with parameters,
but the native API answers a bad parameter ``400 {"error": {"code": "InvalidParameter", ...}}`` (the
handler in keeneye.api.errors), and every other error (401, 403, 404, 408, 409, 413, 429, 503) in that
same shape, none of them documented. :func:`document_native_errors` replaces the 422 of each ``/v1``
operation with a ``default`` response of the ``Error`` schema, so clients (and schemathesis, in
tests/fuzz/test_native_openapi.py) can rely on the document for every status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable error code, e.g. InvalidParameter, NotFound",
                },
                "message": {"type": "string", "description": "What went wrong, for a person"},
            },
        }
    },
}

_DEFAULT_RESPONSE = {
    "description": "An error: 400 invalid parameter, 401 not authenticated, 403 denied by the key's "
    "policy, 404 not found, 408 body too slow, 409 conflict, 413 body too large, 429 rate limited, "
    "503 not available on this server",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_native_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the native API's errors (see the module docstring)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI builds the document once and caches it in app.openapi_schema
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Error" not in components:
            components["Error"] = ERROR_SCHEMA
            for path, item in schema.get("paths", {}).items():
                if not path.startswith("/v1/"):
                    continue
                for operation in item.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses.setdefault("default", _DEFAULT_RESPONSE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
