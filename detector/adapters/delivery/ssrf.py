"""Refuse webhook endpoints that reach into the operator's own network (SSRF guard).

An admin-supplied URL is resolved and every address it resolves to must be public, unless
the host or address is in ``WebhookSettings.allow_hosts`` (for development and tests). The
check runs when an endpoint is created *and* on every send, and the request is then pinned
to the address that was checked, so that a DNS answer that changes between the check and
the connection (DNS rebinding) cannot redirect a delivery to an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from querywatch.detector.errors import QuerywatchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class UnsafeWebhookUrl(QuerywatchError):
    """A webhook URL that is malformed or resolves to a loopback, private or link-local address."""


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """Where to send a request for ``url``: the checked ``address``, with the original host
    kept for the ``Host`` header and TLS (SNI and certificate check)."""

    url: str
    host: str
    port: int
    address: str

    @property
    def pinned_url(self) -> str:
        """``url`` with its host replaced by the checked address.

        >>> PinnedTarget("https://h.example/x?y=1", "h.example", 443, "2001:db8::1").pinned_url
        'https://[2001:db8::1]:443/x?y=1'
        """
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc.rpartition("@")[2]


def parse_webhook_url(url: str) -> SplitResult:
    """Check the shape of a webhook URL: http(s), a host, no credentials, no fragment.

    >>> parse_webhook_url("https://hooks.example.com/qw").hostname
    'hooks.example.com'
    >>> parse_webhook_url("ftp://x")
    Traceback (most recent call last):
    ...
    querywatch.detector.adapters.delivery.ssrf.UnsafeWebhookUrl: webhook URL must start with http:// or https://
    """
    if len(url) > 2048:
        raise UnsafeWebhookUrl("webhook URL is longer than 2048 characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UnsafeWebhookUrl("webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"webhook URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeWebhookUrl("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("webhook URL must not carry credentials; the signature authenticates us")
    if parts.fragment:
        raise UnsafeWebhookUrl("webhook URL must not have a #fragment")
    return parts


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses. IPv6 forms that carry an IPv4 address
    (mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by that
    address; IPv4-compatible ``::/96`` (deprecated), IPv4-translated ``::ffff:0:0:0/96``, local
    NAT64 ``64:ff9b:1::/48`` and site-local ``fec0::/10`` (deprecated; Python counts both of the
    last as global) never pass.

    >>> addresses = ("8.8.8.8", "10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe")
    >>> [is_public(ipaddress.ip_address(a)) for a in addresses]
    [True, False, False, False, False]
    >>> [is_public(ipaddress.ip_address(a)) for a in ("::ffff:0:7f00:1", "fec0::1", "2606:4700::1111")]
    [False, False, True]
    """
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NEVER_PUBLIC) or address.is_site_local:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    return address.is_global and not address.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: IPv4-compatible (deprecated), IPv4-translated (SIIT) and local NAT64 forms.
_NEVER_PUBLIC = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48"))


def is_allowed(host: str, address: IPAddress, allow_hosts: Iterable[str]) -> bool:
    """Whether the allowlist names this host, or a network containing this address.

    >>> is_allowed("localhost", ipaddress.ip_address("127.0.0.1"), ["10.0.0.0/8", "127.0.0.1"])
    True
    >>> is_allowed("db.internal", ipaddress.ip_address("10.9.9.9"), ["localhost"])
    False
    """
    for entry in allow_hosts:
        entry = entry.strip().lower()
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry == host.lower().rstrip("."):
                return True
            continue
        if address.version == network.version and address in network:
            return True
    return False


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), via the operating system."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"webhook host {host!r} does not resolve: {exc}") from None
    return [str(info[4][0]) for info in infos]


def pin_webhook_url(
    url: str, *, allow_hosts: Iterable[str], resolver: Resolver = system_resolver
) -> PinnedTarget:
    """Resolve ``url`` and return the address to connect to, or raise ``UnsafeWebhookUrl``.

    Every resolved address must be public or allowed: one private answer among public ones
    is refused too, since the connection could be made to any of them.

    >>> pin_webhook_url("http://127.0.0.1:9/x", allow_hosts=())  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    querywatch.detector.adapters.delivery.ssrf.UnsafeWebhookUrl: resolves to a loopback address
    >>> pin_webhook_url("http://127.0.0.1:9/x", allow_hosts=("127.0.0.0/8",)).pinned_url
    'http://127.0.0.1:9/x'
    """
    parts = parse_webhook_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allow = tuple(allow_hosts)
    addresses = []
    for text in resolver(host, port):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address) and not is_allowed(host, address, allow):
            raise UnsafeWebhookUrl(
                f"webhook host {host!r} resolves to {address}, a loopback, private or link-local "
                "address (allow it with QUERYWATCH_WEBHOOKS__ALLOW_HOSTS)"
            )
        addresses.append(str(address))
    if not addresses:
        raise UnsafeWebhookUrl(f"webhook host {host!r} resolves to no address")
    return PinnedTarget(url=url, host=host, port=port, address=addresses[0])
