"""An OAuth 2.0 test stack on loopback: oidc-provider, a Dovecot and an SMTP server that take its tokens.

- ``OAuthProvider``: panva's ``oidc-provider`` (npm, installed from ``tests/oauth_provider/package-lock.json``)
  with one confidential client, PKCE forced, refresh tokens, introspection and revocation, and an access-token
  lifetime the test chooses. ``get_tokens(login)`` runs the authorization-code + PKCE flow through its real
  login and consent pages with ``requests`` (no browser).
- ``OAuthDovecot``: a private Dovecot whose ``oauth2`` passdb checks XOAUTH2/OAUTHBEARER tokens by RFC 7662
  introspection at that provider (IMAP, IMAPS, POP3, POP3S).
- ``OAuthSmtpServer``: aiosmtpd offering only XOAUTH2 and OAUTHBEARER, checked by the same introspection.

See /work/shared/oauth-provider/README.md for the traps behind these settings.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urljoin, urlparse

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from .certificates import ServerCertificate
from .dovecot import MAIL_UID, Dovecot
from .processes import stop_process
from .smtp import HOST, ReceivedMessage, free_port, start_on_free_port, tls_options

PROVIDER_DIR = Path(__file__).parents[1] / "oauth_provider"
CLIENT_ID = "portal"
CLIENT_SECRET = "portal-secret"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: the flow stops at it
SCOPE = "openid email offline_access mail"
INVALID_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"


def missing_reason() -> str | None:
    """Why the OAuth stack cannot run here (node, npm or requests missing), or None when it can."""
    missing = [program for program in ("node", "npm") if not shutil.which(program)]
    if missing:
        return (f"the OAuth test provider needs {' and '.join(missing)} (Node.js 20 or newer); "
                "install the Debian packages nodejs and npm")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = version.lstrip("v").partition(".")[0]
    if not major.isdigit() or int(major) < 20:
        return f"the OAuth test provider (oidc-provider 9) needs Node.js 20 or newer, not {version or 'unknown'}"
    try:
        import requests  # noqa: F401
    except ImportError:
        return "the OAuth test flow needs the Python package requests (pip install -e '.[test]')"
    return None


def install_node_modules() -> None:
    """Run ``npm ci`` in tests/oauth_provider when its node_modules are missing or older than the lockfile."""
    installed = PROVIDER_DIR / "node_modules" / ".package-lock.json"
    lock = PROVIDER_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROVIDER_DIR,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"npm ci in {PROVIDER_DIR} failed:\n{done.stdout}\n{done.stderr}")


def xoauth2(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial response (Google's and Microsoft's format), not yet base64-encoded."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str, host: str, port: int) -> bytes:
    """The SASL OAUTHBEARER initial response of RFC 7628, not yet base64-encoded."""
    return f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def _form_action(html: str, base: str) -> str:
    found = re.search(r'<form[^>]*action="([^"]+)"', html)
    if not found:
        raise AssertionError(f"no form on the provider's page {base}:\n{html[:500]}")
    return urljoin(base, found.group(1).replace("&amp;", "&"))


@dataclass
class OAuthProvider:
    """A running oidc-provider: its endpoints, and the client's side of the flow."""

    root: Path
    access_token_ttl: int = 60
    refresh_token_ttl: int = 3600
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    refresh_delay: float = 0.0  # seconds the token endpoint holds its answer to a refresh (a slow provider)
    claims_in_id_token: bool = False  # the scopes' claims (groups: a "manygroups…" login has 200) in the ID token too
    host: str = HOST
    port: int = 0
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def issuer(self) -> str:
        """The issuer URL; OpenID discovery is at ``issuer + "/.well-known/openid-configuration"``."""
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.issuer}/token/introspection"

    def start(self) -> "OAuthProvider":
        """Install the npm packages if needed, start the server and return once it answers."""
        install_node_modules()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        env = {**os.environ, "HOST": self.host, "PORT": str(self.port), "AT_TTL": str(self.access_token_ttl),
               "RT_TTL": str(self.refresh_token_ttl), "REDIRECT_URIS": ",".join(self.redirect_uris),
               "REFRESH_DELAY_MS": str(int(self.refresh_delay * 1000)),
               "ID_TOKEN_CLAIMS": "1" if self.claims_in_id_token else "0"}
        with open(self.root / "oidc-provider.log", "ab") as log:
            self._process = subprocess.Popen(["node", str(PROVIDER_DIR / "server.mjs")], cwd=PROVIDER_DIR, env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"oidc-provider did not start:\n{self.log()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (every token it issued is forgotten: its store is in memory)."""
        stop_process(self._process)
        self._process = None

    def log(self) -> str:
        """What the server printed."""
        path = self.root / "oidc-provider.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get_tokens(self, login: str, scope: str = SCOPE, redirect_uri: str | None = None) -> dict:
        """Sign in as ``login`` through the real login and consent pages (code flow + PKCE); return the tokens.

        The login *is* the mailbox address: introspection answers it as ``email``.
        """
        import requests

        redirect_uri = redirect_uri or self.redirect_uris[0]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        with requests.Session() as browser:  # keeps the interaction cookies like a browser
            page = browser.get(f"{self.issuer}/auth", timeout=10, params=dict(
                client_id=CLIENT_ID, response_type="code", redirect_uri=redirect_uri, scope=scope, state=state,
                code_challenge=challenge, code_challenge_method="S256",
                prompt="consent"))  # without prompt=consent, offline_access (the refresh token) is dropped
            page.raise_for_status()
            page = browser.post(_form_action(page.text, page.url), timeout=10,
                                data={"prompt": "login", "login": login, "password": "any"})
            page.raise_for_status()
            answer = browser.post(_form_action(page.text, page.url), data={"prompt": "consent"},
                                  allow_redirects=False, timeout=10)
            while answer.is_redirect and not answer.headers["location"].startswith(redirect_uri):
                answer = browser.get(urljoin(answer.url, answer.headers["location"]), allow_redirects=False,
                                     timeout=10)
        query = parse_qs(urlparse(answer.headers["location"]).query)
        if query.get("state") != [state] or "code" not in query:
            raise AssertionError(f"the provider did not return a code: {answer.headers['location']}")
        return self._token_request(grant_type="authorization_code", code=query["code"][0],
                                   redirect_uri=redirect_uri, code_verifier=verifier)

    def refresh(self, refresh_token: str) -> dict:
        """Exchange a refresh token for a new access token (the refresh token is not rotated)."""
        return self._token_request(grant_type="refresh_token", refresh_token=refresh_token)

    def introspect(self, token: str) -> dict:
        """RFC 7662 introspection: ``{"active": True, "email": ...}`` or ``{"active": False}``."""
        import requests

        answer = requests.post(self.introspection_url, auth=(CLIENT_ID, CLIENT_SECRET), data={"token": token},
                               timeout=5)
        return answer.json() if answer.ok else {"active": False}

    def revoke(self, token: str, hint: str = "access_token") -> None:
        """Revoke a token; revoking an access token revokes its whole grant, the refresh token too."""
        import requests

        requests.post(f"{self.issuer}/token/revocation", auth=(CLIENT_ID, CLIENT_SECRET),
                      data={"token": token, "token_type_hint": hint}, timeout=5).raise_for_status()

    def _token_request(self, **data) -> dict:
        import requests

        answer = requests.post(self.token_url, auth=(CLIENT_ID, CLIENT_SECRET), data=data, timeout=10)
        answer.raise_for_status()
        return answer.json()


# Dovecot signs users in only with tokens, checked by introspection at the provider.
_TOKEN_SIGN_IN = """\
auth_mechanisms = xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/mail/%d/%n
}}"""

# Dovecot 2.3.19 compares username_attribute with the login itself (no username_validation_format).
_OAUTH2_PASSDB = """\
introspection_url = http://{client_id}:{client_secret}@{host}:{port}/token/introspection
introspection_mode = post
username_attribute = email
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


@dataclass
class OAuthDovecot(Dovecot):
    """A private Dovecot (IMAP, IMAPS, POP3, POP3S) that signs users in only with tokens of ``provider``."""

    provider: OAuthProvider | None = None
    sign_in: ClassVar[str] = _TOKEN_SIGN_IN

    def start(self) -> "OAuthDovecot":
        """Point the oauth2 passdb at the provider's introspection, then start as any test Dovecot."""
        (self.root / "mail").mkdir(parents=True, exist_ok=True)
        os.chown(self.root / "mail", MAIL_UID, MAIL_UID)
        (self.root / "dovecot-oauth2.conf.ext").write_text(_OAUTH2_PASSDB.format(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, host=self.provider.host, port=self.provider.port))
        super().start()
        return self


def _parse_xoauth2(blob: bytes) -> tuple[str | None, str]:
    fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
    return fields.get("user"), fields.get("auth", "").removeprefix("Bearer ").strip()


def _parse_oauthbearer(blob: bytes) -> tuple[str | None, str]:
    gs2, _, rest = blob.decode().partition("\x01")
    user = next((part[2:] for part in gs2.split(",") if part.startswith("a=")), None)
    fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
    return user, fields.get("auth", "").removeprefix("Bearer ").strip()


class _OAuthHandler:
    """aiosmtpd takes every handler method named auth_<MECHANISM> as an AUTH mechanism."""

    def __init__(self, server: "OAuthSmtpServer"):
        self.server = server

    async def _check(self, smtp, args, parse):
        if len(args) == 2:  # initial response on the AUTH line
            blob = args[1]
        else:
            blob = await smtp.challenge_auth("", encode_to_b64=False)
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        if isinstance(blob, str):
            try:
                blob = base64.b64decode(blob, validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode the response")
        user, token = parse(blob)
        info = await asyncio.to_thread(self.server.provider.introspect, token)
        if info.get("active") is True and user and info.get("email") == user:
            self.server.logins.append(user)
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        # RFC 7628 3.2.2: the error comes as a JSON challenge first; the client answers with an empty line.
        await smtp.challenge_auth(json.dumps({"status": "invalid_token", "schemes": "bearer", "scope": "mail"}))
        # handled=False, or aiosmtpd sends nothing and the client waits for its timeout.
        return AuthResult(success=False, handled=False, message=INVALID_CREDENTIALS)

    async def auth_XOAUTH2(self, smtp, args):
        return await self._check(smtp, args, _parse_xoauth2)

    async def auth_OAUTHBEARER(self, smtp, args):
        return await self._check(smtp, args, _parse_oauthbearer)

    async def handle_DATA(self, smtp, session, envelope):
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.messages.append(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                                    envelope.original_content or envelope.content, login))
        return "250 2.0.0 OK queued"


@dataclass
class OAuthSmtpServer:
    """An aiosmtpd server on 127.0.0.1 whose only AUTH mechanisms are XOAUTH2 and OAUTHBEARER.

    ``security`` is "starttls" (STARTTLS required), "ssl" (implicit TLS) or "none".
    """

    provider: OAuthProvider
    certificate: ServerCertificate
    security: str = "starttls"
    host: str = HOST
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    _controller: Controller | None = field(default=None, repr=False)

    @property
    def ca_file(self) -> str:
        return self.certificate.ca_file

    def start(self) -> "OAuthSmtpServer":
        """Start listening on a free port of 127.0.0.1."""
        kwargs: dict = dict(hostname=self.host, server_hostname="localhost",
                            auth_exclude_mechanism=["LOGIN", "PLAIN", "CRAM-MD5"],
                            **tls_options(self.certificate, self.security))
        self._controller, self.port = start_on_free_port(
            lambda port: Controller(_OAuthHandler(self), port=port, **kwargs), self.host)
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
