"""Provider presets (as data in presets.toml) and picking one for an address."""
from __future__ import annotations

import datetime
import logging
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver

    from .settings import MailboxSettings

log = logging.getLogger("portal.mail")

OTHER = "other"
MX_TIMEOUT = 2.0  # seconds; an unanswered MX look-up must not hold up the form


@dataclass(frozen=True)
class ServerPreset:
    """A provider's server for one protocol."""

    host: str
    port: int
    security: str


@dataclass(frozen=True)
class ProviderPreset:
    """What a mail provider needs: servers, login format, and where to switch things on."""

    key: str
    name: str
    domains: tuple[str, ...]
    mx_suffixes: tuple[str, ...]
    smtp: ServerPreset | None
    pop3: ServerPreset | None
    imap: ServerPreset | None
    login_format: str  # "address" | "local_part"
    app_password_required_with_2fa: bool
    oauth_offered: bool
    incoming_help_url: str
    app_password_help_url: str
    advice_text: dict[str, str] = field(repr=False)
    name_ru: str | None = None
    # The day the provider stops (or stopped) accepting a password from mail programs, and what happens then.
    password_sign_in_ends: datetime.date | None = None
    password_sign_in_note_text: dict[str, str] = field(default_factory=dict, repr=False)
    # Whether a password may still be chosen beside the provider's sign-in ("Use a password instead"): false only
    # where the provider refuses every password (Outlook.com); Microsoft 365's administrators may turn it back on.
    password_allowed: bool = True

    def title(self, lang: str = "en") -> str:
        """The provider's name as a page in "ru" or "en" shows it (brand names stay as they are)."""
        return (self.name_ru if lang == "ru" else None) or self.name

    def advice(self, lang: str = "en") -> str:
        """Advice to show beside the mailbox form, in "ru" or "en"."""
        return self.advice_text.get(lang) or self.advice_text["en"]

    def password_sign_in_note(self, lang: str = "en") -> str:
        """What happens on ``password_sign_in_ends``, in "ru" or "en"; empty for a provider without that date."""
        return self.password_sign_in_note_text.get(lang) or self.password_sign_in_note_text.get("en", "")

    def login_for(self, address: str) -> str:
        """The login this provider expects for ``address``."""
        return address.partition("@")[0] if self.login_format == "local_part" else address

    def to_dict(self, lang: str = "en") -> dict:
        """The preset as plain data (for JSON and templates)."""
        servers = {name: (vars(server) if server else None)
                   for name, server in (("smtp", self.smtp), ("pop3", self.pop3), ("imap", self.imap))}
        return {"key": self.key, "name": self.title(lang), "domains": list(self.domains), **servers,
                "login_format": self.login_format,
                "app_password_required_with_2fa": self.app_password_required_with_2fa,
                "oauth_offered": self.oauth_offered, "incoming_help_url": self.incoming_help_url,
                "app_password_help_url": self.app_password_help_url, "advice": self.advice(lang),
                "password_sign_in_ends": (self.password_sign_in_ends.isoformat()
                                          if self.password_sign_in_ends else None),
                "password_sign_in_note": self.password_sign_in_note(lang) or None}


def _server(raw: dict | None) -> ServerPreset | None:
    return ServerPreset(**raw) if raw else None


@lru_cache(maxsize=1)
def _load() -> tuple[ProviderPreset, ...]:
    data = tomllib.loads(resources.files(__package__).joinpath("presets.toml").read_text("utf-8"))
    return tuple(ProviderPreset(
        key=raw["key"], name=raw["name"], domains=tuple(raw["domains"]), mx_suffixes=tuple(raw["mx_suffixes"]),
        smtp=_server(raw.get("smtp")), pop3=_server(raw.get("pop3")), imap=_server(raw.get("imap")),
        login_format=raw["login_format"], app_password_required_with_2fa=raw["app_password_required_with_2fa"],
        oauth_offered=raw["oauth_offered"], incoming_help_url=raw["incoming_help_url"],
        app_password_help_url=raw["app_password_help_url"], advice_text=raw["advice"],
        name_ru=raw.get("name_ru"), password_sign_in_ends=raw.get("password_sign_in_ends"),
        password_sign_in_note_text=raw.get("password_sign_in_note", {}),
        password_allowed=raw.get("password_allowed", True),
    ) for raw in data["preset"])


PRESETS: tuple[ProviderPreset, ...] = _load()
_BY_KEY = {preset.key: preset for preset in PRESETS}
_BY_DOMAIN = {domain: preset for preset in PRESETS for domain in preset.domains}


def get_preset(key: str) -> ProviderPreset | None:
    """The preset with this key, or None."""
    return _BY_KEY.get(key)


def preset_for_domain(domain: str) -> ProviderPreset | None:
    """The preset whose domain table lists ``domain`` (no network), or None."""
    return _BY_DOMAIN.get(domain.strip().rstrip(".").lower())


def preset_for_address(address: str, *, resolver: "dns.resolver.Resolver | None" = None,
                       mx_lookup: bool = True) -> ProviderPreset:
    """Pick the preset for an address: its domain first, then who hosts the domain's MX; else "other"."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    preset = preset_for_domain(domain)
    if preset is None and domain and mx_lookup:
        preset = _preset_by_mx(domain, resolver)
    return preset or _BY_KEY[OTHER]


def _preset_by_mx(domain: str, resolver: "dns.resolver.Resolver | None") -> ProviderPreset | None:
    import dns.exception
    import dns.resolver

    if resolver is None:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = MX_TIMEOUT
    try:
        answer = resolver.resolve(domain, "MX", lifetime=min(resolver.lifetime, MX_TIMEOUT))
    except (dns.exception.DNSException, OSError) as exc:
        # No answer is not an error: the employee fills in the servers by hand.
        log.info("MX look-up for %s gave no answer: %s", domain, exc.__class__.__name__)
        return None
    for record in sorted(answer, key=lambda r: r.preference):
        exchange = record.exchange.to_text(omit_final_dot=True).lower()
        for preset in PRESETS:
            if any(exchange == s or exchange.endswith("." + s) for s in preset.mx_suffixes):
                return preset
    return None


def provider_for(settings: "MailboxSettings") -> str | None:
    """The key of the provider a mailbox is at, judged without network: its SMTP host, else its domain."""
    preset = provider_at(settings.smtp.host, settings.domain)
    return preset.key if preset else None


def provider_at(smtp_host: str, domain: str) -> ProviderPreset | None:
    """The preset of the provider whose SMTP server is ``smtp_host`` (a company domain hosted at Microsoft 365
    counts); with no host yet, the one whose domain table lists ``domain``. None for any other server: a hotmail.com
    address sent through a company relay is not at Outlook.com."""
    host = (smtp_host or "").strip().rstrip(".").lower()
    if not host:
        return preset_for_domain(domain or "")
    return next((preset for preset in PRESETS if preset.smtp and preset.smtp.host == host), None)
