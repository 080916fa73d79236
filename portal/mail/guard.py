"""The connection guard: decide, before any socket opens, whether the engine may connect there.

An employee can type any host name, so the account check must not become a way
to probe the intranet. The guard resolves the name once, checks every address
and the port, and hands back only the addresses it allowed; the caller connects
to exactly those (no second look-up an attacker's DNS could answer differently).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .deadline import Deadline
from .errors import GuardRefused, HostNotFound
from .settings import MailConfig

__all__ = ["GuardRefused", "Destination", "resolve_destination", "connect", "is_public_address"]

log = logging.getLogger("portal.mail")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# IPv6 forms that carry an IPv4 address inside; each is checked as that IPv4 address too.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class Destination:
    """A host name and port the guard allowed, with the addresses to connect to (in order)."""

    host: str
    port: int
    addresses: tuple[str, ...]


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv6 one (mapped, compatible, NAT64, 6to4, Teredo), if any."""
    if ip.version == 4:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether an address is an ordinary public unicast one (not loopback, private, link-local, metadata...)."""
    inner = embedded_ipv4(ip)
    if inner is not None and not is_public_address(inner):
        return False
    if ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved:
        return False
    if ip.version == 6 and ip.is_site_local:
        return False
    # is_global already excludes private ranges, CGNAT 100.64.0.0/10 and documentation ranges.
    return ip.is_global and not ip.is_private


def resolve_destination(host: str, port: int, config: MailConfig, *, resolver: Resolver | None = None,
                        deadline: Deadline | None = None) -> Destination:
    """Resolve ``host`` once and keep the addresses the guard allows; raise GuardRefused if none.

    The look-up waits at most the per-read timeout, and never past ``deadline``.
    """
    host = host.strip().strip("[]").rstrip(".").lower()
    addresses = _literal(host)
    if addresses is None:
        timeout = deadline.timeout(config.timeout) if deadline is not None else config.timeout
        addresses = (resolver or system_resolver(timeout))(host, port)
    allowed = []
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if _allowed(host, ip, port, config):
            allowed.append(text)
    if not allowed:
        # Details for the administrator only; the employee sees one message whatever the reason.
        log.warning("connection guard refused %s port %d (resolved to %s)", host, port,
                    ", ".join(addresses) or "nothing")
        raise GuardRefused()
    return Destination(host=host, port=port, addresses=tuple(allowed))


def _allowed(host: str, ip: IPAddress, port: int, config: MailConfig) -> bool:
    mail_port = port in config.allowed_ports
    # An entry without a port opens the host's mail ports only; another port must be named (or ``:*``).
    if any(entry.allows(host, ip, port) and (mail_port or entry.port is not None or entry.any_port)
           for entry in config.allowed_hosts):
        return True
    return mail_port and is_public_address(ip)


def _literal(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


def system_resolver(timeout: float) -> Resolver:
    """A resolver using the system's getaddrinfo, abandoned after ``timeout`` seconds."""

    def resolve(host: str, port: int) -> list[str]:
        outcome: dict = {}

        def look_up() -> None:
            try:
                outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                outcome["error"] = exc

        # getaddrinfo has no timeout of its own; a daemon thread lets us stop waiting for it.
        worker = threading.Thread(target=look_up, name="portal-mail-resolve", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise HostNotFound(f"looking up {host} took longer than {timeout:g} s")
        if "error" in outcome:
            raise HostNotFound(str(outcome["error"])) from outcome["error"]
        seen: list[str] = []
        for family, _, _, _, sockaddr in outcome["infos"]:
            if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in seen:
                seen.append(sockaddr[0])
        if not seen:
            raise HostNotFound(f"{host} has no address")
        return seen

    return resolve


def connect(destination: Destination, timeout: float, *, deadline: Deadline | None = None) -> socket.socket:
    """Open a TCP connection to one of the destination's allowed addresses, trying them in order.

    Connecting takes at most ``timeout`` in all, and never past ``deadline``, which then watches the socket.
    """
    budget = deadline.timeout(timeout) if deadline is not None else timeout
    ends = time.monotonic() + budget
    last_error: OSError | None = None
    for address in destination.addresses:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            break
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect((address, destination.port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.settimeout(timeout)
        if deadline is not None:
            deadline.watch(sock)
        return sock
    raise last_error or TimeoutError("timed out")
