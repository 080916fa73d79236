"""Autoconfiguration: find a mailbox's servers from its address, as Thunderbird does, and say where from.

The order (issue 13): the presets; the domain's published Thunderbird configuration (autoconfig XML over
HTTPS); the domain's MX mapped to a known provider, or that provider's published configuration; DNS SRV
records (RFC 6186, RFC 8314); a guess, probed concurrently (connect, greeting and TLS only). No password
is sent anywhere. Every connection, the HTTPS fetches included, goes through the connection guard, and
every server found elsewhere than in a preset must pass it too, so a published document cannot point the
portal at the intranet. Each look-up leaves a step in the discovery trail.
"""
from __future__ import annotations

import copy
import dataclasses
import http.client
import ipaddress
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote, urlsplit
from xml.etree.ElementTree import ParseError

import dns.exception
import dns.name
import dns.resolver
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from portal import http as web

from . import guard
from .connection import probe_server
from .errors import GuardRefused, HostNotFound, MailError
from .presets import OTHER, PRESETS, ProviderPreset, preset_for_domain
from .settings import MailConfig, ServerSettings

__all__ = ["Discovery", "FoundServer", "TrailStep", "discover", "dns_resolver", "SOURCES"]

# Where settings can come from, in the order they are tried.
PRESET, AUTOCONFIG, MX, SRV, GUESS = "preset", "autoconfig", "mx", "srv", "guess"
SOURCES = (PRESET, AUTOCONFIG, MX, SRV, GUESS)
# What a step of the trail found.
FOUND, NOTHING, IGNORED = "found", "nothing", "ignored"

PROTOCOLS = ("smtp", "imap", "pop3")
AUTOCONFIG_MAX_BYTES = 64 * 1024
AUTOCONFIG_TIMEOUT = 3.0
AUTOCONFIG_DEADLINE = 6.0  # the whole fetch of one document, however slowly it trickles
DNS_TIMEOUT = 2.0
PROBE_TIMEOUT = 5.0
MAX_REDIRECTS = 3
_SOCKET_TYPES = {"SSL": "ssl", "STARTTLS": "starttls"}  # "plain" is never taken: it would expose the password
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")

# RFC 6186 / RFC 8314 service labels, implicit TLS first.
SRV_SERVICES = (
    ("smtp", "_submissions._tcp", "ssl"), ("smtp", "_submission._tcp", "starttls"),
    ("imap", "_imaps._tcp", "ssl"), ("imap", "_imap._tcp", "starttls"),
    ("pop3", "_pop3s._tcp", "ssl"), ("pop3", "_pop3._tcp", "starttls"),
)
# The guess: host name prefixes, then (port, security) pairs, each in order of preference.
GUESS_HOSTS = {"smtp": ("smtp.", "mail."), "imap": ("imap.", "mail."), "pop3": ("pop.", "mail.")}
GUESS_PORTS = {"smtp": ((465, "ssl"), (587, "starttls")), "imap": ((993, "ssl"), (143, "starttls")),
               "pop3": ((995, "ssl"), (110, "starttls"))}

# Where the settings came from, as the form and the command line say it.
SOURCE_TEXT = {
    PRESET: {"en": "from the provider presets built into the portal", "ru": "из готовых настроек провайдеров"},
    AUTOCONFIG: {"en": "from the provider's published configuration",
                 "ru": "из опубликованной конфигурации провайдера"},
    MX: {"en": "from the domain's MX records (the provider that receives its mail)",
         "ru": "по записям MX домена (по провайдеру, который принимает его почту)"},
    SRV: {"en": "from the DNS service records", "ru": "из служебных записей DNS (SRV)"},
    GUESS: {"en": "guessed and verified (the servers answered with encryption; no password was sent)",
            "ru": "подобраны и проверены (серверы ответили с шифрованием; пароль не отправлялся)"},
}
# What each step of the trail found, by its note.
NOTE_TEXT = {
    "preset": {"en": "a preset of the portal", "ru": "готовая настройка портала"},
    "no_preset": {"en": "no preset for this domain", "ru": "для этого домена нет готовой настройки"},
    "published_configuration": {"en": "configuration found", "ru": "конфигурация найдена"},
    "no_such_host": {"en": "the name does not resolve", "ru": "имя не находится в DNS"},
    "unreachable": {"en": "no connection", "ru": "не удалось подключиться"},
    "http_status": {"en": "the server answered with an error", "ru": "сервер ответил ошибкой"},
    "address_not_allowed": {"en": "points to an address the portal may not connect to: ignored",
                            "ru": "указывает на адрес, к которому портал не подключается: пропущено"},
    "port_not_allowed": {"en": "names a port outside the allowed list: ignored",
                         "ru": "указывает порт вне списка разрешённых: пропущено"},
    "too_big": {"en": "the document is too big: ignored", "ru": "документ слишком большой: пропущен"},
    "not_xml": {"en": "not a valid XML document: ignored", "ru": "не корректный XML-документ: пропущен"},
    "not_autoconfig": {"en": "not an autoconfig document: ignored", "ru": "это не документ автонастройки: пропущен"},
    "redirect_elsewhere": {"en": "redirects to another host: not followed",
                           "ru": "перенаправляет на другой сервер: не выполнено"},
    "too_many_redirects": {"en": "too many redirects", "ru": "слишком много перенаправлений"},
    "no_usable_servers": {"en": "no usable servers in it", "ru": "в нём нет пригодных серверов"},
    "not_encrypted": {"en": "a server without encryption: ignored", "ru": "сервер без шифрования: пропущен"},
    "bad_server": {"en": "a malformed server name or port: ignored",
                   "ru": "неверное имя сервера или порт: пропущено"},
    "no_mx": {"en": "no MX records", "ru": "нет записей MX"},
    "known_provider": {"en": "the mail is received by a known provider",
                       "ru": "почту принимает известный провайдер"},
    "unknown_provider": {"en": "the mail is received by no known provider",
                         "ru": "почту принимает неизвестный провайдер"},
    "not_offered": {"en": "the service is marked as not offered", "ru": "служба отмечена как недоступная"},
    "service_record": {"en": "service record", "ru": "запись службы"},
    "no_service_records": {"en": "no service records", "ru": "нет записей служб"},
    "answered_with_tls": {"en": "answered and started encryption", "ru": "ответил и включил шифрование"},
    "probe_failed": {"en": "did not answer as an encrypted mail server",
                     "ru": "не ответил как почтовый сервер с шифрованием"},
}


@dataclass(frozen=True)
class FoundServer:
    """One server autoconfiguration found: protocol, where, how secured and which login to use."""

    protocol: str  # "smtp" | "imap" | "pop3"
    host: str
    port: int
    security: str  # "ssl" | "starttls"
    username: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrailStep:
    """One look-up of the discovery: which source, what it asked, and what came of it.

    ``note`` is a short code for what happened ("not_xml", "too_big", "address_not_allowed", ...);
    ``detail`` the technical particulars (a URL, a status, a host) for the curious.
    """

    source: str
    where: str
    outcome: str  # "found" | "nothing" | "ignored"
    note: str
    detail: str = ""

    def text(self, lang: str = "en") -> str:
        """What this step found, in "en" or "ru"."""
        texts = NOTE_TEXT.get(self.note.partition(":")[0])
        return (texts.get(lang) or texts["en"]) if texts else self.note

    def to_dict(self, lang: str = "en") -> dict:
        return {**dataclasses.asdict(self), "text": self.text(lang)}


@dataclass(frozen=True)
class Discovery:
    """What autoconfiguration found for an address, where it found it, and the trail that led there."""

    address: str
    source: str | None  # one of SOURCES, or None when nothing was found anywhere
    servers: tuple[FoundServer, ...] = ()
    trail: tuple[TrailStep, ...] = ()
    preset_key: str | None = None

    @property
    def found(self) -> bool:
        """Whether an outgoing server was found (incoming servers are a bonus)."""
        return self.smtp is not None

    def server(self, protocol: str) -> FoundServer | None:
        return next((server for server in self.servers if server.protocol == protocol), None)

    @property
    def smtp(self) -> FoundServer | None:
        return self.server("smtp")

    @property
    def incoming(self) -> FoundServer | None:
        """The server replies are fetched from: IMAP when offered, else POP3."""
        return self.server("imap") or self.server("pop3")

    def source_text(self, lang: str = "en") -> str:
        """Where the settings were found, in "en" or "ru" ("" when nothing was found)."""
        texts = SOURCE_TEXT.get(self.source or "")
        return (texts.get(lang) or texts["en"]) if texts else ""

    def to_dict(self, lang: str = "en") -> dict:
        return {"address": self.address, "found": self.found, "source": self.source,
                "source_text": self.source_text(lang), "preset": self.preset_key,
                "servers": {server.protocol: server.to_dict() for server in self.servers},
                "trail": [step.to_dict(lang) for step in self.trail]}


class _Ignored(Exception):
    """A source answered, but what it said cannot be used; ``note`` says why."""

    def __init__(self, note: str, detail: str = ""):
        super().__init__(note)
        self.note, self.detail = note, detail


def domain_of(address: str) -> str:
    """The domain of an address, lower-cased; ValueError when the address has none a mail server could have."""
    local, at, domain = address.strip().rpartition("@")
    domain = domain.rstrip(".").lower()
    if not at or not local or not _DOMAIN.fullmatch(domain):
        raise ValueError("an address looks like name@example.com")
    return domain


def dns_resolver(servers: str, timeout: float = DNS_TIMEOUT) -> dns.resolver.Resolver | None:
    """A resolver asking only these servers ("10.0.0.53, 10.0.0.54:5353, [fd00::53]:53"); None for "".

    For an intranet whose own DNS is not the machine's (PORTAL_MAIL_DNS_SERVERS).
    """
    import dns.nameserver

    nameservers = []
    for entry in (part.strip() for part in (servers or "").split(",")):
        if not entry:
            continue
        host, port = entry, 53
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            port = int(port_text)
        ipaddress.ip_address(host)  # ValueError for anything but an address
        nameservers.append(dns.nameserver.Do53Nameserver(host, port))
    if not nameservers:
        return None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = nameservers
    resolver.lifetime = timeout
    return resolver


def discover(address: str, config: MailConfig, *, resolver: dns.resolver.Resolver | None = None,
             https_port: int = 443, guess_ports: dict | None = None, mx_lookup: bool = True,
             probe_timeout: float = PROBE_TIMEOUT) -> Discovery:
    """Find the servers for ``address`` (see the module's docstring for the order); never sends a password.

    ``resolver`` answers the DNS questions (MX, SRV, host names); ``https_port`` and ``guess_ports`` exist
    so that tests can use loopback servers on free ports.
    """
    address = address.strip()
    domain = domain_of(address)
    search = _Search(address, domain, config, resolver, https_port)
    preset = preset_for_domain(domain)
    if preset is not None and preset.key != OTHER:
        search.note(PRESET, domain, FOUND, "preset", preset.name)
        return search.result(PRESET, _preset_servers(preset, address), preset.key)
    search.note(PRESET, domain, NOTHING, "no_preset")

    # The published configuration, the MX and the SRV records are asked at once: each may wait seconds on a
    # DNS or HTTPS server that does not answer. The first in the order above with an outgoing server wins,
    # and the trail shows the sources up to that one, in that order. Only then is anything guessed.
    lookups = [(AUTOCONFIG, lambda branch: (branch.autoconfig(AUTOCONFIG, f"autoconfig.{domain}",
                                                              "/mail/config-v1.1.xml"), None)),
               (AUTOCONFIG, lambda branch: (branch.autoconfig(AUTOCONFIG, domain,
                                                              "/.well-known/autoconfig/mail/config-v1.1.xml"), None)),
               *([(MX, _Search.by_mx)] if mx_lookup else []),
               (SRV, lambda branch: (branch.srv(), None))]
    branches = [search.branch() for _ in lookups]
    with ThreadPoolExecutor(max_workers=len(lookups)) as pool:
        answers = list(pool.map(lambda lookup, branch: lookup[1](branch), lookups, branches))
    for (source, _), branch, (servers, preset_key) in zip(lookups, branches, answers):
        search.trail.extend(branch.trail)
        if servers:
            return search.result(source, servers, preset_key)

    servers = search.guess(GUESS_PORTS if guess_ports is None else guess_ports, probe_timeout)
    if servers:
        return search.result(GUESS, servers)
    return search.result(None, ())


def _preset_servers(preset: ProviderPreset, address: str) -> tuple[FoundServer, ...]:
    login = preset.login_for(address)
    return tuple(FoundServer(protocol, server.host, server.port, server.security, login)
                 for protocol, server in (("smtp", preset.smtp), ("imap", preset.imap), ("pop3", preset.pop3))
                 if server is not None)


class _Search:
    """The state of one discovery: the address, the guard's settings, the resolvers and the trail."""

    def __init__(self, address: str, domain: str, config: MailConfig, resolver: dns.resolver.Resolver | None,
                 https_port: int):
        self.address, self.domain, self.config, self.https_port = address, domain, config, https_port
        self.local_part = address.rpartition("@")[0]
        # Host names: through the given resolver, or else the system's (so /etc/hosts counts, as for the mail
        # servers themselves); MX and SRV: through dnspython either way.
        self.system_hosts = guard.system_resolver(min(config.timeout, DNS_TIMEOUT)) if resolver is None else None
        if resolver is None:
            resolver = dns.resolver.Resolver()
            resolver.lifetime = DNS_TIMEOUT
        self.dns = resolver
        self.trail: list[TrailStep] = []

    def branch(self) -> "_Search":
        """The same search with a trail of its own, for a look-up that runs beside others."""
        other = copy.copy(self)
        other.trail = []
        return other

    def note(self, source: str, where: str, outcome: str, note: str, detail: str = "") -> None:
        self.trail.append(TrailStep(source, where, outcome, note, detail))

    def result(self, source: str | None, servers: Iterable[FoundServer], preset_key: str | None = None) -> Discovery:
        return Discovery(self.address, source, tuple(servers), tuple(self.trail), preset_key)

    # -- names and the guard --------------------------------------------------------------------------

    def resolve_host(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` (the guard's resolver): A and AAAA records, or the system's look-up."""
        if self.system_hosts is not None:
            return self.system_hosts(host, port)
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                addresses.extend(record.to_text() for record in self.dns.resolve(host, rdtype,
                                                                                 lifetime=self.dns.lifetime))
            except (dns.exception.DNSException, OSError):
                continue
        if not addresses:
            raise HostNotFound(f"{host} has no address")
        return addresses

    def destination(self, host: str, port: int, config: MailConfig) -> guard.Destination:
        return guard.resolve_destination(host, port, config, resolver=self.resolve_host)

    def admit(self, source: str, server: FoundServer) -> bool:
        """Whether a server found in a document or a record passes the guard; a trail step says if not."""
        where = f"{server.host}:{server.port}"
        try:
            self.destination(server.host, server.port, self.config)
        except GuardRefused:
            note = "address_not_allowed" if server.port in self.config.allowed_ports else "port_not_allowed"
            self.note(source, where, IGNORED, note, server.protocol)
            return False
        except HostNotFound:
            self.note(source, where, IGNORED, "no_such_host", server.protocol)
            return False
        return True

    # -- 2. autoconfig XML ----------------------------------------------------------------------------

    def autoconfig(self, source: str, host: str, path: str) -> tuple[FoundServer, ...]:
        """Fetch and read a Thunderbird autoconfig document; the servers in it that pass the guard."""
        query = f"?emailaddress={quote(self.address, safe='@')}"
        url = f"https://{host}{'' if self.https_port == 443 else f':{self.https_port}'}{path}"
        try:
            document = self.fetch(host, path + query)
            servers = self.read_autoconfig(document)
        except _Ignored as ignored:
            outcome = NOTHING if ignored.note in ("no_such_host", "unreachable", "http_status") else IGNORED
            self.note(source, url, outcome, ignored.note, ignored.detail)
            return ()
        admitted = tuple(server for server in servers if self.admit(source, server))
        chosen = _one_per_protocol(admitted)
        if chosen and any(server.protocol == "smtp" for server in chosen):
            self.note(source, url, FOUND, "published_configuration")
            return chosen
        self.note(source, url, IGNORED, "no_usable_servers")
        return ()

    def fetch(self, host: str, path: str) -> bytes:
        """GET an HTTPS document through the guard: short timeout, size limit, redirects on the same host only."""
        timeout = min(self.config.timeout, AUTOCONFIG_TIMEOUT)
        access = web.WebAccess(allowed_hosts=self.config.allowed_hosts, allowed_ports=frozenset({self.https_port}),
                               connect_timeout=timeout, read_timeout=timeout, deadline=AUTOCONFIG_DEADLINE,
                               max_bytes=AUTOCONFIG_MAX_BYTES, ca_file=self.config.ca_file)
        port = "" if self.https_port == 443 else f":{self.https_port}"
        for _ in range(MAX_REDIRECTS + 1):
            try:
                answer = web.fetch("GET", f"https://{host}{port}{path}", access, resolver=self.resolve_host,
                                   headers={"Accept": "application/xml, text/xml",
                                            "User-Agent": "mail-sender-portal autoconfig"})
            except GuardRefused:
                raise _Ignored("address_not_allowed", host) from None
            except HostNotFound:
                raise _Ignored("no_such_host", host) from None
            except web.AnswerTooLarge as error:
                raise _Ignored("too_big", f"more than {error.limit} bytes") from None
            except (OSError, http.client.HTTPException) as error:
                raise _Ignored("unreachable", error.__class__.__name__) from None
            if answer.status in (301, 302, 303, 307, 308):
                path = self._same_host_redirect(host, answer.header("Location"))
                continue
            if answer.status != 200:
                raise _Ignored("http_status", str(answer.status))
            return answer.body
        raise _Ignored("too_many_redirects", str(MAX_REDIRECTS))

    def _same_host_redirect(self, host: str, location: str) -> str:
        target = urlsplit(location)
        if target.scheme and (target.scheme != "https" or (target.hostname or "").lower() != host
                              or (target.port or 443) != self.https_port):
            raise _Ignored("redirect_elsewhere", location[:200])
        return (target.path or "/") + (f"?{target.query}" if target.query else "")

    def read_autoconfig(self, document: bytes) -> list[FoundServer]:
        """The servers of a clientConfig document, in its order; hardened parsing, placeholders filled."""
        try:
            root = fromstring(document, forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError) as error:
            raise _Ignored("not_xml", error.__class__.__name__) from None
        provider = root.find("emailProvider")
        if root.tag != "clientConfig" or provider is None:
            raise _Ignored("not_autoconfig", root.tag[:50])
        servers = []
        for element in (*provider.findall("outgoingServer"), *provider.findall("incomingServer")):
            protocol = (element.get("type") or "").lower()
            if protocol not in PROTOCOLS:
                continue
            host = self._fill(element.findtext("hostname", "")).strip().rstrip(".").lower()
            port_text = element.findtext("port", "").strip()
            security = _SOCKET_TYPES.get(element.findtext("socketType", "").strip().upper())
            where = f"{host}:{port_text}"
            if security is None:
                self.note(AUTOCONFIG, where, IGNORED, "not_encrypted", protocol)
                continue
            if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not _valid_host(host):
                self.note(AUTOCONFIG, where, IGNORED, "bad_server", protocol)
                continue
            username = self._fill(element.findtext("username", "")).strip() or self.address
            servers.append(FoundServer(protocol, host, int(port_text), security, username))
        return servers

    def _fill(self, text: str) -> str:
        return (text.replace("%EMAILADDRESS%", self.address).replace("%EMAILLOCALPART%", self.local_part)
                .replace("%EMAILDOMAIN%", self.domain))

    # -- 3. MX ----------------------------------------------------------------------------------------

    def by_mx(self) -> tuple[tuple[FoundServer, ...], str | None]:
        """The provider that hosts the domain's MX: a preset's servers, or its own published configuration."""
        try:
            answer = self.dns.resolve(self.domain, "MX", lifetime=self.dns.lifetime)
        except (dns.exception.DNSException, OSError) as error:
            self.note(MX, self.domain, NOTHING, "no_mx", error.__class__.__name__)
            return (), None
        exchanges = [record.exchange.to_text(omit_final_dot=True).lower()
                     for record in sorted(answer, key=lambda record: record.preference)
                     if record.exchange != dns.name.root]  # "0 ." is RFC 7505's "accepts no mail"
        for exchange in exchanges:
            for preset in PRESETS:
                if any(exchange == suffix or exchange.endswith("." + suffix) for suffix in preset.mx_suffixes):
                    self.note(MX, exchange, FOUND, "known_provider", preset.name)
                    return _preset_servers(preset, self.address), preset.key
        base = _registered_domain(exchanges[0]) if exchanges else None
        if base and base != self.domain:
            servers = self.autoconfig(MX, f"autoconfig.{base}", "/mail/config-v1.1.xml")
            if servers:
                return servers, None
        self.note(MX, ", ".join(exchanges) or self.domain, NOTHING, "unknown_provider")
        return (), None

    # -- 4. SRV ---------------------------------------------------------------------------------------

    def srv(self) -> tuple[FoundServer, ...]:
        """RFC 6186/8314 service records: the best offered server per protocol that passes the guard."""
        with ThreadPoolExecutor(max_workers=len(SRV_SERVICES)) as pool:
            answers = list(pool.map(self._srv_records, SRV_SERVICES))
        candidates: dict[str, list[tuple[int, int, FoundServer]]] = {protocol: [] for protocol in PROTOCOLS}
        for (protocol, label, security), records in zip(SRV_SERVICES, answers):
            where = f"{label}.{self.domain}"
            if records is None:
                continue
            for record in records:
                target = record.target.to_text(omit_final_dot=True).lower()
                if target in ("", "."):
                    self.note(SRV, where, NOTHING, "not_offered")
                    continue
                server = FoundServer(protocol, target, record.port, security, self.address)
                if self.admit(SRV, server):
                    # Lower priority first; on a tie implicit TLS (RFC 8314), then the heavier weight.
                    candidates[protocol].append((record.priority, 0 if security == "ssl" else 1, -record.weight,
                                                 server))
                    self.note(SRV, where, FOUND, "service_record", f"{target}:{record.port}")
        chosen = tuple(sorted(found, key=lambda item: item[:3])[0][3]
                       for found in candidates.values() if found)
        if not chosen:
            self.note(SRV, self.domain, NOTHING, "no_service_records")
        return chosen if any(server.protocol == "smtp" for server in chosen) else ()

    def _srv_records(self, service: tuple[str, str, str]):
        try:
            return list(self.dns.resolve(f"{service[1]}.{self.domain}", "SRV", lifetime=self.dns.lifetime))
        except (dns.exception.DNSException, OSError):
            return None

    # -- 5. the guess ---------------------------------------------------------------------------------

    def guess(self, ports: dict, probe_timeout: float) -> tuple[FoundServer, ...]:
        """Probe the usual names and ports at once (connect, greeting, TLS; no password); keep the best."""
        candidates = [FoundServer(protocol, prefix + self.domain, port, security, self.address)
                      for protocol in PROTOCOLS for prefix in GUESS_HOSTS[protocol]
                      for port, security in ports.get(protocol, ())]
        if not candidates:
            return ()
        config = dataclasses.replace(self.config, timeout=min(self.config.timeout, probe_timeout))
        with ThreadPoolExecutor(max_workers=len(candidates)) as pool:
            answers = list(pool.map(lambda server: self._probe(server, config), candidates))
        for server, (ok, note) in zip(candidates, answers):
            self.note(GUESS, f"{server.host}:{server.port}", FOUND if ok else NOTHING, note, server.protocol)
        chosen: dict[str, FoundServer] = {}
        for security in ("ssl", "starttls"):  # implicit TLS first, then STARTTLS; names in their order
            for server, (ok, _) in zip(candidates, answers):
                if ok and server.security == security:
                    chosen.setdefault(server.protocol, server)
        servers = tuple(chosen[protocol] for protocol in PROTOCOLS if protocol in chosen)
        return servers if "smtp" in chosen else ()

    def _probe(self, server: FoundServer, config: MailConfig) -> tuple[bool, str]:
        try:
            destination = self.destination(server.host, server.port, config)
            probe_server(server.protocol, destination,
                         ServerSettings(server.host, server.port, server.security, "", ""), config)
        except GuardRefused:
            return False, "address_not_allowed"
        except HostNotFound:
            return False, "no_such_host"
        except MailError as error:
            return False, f"probe_failed:{error.problem.code}"
        return True, "answered_with_tls"


def _one_per_protocol(servers: Iterable[FoundServer]) -> tuple[FoundServer, ...]:
    first: dict[str, FoundServer] = {}
    for server in servers:
        first.setdefault(server.protocol, server)
    return tuple(first[protocol] for protocol in PROTOCOLS if protocol in first)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_DOMAIN.fullmatch(host))


def _registered_domain(host: str) -> str | None:
    """The last two labels of a host name (mx1.mail.example.net -> example.net): where a provider publishes."""
    labels = host.split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else None
