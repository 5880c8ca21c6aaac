"""A client that disconnects before its body arrived costs one log line on native routes (issue 13, item
9): it used to escape as ClientDisconnect, answered 500 and logged a full traceback every time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from keeneye.app import create_app
from keeneye.config import Settings
from tests.aws.signing import KEYS, SECRET
from tests.factories import fake_services


def _gone_after(first: bytes) -> Any:
    """An ASGI receive that sends ``first`` (more to come), then reports the client gone."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": first, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if len(messages) > 1 else messages[0]

    return receive


@pytest.mark.parametrize("first", [b"", b'{"da'])
def test_a_client_gone_mid_body_is_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, first: bytes
) -> None:
    app: Any = create_app(Settings(data_dir=tmp_path), services=fake_services(), keys=KEYS)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = "/v1/notification-channels/arn:aws:sns:us-east-1:123456789012:t"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {SECRET}".encode()), (b"content-length", b"100")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(app(scope, _gone_after(first), send), 10))  # nothing escapes
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert not [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.WARNING]
    lines = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert lines == [f"PUT {path}: the client went away before sending its body"]
