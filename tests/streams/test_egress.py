"""The egress policy against the SSRF findings of issue 13 (item 2), each tried as an attack.

Nothing is ever sent to a non-loopback address: refusals happen before connecting (a refused address
is never connected to), "accepted" cases of other addresses assert the policy's decision only, and the
places an attack would reach are loopback listeners (:class:`Tripwire`) that must see no connection.
Names resolve through resolvers injected here (tests/conftest.py lets no DNS query out).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from keeneye.config import CameraEgress, EgressSettings, SinkEgress
from keeneye.core.errors import InvalidParameter
from keeneye.streams.capture import CONNECT_FAILED, CaptureSettings, LiveSource
from keeneye.streams.egress import EgressPolicy, EgressRefused, address_class
from keeneye.streams.sinks import (
    MqttSink,
    MqttTarget,
    SinkError,
    SinkSpec,
    WebhookSink,
    WebhookTarget,
    check_egress,
)
from tests.factories import LOOPBACK, LOOPBACK_EGRESS, loopback_egress, walking_box_frames, write_video
from tests.receivers import free_port, mosquitto_broker, mqtt_subscriber, wait_until, webhook_receiver

METADATA_FORMS = [
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64
    "[2002:a9fe:a9fe::]",  # 6to4
    "2852039166",  # 169.254.169.254 as one decimal number (the system resolver accepts it)
    "0251.0376.0251.0376",  # and in octal
    "[fd00:ec2::254]",  # AWS IMDS over IPv6 (inside fc00::/7, otherwise a private network)
    "100.100.100.200",  # Alibaba (inside 100.64/10)
]
FAST = CaptureSettings(
    open_timeout_s=2.0, stall_timeout_s=1.0, backoff_initial_s=0.2, backoff_max_s=0.5, stop_timeout_s=2.0
)


def names(table: dict[str, str]) -> Any:
    """A resolver giving ``table``'s address for each name (others do not resolve)."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [table[host]]

    return resolve


class Tripwire:
    """A loopback listener that records every connection: the place an attack would reach."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextmanager
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    try:
        yield wire
    finally:
        wire.close()


@contextmanager
def http_server(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 answering GET ``path`` with (status, headers, body); 404 otherwise.
    Yields its port and the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), asked
    finally:
        server.shutdown()
        server.server_close()


def failing_status(source: LiveSource) -> str:
    wait_until(lambda: source.status().state == "reconnecting", 8.0, "a failed connection")
    error = source.status().last_error
    assert error is not None
    return error


# -- the policy's decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", METADATA_FORMS)
@pytest.mark.parametrize("kind", ["camera", "sink"])
def test_metadata_addresses_are_refused_in_every_form(host: str, kind: Any) -> None:
    policy = EgressPolicy()
    with pytest.raises(EgressRefused, match="cloud metadata address") as refused:
        policy.check_url(f"http://{host}/latest/meta-data/", kind, what="camera lobby")
    assert isinstance(refused.value, InvalidParameter)  # InvalidParameterException on the AWS API
    assert "egress policy" in refused.value.message


@pytest.mark.parametrize("kind", ["camera", "sink"])
def test_a_name_resolving_to_the_metadata_address_is_refused_without_telling_the_address(kind: Any) -> None:
    policy = EgressPolicy(resolver=names({"cam.example.test": "169.254.169.254"}))
    with pytest.raises(EgressRefused) as refused:
        policy.check_url("rtsp://cam.example.test/stream", kind, what="camera lobby")
    message = refused.value.message
    assert "'cam.example.test' is or resolves to a cloud metadata address" in message
    assert "169.254" not in message


def test_one_refused_address_among_several_refuses_the_name() -> None:
    policy = EgressPolicy(resolver=lambda host, port: ["93.184.216.34", "169.254.169.254"])
    with pytest.raises(EgressRefused):
        policy.resolve("mixed.example.test", 80, "sink")


@pytest.mark.parametrize(
    ("address", "camera", "sink"),
    [
        ("10.0.0.1", True, False),  # a camera on the LAN is normal; a sink on it is not, by default
        ("192.168.1.20", True, False),
        ("172.16.5.4", True, False),
        ("[fc00::1]", True, False),
        ("93.184.216.34", True, True),
        ("127.0.0.1", False, False),
        ("[::1]", False, False),
        ("0.0.0.0", False, False),
        ("169.254.10.10", False, False),
        ("[fe80::1]", False, False),
        ("224.0.0.251", False, False),
        ("255.255.255.255", False, False),
        ("192.0.2.7", False, False),
    ],
)
def test_default_decisions_per_kind(address: str, camera: bool, sink: bool) -> None:
    """Decisions only: nothing connects to these addresses."""
    policy = EgressPolicy()
    for kind, allowed in (("camera", camera), ("sink", sink)):
        if allowed:
            policy.check_url(f"http://{address}:8080/x", kind, what=kind)  # type: ignore[arg-type]
        else:
            with pytest.raises(EgressRefused):
                policy.check_url(f"http://{address}:8080/x", kind, what=kind)  # type: ignore[arg-type]


def test_loopback_is_allowed_only_by_the_allow_list() -> None:
    with pytest.raises(EgressRefused, match=r"loopback address .*egress\.cameras\.allow"):
        EgressPolicy().check_url("rtsp://127.0.0.1:8554/cam", "camera", what="camera")
    EgressPolicy(LOOPBACK_EGRESS).check_url("rtsp://127.0.0.1:8554/cam", "camera", what="camera")
    EgressPolicy(LOOPBACK_EGRESS).check_url("http://localhost:9000/hook", "sink", what="webhook")


def test_metadata_only_by_name_in_the_allow_list_and_deny_wins() -> None:
    allowed = EgressPolicy(EgressSettings(cameras=CameraEgress(allow=("169.254.169.254/32",))))
    allowed.check_url("http://169.254.169.254/", "camera", what="camera")
    with pytest.raises(EgressRefused):
        allowed.check_url("http://169.254.169.254/", "sink", what="webhook")
    denied = EgressPolicy(
        EgressSettings(sinks=SinkEgress(private=True, allow=LOOPBACK, deny=("10.1.0.0/16", "127.0.0.5/32")))
    )
    denied.check_url("mqtt://10.2.0.1/t", "sink", what="mqtt")
    for url in ("mqtt://10.1.2.3/t", "http://127.0.0.5/"):
        with pytest.raises(EgressRefused, match=r"egress\.sinks\.deny"):
            denied.check_url(url, "sink", what="sink")


def test_keeneyes_own_port_is_refused_even_with_loopback_allowed() -> None:
    policy = EgressPolicy(LOOPBACK_EGRESS, server=("127.0.0.1", 8000))
    for url in ("http://127.0.0.1:8000/v1/metrics", "http://localhost:8000/v1/metrics", "http://[::1]:8000/"):
        with pytest.raises(EgressRefused, match="keeneye's own listening address and port"):
            policy.check_url(url, "camera", what="camera")
    policy.check_url("http://127.0.0.1:8001/", "camera", what="camera")  # another port is another service
    everywhere = EgressPolicy(
        EgressSettings(cameras=CameraEgress(allow=("0.0.0.0/0",))), server=("0.0.0.0", 8000)
    )
    with pytest.raises(EgressRefused, match="own listening"):  # 0.0.0.0: any address of this machine
        everywhere.check_url("http://127.0.0.2:8000/", "camera", what="camera")


def test_a_name_that_does_not_resolve_yet_is_accepted_then_checked_when_connecting() -> None:
    policy = EgressPolicy(resolver=names({}))
    policy.check_url("rtsp://not-yet.example.test/cam", "camera", what="camera")
    with pytest.raises(OSError):
        policy.resolve("not-yet.example.test", 554, "camera")


def test_an_operator_policy_checks_nothing() -> None:
    EgressPolicy.unrestricted().check_url("http://169.254.169.254/", "camera", what="keeneye watch")


@pytest.mark.parametrize(
    ("address", "expected"),
    [("::ffff:10.0.0.1", "private"), ("::ffff:127.0.0.1", "loopback"), ("2606:4700::1111", "public")],
)
def test_ipv4_inside_ipv6_is_judged_as_ipv4(address: str, expected: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected


def test_sink_specs_are_checked_at_registration() -> None:
    policy = EgressPolicy()
    for spec in (
        {"webhook": {"url": "http://[::ffff:169.254.169.254]/hook"}},
        {"mqtt": {"host": "10.0.0.1", "topic": "t"}},
        {"mqtt": {"host": "127.0.0.1", "topic": "t"}},
    ):
        with pytest.raises(EgressRefused):
            check_egress(SinkSpec.model_validate(spec), policy)
    check_egress(SinkSpec.model_validate({"jsonl": {"name": "a.jsonl"}}), policy)


# -- at connection time: webhooks and MQTT ---------------------------------------------------------------


def test_webhook_connects_to_the_checked_address_with_its_host_header_kept() -> None:
    with webhook_receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        policy = EgressPolicy(LOOPBACK_EGRESS, resolver=names({"hooks.example.test": "127.0.0.1"}))
        sink = WebhookSink(
            WebhookTarget(url=f"http://hooks.example.test:{port}/hook"), timeout_s=5, egress=policy
        )
        sink.send({"n": 1})
        sink.close()
        got = hook.wait_for(1)
    assert got[0].headers["host"] == f"hooks.example.test:{port}"


def test_webhook_rebinding_to_the_metadata_address_is_refused_when_connecting() -> None:
    """The name passed the registration check; by delivery it resolves to the metadata address."""
    answers = iter(["127.0.0.1", "169.254.169.254"])
    policy = EgressPolicy(LOOPBACK_EGRESS, resolver=lambda host, port: [next(answers)])
    spec = SinkSpec.model_validate({"webhook": {"url": "http://rebind.example.test:9/hook"}})
    check_egress(spec, policy)  # registration: 127.0.0.1, allowed here
    assert spec.webhook is not None
    sink = WebhookSink(spec.webhook, timeout_s=2, egress=policy)
    with pytest.raises(SinkError, match="resolves to a cloud metadata address"):
        sink.send({"n": 1})
    sink.close()


def test_webhook_to_keeneyes_own_port_is_refused_when_connecting() -> None:
    with tripwire() as own:
        policy = EgressPolicy(LOOPBACK_EGRESS, server=("127.0.0.1", own.port))
        sink = WebhookSink(
            WebhookTarget(url=f"http://127.0.0.1:{own.port}/v1/metrics"), timeout_s=2, egress=policy
        )
        with pytest.raises(SinkError, match="own listening"):
            sink.send({"n": 1})
        sink.close()
        time.sleep(0.3)
        assert own.connections == 0


def test_webhook_redirects_are_not_followed() -> None:
    with tripwire() as target:
        location = {"Location": f"http://127.0.0.1:{target.port}/elsewhere"}
        with http_server({"/hook": (307, location, b"")}) as (port, asked):
            sink = WebhookSink(
                WebhookTarget(url=f"http://127.0.0.1:{port}/hook"), timeout_s=2, egress=loopback_egress()
            )
            with pytest.raises(SinkError, match="did not accept the message"):
                sink.send({"n": 1})
            sink.close()
        assert asked == ["/hook"]
        time.sleep(0.3)
        assert target.connections == 0


@pytest.mark.mosquitto
def test_mqtt_connects_through_the_policy_and_refuses_a_rebound_name(tmp_path: Any) -> None:
    """The broker's name resolves only through the policy's resolver (the tests' system resolver knows no
    such name): a delivery proves paho's connection is the policy's; then the name moves to metadata."""
    answers = ["127.0.0.1"]
    policy = EgressPolicy(LOOPBACK_EGRESS, resolver=lambda host, port: list(answers))
    with mosquitto_broker(tmp_path) as broker, mqtt_subscriber(broker.port, "keeneye/t") as sub:
        sink = MqttSink(
            MqttTarget(host="broker.example.test", port=broker.port, topic="keeneye/t"),
            timeout_s=5,
            egress=policy,
        )
        sink.send({"n": 1})
        assert sub.wait_for(1) == [{"n": 1}]
        sink.close()
        answers[:] = ["169.254.169.254"]
        with pytest.raises(SinkError, match="cloud metadata address"):
            sink.send({"n": 2})
        sink.close()


# -- at connection time: cameras (FFmpeg through the relay) ---------------------------------------------


def test_an_http_camera_plays_through_the_relay_with_its_own_host_header(tmp_path: Path) -> None:
    """The relay is a working proxy: a video behind an allowed redirect plays, every request of FFmpeg's
    reached the camera through it, naming the camera's host."""
    clip = write_video(tmp_path / "clip.mp4", walking_box_frames(30))
    seen_hosts: list[str] = []

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_hosts.append(str(self.headers.get("Host")))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/clip")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = clip.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = int(server.server_address[1])
    policy = EgressPolicy(LOOPBACK_EGRESS, resolver=names({"cam.example.test": "127.0.0.1"}))
    try:
        with LiveSource(f"http://cam.example.test:{port}/moved", FAST, egress=policy) as source:
            frame = source.get(10.0)
    finally:
        server.shutdown()
        server.server_close()
    assert frame is not None and frame.frame.image.shape == (120, 160, 3)
    assert seen_hosts and set(seen_hosts) == {f"cam.example.test:{port}"}


def test_http_camera_redirect_to_a_refused_address_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    """FFmpeg follows HTTP redirects; through the relay each hop is checked: a redirect to keeneye's own
    port (a loopback listener here) and one to the metadata address are refused, nothing connects."""
    with tripwire() as own:
        policy = EgressPolicy(LOOPBACK_EGRESS, server=("127.0.0.1", own.port))
        routes = {
            "/own.mjpg": (302, {"Location": f"http://127.0.0.1:{own.port}/v1/metrics"}, b""),
            "/imds.mjpg": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        }
        with http_server(routes) as (port, asked):
            for path in routes:
                with LiveSource(f"http://127.0.0.1:{port}{path}", FAST, egress=policy) as source:
                    assert failing_status(source) == CONNECT_FAILED
        assert set(asked) == set(routes)
        time.sleep(0.3)
        assert own.connections == 0
    assert "own listening address" in caplog.text and "cloud metadata address" in caplog.text


def test_hls_segments_on_a_refused_address_are_not_fetched() -> None:
    with tripwire() as own:
        policy = EgressPolicy(LOOPBACK_EGRESS, server=("127.0.0.1", own.port))
        playlist = (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:2.0,\nhttp://127.0.0.1:{own.port}/seg0.ts\n#EXTINF:2.0,\nhttp://169.254.169.254/seg1.ts\n"
            "#EXT-X-ENDLIST\n"
        ).encode()
        routes = {"/live.m3u8": (200, {"Content-Type": "application/vnd.apple.mpegurl"}, playlist)}
        with (
            http_server(routes) as (port, asked),
            LiveSource(f"http://127.0.0.1:{port}/live.m3u8", FAST, egress=policy) as source,
        ):
            assert failing_status(source) == CONNECT_FAILED
        assert "/live.m3u8" in asked
        time.sleep(0.3)
        assert own.connections == 0


def test_rtsp_redirects_are_not_followed() -> None:
    """FFmpeg follows an RTSP 3xx to any host; the relay ends the connection at the 3xx instead. The
    redirect's target (an allowed loopback listener) must see no connection."""
    with tripwire() as target:
        camera = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        camera.bind(("127.0.0.1", 0))
        camera.listen(8)
        camera.settimeout(0.2)
        stop = threading.Event()

        def redirect_every_request() -> None:
            while not stop.is_set():
                try:
                    conn, _ = camera.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with conn:
                    request = conn.recv(4096).decode("latin-1")
                    cseq = next(
                        (
                            ln.split(":", 1)[1].strip()
                            for ln in request.split("\r\n")
                            if ln.lower().startswith("cseq")
                        ),
                        "1",
                    )
                    conn.sendall(
                        f"RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\n"
                        f"Location: rtsp://127.0.0.1:{target.port}/other\r\n\r\n".encode()
                    )

        threading.Thread(target=redirect_every_request, daemon=True).start()
        try:
            url = f"rtsp://user:secret@127.0.0.1:{camera.getsockname()[1]}/cam"
            with LiveSource(url, FAST, egress=loopback_egress()) as source:
                assert failing_status(source) == CONNECT_FAILED
                time.sleep(0.5)
        finally:
            stop.set()
            camera.close()
        assert target.connections == 0


def test_a_camera_name_rebound_to_the_metadata_address_is_refused_when_connecting() -> None:
    policy = EgressPolicy(LOOPBACK_EGRESS, resolver=names({"cam.example.test": "169.254.169.254"}))
    with LiveSource("rtsp://cam.example.test:8554/live", FAST, egress=policy) as source:
        error = failing_status(source)
    assert "'cam.example.test' is or resolves to a cloud metadata address" in error and "169.254" not in error


def test_camera_errors_do_not_tell_an_open_port_from_a_closed_one() -> None:
    """Closed, silent, an HTTP 404 and a service that answers something else: one text for all."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with http_server({}) as (http_port, _):
            urls = [
                f"http://127.0.0.1:{free_port()}/cam.mjpg",
                f"http://127.0.0.1:{silent.getsockname()[1]}/cam.mjpg",
                f"http://127.0.0.1:{http_port}/cam.mjpg",
                f"rtsp://127.0.0.1:{http_port}/cam",  # an HTTP server asked for RTSP
                f"rtsp://127.0.0.1:{free_port()}/cam",
            ]
            errors = set()
            for url in urls:
                with LiveSource(url, FAST, egress=loopback_egress()) as source:
                    errors.add(failing_status(source))
    finally:
        silent.close()
    assert errors == {CONNECT_FAILED}
