"""An in-process server with a fake face detector (tests.factories.fake_services): the protocol without
the models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keeneye.app import create_app
from keeneye.config import ServerSettings, Settings
from keeneye.service.container import Services
from tests.aws.signing import KEYS
from tests.factories import fake_services


class Client:
    """Raw httpx requests to the ASGI app in-process (each call runs its own event loop)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def make_client(tmp_path: Path, services: Services | None = None, **server: object) -> Client:
    settings = Settings(data_dir=tmp_path, server=ServerSettings(**server))
    return Client(create_app(settings, services=services or fake_services(), keys=KEYS))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with make_client(tmp_path) as c:
        yield c
