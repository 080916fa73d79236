"""Sign-in vouched for by the reverse proxy (Kerberos/SPNEGO, an auth proxy): which header value to believe.

PORTAL_TRUSTED_USER_HEADER names the header the proxy sets to the signed-in person's e-mail. It is
believed only when PORTAL_PROXY_COUNT says a proxy is in front, only when the request's own peer (the
TCP address before X-Forwarded-For is applied) is one of PORTAL_TRUSTED_PROXIES, and only when it holds
one value (a proxy that appends instead of replacing would pass a client's value beside its own).
The proxy must set the header or clear it on every request: a value a client sent through a proxy
that passes it on unchanged cannot be told apart. No Flask import.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PROXIES = "127.0.0.1, ::1"
VALUE_MAX = 255


@dataclass(frozen=True)
class TrustedHeader:
    header: str = ""
    proxy_count: int = 0
    proxies: tuple = ()

    @classmethod
    def from_mapping(cls, config):
        text = config.get("PORTAL_TRUSTED_PROXIES") or DEFAULT_PROXIES
        entries = text.split(",") if isinstance(text, str) else list(text)
        networks = tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
        return cls(header=(config.get("PORTAL_TRUSTED_USER_HEADER") or "").strip(),
                   proxy_count=int(config.get("PORTAL_PROXY_COUNT") or 0), proxies=networks)

    @property
    def enabled(self):
        return bool(self.header) and self.proxy_count > 0

    def environ_key(self):
        return "HTTP_" + self.header.upper().replace("-", "_")

    def from_proxy(self, peer):
        try:
            address = ipaddress.ip_address((peer or "").split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def user(self, environ):
        """The e-mail the proxy vouches for in this WSGI environ, or None when it is not to be believed."""
        if not self.enabled:
            return None
        # ProxyFix keeps the peer it replaced; without it the peer is REMOTE_ADDR itself.
        peer = (environ.get("werkzeug.proxy_fix.orig") or {}).get("REMOTE_ADDR", environ.get("REMOTE_ADDR"))
        if not self.from_proxy(peer):
            return None
        value = (environ.get(self.environ_key()) or "").strip()
        if not value or "," in value or len(value) > VALUE_MAX or any(ord(char) < 32 for char in value):
            return None
        return value
