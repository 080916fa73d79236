"""OpenID Connect providers as the portal reads them: the discovery document and the signing keys. No Flask here.

Single sign-on (portal/sso.py) and the mailboxes' sign-in apps (portal/oauth/client.py) read a provider through
these two functions, over the guarded web client (portal/http.py). Both answers are kept for a few minutes per
URL (``functools.lru_cache`` keyed by a time bucket): a refresh or a sign-in does not fetch them again. A token
signed with a key the kept set does not name (the provider rotated its keys) makes ``signing_keys`` fetch anew,
at most once per REFETCH_AFTER seconds per URL, so forged key ids cannot make the portal hammer the provider.

Which hosts may be reached is the server's setting PORTAL_OIDC_ALLOWED_HOSTS (``configure`` at app start): an
identity server on a private or loopback address is reached only when an entry there names it, as for mail.
"""
from __future__ import annotations

import functools
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from portal import http as web
from portal.mail.errors import GuardRefused, HostNotFound

__all__ = ["Discovered", "DiscoveryError", "discover", "signing_keys", "configure", "provider_access"]

KEPT_FOR = 300  # seconds a discovery document or a key set is reused
REFETCH_AFTER = 30.0  # seconds between two fetches of a key set forced by an unknown key id
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
ALLOWED_HOSTS_KEY = "PORTAL_OIDC_ALLOWED_HOSTS"
ANSWER_MAX = 512 * 1024  # bytes: a discovery document, a key set, a token or userinfo answer is far smaller


class DiscoveryError(Exception):
    """The provider's document or keys cannot be used; ``code`` names sso.MESSAGES' entry, ``values`` fill it."""

    def __init__(self, code: str, **values: Any):
        super().__init__(f"{code}: {values}")
        self.code, self.values = code, values


@dataclass(frozen=True)
class Discovered:
    """A provider's discovery document, and the Date its server sent with it (for the clocks' check)."""

    metadata: Mapping[str, Any] = field(repr=False)
    date: str | None = None


_access = web.WebAccess(max_bytes=ANSWER_MAX)
_refetched: dict[tuple[str, web.WebAccess], tuple[int, float]] = {}
_refetch_lock = threading.Lock()


def configure(config: Mapping[str, Any]) -> web.WebAccess:
    """Set where identity providers may be reached from the configuration (the app factory calls it)."""
    global _access
    _access = access_from(config)
    return _access


def access_from(config: Mapping[str, Any]) -> web.WebAccess:
    """The web access for identity providers: PORTAL_OIDC_ALLOWED_HOSTS, and PORTAL_OIDC_CA_FILE for a provider
    whose certificate an internal CA signed (else the system's trusted CAs)."""
    return web.WebAccess.from_entries(config.get(ALLOWED_HOSTS_KEY) or "", max_bytes=ANSWER_MAX,
                                      ca_file=config.get("PORTAL_OIDC_CA_FILE") or None)


def provider_access() -> web.WebAccess:
    """Where identity providers may be reached in this process (public addresses only until configured)."""
    return _access


def _bucket() -> int:
    return int(time.monotonic() // KEPT_FOR)


def get_json(url: str, access: web.WebAccess, unreachable: str, **headers: str) -> tuple[Any, web.Answer]:
    """GET ``url`` through the guard; its JSON and the answer. DiscoveryError ``unreachable`` when no answer came,
    ``discovery_status`` for another status than 200, ``discovery_invalid`` when it is not JSON."""
    try:
        answer = web.fetch("GET", url, access, headers={"Accept": "application/json", **headers})
    except web.NO_ANSWER as error:  # before ValueError: a certificate that does not verify is both
        raise DiscoveryError(unreachable, url=url, detail=why(error)) from None
    except ValueError:
        raise DiscoveryError("discovery_invalid", url=url, detail="not a web address") from None
    if answer.status != 200:
        raise DiscoveryError("discovery_status", url=url, status=answer.status)
    try:
        return answer.json(), answer
    except ValueError:
        raise DiscoveryError("discovery_invalid", url=url, detail="not JSON") from None


def why(error: BaseException) -> str:
    """A few words on why a request got no answer, for the admin (never a secret: no URL query, no body)."""
    if isinstance(error, GuardRefused):
        return f"the address is not allowed ({ALLOWED_HOSTS_KEY})"
    if isinstance(error, HostNotFound):
        return "no such host"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, web.AnswerTooLarge):
        return "the answer is too large"
    if isinstance(error, ssl.SSLError):
        return "TLS: " + (getattr(error, "verify_message", "") or type(error).__name__)
    return type(error).__name__


def discover(url: str, access: web.WebAccess | None = None, *, fresh: bool = False) -> Discovered:
    """The discovery document at ``url``: a JSON object with the required metadata whose issuer is the URL's.

    Kept for a few minutes; ``fresh`` asks again (the admin's Check, which compares the clocks). DiscoveryError
    says what is wrong.
    """
    access = access or _access
    if fresh:
        return _discover(url, access)
    return _kept_discovery(url, access, _bucket())


@functools.lru_cache(maxsize=32)
def _kept_discovery(url: str, access: web.WebAccess, bucket: int) -> Discovered:
    return _discover(url, access)


def _discover(url: str, access: web.WebAccess) -> Discovered:
    metadata, answer = get_json(url, access, "discovery_unreachable")
    if not isinstance(metadata, dict):
        raise DiscoveryError("discovery_invalid", url=url, detail="not a JSON object")
    missing = [name for name in REQUIRED_METADATA if not isinstance(metadata.get(name), str)]
    if missing:
        raise DiscoveryError("discovery_invalid", url=url, detail="no " + ", ".join(missing))
    issuer = metadata["issuer"].rstrip("/")
    if not url.startswith(issuer + "/") and url.rstrip("/") != issuer:
        raise DiscoveryError("issuer_mismatch", issuer=metadata["issuer"], url=url)
    return Discovered(metadata, answer.header("Date") or None)


def signing_keys(url: str, access: web.WebAccess | None = None, *, refresh: bool = False) -> dict:
    """The provider's key set (JWKS) at ``url``, kept for a few minutes.

    ``refresh``: a token named a key the kept set lacks; fetch anew (at most once per REFETCH_AFTER per URL).
    """
    access = access or _access
    with _refetch_lock:
        generation, last = _refetched.get((url, access), (0, 0.0))
        if refresh and time.monotonic() - last >= REFETCH_AFTER:
            generation, last = generation + 1, time.monotonic()
            _refetched[(url, access)] = (generation, last)
    return _kept_keys(url, access, _bucket(), generation)


@functools.lru_cache(maxsize=32)
def _kept_keys(url: str, access: web.WebAccess, bucket: int, generation: int) -> dict:
    try:
        keys, _ = get_json(url, access, "keys_unreachable")
    except DiscoveryError as error:
        raise DiscoveryError("keys_unreachable", url=url, detail=error.values.get("detail")
                             or f"HTTP {error.values.get('status')}") from None
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list) or not keys["keys"]:
        raise DiscoveryError("keys_unreachable", url=url, detail="no keys")
    return keys


def forget() -> None:
    """Drop every kept document and key set (a changed configuration, or a test)."""
    _kept_discovery.cache_clear()
    _kept_keys.cache_clear()
    with _refetch_lock:
        _refetched.clear()
