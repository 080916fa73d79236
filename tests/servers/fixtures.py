"""Pytest fixtures that start real mail servers on 127.0.0.1 (load with ``-p tests.servers.fixtures``).

Fixtures and what they yield:

- ``server_certificate`` (session): a ServerCertificate for localhost/127.0.0.1/::1 signed by a throwaway CA
  (``.ca_file``, ``.cert_file``, ``.key_file``, ``.fingerprint``).
- ``untrusted_certificate`` (session): the same, from a second CA nothing trusts.
- ``smtp_server``: a STARTTLS SmtpServer with AUTH (``host``, ``port``, ``security``, ``username``, ``password``,
  ``messages``, ``fail(command, reply)``, ``ca_file``, ``fingerprint``).
- ``smtps_server``: the same with implicit TLS.
- ``make_smtp_server``: a factory ``make_smtp_server(security="starttls"|"ssl"|"none", certificate=None, **fields)``
  for other variants (an untrusted certificate, plain text); every server it made stops at teardown.
- ``silent_server``: ``(host, port)`` of a socket that accepts connections and never greets.
- ``tarpit_server``: an SMTP server that sends its greeting one byte a second (``host``, ``port``,
  ``interval``, ``connections``).
- ``make_banner_server``: a factory ``make_banner_server("ssh"|"http"|"https")`` for another service on a port.
- ``filtered_port``: ``(host, port)`` where connecting hangs, as behind a firewall that drops packets.
- ``dovecot`` (session): a running Dovecot (``host``, ``ports["pop3"|"pop3s"|"imap"|"imaps"]``,
  ``add_user(address, password)``, ``deliver(address, raw_bytes)``, ``ca_file``). Skipped when Dovecot is
  not installed, failed instead when CI=true.
- ``mail_user``: a fresh Dovecot user for one test, as ``MailUser(address, password)``.
- ``dns_server``: a TinyDNS on 127.0.0.1 (``add_mx(domain, *exchanges)``, ``never_answer(domain)``,
  ``resolver()`` giving a dnspython Resolver that asks only it).
- ``redis_server``: a private redis-server for one test (``url``, ``port``). Skipped when redis-server is not
  installed, failed instead when CI=true.
- ``real_provider`` (session): a private Postfix + Dovecot configured like a real provider (``ports``,
  ``add_user``, ``letters``, ``wait_for_letters``, failure switches, ``mailbox_settings``, ``mail_config``;
  see tests/servers/real_provider.py). Skipped when Postfix or Dovecot is missing, failed when CI=true.
- ``oauth_provider`` (session): a running oidc-provider (``issuer``, ``get_tokens(login)`` through its real
  login and consent pages with PKCE, ``refresh``, ``introspect``, ``revoke``); ``make_oauth_provider(
  access_token_ttl=2)`` starts one with short-lived tokens for this test. ``oauth_dovecot`` (session): a Dovecot
  taking XOAUTH2/OAUTHBEARER tokens of ``oauth_provider`` on IMAP(S) and POP3(S). ``oauth_smtp_server``: an
  aiosmtpd taking the same tokens (``make_oauth_smtp_server(provider, security)`` for others). Skipped when
  node/npm are missing, failed when CI=true (see tests/servers/oauth.py).
- ``ldap_directory``: a private OpenLDAP (slapd) for one test, StartTLS with the test CA, 1,000 people in
  departments and an admins group (``access()``, ``modify``, ``disable``, ``enable``, ``remove``, ``add``; see
  tests/servers/ldap.py). Skipped when slapd is missing, failed when CI=true.
- ``mail_config``: a MailConfig that lets the engine reach 127.0.0.1/localhost, trusts the test CA and
  times out after 3 s.

A wrong password at Dovecot costs about 0.5 s even with ``auth_failure_delay = 0`` (its failure queue is
flushed on a timer), so keep such tests few.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from .certificates import ServerCertificate, make_certificate
from .dns import TinyDNS
from .dovecot import DOVECOT, Dovecot
from .ldap import OpenLdap
from .ldap import missing_reason as ldap_missing
from .oauth import OAuthDovecot, OAuthProvider, OAuthSmtpServer
from .oauth import missing_reason as oauth_missing
from .real_provider import RealProvider
from .real_provider import missing_reason as real_provider_missing
from .redis import REDIS_SERVER, RedisServer
from .slow import BannerServer, FilteredPort, TarpitServer
from .smtp import SilentServer, SmtpServer


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user made for one test."""

    address: str
    password: str = field(repr=False)


@pytest.fixture(scope="session")
def mail_servers_root() -> Iterator[Path]:
    """The folder the test mail servers keep their files in, removed when the session ends."""
    # Not under pytest's basetemp: a second pytest run started meanwhile prunes old basetemps, and
    # Dovecot would lose its users and homes in the middle of this run.
    root = Path(tempfile.mkdtemp(prefix="portal-mail-servers-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server_certificate(mail_servers_root: Path) -> ServerCertificate:
    """A server certificate for localhost, 127.0.0.1 and ::1, with the CA file that trusts it."""
    return make_certificate(mail_servers_root / "certs", label="trusted")


@pytest.fixture(scope="session")
def untrusted_certificate(mail_servers_root: Path) -> ServerCertificate:
    """A server certificate from a CA that ``mail_config`` does not trust."""
    return make_certificate(mail_servers_root / "certs", label="untrusted")


@pytest.fixture
def make_smtp_server(server_certificate: ServerCertificate) -> Iterator[Callable[..., SmtpServer]]:
    """A factory for SMTP servers; all of them stop when the test ends, whatever happened."""
    started: list[SmtpServer] = []

    def make(security: str = "starttls", certificate: ServerCertificate | None = None, **fields) -> SmtpServer:
        server = SmtpServer(certificate or server_certificate, security=security, **fields)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """A STARTTLS SMTP server with AUTH on 127.0.0.1."""
    return make_smtp_server("starttls")


@pytest.fixture
def smtps_server(make_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """An implicit-TLS SMTP server with AUTH on 127.0.0.1."""
    return make_smtp_server("ssl")


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts the connection and never says a word."""
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture
def tarpit_server() -> Iterator[TarpitServer]:
    """An SMTP server that trickles its greeting, one byte a second."""
    server = TarpitServer(interval=1.0)
    yield server
    server.stop()


@pytest.fixture
def make_banner_server(server_certificate: ServerCertificate) -> Iterator[Callable[[str], BannerServer]]:
    """A factory for ports where another service answers (SSH, HTTP, HTTPS); all stop when the test ends."""
    started: list[BannerServer] = []

    def make(kind: str) -> BannerServer:
        started.append(BannerServer(kind, server_certificate))
        return started[-1]

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def filtered_port() -> Iterator[FilteredPort]:
    """A port where connecting hangs until the client gives up."""
    port = FilteredPort()
    yield port
    port.stop()


@pytest.fixture
def dns_server() -> Iterator[TinyDNS]:
    """A DNS server on 127.0.0.1 that answers MX look-ups from a table the test fills."""
    server = TinyDNS()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot(mail_servers_root: Path, server_certificate: ServerCertificate) -> Iterator[Dovecot]:
    """A private Dovecot with POP3, POP3S, IMAP and IMAPS on 127.0.0.1, shared by the session."""
    if not (os.path.exists(DOVECOT) and shutil.which(DOVECOT)):
        reason = f"Dovecot is not installed ({DOVECOT}); install dovecot-pop3d and dovecot-imapd"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    root = mail_servers_root / "dovecot"
    root.mkdir()
    server = Dovecot(root, server_certificate)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh mail user in the shared Dovecot, so tests never see each other's letters."""
    user = MailUser(f"user-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12))
    dovecot.add_user(user.address, user.password)
    return user


@pytest.fixture
def redis_server(mail_servers_root: Path) -> Iterator[RedisServer]:
    """A private redis-server on 127.0.0.1 for this test (the task queue's path for several workers)."""
    if not os.path.exists(REDIS_SERVER):
        reason = f"redis-server is not installed ({REDIS_SERVER}); install the Debian package redis-server"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = RedisServer(mail_servers_root / f"redis-{secrets.token_hex(4)}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_directory(mail_servers_root: Path, server_certificate: ServerCertificate) -> Iterator[OpenLdap]:
    """A private OpenLDAP on 127.0.0.1 with 1,000 people, fresh for this test (tests change its entries)."""
    reason = ldap_missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = OpenLdap(mail_servers_root / f"ldap-{secrets.token_hex(4)}", server_certificate)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def real_provider(mail_servers_root: Path) -> Iterator[RealProvider]:
    """A private Postfix + Dovecot configured as providers configure them, shared by the session."""
    reason = real_provider_missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    provider = RealProvider(mail_servers_root / "real-provider")
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()


def _oauth_available() -> None:
    reason = oauth_missing() or (None if os.path.exists(DOVECOT) else f"Dovecot is not installed ({DOVECOT})")
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def oauth_provider(mail_servers_root: Path) -> Iterator[OAuthProvider]:
    """A running oidc-provider (access tokens live 60 s), shared by the session."""
    _oauth_available()
    provider = OAuthProvider(mail_servers_root / "oauth-provider")
    try:
        yield provider.start()
    finally:
        provider.stop()


@pytest.fixture
def make_oauth_provider(mail_servers_root: Path) -> Iterator[Callable[..., OAuthProvider]]:
    """A factory for providers of one test, e.g. with ``access_token_ttl=2``; all stop at teardown."""
    _oauth_available()
    started: list[OAuthProvider] = []

    def make(**settings) -> OAuthProvider:
        provider = OAuthProvider(mail_servers_root / f"oauth-provider-{secrets.token_hex(4)}", **settings)
        started.append(provider)
        return provider.start()

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(mail_servers_root: Path, oauth_provider: OAuthProvider,
                  server_certificate: ServerCertificate) -> Iterator[OAuthDovecot]:
    """A private Dovecot whose IMAP(S) and POP3(S) take only tokens of ``oauth_provider``."""
    server = OAuthDovecot(mail_servers_root / "oauth-dovecot", server_certificate, provider=oauth_provider)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def make_oauth_smtp_server(server_certificate: ServerCertificate) -> Iterator[Callable[..., OAuthSmtpServer]]:
    """A factory ``make(provider, security="starttls")`` for SMTP servers taking that provider's tokens."""
    started: list[OAuthSmtpServer] = []

    def make(provider: OAuthProvider, security: str = "starttls") -> OAuthSmtpServer:
        server = OAuthSmtpServer(provider, server_certificate, security=security)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def oauth_smtp_server(make_oauth_smtp_server, oauth_provider: OAuthProvider) -> OAuthSmtpServer:
    """A STARTTLS SMTP server whose only sign-in is XOAUTH2/OAUTHBEARER with ``oauth_provider``'s tokens."""
    return make_oauth_smtp_server(oauth_provider)


@pytest.fixture
def mail_config(server_certificate: ServerCertificate):
    """A MailConfig for the test servers: every port of 127.0.0.1 and localhost allowed, the test CA trusted,
    3 s timeout."""
    from portal.mail.settings import MailConfig

    return MailConfig(timeout=3.0, allowed_hosts=("127.0.0.1:*", "localhost:*", "[::1]:*"),
                      ca_file=server_certificate.ca_file)
