"""Signed-in SMTP, POP3 and IMAP sessions, opened through the guard.

This is the one code path for connecting and signing in: the account check
and the letters queue both come through here, so a check that passes means
sending will connect and sign in the same way.
"""
from __future__ import annotations

import base64
import hashlib
import imaplib
import ipaddress
import logging
import os
import poplib
import re
import select
import smtplib
import socket
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

from cryptography import x509

from . import guard
from .deadline import Deadline
from .details import detail
from .errors import (CertificatePinMismatch, HostNotFound, LoginDisabled, MailError, NoMailServer, PlaintextAuthRefused,
                     PresetHostNotFound, SecurityModeMismatch, StartTLSOffered)
from .presets import PRESETS, provider_for
from .problems import symptom_of
from .settings import OAUTH_MECHANISMS, MailboxSettings, MailConfig, ServerSettings, format_fingerprint
from .stages import StageLog

__all__ = ["open_smtp", "open_incoming", "MailError", "Deadline", "tls_context", "certificate_fingerprint"]

# When the greeting did not come as expected, the portal looks once the other way (see _first_line):
TLS_PROBE_SECONDS = 0.5  # how long a TLS handshake may take there
PLAIN_PROBE_SECONDS = 2.0  # how long to wait there for a greeting

log = logging.getLogger("portal.mail")

# Symptoms that, before a server has greeted, say nothing more than "no mail server here".
_NOTHING_ANSWERED = frozenset({"connection_refused", "timeout", "host_unreachable", "connection_dropped"})


@contextmanager
def open_smtp(settings: MailboxSettings, config: MailConfig, *, stages: StageLog | None = None,
              deadline: Deadline | float | None = None) -> Iterator[smtplib.SMTP]:
    """Yield an SMTP session signed in as the mailbox; raise MailError naming the problem on failure.

    The whole session, sending included, must be over by ``deadline`` (a shared Deadline, or seconds;
    by default the configured PORTAL_MAIL_DEADLINE from now); its sockets are shut down when it passes.
    """
    log = stages if stages is not None else StageLog("outgoing", provider_for(settings))
    with _deadline(deadline, config) as limit, _session(_SMTP_PROTOCOL, settings.smtp, config, log, limit) as smtp:
        yield smtp


@contextmanager
def open_incoming(settings: MailboxSettings, config: MailConfig, *, stages: StageLog | None = None,
                  deadline: Deadline | float | None = None) -> Iterator[poplib.POP3 | imaplib.IMAP4]:
    """Yield a POP3 or IMAP session signed in to the mailbox's incoming server; raise MailError on failure.

    ``deadline`` bounds the whole session, fetching included, as for open_smtp.
    """
    if settings.incoming is None:
        raise ValueError("this mailbox has no incoming server")
    protocol = _INCOMING_PROTOCOLS[settings.incoming.protocol]
    log = stages if stages is not None else StageLog("incoming", provider_for(settings))
    with (_deadline(deadline, config) as limit,
          _session(protocol, settings.incoming.server, config, log, limit) as client):
        yield client


@contextmanager
def _deadline(deadline: Deadline | float | None, config: MailConfig) -> Iterator[Deadline]:
    """The caller's Deadline as it is, or a new one (seconds, else the configured one) stopped at the end."""
    if isinstance(deadline, Deadline):
        yield deadline
        return
    own = Deadline(deadline or config.deadline)
    try:
        yield own
    finally:
        own.close()


def certificate_fingerprint(sock: ssl.SSLSocket) -> str:
    """SHA-256 of the peer certificate, as 64 lowercase hex digits."""
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def certificate_expiry(sock: ssl.SSLSocket) -> str:
    """When the peer's certificate ends (ISO, UTC), read from its DER form: verified or pinned alike."""
    certificate = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
    return certificate.not_valid_after_utc.replace(tzinfo=None).isoformat()


def tls_context(config: MailConfig, server: ServerSettings) -> ssl.SSLContext:
    """The TLS context for a server: system store plus the configured CA file, or the pin-only context."""
    if server.trusted_fingerprint:
        return _pinning_context()
    mtime = os.stat(config.ca_file).st_mtime if config.ca_file else None
    return _verifying_context(config.ca_file, mtime)


@lru_cache(maxsize=8)
def _verifying_context(ca_file: str | None, _mtime: float | None) -> ssl.SSLContext:
    # Cached because loading the system store costs milliseconds; keyed by mtime so a new CA file is picked up.
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@lru_cache(maxsize=1)
def _pinning_context() -> ssl.SSLContext:
    # Chain checks are off only here, and every use compares the certificate with a pin (or
    # just reads its fingerprint to show it) before a single byte of the session is sent.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class _Protocol:
    """How one mail protocol greets, starts TLS, signs in and says goodbye."""

    name: str
    greeting: re.Pattern[bytes]  # how this protocol's server greets (a reply of its own, even a refusal)
    greet: Callable[[socket.socket, ServerSettings, MailConfig], Any]
    starttls: Callable[[Any, ssl.SSLContext], ssl.SSLSocket]
    login: Callable[[Any, ServerSettings], str]
    quit: Callable[[Any], Any]
    abort: Callable[[Any], Any]
    offers_starttls: Callable[[Any], bool] = lambda client: False


@contextmanager
def _session(protocol: _Protocol, server: ServerSettings, config: MailConfig, log: StageLog,
             deadline: Deadline) -> Iterator[Any]:
    log.deadline = deadline
    destination = _resolve(protocol, server, config, log)
    client = _start(protocol, destination, server, config, log)
    try:
        with log.step(f"{protocol.name}.login") as step:
            if not server.username:
                step.detail = detail("login.skipped")
            else:
                if server.security == "none":
                    _never_in_clear(protocol, client, server)
                step.server_reply = step.detail = protocol.login(client, server)
                if server.sasl:
                    step.detail = f"{server.sasl}: {step.detail}"  # which token mechanism signed in
        yield client
    except BaseException:
        protocol.abort(client)
        raise
    else:
        try:
            protocol.quit(client)
        except (OSError, smtplib.SMTPException, poplib.error_proto, imaplib.IMAP4.error):
            protocol.abort(client)


def _never_in_clear(protocol: _Protocol, client: Any, server: ServerSettings) -> None:
    """Refuse to send a password over an unencrypted session unless nothing better exists and it is allowed."""
    if protocol.offers_starttls(client):
        raise StartTLSOffered("the server offers STARTTLS on this port; the password was not sent unencrypted")
    if not server.allow_plaintext_auth:
        raise PlaintextAuthRefused("the connection is not encrypted, so the password was not sent")
    if protocol.name == "imap" and "LOGINDISABLED" in client.capabilities:
        raise LoginDisabled("the server advertises LOGINDISABLED: it takes no password unencrypted")


def _resolve(protocol: _Protocol, server: ServerSettings, config: MailConfig, log: StageLog) -> guard.Destination:
    with log.step(f"{protocol.name}.resolve") as step:
        try:
            destination = guard.resolve_destination(server.host, server.port, config, deadline=log.deadline)
        except HostNotFound as exc:
            if server.host.lower() in _preset_hosts():
                raise PresetHostNotFound(str(exc)) from exc
            raise
        step.detail = ", ".join(destination.addresses)
    return destination


@lru_cache(maxsize=1)
def _preset_hosts() -> frozenset[str]:
    """Every server name a preset publishes: one of these not resolving is the portal's DNS, not a typo."""
    return frozenset(server.host.lower() for preset in PRESETS
                     for server in (preset.smtp, preset.pop3, preset.imap) if server is not None)


def _start(protocol: _Protocol, destination: guard.Destination, server: ServerSettings, config: MailConfig,
           log: StageLog, *, context: ssl.SSLContext | None = None) -> Any:
    """Connect, greet and secure the session (not signed in yet); ``context`` overrides the TLS context."""
    name = protocol.name
    deadline = log.deadline
    sock = None
    client = None
    try:
        with log.until_greeted(name):
            with log.step(f"{name}.connect") as step:
                sock = _before_greeting(
                    destination, lambda: guard.connect(destination, config.timeout, deadline=deadline))
                step.detail = _describe_peer(sock)
            if server.security == "ssl":
                sock = _secure(log, name, server, config, context,
                               lambda ctx: _implicit_tls(protocol, destination, config, deadline, sock, ctx),
                               lambda: _peek_fingerprint(protocol, destination, server, config, deadline))
            with log.step(f"{name}.greeting") as step:
                client = _before_greeting(destination, lambda: _greet(protocol, destination, sock, server,
                                                                      config, deadline))
                step.server_reply = step.detail = _greeting_text(client)
        if server.security == "starttls":
            _secure(log, name, server, config, context, lambda ctx: protocol.starttls(client, ctx),
                    lambda: _peek_fingerprint(protocol, destination, server, config, deadline))
        return client
    except BaseException:
        if client is not None:
            protocol.abort(client)
        if sock is not None:
            sock.close()
        raise


def _greet(protocol: _Protocol, destination: guard.Destination, sock: socket.socket, server: ServerSettings,
           config: MailConfig, deadline: Deadline | None) -> Any:
    probed = server.security != "ssl" and config.timeout > PLAIN_PROBE_SECONDS and not _readable(
        sock, PLAIN_PROBE_SECONDS)
    if probed and protocol.greeting.match(_first_line(destination, config, deadline, over_tls=True)):
        # Silent for 2 s in plain text, greeting at once over TLS: the port expects SSL. Said now, not after
        # the whole timeout; a server that is only slow still gets its time below.
        raise SecurityModeMismatch(f"no greeting in plain text within {PLAIN_PROBE_SECONDS:g} s, but the server "
                                   "greets over TLS: this port expects SSL")
    try:
        return protocol.greet(sock, server, config)
    except Exception as exc:
        if (server.security != "ssl" and not probed and symptom_of(exc).kind == "timeout"
                and protocol.greeting.match(_first_line(destination, config, deadline, over_tls=True))):
            raise SecurityModeMismatch("no greeting in plain text, but the server greets over TLS: "
                                       "this port expects SSL") from exc
        raise


def _readable(sock: socket.socket, seconds: float) -> bool:
    """Whether the server has said something (or hung up) within ``seconds``, without reading it."""
    readable, _, _ = select.select([sock], [], [], seconds)
    return bool(readable)


def _before_greeting(destination: guard.Destination, action: Callable[[], Any]) -> Any:
    """Run a step that comes before the server has greeted; what fails there is "no mail server" to the user."""
    try:
        return action()
    except NoMailServer as exc:
        _log_no_mail_server(destination, exc.detail)
        raise
    except _AfterGreeting as wrapper:
        raise wrapper.cause from None
    except Exception as exc:
        if getattr(exc, "kind", None) == "deadline_exceeded" or symptom_of(exc).kind not in _NOTHING_ANSWERED:
            raise
        _log_no_mail_server(destination, f"{type(exc).__name__}: {exc}")
        raise NoMailServer(str(exc)) from exc


def _log_no_mail_server(destination: guard.Destination, detail: str) -> None:
    # For the administrator only: the employee's answer is the same whatever was found here.
    log.warning("no mail server answered at %s port %d: %s", destination.host, destination.port, detail[:200])


def _implicit_tls(protocol: _Protocol, destination: guard.Destination, config: MailConfig,
                  deadline: Deadline | None, sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """The handshake of implicit TLS; plain text back is "SSL and STARTTLS swapped" only from a mail server."""
    try:
        return context.wrap_socket(sock, server_hostname=destination.host)
    except ssl.SSLCertVerificationError:
        raise
    except OSError as exc:
        kind = symptom_of(exc).kind
        if kind == "security_mode_mismatch":
            first_line = _first_line(destination, config, deadline, over_tls=False)
            if protocol.greeting.match(first_line):
                raise
            _log_no_mail_server(destination, f"no TLS ({exc}) and no {protocol.name} greeting: {first_line[:200]!r}")
            raise NoMailServer(str(exc)) from exc
        if kind in _NOTHING_ANSWERED:
            _log_no_mail_server(destination, f"TLS handshake: {exc}")
            raise NoMailServer(str(exc)) from exc
        raise


def _secure(log: StageLog, name: str, server: ServerSettings, config: MailConfig,
            context: ssl.SSLContext | None, handshake: Callable[[ssl.SSLContext], ssl.SSLSocket],
            peek: Callable[[], str | None]) -> ssl.SSLSocket:
    with log.step(f"{name}.tls") as step:
        try:
            tls = handshake(context or tls_context(config, server))
            if log.deadline is not None:
                log.deadline.watch(tls)
        except ssl.SSLCertVerificationError:
            # Show the admin which certificate was refused, so it can be compared and pinned.
            step.fingerprint = _quietly(peek)
            if step.fingerprint:
                step.detail = detail("tls.untrusted", fingerprint=format_fingerprint(step.fingerprint))
            raise
        fingerprint = certificate_fingerprint(tls)
        step.fingerprint = fingerprint
        step.certificate_expires = certificate_expiry(tls)
        shown = f"SHA-256 {format_fingerprint(fingerprint)}"
        if server.trusted_fingerprint and context is None and fingerprint != server.trusted_fingerprint:
            step.detail = detail("tls.not_the_pinned", fingerprint=format_fingerprint(fingerprint))
            tls.close()
            raise CertificatePinMismatch(f"the server's certificate ({shown}) is not the trusted one")
        step.detail = detail("tls.pinned" if server.trusted_fingerprint else "tls.verified", version=tls.version(),
                             fingerprint=format_fingerprint(fingerprint))
    return tls


def _peek_fingerprint(protocol: _Protocol, destination: guard.Destination, server: ServerSettings,
                      config: MailConfig, deadline: Deadline | None) -> str | None:
    """Open the same session again without chain checks, only to read the certificate's fingerprint."""
    client = _start(protocol, destination, server, config, StageLog(deadline=deadline), context=_pinning_context())
    try:
        return certificate_fingerprint(_socket_of(client))
    finally:
        protocol.abort(client)


def _first_line(destination: guard.Destination, config: MailConfig, deadline: Deadline | None, *,
                over_tls: bool) -> bytes:
    """What a fresh connection hears first, in plain text or after a TLS handshake (b"" for nothing).

    Tells a mail server on the other kind of port (it greets at once) from anything else there, so the
    portal says "SSL and STARTTLS are swapped" only to a mail server. Nothing is sent but the handshake.
    """
    budget = min(PLAIN_PROBE_SECONDS, config.timeout)
    try:
        sock = guard.connect(destination, budget, deadline=deadline)
    except OSError:
        return b""
    try:
        if over_tls:
            sock.settimeout(min(TLS_PROBE_SECONDS, config.timeout))
            sock = _pinning_context().wrap_socket(sock, server_hostname=destination.host)
        sock.settimeout(budget)
        with sock.makefile("rb") as stream:
            return stream.readline(512)
    except OSError:
        return b""
    finally:
        sock.close()


def _quietly(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (MailError, OSError):
        return None


def _describe_peer(sock: socket.socket) -> str:
    host, port = sock.getpeername()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _socket_of(client: Any) -> ssl.SSLSocket:
    return client.sock


def _greeting_text(client: Any) -> str:
    raw = getattr(client, "greeting_text", None) or getattr(client, "welcome", b"")
    return " ".join((raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).split())


def _ehlo_name(sock: socket.socket, config: MailConfig) -> str:
    if config.ehlo_name:
        return config.ehlo_name
    # An address literal of our own end: always valid, and smtplib's default (getfqdn) can hang without DNS.
    ip = ipaddress.ip_address(sock.getsockname()[0].split("%", 1)[0])
    return f"[{ip}]" if ip.version == 4 else f"[IPv6:{ip}]"


# --- SMTP -------------------------------------------------------------------------------------


class GuardedSMTP(smtplib.SMTP):
    """smtplib.SMTP over a socket the guard already connected (plain, or TLS for implicit SSL)."""

    greeting_text = ""

    def __init__(self, sock: socket.socket, host: str, timeout: float, ehlo_name: str):
        self._guarded_socket = sock
        super().__init__(local_hostname=ehlo_name, timeout=timeout)
        self._host = host  # the name TLS verifies (STARTTLS), not the address connected to

    def _get_socket(self, host, port, timeout):
        return self._guarded_socket


def _smtp_greet(sock: socket.socket, server: ServerSettings, config: MailConfig) -> GuardedSMTP:
    smtp = GuardedSMTP(sock, server.host, config.timeout, _ehlo_name(sock, config))
    code, banner = smtp.connect(server.host, server.port)
    smtp.greeting_text = f"{code} {banner.decode('utf-8', 'replace')}"
    if not 200 <= code < 600:  # smtplib reads a line without a reply code as -1
        raise NoMailServer(f"not an SMTP greeting: {banner[:200]!r}")
    if code != 220:
        raise smtplib.SMTPConnectError(code, banner)
    try:
        code, reply = smtp.ehlo()
    except Exception as exc:
        raise _AfterGreeting(exc) from exc
    if code != 250:
        raise smtplib.SMTPHeloError(code, reply)
    return smtp


class _AfterGreeting(Exception):
    """A failure once the server has greeted as a mail server: explained as what it is, never as "no server"."""

    def __init__(self, cause: BaseException):
        super().__init__(*cause.args)
        self.cause = cause


def _smtp_starttls(smtp: GuardedSMTP, context: ssl.SSLContext) -> ssl.SSLSocket:
    code, reply = smtp.starttls(context=context)
    if code != 220:
        raise smtplib.SMTPResponseException(code, reply)
    code, reply = smtp.ehlo()
    if code != 250:
        raise smtplib.SMTPHeloError(code, reply)
    return smtp.sock


# The mechanisms tried, in order of preference; only the first the server offers is used.
SMTP_AUTH_MECHANISMS = ("PLAIN", "LOGIN")


def _smtp_login(smtp: GuardedSMTP, server: ServerSettings) -> str:
    """Sign in with one mechanism, once: smtplib's login() tries the next one after a refusal, and a changed
    password then costs two failures at the provider's fail2ban instead of one."""
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    if server.sasl:
        mechanism = _token_mechanism(server, offered)
        code, reply = smtp.auth(mechanism, _SaslToken(server, mechanism, server.host, _peer_port(smtp.sock)))
        return f"{code} {reply.decode('utf-8', 'replace')}"
    mechanism = next((m for m in SMTP_AUTH_MECHANISMS if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPException("No suitable authentication method found.")
    smtp.user, smtp.password = server.username, server.password
    code, reply = smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower()))
    return f"{code} {reply.decode('utf-8', 'replace')}"


def _token_mechanism(server: ServerSettings, offered: list[str]) -> str:
    """The mailbox's token mechanism if the server offers it, else the other token one it offers: one is used."""
    for mechanism in (server.sasl, *OAUTH_MECHANISMS):
        if mechanism in offered:
            return mechanism
    raise smtplib.SMTPException(f"No suitable authentication method found: the server does not offer {server.sasl}.")


def sasl_initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The first client message of XOAUTH2 (Google's and Microsoft's format) or OAUTHBEARER (RFC 7628), not base64."""
    if mechanism == "XOAUTH2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


class _SaslToken:
    """Answers a token mechanism's exchange: the initial response first, then an empty line to the error
    challenge (RFC 7628 3.2.3) a server sends before it refuses, so the refusal comes at once."""

    def __init__(self, server: ServerSettings, mechanism: str, host: str, port: int):
        self.first = sasl_initial_response(mechanism, server.username, server.password, host, port)
        self.sent = False

    def __call__(self, challenge: bytes | None = None) -> str:  # smtplib: str, base64-encoded by smtplib
        return self.answer().decode()

    def answer(self) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        return self.first


def _peer_port(sock: socket.socket) -> int:
    return sock.getpeername()[1]


def _smtp_abort(smtp: GuardedSMTP) -> None:
    smtp.close()


_SMTP_PROTOCOL = _Protocol("smtp", re.compile(rb"[245]\d\d[ -]"), _smtp_greet, _smtp_starttls, _smtp_login,
                           smtplib.SMTP.quit, _smtp_abort, lambda smtp: smtp.has_extn("starttls"))


class _OverGuardedSocket:
    """A poplib/imaplib client that uses the socket the guard already connected instead of opening one."""

    def __init__(self, sock: socket.socket, host: str, port: int, timeout: float):
        self._guarded_socket = sock
        super().__init__(host, port, timeout)
        self._tls_established = isinstance(sock, ssl.SSLSocket)

    def _create_socket(self, timeout):
        return self._guarded_socket


# --- POP3 -------------------------------------------------------------------------------------


class GuardedPOP3(_OverGuardedSocket, poplib.POP3):
    """poplib.POP3 over a socket the guard already connected."""


def _pop3_greet(sock: socket.socket, server: ServerSettings, config: MailConfig) -> GuardedPOP3:
    try:
        return GuardedPOP3(sock, server.host, server.port, config.timeout)
    except poplib.error_proto as exc:
        reply = exc.args[0] if exc.args else b""
        if not _POP3_GREETING.match(reply if isinstance(reply, bytes) else str(reply).encode()):
            raise NoMailServer(f"not a POP3 greeting: {reply[:200]!r}") from exc
        raise


_POP3_GREETING = re.compile(rb"[+-](OK|ERR)\b")
_POP3_LINE_MAX = 2048  # RFC 5034 allows long challenges; poplib's own limit


def _pop3_starttls(pop: GuardedPOP3, context: ssl.SSLContext) -> ssl.SSLSocket:
    pop.stls(context)
    return pop.sock


def _pop3_login(pop: GuardedPOP3, server: ServerSettings) -> str:
    if server.sasl:
        return _pop3_authenticate(pop, server)
    pop.user(server.username)
    return pop.pass_(server.password).decode("utf-8", "replace")


def _pop3_authenticate(pop: GuardedPOP3, server: ServerSettings) -> str:
    """POP3 AUTH (RFC 5034) with the token mechanism and its initial response; poplib has no AUTH command."""
    try:
        offered = pop.capa().get("SASL", [])
    except poplib.error_proto:
        offered = []
    mechanism = server.sasl if server.sasl in offered or not offered else _token_mechanism(server, offered)
    token = _SaslToken(server, mechanism, server.host, _peer_port(pop.sock))
    line = f"AUTH {mechanism} {base64.b64encode(token.answer()).decode()}"
    while True:
        pop.sock.sendall(line.encode() + b"\r\n")
        reply = pop.file.readline(_POP3_LINE_MAX).rstrip(b"\r\n")
        if not reply.startswith(b"+ ") and reply != b"+":
            break
        line = base64.b64encode(token.answer()).decode()  # the error challenge: answered empty
    if not reply.startswith(b"+OK"):
        raise poplib.error_proto(reply)
    return reply.decode("utf-8", "replace")


def _pop3_abort(pop: GuardedPOP3) -> None:
    pop.close()


def _pop3_offers_stls(pop: GuardedPOP3) -> bool:
    try:
        return "STLS" in pop.capa()
    except poplib.error_proto:  # a server without CAPA (RFC 2449) offers no STLS either
        return False


# --- IMAP -------------------------------------------------------------------------------------


class GuardedIMAP4(_OverGuardedSocket, imaplib.IMAP4):
    """imaplib.IMAP4 over a socket the guard already connected."""


def _imap_greet(sock: socket.socket, server: ServerSettings, config: MailConfig) -> GuardedIMAP4:
    try:
        return GuardedIMAP4(sock, server.host, server.port, config.timeout)
    except imaplib.IMAP4.abort as exc:
        if str(exc).startswith("unexpected response"):  # a first line that is no IMAP response at all
            raise NoMailServer(f"not an IMAP greeting: {str(exc)[:200]}") from exc
        raise


_IMAP_GREETING = re.compile(rb"\* (OK|PREAUTH|BYE)\b", re.IGNORECASE)


def _imap_starttls(imap: GuardedIMAP4, context: ssl.SSLContext) -> ssl.SSLSocket:
    imap.starttls(context)
    return imap.sock


def _imap_login(imap: GuardedIMAP4, server: ServerSettings) -> str:
    if server.sasl:
        offered = [c[5:] for c in imap.capabilities if c.startswith("AUTH=")]
        mechanism = _token_mechanism(server, offered)
        token = _SaslToken(server, mechanism, server.host, _peer_port(imap.sock))
        typ, data = imap.authenticate(mechanism, lambda challenge: token.answer())  # imaplib encodes the bytes
    else:
        typ, data = imap.login(server.username, server.password)
    return f"{typ} {data[-1].decode('utf-8', 'replace') if data and isinstance(data[-1], bytes) else ''}".strip()


def _imap_abort(imap: GuardedIMAP4) -> None:
    try:
        imap.shutdown()
    except OSError:
        pass


_INCOMING_PROTOCOLS = {
    "pop3": _Protocol("pop3", _POP3_GREETING, _pop3_greet, _pop3_starttls, _pop3_login, poplib.POP3.quit,
                      _pop3_abort, _pop3_offers_stls),
    "imap": _Protocol("imap", _IMAP_GREETING, _imap_greet, _imap_starttls, _imap_login, imaplib.IMAP4.logout,
                      _imap_abort, lambda imap: "STARTTLS" in imap.capabilities),
}


def probe_server(protocol: str, destination: guard.Destination, server: ServerSettings, config: MailConfig) -> str:
    """Connect, greet and secure a session as a real one would, then leave without signing in.

    Returns the greeting; raises MailError naming the problem. Autoconfiguration's guess uses it: no
    password is ever sent.
    """
    steps = {"smtp": _SMTP_PROTOCOL, **_INCOMING_PROTOCOLS}[protocol]
    client = _start(steps, destination, server, config, StageLog())
    try:
        return _greeting_text(client)
    finally:
        steps.abort(client)
