"""The portal's outgoing web requests (HTTP and HTTPS), all through the connection guard. No Flask here.

Webhooks, mail autoconfiguration and the OpenID providers (discovery, keys, tokens, userinfo) ask the web
through ``fetch``: the host name is resolved once and every address checked by portal.mail.guard, the
connection goes to exactly those addresses (no second look-up an attacker's DNS could answer differently),
a redirect is handed back to the caller and never followed, each read waits at most ``read_timeout`` and the
whole request at most ``deadline`` (portal.mail.deadline: a server trickling its answer is cut), and an answer
longer than ``max_bytes`` is refused. Where each caller may go is its own ``WebAccess``.

Authlib's OAuth clients are ``requests`` sessions: ``guard_session`` mounts ``GuardedAdapter`` (requests' public
transport-adapter interface) on one, so their token, key and userinfo requests take the same path.
"""
from __future__ import annotations

import http.client
import io
import json
import ssl
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from portal.mail import guard
from portal.mail.deadline import Deadline, DeadlineExceeded
from portal.mail.errors import GuardRefused, HostNotFound
from portal.mail.settings import AllowedHost, MailConfig

__all__ = ["WebAccess", "Answer", "AnswerTooLarge", "NO_ANSWER", "fetch", "GuardedAdapter", "guard_session",
           "WEB_PORTS"]

WEB_PORTS = frozenset({80, 443, 8080, 8443})
MAX_BYTES = 1024 * 1024


class AnswerTooLarge(Exception):
    """The answer is longer than the caller accepts; ``status`` is the status line's code all the same."""

    def __init__(self, limit: int, status: int):
        super().__init__(f"the answer is longer than {limit} bytes")
        self.limit, self.status = limit, status


#: What ``fetch`` raises when no usable answer came (refused, not found, timed out, TLS, too large, cut off).
NO_ANSWER = (GuardRefused, HostNotFound, TimeoutError, ssl.SSLError, AnswerTooLarge, OSError,
             http.client.HTTPException)


@dataclass(frozen=True)
class WebAccess:
    """Where one caller's requests may go, and how long and how large they may be.

    An ``allowed_hosts`` entry (PORTAL_*_ALLOWED_HOSTS syntax) opens a private or loopback address on the
    ``allowed_ports``; one with a port, or ``:*``, opens that port too. Anything else: public addresses only.
    """

    allowed_hosts: tuple[AllowedHost, ...] = ()
    allowed_ports: frozenset[int] = WEB_PORTS
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 20.0  # the whole request: look-up, connect, TLS, request and answer
    max_bytes: int = MAX_BYTES
    ca_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", tuple(
            entry if isinstance(entry, AllowedHost) else AllowedHost.parse(entry) for entry in self.allowed_hosts))
        object.__setattr__(self, "allowed_ports", frozenset(int(port) for port in self.allowed_ports))
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")

    @classmethod
    def from_entries(cls, entries: str | Iterable[str] | None, **settings: Any) -> "WebAccess":
        """Access opened to a comma-separated list of allowed-host entries (a configuration key's value)."""
        if isinstance(entries, str):
            entries = [part.strip() for part in entries.split(",") if part.strip()]
        return cls(allowed_hosts=tuple(entries or ()), **settings)

    def guard_config(self) -> MailConfig:
        """The connection guard's settings for these requests."""
        return MailConfig(timeout=self.connect_timeout, deadline=self.deadline, allowed_ports=self.allowed_ports,
                          allowed_hosts=self.allowed_hosts, ca_file=self.ca_file)

    def tls_context(self) -> ssl.SSLContext:
        """The system's trusted CAs, and the configured CA file beside them (an internal CA), as for mail servers."""
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context


@dataclass(frozen=True)
class Answer:
    """A web server's answer: status, headers and the body (at most the caller's ``max_bytes``)."""

    status: int
    reason: str
    headers: Message = field(repr=False)
    body: bytes = field(repr=False)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    @property
    def redirect(self) -> bool:
        return 300 <= self.status < 400

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


class _GuardedConnection(http.client.HTTPConnection):
    """HTTP(S) to the addresses the guard allowed, never to a second look-up of the name; under a deadline."""

    def __init__(self, destination: guard.Destination, tls: ssl.SSLContext | None, access: WebAccess,
                 deadline: Deadline):
        super().__init__(destination.host, destination.port, timeout=access.read_timeout)
        self.default_port = 443 if tls is not None else 80  # the Host header names the port only when unusual
        self.destination, self.tls, self.access, self.deadline = destination, tls, access, deadline

    def connect(self) -> None:
        sock = guard.connect(self.destination, self.access.connect_timeout, deadline=self.deadline)
        sock.settimeout(self.deadline.timeout(self.access.read_timeout))
        if self.tls is None:
            self.sock = sock
            return
        # The TLS socket takes over the descriptor (the plain one is detached): the deadline must watch it instead.
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.destination.host)
        self.deadline.watch(self.sock)


def fetch(method: str, url: str, access: WebAccess, *, body: bytes | str | None = None,
          headers: Mapping[str, str] | None = None, resolver: guard.Resolver | None = None,
          read_body: bool = True) -> Answer:
    """One request through the guard; the answer as it came (a redirect is not followed). Without ``read_body``
    the answer ends at its headers, its body empty: for a caller to whom only the status counts.

    Raises GuardRefused (an address or port the access does not open), HostNotFound, TimeoutError (a read, or
    DeadlineExceeded for the whole request), ssl.SSLError, AnswerTooLarge, OSError or HTTPException.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a web address: {url[:200]!r}")
    deadline = Deadline(access.deadline)
    try:
        destination = guard.resolve_destination(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                                access.guard_config(), resolver=resolver, deadline=deadline)
        connection = _GuardedConnection(destination, access.tls_context() if parts.scheme == "https" else None,
                                        access, deadline)
        try:
            sent = {**(headers or {}), "Accept-Encoding": "identity"}  # the size cap counts what is kept
            connection.request(method, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                               body=body, headers=sent)
            response = connection.getresponse()
            if not read_body:
                return Answer(response.status, response.reason, response.headers, b"")
            declared = response.getheader("Content-Length") or ""
            if declared.isdigit() and int(declared) > access.max_bytes:
                raise AnswerTooLarge(access.max_bytes, response.status)
            content = response.read(access.max_bytes + 1)
            if deadline.expired:  # the watchdog shut the socket mid-body: what was read is not the answer
                raise DeadlineExceeded(access.deadline)
            if len(content) > access.max_bytes:
                raise AnswerTooLarge(access.max_bytes, response.status)
            if declared.isdigit() and len(content) < int(declared):
                raise http.client.IncompleteRead(content, int(declared) - len(content))
            return Answer(response.status, response.reason, response.headers, content)
        except (OSError, http.client.HTTPException):
            if deadline.expired:  # the watchdog shut the socket: say so, not "connection closed"
                raise DeadlineExceeded(access.deadline) from None
            raise
        finally:
            connection.close()
    finally:
        deadline.close()


class NotAllowed(requests.ConnectionError):
    """The guard refused the address or port (a requests error, for code that catches those)."""


class TooLarge(requests.RequestException):
    """The answer was longer than the access allows."""


class GuardedAdapter(HTTPAdapter):
    """A requests transport that sends every request through ``fetch`` with one WebAccess."""

    def __init__(self, access: WebAccess):
        super().__init__(max_retries=0)
        self.access = access

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        try:
            answer = fetch(request.method, request.url, self.access, body=request.body, headers=request.headers)
        except GuardRefused as error:
            raise NotAllowed(f"not allowed: {request.url[:200]}", request=request) from error
        except HostNotFound as error:
            raise requests.ConnectionError(str(error), request=request) from error
        except TimeoutError as error:
            raise requests.Timeout(str(error), request=request) from error
        except ssl.SSLError as error:
            raise requests.exceptions.SSLError(str(error), request=request) from error
        except AnswerTooLarge as error:
            raise TooLarge(str(error), request=request) from error
        except (OSError, http.client.HTTPException) as error:
            raise requests.ConnectionError(str(error) or type(error).__name__, request=request) from error
        raw = urllib3.HTTPResponse(body=io.BytesIO(answer.body), headers=list(answer.headers.items()),
                                   status=answer.status, reason=answer.reason, preload_content=False,
                                   decode_content=False)
        return self.build_response(request, raw)


def guard_session(session: requests.Session, access: WebAccess) -> requests.Session:
    """Make ``session`` send everything through the guard with ``access``, following no redirect."""
    adapter = GuardedAdapter(access)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.max_redirects = 0  # requests raises TooManyRedirects at the first one instead of following it
    session.trust_env = False  # no proxy or .netrc from the environment: the guard decides where requests go
    return session
