"""The egress policy: where keeneye may connect on a user's behalf, checked when a URL is registered and
again at every connection (docs/security.md, "What keeneye connects to").

Covered: the cameras keeneye pulls from (registered cameras, stream-processor Input URLs) and the sinks it
sends to (webhooks and MQTT brokers of data streams, stream-processor Output URLs, notification channels,
upload-rule sinks). Not covered: what the operator configures (``--s3-endpoint``, bucket folders), the
operator's own commands (``keeneye watch``, ``keeneye watch-folder``: :meth:`EgressPolicy.unrestricted`),
and push cameras (keeneye listens; it connects nowhere).

Every address a host resolves to is classified (:func:`address_class`) and must be allowed for the kind
of target (``camera`` or ``sink``, ``settings.egress``); one refused address refuses the host, so a name
cannot hide a metadata address behind a public one. IPv4 inside IPv6 (``::ffff:169.254.169.254``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, IPv4-compatible ``::a.b.c.d``) is judged as the IPv4 address it
carries. The classes, in the order they are tried:

* ``metadata``: cloud metadata and platform endpoints (AWS, GCP, Azure, Alibaba; IPv4 and IPv6), and
  ``link-local`` (169.254/16, fe80::/10): always refused unless ``allow`` lists the address;
* ``loopback`` (127/8, ::1), ``unspecified`` (0.0.0.0/8 -- Linux connects 0.0.0.0 to this machine --
  and ::), ``multicast``, ``reserved`` (240/4, documentation, benchmarking and every other range that is
  not globally routable and not below): refused unless ``allow`` lists it;
* ``private`` (RFC 1918, 100.64/10, fc00::/7): the kind's ``private`` setting (cameras yes, sinks no);
* ``public``: the kind's ``public`` setting (yes for both).

``deny`` networks are refused whatever the class; keeneye's own listening socket (``server.port`` on a
loopback address, on ``server.host``, or on any address of this machine when it listens on 0.0.0.0) is
always refused: a worker must not read keeneye's own API (``/v1/metrics``) as a camera.

When: :meth:`EgressPolicy.check_url` at registration (PUT camera, data stream, notification channel,
upload rule; CreateStreamProcessor and StartStreamProcessor) -- a name that does not resolve yet is
accepted there and checked when connecting; and :meth:`EgressPolicy.connect` /
:meth:`EgressPolicy.resolve` at every connection, which resolve again, check every address and connect
to a checked address, so a name that resolves to something else by then (DNS rebinding) is still
refused. keeneye makes every connection itself: webhooks through :func:`http_transport` (an httpx
transport whose connections are made here), MQTT through a paho client that connects here
(keeneye.streams.sinks), and FFmpeg's through keeneye.streams.relay.

A refusal is :class:`EgressRefused` (InvalidParameter: InvalidParameterException on the AWS API), whose
message names the host as the user wrote it and the rule, never the address it resolved to or whether
anything answers there.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpcore
import httpx

from keeneye.config import EgressRules, EgressSettings, Settings
from keeneye.core.errors import InvalidParameter

log = logging.getLogger("keeneye.egress")

EgressKind = Literal["camera", "sink"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressClass = Literal[
    "public", "private", "loopback", "link-local", "metadata", "unspecified", "multicast", "reserved"
]
Resolver = Callable[[str, int], Sequence[str]]
"""``resolve(host, port)`` -> the addresses (text) a connection to the host may go to; OSError
(socket.gaierror) when the name does not resolve. Tests inject one; the default asks the system."""

DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "rtsp": 554,
    "rtsps": 322,
    "rtmp": 1935,
    "rtmps": 443,
    "mqtt": 1883,
    "mqtts": 8883,
}


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


_METADATA = _networks(
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle... instance metadata
    "169.254.170.2/32",  # AWS ECS task metadata and credentials
    "169.254.169.253/32",  # AWS DNS resolver
    "169.254.169.123/32",  # AWS time sync
    "100.100.100.200/32",  # Alibaba Cloud metadata (inside 100.64/10, which is otherwise "private")
    "168.63.129.16/32",  # Azure WireServer (a public address that is the host platform's endpoint)
    "fd00:ec2::254/128",  # AWS IMDS over IPv6 (inside fc00::/7, otherwise "private")
    "fd00:ec2::253/128",
    "fd00:ec2::123/128",
    "fd20:ce::254/128",  # GCP metadata over IPv6
)
_CLASSES: tuple[tuple[AddressClass, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    ("metadata", _METADATA),
    ("link-local", _networks("169.254.0.0/16", "fe80::/10")),
    ("loopback", _networks("127.0.0.0/8", "::1/128")),
    ("unspecified", _networks("0.0.0.0/8", "::/128")),
    ("multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("reserved", _networks("240.0.0.0/4")),
    ("private", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")),
)
_NAT64 = _networks("64:ff9b::/96", "64:ff9b:1::/48")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")

_RULES: dict[AddressClass, str] = {
    "metadata": "a cloud metadata address",
    "link-local": "a link-local address (169.254.0.0/16, fe80::/10)",
    "loopback": "a loopback address (127.0.0.0/8, ::1)",
    "unspecified": "an unspecified address (0.0.0.0/8, ::)",
    "multicast": "a multicast address",
    "reserved": "a reserved or non-routable address",
    "private": "a private-network address (RFC 1918, 100.64.0.0/10, fc00::/7)",
    "public": "a public address",
}


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4, IPv4-compatible), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in n for n in _NAT64) or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_class(ip: IPAddress) -> AddressClass:
    """What kind of address ``ip`` is, judged on the IPv4 address it carries if it carries one."""
    ip = embedded_ipv4(ip) or ip
    for name, networks in _CLASSES:
        if any(ip.version == n.version and ip in n for n in networks):
            return name
    return "public" if ip.is_global else "reserved"


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (an IPv6 zone such as ``%eth0`` dropped), or None for a host name."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host`` (getaddrinfo, TCP)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class EgressRefused(InvalidParameter):
    """The egress policy refuses a host: the message names the host as given and the rule."""


class EgressPolicy:
    """The egress policy of one process (see the module docstring). ``settings``: the rules per kind;
    ``server``: keeneye's own listening (host, port), always refused; ``resolver``: how names resolve."""

    def __init__(
        self,
        settings: EgressSettings | None = None,
        *,
        server: tuple[str, int] | None = None,
        resolver: Resolver | None = None,
        enforced: bool = True,
    ) -> None:
        self.settings = settings or EgressSettings()
        self.enforced = enforced
        self._server = server
        self._resolver = resolver
        self._allow = {k: _parsed(r.allow) for k, r in self._kinds().items()}
        self._deny = {k: _parsed(r.deny) for k, r in self._kinds().items()}

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> EgressPolicy:
        """The server's policy: ``settings.egress``, with ``settings.server``'s socket as its own."""
        return cls(settings.egress, server=(settings.server.host, settings.server.port), resolver=resolver)

    @classmethod
    def unrestricted(cls) -> EgressPolicy:
        """No check: the operator's own commands (``keeneye watch``), which connect where the person who
        runs them on this machine says, as any of their programs could."""
        return cls(enforced=False)

    def _resolve(self, host: str, port: int) -> Sequence[str]:
        # system_resolver looked up at each call: the test suite replaces it (no DNS query leaves a test).
        return (self._resolver or system_resolver)(host, port)

    def _kinds(self) -> dict[EgressKind, EgressRules]:
        return {"camera": self.settings.cameras, "sink": self.settings.sinks}

    # -- decisions -----------------------------------------------------------------------------------------

    def refusal(self, ip: IPAddress, port: int, kind: EgressKind) -> str | None:
        """The rule that refuses a connection to ``ip``:``port`` for ``kind``, or None when allowed."""
        if not self.enforced:
            return None
        setting = "cameras" if kind == "camera" else "sinks"
        if self._is_self(ip, port):
            return "keeneye's own listening address and port"
        candidates = [ip] + [v4 for v4 in (embedded_ipv4(ip),) if v4 is not None]
        if any(a.version == n.version and a in n for a in candidates for n in self._deny[kind]):
            return f"a network egress.{setting}.deny lists"
        if any(a.version == n.version and a in n for a in candidates for n in self._allow[kind]):
            return None
        cls = address_class(ip)
        rules = self._kinds()[kind]
        if (cls == "public" and rules.public) or (cls == "private" and rules.private):
            return None
        how = (
            f"set egress.{setting}.{cls} or list the network in egress.{setting}.allow"
            if cls in ("public", "private")
            else f"refused unless egress.{setting}.allow lists it"
        )
        return f"{_RULES[cls]}, which {setting} may not reach ({how})"

    def _is_self(self, ip: IPAddress, port: int) -> bool:
        if self._server is None or port != self._server[1]:
            return False
        ip = embedded_ipv4(ip) or ip
        if address_class(ip) == "loopback":
            return True
        host = parse_address(self._server[0])
        if host is not None and not host.is_unspecified:
            return ip == host
        if host is None:  # a host name: what it resolves to
            try:
                return any(parse_address(a) == ip for a in self._resolve(self._server[0], port))
            except OSError:
                return False
        return _is_local(ip)  # 0.0.0.0 / ::: every address of this machine

    # -- resolving and connecting ------------------------------------------------------------------------

    def resolve(self, host: str, port: int, kind: EgressKind, *, what: str = "") -> list[IPAddress]:
        """The addresses of ``host`` a connection may go to, each checked; EgressRefused (naming ``what``,
        the host as given and the rule) when one is refused; OSError when the name does not resolve."""
        literal = parse_address(host)
        texts = [host] if literal is not None else list(self._resolve(host, port))
        addresses: list[IPAddress] = []
        for text in texts:
            ip = parse_address(text)
            if ip is None:
                raise OSError(f"the resolver gave {text!r}, not an address")
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        for ip in addresses:
            rule = self.refusal(ip, port, kind)
            if rule is not None:
                shown = f"{what}: " if what else ""
                log.warning(
                    "egress refused: %s%s port %d is or resolves to %s (%s)", shown, host, port, ip, rule
                )
                raise EgressRefused(
                    f"{shown}refused by keeneye's egress policy: {host!r} is or resolves to {rule}"
                )
        return addresses

    def connect(
        self, host: str, port: int, kind: EgressKind, *, timeout_s: float | None, what: str = ""
    ) -> socket.socket:
        """A TCP connection to ``host``:``port`` made to a checked address (the first that answers)."""
        last: OSError | None = None
        for ip in self.resolve(host, port, kind, what=what):
            try:
                return socket.create_connection((str(ip), port), timeout=timeout_s)
            except OSError as exc:
                last = exc
        assert last is not None
        raise last

    def check_url(self, url: str, kind: EgressKind, *, what: str) -> None:
        """Registration: EgressRefused when ``url``'s host is or resolves to an address ``kind`` may not
        reach. A name that does not resolve now is accepted (it is checked again at every connection).
        InvalidParameter for a URL without a host or with a bad port."""
        if not self.enforced:
            return
        try:
            parts = urlsplit(url.strip())
            host, port = parts.hostname, parts.port
        except ValueError:
            raise InvalidParameter(f"{what}: the URL's host or port does not parse") from None
        if not host:
            raise InvalidParameter(f"{what}: the URL names no host")
        self.check_host(host, port or DEFAULT_PORTS.get(parts.scheme.lower(), 0), kind, what=what)

    def check_host(self, host: str, port: int, kind: EgressKind, *, what: str) -> None:
        """As :meth:`check_url`, for a host and port (an MQTT broker)."""
        if not self.enforced:
            return
        try:
            self.resolve(host, port, kind, what=what)
        except EgressRefused:
            raise
        except (OSError, UnicodeError) as exc:
            log.info(
                "egress: %s: %r does not resolve now (%s); checked again when connecting", what, host, exc
            )


def _parsed(cidrs: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _is_local(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address of this machine (it can be bound; nothing is sent)."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


# -- httpx: connections made by the policy ----------------------------------------------------------------


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every TCP connection resolved and checked by the policy and made
    to a checked address; TLS (started later by httpcore) still names and verifies the URL's host."""

    def __init__(self, policy: EgressPolicy, kind: EgressKind) -> None:
        self._policy = policy
        self._kind = kind
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._policy.resolve(host, port, self._kind, what=f"{self._kind} {host}")
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception | None = None
        for ip in addresses:
            try:
                return self._backend.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not egress targets")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, policy: EgressPolicy, kind: EgressKind) -> None:
        super().__init__(trust_env=False)
        # httpx has no public way to give its pool a network backend; the pool is rebuilt with one (the
        # egress tests fail if a new httpx stops sending requests through it).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_CheckedBackend(policy, kind),
        )


def http_transport(policy: EgressPolicy, kind: EgressKind) -> httpx.BaseTransport:
    """An httpx transport whose every connection is resolved, checked and made by ``policy``
    (environment proxies are not used: a proxy would be the only address checked)."""
    if not policy.enforced:
        return httpx.HTTPTransport(trust_env=False)
    return _CheckedTransport(policy, kind)
