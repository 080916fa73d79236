"""Plain, frozen settings for a mailbox's servers and for the mail engine itself."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

SECURITY_MODES = ("ssl", "starttls", "none")
INCOMING_PROTOCOLS = ("pop3", "imap")
OAUTH_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")  # SASL with a provider's access token (RFC 7628 and Google's/Microsoft's)
DEFAULT_MAIL_PORTS = frozenset({25, 465, 587, 2525, 110, 995, 143, 993})

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def normalize_fingerprint(value: str) -> str:
    """Return a SHA-256 fingerprint as 64 lowercase hex digits, accepting colons and spaces."""
    cleaned = re.sub(r"[\s:]", "", value).lower()
    if not _FINGERPRINT.fullmatch(cleaned):
        raise ValueError("a certificate fingerprint is 64 hex digits (SHA-256)")
    return cleaned


def format_fingerprint(value: str) -> str:
    """Return a fingerprint the way browsers and openssl show it: AB:CD:..."""
    hex_digits = normalize_fingerprint(value).upper()
    return ":".join(hex_digits[i:i + 2] for i in range(0, len(hex_digits), 2))


@dataclass(frozen=True)
class ServerSettings:
    """One server of a mailbox (SMTP, POP3 or IMAP) and how to sign in to it."""

    host: str
    port: int
    security: str  # "ssl" | "starttls" | "none"
    username: str
    password: str = field(repr=False)
    trusted_fingerprint: str | None = None  # SHA-256 pin of the server certificate
    allow_plaintext_auth: bool = False
    sasl: str | None = None  # an OAUTH_MECHANISMS name: ``password`` is then the provider's access token

    def __post_init__(self) -> None:
        if self.sasl is not None and self.sasl not in OAUTH_MECHANISMS:
            raise ValueError(f"the sign-in mechanism must be one of {', '.join(OAUTH_MECHANISMS)}")
        if not self.host or not self.host.strip():
            raise ValueError("a server needs a host name")
        object.__setattr__(self, "host", self.host.strip().strip("[]").rstrip(".").lower())
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {self.port!r}")
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
        if self.trusted_fingerprint:
            object.__setattr__(self, "trusted_fingerprint", normalize_fingerprint(self.trusted_fingerprint))
        else:
            object.__setattr__(self, "trusted_fingerprint", None)


@dataclass(frozen=True)
class IncomingSettings:
    """Where replies are fetched from: a POP3 or IMAP server."""

    protocol: str  # "pop3" | "imap"
    server: ServerSettings

    def __post_init__(self) -> None:
        if self.protocol not in INCOMING_PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(INCOMING_PROTOCOLS)}")


@dataclass(frozen=True)
class MailboxSettings:
    """A mailbox letters leave from: its address, outgoing server and optional incoming server."""

    address: str
    display_name: str
    smtp: ServerSettings
    incoming: IncomingSettings | None = None

    @property
    def domain(self) -> str:
        """The part of the address after the @, lower-cased."""
        return self.address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class MailboxField:
    """One field of a mailbox as the service, the form and the API know it.

    ``side`` is where the API puts it: "mailbox" (top level), "smtp", "incoming" or "access";
    ``api_name`` is its name there. ``server``: changing it needs a new passed test.
    ``secret``: stored encrypted, never shown (the API answers ``password_set`` instead).
    """

    name: str
    side: str
    api_name: str
    server: bool = False
    secret: bool = False

    @property
    def api_path(self) -> str:
        """How API error messages name it: ``smtp.host``, ``access.everyone``, ``address``."""
        return self.api_name if self.side == "mailbox" else f"{self.side}.{self.api_name}"


# Every field of a mailbox, in form order. A new server setting is one new line here (and its column,
# its form field and its API schema, which the tests check against this table).
MAILBOX_FIELDS = (
    MailboxField("address", "mailbox", "address", server=True),
    MailboxField("display_name", "mailbox", "display_name"),
    MailboxField("smtp_host", "smtp", "host", server=True),
    MailboxField("smtp_port", "smtp", "port", server=True),
    MailboxField("smtp_security", "smtp", "security", server=True),
    MailboxField("smtp_username", "smtp", "username", server=True),
    MailboxField("smtp_password", "smtp", "password", server=True, secret=True),
    MailboxField("smtp_trusted_fingerprint", "smtp", "trusted_fingerprint", server=True),
    MailboxField("allow_plaintext_auth", "smtp", "allow_plaintext_auth", server=True),
    MailboxField("incoming_protocol", "incoming", "protocol", server=True),
    MailboxField("incoming_host", "incoming", "host", server=True),
    MailboxField("incoming_port", "incoming", "port", server=True),
    MailboxField("incoming_security", "incoming", "security", server=True),
    MailboxField("incoming_username", "incoming", "username", server=True),
    MailboxField("incoming_password", "incoming", "password", server=True, secret=True),
    MailboxField("incoming_trusted_fingerprint", "incoming", "trusted_fingerprint", server=True),
    MailboxField("receive_replies", "mailbox", "receive_replies"),
    MailboxField("is_default", "mailbox", "default"),
    MailboxField("projects", "mailbox", "projects"),
    MailboxField("access_everyone", "access", "everyone"),
    MailboxField("access_employees", "access", "employees"),
    MailboxField("access_departments", "access", "departments"),
)


def mailbox_fields(side: str | None = None) -> tuple[MailboxField, ...]:
    """The table's fields, or those the API puts on one side."""
    return tuple(f for f in MAILBOX_FIELDS if side is None or f.side == side)


@dataclass(frozen=True)
class AllowedHost:
    """One PORTAL_MAIL_ALLOWED_HOSTS entry: a host name, an IP or a CIDR range, with an optional port.

    Without a port it allows the mail ports of PORTAL_MAIL_ALLOWED_PORTS only (the guard checks);
    ``:587`` allows that port, ``:*`` every port (a test server on a random one).
    """

    host: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None
    any_port: bool = False

    @classmethod
    def parse(cls, entry: str) -> "AllowedHost":
        """Parse ``name``, ``name:port``, ``name:*``, ``10.0.0.0/8``, ``10.0.0.5:25``, ``[fd00::1]:587``, ``fd00::/8``.
        """
        text = entry.strip()
        if not text:
            raise ValueError("empty allowed-host entry")
        if text.endswith(":*"):
            return replace(cls.parse(text[:-2]), any_port=True)
        port: int | None = None
        if text.startswith("["):
            inside, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"bad allowed-host entry {entry!r}")
                port = _parse_port(rest[1:], entry)
            text = inside
        elif text.count(":") == 1:
            text, _, port_text = text.partition(":")
            port = _parse_port(port_text, entry)
        try:
            return cls(network=ipaddress.ip_network(text, strict=False), port=port)
        except ValueError:
            pass
        if not re.fullmatch(r"[A-Za-z0-9.-]+", text):
            raise ValueError(f"bad allowed-host entry {entry!r}")
        return cls(host=text.rstrip(".").lower(), port=port)

    def allows(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        """Whether this entry lets a connection to ``host`` (resolved to ``ip``) on ``port`` through."""
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return host.rstrip(".").lower() == self.host
        return self.network is not None and ip in self.network


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in allowed-host entry {entry!r}")
    return int(text)


@dataclass(frozen=True)
class MailConfig:
    """Server-wide settings of the mail engine (never set by employees)."""

    timeout: float = 10.0
    deadline: float = 30.0  # the whole conversation (a test, a fetch, a connection), not one read
    allowed_ports: frozenset[int] = DEFAULT_MAIL_PORTS
    allowed_hosts: tuple[AllowedHost, ...] = ()
    ca_file: str | None = None
    ehlo_name: str | None = None  # None: an address literal of our own end of the connection

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("the mail timeout must be positive")
        object.__setattr__(self, "timeout", float(self.timeout))
        if not self.deadline > 0:
            raise ValueError("the mail deadline must be positive")
        object.__setattr__(self, "deadline", float(self.deadline))
        object.__setattr__(self, "allowed_ports", frozenset(int(p) for p in self.allowed_ports))
        object.__setattr__(self, "allowed_hosts", tuple(
            entry if isinstance(entry, AllowedHost) else AllowedHost.parse(entry)
            for entry in self.allowed_hosts))
        object.__setattr__(self, "ca_file", self.ca_file or None)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "MailConfig":
        """Build the config from PORTAL_MAIL_* keys of a plain mapping (e.g. Flask's config)."""
        kwargs: dict[str, Any] = {}
        if mapping.get("PORTAL_MAIL_TIMEOUT") not in (None, ""):
            try:
                kwargs["timeout"] = float(mapping["PORTAL_MAIL_TIMEOUT"])
            except (TypeError, ValueError):
                raise ValueError("PORTAL_MAIL_TIMEOUT must be a number of seconds") from None
        if mapping.get("PORTAL_MAIL_DEADLINE") not in (None, ""):
            try:
                kwargs["deadline"] = float(mapping["PORTAL_MAIL_DEADLINE"])
            except (TypeError, ValueError):
                raise ValueError("PORTAL_MAIL_DEADLINE must be a number of seconds") from None
        if mapping.get("PORTAL_MAIL_ALLOWED_PORTS") not in (None, ""):
            try:
                kwargs["allowed_ports"] = frozenset(int(p) for p in _items(mapping["PORTAL_MAIL_ALLOWED_PORTS"]))
            except ValueError:
                raise ValueError("PORTAL_MAIL_ALLOWED_PORTS must be a comma-separated list of ports") from None
        if mapping.get("PORTAL_MAIL_ALLOWED_HOSTS") not in (None, ""):
            kwargs["allowed_hosts"] = tuple(_items(mapping["PORTAL_MAIL_ALLOWED_HOSTS"]))
        if mapping.get("PORTAL_MAIL_CA_FILE"):
            kwargs["ca_file"] = str(mapping["PORTAL_MAIL_CA_FILE"])
        if mapping.get("PORTAL_MAIL_EHLO_NAME"):
            kwargs["ehlo_name"] = str(mapping["PORTAL_MAIL_EHLO_NAME"])
        return cls(**kwargs)


def _items(value: Any) -> Iterable[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)
