"""FFmpeg's connections for one camera, made by keeneye so that the egress policy decides each one.

FFmpeg resolves and connects by itself, and goes where the camera sends it: it follows HTTP redirects
(up to 8, to any host), RTSP redirects (a 3xx answer to OPTIONS or DESCRIBE), opens HLS playlists and
segments on any host a playlist names, and skips a proxy for hosts the ``no_proxy`` variable names.
None of that can be turned off by an option. So for a pulled camera keeneye stands in between
(:class:`CameraRelay`, one per :class:`~keeneye.streams.capture.LiveSource`, on 127.0.0.1):

* **http(s)** (MJPEG, HLS): FFmpeg's ``http_proxy`` option names a forward proxy keeneye runs. Every
  request FFmpeg makes -- the first, each redirect, each playlist and segment -- names its host to the
  proxy, which resolves it, checks every address (keeneye.streams.egress) and connects to a checked
  address itself; https goes through ``CONNECT`` (TLS stays end to end between FFmpeg and the camera,
  verified as FFmpeg verifies). A refused request is answered 403. ``no_proxy`` is removed from this
  process's environment when the first such proxy starts (FFmpeg would otherwise connect directly to the
  hosts it names); the processes that run cameras are keeneye's own workers.
* **rtsp(s), rtmp(s)**: FFmpeg gets the same URL with ``127.0.0.1:<relay port>`` as its host (so RTSP
  request URIs and RTMP's tcUrl name the relay; cameras use the path) and speaks plain RTSP / RTMP to
  the relay; keeneye connects to a checked address of the camera (TLS for rtsps / rtmps, not verified:
  FFmpeg's default, cameras have self-signed certificates) and relays the bytes. For RTSP the relay
  reads the camera's answers until the stream starts (the first interleaved packet) and ends the
  connection at a 3xx answer, which FFmpeg would follow to another host. RTSP goes over TCP only
  (interleaved): with UDP, FFmpeg sends to the address the camera's ``Transport: source=`` names.

The relay forwards only to checked addresses, so another local process that finds its port gains
nothing a connection of its own would not give it. What was refused is logged; :attr:`CameraRelay.refusal`
keeps the refusal of the camera's own host (its name resolving to a refused address by now) for the
StatusMessage. Refusals of other hosts (a redirect's, a segment's) are only logged: telling them apart
from a camera that does not answer would tell the caller what the camera's address answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from keeneye.streams.egress import DEFAULT_PORTS, EgressPolicy, EgressRefused, parse_address

log = logging.getLogger("keeneye.egress")

RELAYED_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps")
_MAX_HEAD_BYTES = 64 * 1024
"""Longest HTTP request head or RTSP answer head the relay reads before giving up on it."""
_CHUNK = 64 * 1024
_FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class CameraRelay:
    """The relay of one camera URL (see the module docstring): :meth:`start`, then give FFmpeg
    :attr:`ffmpeg_url` and :attr:`ffmpeg_options`; :meth:`close` ends it and every relayed connection.
    ``timeout_s`` bounds connecting to the camera (and reading a request head)."""

    def __init__(self, url: str, policy: EgressPolicy, *, timeout_s: float) -> None:
        parts = urlsplit(url)
        self._scheme = parts.scheme.lower()
        if self._scheme not in RELAYED_SCHEMES or not parts.hostname:
            raise ValueError(f"not a relayed camera URL: {self._scheme}://")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORTS[self._scheme]
        self._policy = policy
        self._timeout_s = timeout_s
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.refusal: str | None = None
        """The egress refusal of the camera's own host at its latest connection, or None."""
        self.ffmpeg_url = url
        self.ffmpeg_options: dict[str, str] = {}

    @property
    def is_proxy(self) -> bool:
        return self._scheme in ("http", "https")

    def start(self) -> CameraRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.5)
        self._listener = listener
        relay_port = listener.getsockname()[1]
        if self.is_proxy:
            for name in ("no_proxy", "NO_PROXY"):
                if os.environ.pop(name, None) is not None:
                    log.info("egress: %s removed from the environment (FFmpeg would bypass the relay)", name)
            self.ffmpeg_options = {"http_proxy": f"http://127.0.0.1:{relay_port}"}
        else:
            parts = urlsplit(self.url)
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = (f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{relay_port}"
            plain = self._scheme.removesuffix("s")
            self.ffmpeg_url = urlunsplit((plain, netloc, parts.path, parts.query, ""))
        threading.Thread(target=self._accept, name=f"egress-relay:{relay_port}", daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sockets = list(self._open)
            self._open.clear()
        if self._listener is not None:
            self._listener.close()
        for sock in sockets:
            _close(sock)

    # -- connections -------------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            client.settimeout(None)
            try:
                self._track(client)
            except OSError:
                return  # closed meanwhile
            target = self._serve_proxy if self.is_proxy else self._serve_fixed
            threading.Thread(target=self._guarded, args=(target, client), daemon=True).start()

    def _guarded(self, serve: Callable[[socket.socket], None], client: socket.socket) -> None:
        try:
            serve(client)
        except OSError as exc:  # a connection ending badly is the camera's or FFmpeg's business
            log.debug("egress relay: %s", exc)
            self._forget(client)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            if self._closed.is_set():
                _close(sock)
                raise OSError("the relay is closed")
            self._open.add(sock)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
        for sock in socks:
            _close(sock)

    def _connect(self, host: str, port: int) -> socket.socket | bool:
        """A checked connection to ``host``:``port``; False when the policy refused it, True when it
        could not be made (both logged)."""
        try:
            upstream = self._policy.connect(host, port, "camera", timeout_s=self._timeout_s, what="camera")
        except EgressRefused as exc:
            if host == self.host and port == self.port:
                self.refusal = exc.message
            else:
                log.debug("egress relay for camera %s: %s", self.host, exc.message)
            return False
        except (OSError, UnicodeError) as exc:
            log.info("egress relay: cannot connect to %s port %d: %s", host, port, exc)
            return True
        if host == self.host and port == self.port:
            self.refusal = None
        upstream.settimeout(None)
        self._track(upstream)
        return upstream

    def _serve_proxy(self, client: socket.socket) -> None:
        """One proxied HTTP request (absolute URI) or CONNECT tunnel."""
        client.settimeout(self._timeout_s)
        head, rest = _read_head(client)
        client.settimeout(None)
        line, _, headers = head.partition(b"\r\n")
        try:
            method, target, version = line.decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host, port, request = host.strip("[]"), int(port_text), b""
            else:
                parts = urlsplit(target)
                if parts.scheme.lower() != "http" or not parts.hostname:
                    raise ValueError("not an absolute http:// URI")
                host, port = parts.hostname, parts.port or 80
                path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
                kept = [h for h in headers.split(b"\r\n") if h and not h.lower().startswith(b"proxy-")]
                request = f"{method} {path} {version}\r\n".encode("latin-1")
                request += b"".join(h + b"\r\n" for h in kept) + b"\r\n"
        except ValueError:
            client.sendall(_BAD_REQUEST)
            self._forget(client)
            return
        upstream = self._connect(host, port)
        if isinstance(upstream, bool):
            client.sendall(_BAD_GATEWAY if upstream else _FORBIDDEN)
            self._forget(client)
            return
        if method == "CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        upstream.sendall(request + rest)
        self._splice(client, upstream)

    def _serve_fixed(self, client: socket.socket) -> None:
        """One RTSP or RTMP connection to the camera's own host and port."""
        upstream = self._connect(self.host, self.port)
        if isinstance(upstream, bool):
            self._forget(client)
            return
        if self._scheme in ("rtsps", "rtmps"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # FFmpeg's own default (tls_verify=0): cameras self-sign
            upstream.settimeout(self._timeout_s)
            server_name = None if parse_address(self.host) is not None else self.host
            wrapped = context.wrap_socket(upstream, server_hostname=server_name)
            wrapped.settimeout(None)
            with self._lock:
                self._open.discard(upstream)
            self._track(wrapped)
            upstream = wrapped
        if self._scheme.startswith("rtsp"):
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            self._guard_rtsp(upstream, client)
        else:
            self._splice(client, upstream)

    def _splice(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
        self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy ``src`` to ``dst`` until either ends; then both are closed."""
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._forget(src, dst)

    def _guard_rtsp(self, camera: socket.socket, client: socket.socket) -> None:
        """Relay the camera's RTSP answers, ending the connection at a 3xx; once interleaved media
        starts (``$``), relay bytes as they come."""
        buffer = b""
        try:
            while True:
                while buffer and not buffer.startswith(b"$"):
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > _MAX_HEAD_BYTES:
                            raise OSError("an RTSP answer head over 64 KiB")
                        break
                    head = buffer[: end + 4]
                    size = end + 4 + _content_length(head)
                    if len(buffer) < size:
                        break
                    first = head.split(b"\r\n", 1)[0].split(b" ")
                    redirect = first[0] == b"REDIRECT" or (
                        first[0].startswith(b"RTSP/") and len(first) > 1 and first[1].startswith(b"3")
                    )
                    if redirect:
                        log.warning(
                            "egress relay: the camera %s answered %r (a redirect): not followed",
                            self.host,
                            b" ".join(first[:2]).decode("latin-1"),
                        )
                        self._forget(camera, client)
                        return
                    client.sendall(buffer[:size])
                    buffer = buffer[size:]
                if buffer.startswith(b"$"):
                    client.sendall(buffer)
                    break
                data = camera.recv(_CHUNK)
                if not data:
                    if buffer:
                        client.sendall(buffer)
                    break
                buffer += data
        except OSError:
            self._forget(camera, client)
            return
        self._pipe(camera, client)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP request head (without its blank line) and the bytes read after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _MAX_HEAD_BYTES:
            raise OSError("no complete request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
