"""The SSRF guard for webhook targets.

Tenants choose the URLs we POST to, so a URL must not let them reach our own network:

- ``url_check`` runs when an endpoint is created: the scheme is ``https`` (``http`` only in
  DEBUG, or to private targets when those are allowed), no ``user:password@``, a host, and a
  host that is an IP literal (in any spelling ``inet_aton`` accepts) or ``localhost`` must be
  a public address.
- ``target_resolve`` runs before every delivery: it resolves the host once with
  ``socket.getaddrinfo`` and refuses the target if *any* address is not a public one
  (private, loopback, link-local, multicast, reserved, unspecified, shared/CGNAT; IPv4-mapped
  IPv6 addresses are judged as the IPv4 address). The delivery then connects to the checked
  address (``transport``), so a second DNS answer (rebinding) cannot send it elsewhere.

Private targets are allowed when ``settings.DEBUG`` or ``settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS``
is true (development, tests, a receiver inside a private network). Plain ``http`` is never
sent to a public address outside DEBUG.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(Exception):
    """A webhook URL we will not send to; ``code`` is stable for API field errors."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class ResolvedTarget(Target):
    address: str  # the checked IP address to connect to


def private_targets_allowed() -> bool:
    return bool(settings.DEBUG or settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS)


# IPv6 ranges that can carry (or once carried) non-public targets although Python calls some
# of them global: 6to4 embeds any IPv4 address, fec0::/10 is deprecated site-local.
_DENIED_V6 = (ipaddress.ip_network("2002::/16"), ipaddress.ip_network("fec0::/10"))


def address_is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in net for net in _DENIED_V6):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself: ``10.0.0.1``, ``::1``, or ``2130706433``/``127.1``."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def url_parse(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("invalid", "The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("https_required", "The URL must use https.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeTarget("credentials_not_allowed", "The URL must not contain credentials.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("host_required", "The URL must name a host.")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def _refuse_private() -> UnsafeTarget:
    return UnsafeTarget(
        "private_address",
        "The URL points to a private, loopback, link-local or reserved address.",
    )


def _refuse_http() -> UnsafeTarget:
    return UnsafeTarget("https_required", "The URL must use https.")


def url_check(url: str) -> Target:
    """Check a URL before storing it (no DNS lookup: that happens at every delivery)."""
    target = url_parse(url)
    literal = _literal_address(target.host)
    if literal is None and (target.host == "localhost" or target.host.endswith(".localhost")):
        literal = ipaddress.IPv4Address("127.0.0.1")
    is_private = literal is not None and not address_is_public(literal)
    if is_private and not private_targets_allowed():
        raise _refuse_private()
    # Plain http only to an internal receiver, and only where those are allowed.
    http_refused = not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS or (
        literal is not None and not is_private
    )
    if target.scheme == "http" and not settings.DEBUG and http_refused:
        raise _refuse_http()
    return target


def target_resolve(url: str) -> ResolvedTarget:
    """Resolve the URL's host once and check every address; return the one to connect to."""
    target = url_check(url)
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget("unresolvable", f"The host {target.host!r} does not resolve.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeTarget("unresolvable", f"The host {target.host!r} does not resolve.")
    any_public = any(address_is_public(a) for a in addresses)
    all_public = all(address_is_public(a) for a in addresses)
    if not all_public and not private_targets_allowed():
        raise _refuse_private()
    if target.scheme == "http" and not settings.DEBUG and any_public:
        raise _refuse_http()
    return ResolvedTarget(
        scheme=target.scheme, host=target.host, port=target.port, address=str(addresses[0])
    )
