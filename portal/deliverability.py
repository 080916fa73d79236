"""Will letters from a mailbox reach the inbox? SPF, DMARC, DKIM and MX of its domain, read from DNS. No Flask here.

A receiving server (Gmail, Yandex, Outlook) trusts a letter when the sending domain's SPF record
authorises the server that handed it over, or a DKIM signature of that domain checks out; the
domain's DMARC policy says what to do when neither holds for the From address's domain. Each
mailbox's checklist is worked out from the records of its domain and of the SMTP server it uses.
Every DNS answer used is kept per domain (``DomainDeliverability``) for six hours, so fifty mailboxes of
one domain ask DNS once; the background check asks it, and pages and the API read what was kept.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.resolver

from portal.models import utcnow
from portal.models.health import DomainDeliverability

KEPT_FOR = datetime.timedelta(hours=6)
SPF_LOOKUPS = 10  # RFC 7208's limit of look-ups for one evaluation

# Providers whose servers send for their customers' domains: the SMTP host's ending, the SPF include that
# authorises them, and the DKIM selectors they sign with (a key published there means they sign for the domain).
PROVIDERS = (
    {"name": "Gmail", "hosts": ("gmail.com", "googlemail.com", "google.com"), "include": "_spf.google.com",
     "selectors": ("google",)},
    {"name": "Outlook", "hosts": ("outlook.com", "office365.com", "hotmail.com"),
     "include": "spf.protection.outlook.com", "selectors": ("selector1", "selector2")},
    {"name": "Yandex", "hosts": ("yandex.ru", "yandex.com", "yandex.net"), "include": "_spf.yandex.net",
     "selectors": ("mail",)},
    {"name": "Mail.ru", "hosts": ("mail.ru",), "include": "_spf.mail.ru", "selectors": ("mailru",)},
)

# Each finding's words: a title for the checklist and advice; {host}, {domain}, {policy}, {provider} filled in.
TEXTS = {
    "spf_pass": {"en": "SPF authorises {host}.", "ru": "SPF разрешает отправку через {host}."},
    "spf_missing": {
        "en": "The domain {domain} has no SPF record: letters from this address may land in spam. Publish a TXT "
              "record \"v=spf1 {advice} ~all\".",
        "ru": "У домена {domain} нет записи SPF: письма с этого адреса могут попадать в спам. Опубликуйте TXT-запись "
              "«v=spf1 {advice} ~all»."},
    "spf_missing_include": {
        "en": "Letters from this address may land in spam: the SPF record of {domain} does not include {host}. "
              "Add \"{advice}\" to it.",
        "ru": "Письма с этого адреса могут попадать в спам: SPF-запись домена {domain} не включает {host}. "
              "Добавьте в неё «{advice}»."},
    "spf_refuses": {
        "en": "Receivers will refuse letters from this address: the SPF record of {domain} ends with \"-all\" and "
              "does not authorise {host}. Add \"{advice}\" to it.",
        "ru": "Получатели будут отклонять письма с этого адреса: SPF-запись домена {domain} заканчивается на «-all» "
              "и не разрешает {host}. Добавьте в неё «{advice}»."},
    "dmarc_pass": {"en": "DMARC policy \"{policy}\"; letters from this address align with it.",
                   "ru": "Политика DMARC «{policy}»; письма с этого адреса ей соответствуют."},
    "dmarc_missing": {
        "en": "The domain {domain} has no DMARC record: Gmail and Yandex trust its letters less. Publish a TXT record "
              "at _dmarc.{domain}, for a start \"v=DMARC1; p=none\".",
        "ru": "У домена {domain} нет записи DMARC: Gmail и Яндекс меньше доверяют его письмам. Опубликуйте TXT-запись "
              "для _dmarc.{domain}, для начала «v=DMARC1; p=none»."},
    "dmarc_misaligned": {
        "en": "DMARC policy \"{policy}\" and neither SPF nor DKIM vouches for {host}: receivers will {verdict} letters "
              "from this address. Fix SPF (above) or publish the provider's DKIM key.",
        "ru": "Политика DMARC «{policy}», а ни SPF, ни DKIM не подтверждают {host}: получатели будут {verdict_ru} "
              "письма с этого адреса. Исправьте SPF (выше) или опубликуйте DKIM-ключ почтового сервиса."},
    "dkim_pass": {"en": "{provider} publishes a signing key for {domain}.",
                  "ru": "Для домена {domain} опубликован ключ подписи {provider}."},
    "dkim_missing": {
        "en": "No signing key of {provider} is published for {domain}; switch on DKIM signing in {provider}'s "
              "settings and publish the key it shows.",
        "ru": "Для домена {domain} не опубликован ключ подписи {provider}; включите DKIM-подпись в настройках "
              "{provider} и опубликуйте показанный там ключ."},
    "mx_pass": {"en": "The domain {domain} receives mail (MX).", "ru": "Домен {domain} принимает почту (MX)."},
    "mx_missing": {
        "en": "The domain {domain} has no MX record: replies to this address cannot arrive, and some receivers "
              "refuse letters from a domain that takes none.",
        "ru": "У домена {domain} нет записи MX: ответы на этот адрес не дойдут, а некоторые получатели отклоняют "
              "письма от домена, который сам почту не принимает."},
    "dns_failed": {"en": "DNS did not answer for {domain}; the check is tried again later.",
                   "ru": "DNS не ответил для домена {domain}; проверка повторится позже."},
}
KINDS = ("spf", "dmarc", "dkim", "mx")


@dataclass(frozen=True)
class Finding:
    """One line of the checklist: which record, whether it is fine, and why."""

    kind: str  # spf | dmarc | dkim | mx
    ok: bool
    code: str  # a key of TEXTS
    words: dict  # what fills in the text

    def text(self, lang: str = "en") -> str:
        texts = TEXTS[self.code]
        return (texts.get(lang) or texts["en"]).format(**self.words)

    def to_dict(self, lang: str = "en") -> dict:
        return {"kind": self.kind, "ok": self.ok, "code": self.code, "text": self.text(lang)}


@dataclass(frozen=True)
class Checklist:
    """A mailbox's deliverability: its domain and one finding per kind that applies."""

    domain: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if not finding.ok)

    def to_dict(self, lang: str = "en") -> dict:
        return {"domain": self.domain, "ok": self.ok, "checks": [finding.to_dict(lang) for finding in self.findings]}


Lookup = Callable[[str, str], list]  # (name, "TXT"|"MX"|"A"|"AAAA") -> record texts; [] when there is none


def provider_of(smtp_host: str) -> dict | None:
    """The known provider whose servers ``smtp_host`` belongs to."""
    host = smtp_host.lower().rstrip(".")
    for provider in PROVIDERS:
        if any(host == end or host.endswith("." + end) for end in provider["hosts"]):
            return provider
    return None


def checklist(address: str, smtp_host: str, lookup: Lookup) -> Checklist:
    """The deliverability checklist of letters from ``address`` handed to ``smtp_host``."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    provider = provider_of(smtp_host)
    try:
        spf = _spf(domain, smtp_host, provider, lookup)
        dkim = _dkim(domain, provider, lookup)
        findings = [spf, _dmarc(domain, smtp_host, spf.ok or (dkim is not None and dkim.ok), lookup)]
        findings += [dkim] if dkim is not None else []
        mx = bool(lookup(domain, "MX"))
        findings.append(Finding("mx", mx, "mx_pass" if mx else "mx_missing", {"domain": domain}))
    except dns.exception.DNSException:
        findings = [Finding("dns", False, "dns_failed", {"domain": domain})]
    return Checklist(domain, tuple(findings))


def _spf(domain, smtp_host, provider, lookup) -> Finding:
    record = _record(lookup(domain, "TXT"), "v=spf1")
    advice = f"include:{provider['include']}" if provider else f"a:{smtp_host}"
    words = {"domain": domain, "host": smtp_host, "advice": advice}
    if record is None:
        return Finding("spf", False, "spf_missing", words)
    addresses = _addresses(smtp_host, lookup)
    if _authorises(record, domain, smtp_host, provider, addresses, lookup, [0]):
        return Finding("spf", True, "spf_pass", words)
    refuses = any(term.lower() == "-all" for term in record.split())
    return Finding("spf", False, "spf_refuses" if refuses else "spf_missing_include", words)


def _authorises(record, domain, smtp_host, provider, addresses, lookup, lookups) -> bool:
    """Whether an SPF record passes the SMTP server: by the provider's include, its host, or its addresses."""
    for term in record.split()[1:]:
        qualifier, mechanism = (term[0], term[1:]) if term[0] in "+-~?" else ("+", term)
        name, _, value = mechanism.partition(":")
        name, value = name.lower(), value.rstrip(".").lower()
        if name.startswith("redirect="):
            name, value = "include", name.partition("=")[2]
        if qualifier != "+" and name != "include":
            continue
        if name == "include" and provider is not None and value == provider["include"]:
            return True
        if name in ("include", "a", "mx"):
            # RFC 7208 4.6.4: at most ten mechanisms that ask DNS, across the nested records together; a record
            # asking more fails, so a domain cannot make "Check DNS now" ask thousands of questions.
            lookups[0] += 1
            if lookups[0] > SPF_LOOKUPS:
                return False
        if name == "include":
            inner = _record(lookup(value, "TXT"), "v=spf1")
            if inner is not None and _authorises(inner, value, smtp_host, provider, addresses, lookup, lookups):
                return True
        elif name in ("ip4", "ip6") and value:
            network = ipaddress.ip_network(value, strict=False)
            if any(address in network for address in addresses if address.version == network.version):
                return True
        elif name == "a":
            target = (value or domain).split("/")[0]
            if target == smtp_host.lower() or addresses & _addresses(target, lookup):
                return True
        elif name == "mx":
            hosts = [text.split()[-1].rstrip(".").lower()
                     for text in lookup((value or domain).split("/")[0], "MX")][:SPF_LOOKUPS]  # RFC 7208 4.6.4
            if smtp_host.lower() in hosts or any(addresses & _addresses(host, lookup) for host in hosts):
                return True
    return False


def _addresses(host, lookup) -> set:
    found = set()
    for kind in ("A", "AAAA"):
        for text in lookup(host, kind):
            try:
                found.add(ipaddress.ip_address(text))
            except ValueError:
                continue
    return found


def _dmarc(domain, smtp_host, vouched, lookup) -> Finding:
    record = _record(lookup(f"_dmarc.{domain}", "TXT"), "v=DMARC1")
    if record is None:
        return Finding("dmarc", False, "dmarc_missing", {"domain": domain})
    tags = dict(part.strip().partition("=")[::2] for part in record.split(";") if "=" in part)
    policy = tags.get("p", "none").strip().lower()
    words = {"domain": domain, "policy": policy, "host": smtp_host,
             "verdict": "refuse" if policy == "reject" else "put in spam",
             "verdict_ru": "отклонять" if policy == "reject" else "отправлять в спам"}
    # The portal hands letters over with MAIL FROM the mailbox's own address, so SPF aligns whenever it passes.
    if policy in ("quarantine", "reject") and not vouched:
        return Finding("dmarc", False, "dmarc_misaligned", words)
    return Finding("dmarc", True, "dmarc_pass", words)


def _dkim(domain, provider, lookup) -> Finding | None:
    if provider is None:
        return None  # whose selectors to look at is known for the known providers only
    words = {"domain": domain, "provider": provider["name"]}
    for selector in provider["selectors"]:
        if any("p=" in text for text in lookup(f"{selector}._domainkey.{domain}", "TXT")):
            return Finding("dkim", True, "dkim_pass", words)
    return Finding("dkim", False, "dkim_missing", words)


def _record(texts, prefix) -> str | None:
    for text in texts:
        if text.lower().startswith(prefix.lower() + " ") or text.lower() == prefix.lower() \
                or text.lower().startswith(prefix.lower() + ";"):
            return text
    return None


# ---------------------------------------------------------------- DNS, asked once per domain a while

def configured_resolver(config) -> dns.resolver.Resolver:
    """The resolver of PORTAL_MAIL_DNS_SERVERS (an intranet's own DNS), else the machine's."""
    from portal.mail.discovery import dns_resolver

    try:
        return dns_resolver(config.get("PORTAL_MAIL_DNS_SERVERS") or "") or dns.resolver.Resolver()
    except ValueError:  # a malformed setting: the machine's DNS rather than none
        return dns.resolver.Resolver()


def dns_lookup(resolver: dns.resolver.Resolver | None) -> Lookup:
    """Ask DNS (this resolver, or the machine's): the records' texts, [] for a name or type that has none."""
    resolver = resolver or dns.resolver.Resolver()

    def lookup(name: str, kind: str) -> list:
        try:
            answer = resolver.resolve(name, kind, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        if kind == "TXT":
            return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
        return [record.to_text() for record in answer]

    return lookup


def kept_lookup(domain: str, ask: Lookup, now=None, kept_for: datetime.timedelta = KEPT_FOR) -> Lookup:
    """``ask``, remembered in the domain's row: what was asked within ``kept_for`` is answered from there."""
    now = now or utcnow()
    row = DomainDeliverability.get_or_none(DomainDeliverability.domain == domain)
    answers = row.record_texts() if row is not None and row.checked_at > now - kept_for else {}
    checked_at = row.checked_at if answers else now

    def lookup(name: str, kind: str) -> list:
        key = f"{kind} {name.lower()}"
        if key not in answers:
            answers[key] = ask(name, kind)
            DomainDeliverability.insert(domain=domain, checked_at=checked_at, records=json.dumps(answers)).on_conflict(
                conflict_target=[DomainDeliverability.domain],
                update={DomainDeliverability.checked_at: checked_at,
                        DomainDeliverability.records: json.dumps(answers)}).execute()
        return answers[key]

    return lookup


def mailbox_checklist(mailbox, resolver: dns.resolver.Resolver | None = None, now=None,
                      kept_for: datetime.timedelta = KEPT_FOR) -> Checklist:
    """The checklist of one mailbox, asking DNS for what was not asked within ``kept_for``."""
    domain = mailbox.address.rpartition("@")[2].lower()
    return checklist(mailbox.address, mailbox.smtp_host, kept_lookup(domain, dns_lookup(resolver), now, kept_for))


def kept_checklists(mailboxes, now=None) -> dict:
    """{mailbox id: Checklist} from the answers already kept, None where DNS was not asked yet: pages and the API
    never wait on DNS (the background check and the mailbox's "Check DNS now" ask it)."""
    now = now or utcnow()
    domains = {m.address.rpartition("@")[2].lower() for m in mailboxes}
    rows = {row.domain: row.record_texts() for row in DomainDeliverability.select().where(
        DomainDeliverability.domain.in_(list(domains)) & (DomainDeliverability.checked_at > now - KEPT_FOR))}
    found = {}
    for mailbox in mailboxes:
        answers = rows.get(mailbox.address.rpartition("@")[2].lower())
        if answers is None:
            found[mailbox.id] = None
            continue

        def lookup(name, kind, answers=answers):
            key = f"{kind} {name.lower()}"
            if key not in answers:
                raise dns.exception.Timeout()  # not asked yet (another SMTP server of the domain): unknown
            return answers[key]

        result = checklist(mailbox.address, mailbox.smtp_host, lookup)
        found[mailbox.id] = None if result.findings[0].code == "dns_failed" else result
    return found


def kept_checklist(mailbox, now=None) -> Checklist | None:
    """One mailbox's checklist from the answers kept, or None."""
    return kept_checklists([mailbox], now)[mailbox.id]
