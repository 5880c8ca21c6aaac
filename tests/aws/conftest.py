"""An in-process server with a fake face detector: the protocol without the models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.app import create_app
from keeneye.aws.images import ImageLoader
from keeneye.config import ServerSettings, Settings
from keeneye.core.types import Detections, UInt8Image
from keeneye.service.container import Services
from keeneye.service.faces.analysis import FaceService
from tests.aws.signing import KEYS


class CentreFaceDetector:
    """Deterministic stand-in: one face in the middle of any image brighter than black."""

    name = "centre"

    def detect(self, image: UInt8Image) -> Detections:
        h, w = image.shape[:2]
        if image.mean() < 5:
            return Detections.empty(("eyeLeft", "eyeRight", "nose"))
        box = np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32)
        points = np.array([[[w * 0.4, h * 0.4], [w * 0.6, h * 0.4], [w * 0.5, h * 0.5]]], np.float32)
        return Detections(
            box,
            np.array([0.99], np.float32),
            landmarks=points,
            landmark_names=("eyeLeft", "eyeRight", "nose"),
        )


def fake_services(buckets: dict[str, Path] | None = None) -> Services:
    faces = FaceService(FaceAnalyzer(detector=CentreFaceDetector()))
    return Services(faces=faces, images=ImageLoader(dict(buckets or {})))


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
    settings = Settings(data_dir=tmp_path, server=ServerSettings(**server))  # type: ignore[arg-type]
    return Client(create_app(settings, services=services or fake_services(), keys=KEYS))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with make_client(tmp_path) as c:
        yield c
