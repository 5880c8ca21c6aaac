"""A real ``keeneye serve`` for the end-to-end benchmarks: a subprocess on 127.0.0.1, driven by boto3.

The server runs exactly as a user starts it (the ``keeneye`` console script, falling back to
``python -m keeneye.cli``) on a free port of 127.0.0.1, with its own data directory (usually a
temporary folder), the installed models (``KEENEYE_MODELS_PATH``, default ``var/models``), and a
fresh access key passed through ``KEENEYE_ACCESS_KEY_ID`` / ``KEENEYE_SECRET_ACCESS_KEY``. Any other
``KEENEYE_*`` variable of the environment reaches the server unchanged, so the benchmark measures the
configured pipeline. ``OPENBLAS_NUM_THREADS`` defaults to 1, as keeneye/store/vectors.py recommends
for the server.

The server's log goes to ``<data_dir>/../server.log`` (or ``log_path``); its per-request lines
(``<RequestId> <Operation> <status> <ms> ms``) give the server-side time of each call, matched to a
boto3 call by its ``ResponseMetadata.RequestId``.

Bounded everywhere: the start waits at most ``startup_timeout_s`` for ``GET /v1/health``; the stop
sends SIGINT (uvicorn's graceful shutdown, which writes the vector index files), waits, then kills
the process it started (by its pid) if it has not exited.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from common import REPO, settings

from keeneye.service.governance.credentials import generate_key

STARTUP_TIMEOUT_S = 240.0  # the models load at start; a busy 2-core machine needs a while
STOP_TIMEOUT_S = 30.0
_REQUEST_LINE = re.compile(r"keeneye\.aws: (\S+) (\w+) (\d{3}) ([\d.]+) ms")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def models_path() -> Path:
    """The installed models: ``KEENEYE_MODELS_PATH`` if set, else ``<KEENEYE_DATA_DIR or var>/models``."""
    return settings().models_dir.resolve()


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, ``kill``) into SystemExit, so ``finally`` blocks stop the server."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("keeneye")
    if script.is_file():
        return [str(script), "serve"]
    found = shutil.which("keeneye")
    return [found, "serve"] if found else [sys.executable, "-m", "keeneye.cli", "serve"]


class LiveServer:
    """``keeneye serve`` on 127.0.0.1 in a subprocess; a context manager (stopped on exit, always).

    data_dir: the server's data directory (created); log_path: where its stdout/stderr go;
    startup_timeout_s: how long to wait for it to answer ``/v1/health``.
    """

    def __init__(
        self, data_dir: Path, log_path: Path | None = None, startup_timeout_s: float = STARTUP_TIMEOUT_S
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path or data_dir.parent / "server.log"
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.url = ""
        self.startup_s = 0.0
        key = generate_key()
        self.access_key_id = key.access_key_id
        self._secret = key.secret_access_key
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LiveServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env["KEENEYE_MODELS_PATH"] = str(models_path())
        env["KEENEYE_ACCESS_KEY_ID"] = self.access_key_id
        env["KEENEYE_SECRET_ACCESS_KEY"] = self._secret
        env.pop("KEENEYE_DATA_DIR", None)  # --data-dir below decides
        cmd = [
            *_serve_command(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "info",
        ]
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = started + self.startup_timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"keeneye serve exited with {self._proc.returncode} while starting:\n{self.log_tail()}"
                )
            if self._healthy():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"keeneye serve did not answer within {self.startup_timeout_s:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.25)
        self.startup_s = time.monotonic() - started

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (None before start and after stop)."""
        return self._proc.pid if self._proc is not None else None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGINT (graceful: uvicorn runs the shutdown that saves the vector indexes), then kill."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def client(self) -> Any:
        """A boto3 Rekognition client for this server (no retries: a throttled call is an error here)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=120,
            max_pool_connections=4,
        )
        return boto3.session.Session().client(
            "rekognition",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self._secret,
            config=config,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def request_times_ms(self, operation: str) -> dict[str, float]:
        """RequestId -> server-side milliseconds of every logged ``operation`` call answered 200."""
        out: dict[str, float] = {}
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        for m in _REQUEST_LINE.finditer(text):
            if m.group(2) == operation and m.group(3) == "200":
                out[m.group(1)] = float(m.group(4))
        return out
