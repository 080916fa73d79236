"""The bilingual catalogue of problems, and classify() that turns an error into one of them."""
from __future__ import annotations

import fnmatch
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

LANGS = ("en", "ru")
UNKNOWN = "unknown"

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Match:
    """One way an entry can fit: every condition named here must hold."""

    kinds: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    smtp_codes: tuple[str, ...] = ()
    enhanced: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    def fits(self, symptom: "Symptom", stage: str, provider: str | None) -> bool:
        """Whether the symptom seen at ``stage`` fits this alternative."""
        if (self.kinds or symptom.kind) and symptom.kind not in self.kinds:
            return False  # the portal's own findings fit only by kind: their text is not the server's
        if self.stages and not any(fnmatch.fnmatchcase(stage, s) for s in self.stages):
            return False
        if self.commands and symptom.command not in self.commands:
            return False
        if self.smtp_codes and not (symptom.smtp_code and any(
                fnmatch.fnmatchcase(str(symptom.smtp_code), c) for c in self.smtp_codes)):
            return False
        if self.enhanced and symptom.enhanced not in self.enhanced:
            return False
        if self.patterns and not any(re.search(p, symptom.text, re.IGNORECASE) for p in self.patterns):
            return False
        if self.providers and provider not in self.providers:
            return False
        return True

    @property
    def specificity(self) -> tuple[bool, int]:
        """How narrow this alternative is: the server's own words first, then the number of conditions named.

        "553 5.7.1 ... not owned by auth user" after MAIL must be told by its words, not by a code that
        many different refusals share.
        """
        return bool(self.patterns), sum(1 for value in (self.kinds, self.stages, self.commands, self.smtp_codes,
                                                        self.enhanced, self.patterns, self.providers) if value)


@dataclass(frozen=True)
class CatalogueEntry:
    """A problem the catalogue knows: its code, words in each language and how to recognise it."""

    code: str
    title: dict[str, str]
    advice: dict[str, str]
    temporary: bool = False
    help: str | None = None  # "incoming" | "app_password": add the provider's page to the advice
    matches: tuple[Match, ...] = field(default=(), repr=False)


@lru_cache(maxsize=1)
def catalogue() -> tuple[CatalogueEntry, ...]:
    """Every catalogue entry in matching order (the help page lists them)."""
    data = tomllib.loads(resources.files(__package__).joinpath("problems.toml").read_text("utf-8"))
    entries = []
    for raw in data["problem"]:
        matches = tuple(Match(**{k: tuple(v) for k, v in m.items()}) for m in raw.get("match", ()))
        entries.append(CatalogueEntry(code=raw["code"], title=raw["title"], advice=raw["advice"],
                                      temporary=raw.get("temporary", False), help=raw.get("help"),
                                      matches=matches))
    return tuple(entries)


def catalogue_entry(code: str) -> CatalogueEntry:
    """The entry for a problem code (the "unknown" entry for a code the catalogue lacks)."""
    by_code = {entry.code: entry for entry in catalogue()}
    return by_code.get(code) or by_code[UNKNOWN]


@dataclass(frozen=True)
class Problem:
    """What went wrong, at which stage, with the server's own words."""

    code: str
    stage: str
    server_reply: str
    provider: str | None = None
    smtp_code: int | None = None
    at_fault: str = ""  # the setting to look at, "smtp.port" or "incoming.security" (see remedies.py)
    fix: str = ""  # a fix the form offers as a button (remedies.FIX_LABELS), with the settings it changes
    changes: dict[str, str] = field(default_factory=dict)

    @property
    def entry(self) -> CatalogueEntry:
        """The catalogue entry behind this problem."""
        return catalogue_entry(self.code)

    @property
    def temporary(self) -> bool:
        """Whether trying again later may help (4xx replies yes, 5xx no; otherwise the catalogue says)."""
        if self.smtp_code:
            return self.smtp_code // 100 == 4
        return self.entry.temporary

    def title(self, lang: str = "en") -> str:
        """A short plain-language cause."""
        return _pick(self.entry.title, lang)

    def advice(self, lang: str = "en") -> str:
        """What to do, with the provider's help page when one fits."""
        text = _pick(self.entry.advice, lang)
        url = self._help_url()
        if url:
            text += (" Инструкция: " if lang == "ru" else " Instructions: ") + url
        return text

    def to_dict(self, lang: str = "en") -> dict:
        """The problem as in the JSON output of a check."""
        return {"code": self.code, "title": self.title(lang), "advice": self.advice(lang),
                "server_reply": self.server_reply}

    def _help_url(self) -> str | None:
        if not (self.provider and self.entry.help):
            return None
        from .presets import get_preset  # presets does not need problems; deferred to keep imports one-way

        preset = get_preset(self.provider)
        if preset is None:
            return None
        if self.entry.help == "incoming":
            return preset.incoming_help_url or None
        return preset.app_password_help_url or None


def _pick(texts: dict[str, str], lang: str) -> str:
    return texts.get(lang) or texts["en"]


@dataclass(frozen=True)
class Symptom:
    """What an error says, boiled down to what the catalogue matches on."""

    kind: str | None = None
    command: str | None = None
    smtp_code: int | None = None
    enhanced: str | None = None
    text: str = ""


def classify(error: BaseException, *, stage: str, provider: str | None = None) -> Problem:
    """Turn an exception from connecting, signing in or sending into a catalogue Problem."""
    if hasattr(error, "problem") and isinstance(error.problem, Problem):
        return error.problem
    return _diagnose(symptom_of(error), stage, provider)


def classify_reply(smtp_code: int, text: str | bytes, *, stage: str, command: str | None = None,
                   provider: str | None = None) -> Problem:
    """Turn an SMTP reply (code and text) into a catalogue Problem."""
    return _diagnose(_reply_symptom(smtp_code, text, command), stage, provider)


def _diagnose(symptom: Symptom, stage: str, provider: str | None) -> Problem:
    code = UNKNOWN
    best = (False, 0)
    for entry in catalogue():  # the most specific fitting alternative wins; on a tie, the earlier entry
        for match in entry.matches:
            if match.specificity > best and match.fits(symptom, stage, provider):
                code, best = entry.code, match.specificity
    if symptom.kind:
        # The portal's own finding (no name, no route, a timeout, a refused TLS), not words of a server.
        reply = ""
    else:
        reply = symptom.text
    if symptom.smtp_code and not reply.startswith(str(symptom.smtp_code)):
        reply = f"{symptom.smtp_code} {reply}".strip()
    return Problem(code=code, stage=stage, server_reply=reply, provider=provider, smtp_code=symptom.smtp_code)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _reply_symptom(code: int, text: str | bytes, command: str | None) -> Symptom:
    words = " ".join(_text(text).split())
    found = _ENHANCED.search(words)
    return Symptom(command=command, smtp_code=int(code), enhanced=found.group(1) if found else None, text=words)


def _timed_out(error: BaseException) -> bool:
    seen = error
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__context__
    return False


def symptom_of(error: BaseException) -> Symptom:
    """Recognise what kind of failure an exception stands for."""
    text = (" ".join(_text(error.args[0] if len(error.args) == 1 else error).split()) if error.args
            else type(error).__name__)
    kind = getattr(error, "kind", None)
    if kind:
        return Symptom(kind=kind, text=text)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()))
        return _reply_symptom(code, reply, "RCPT")
    if isinstance(error, smtplib.SMTPResponseException):
        command = {smtplib.SMTPSenderRefused: "MAIL", smtplib.SMTPDataError: "DATA",
                   smtplib.SMTPAuthenticationError: "AUTH", smtplib.SMTPHeloError: "EHLO",
                   smtplib.SMTPConnectError: "CONNECT"}.get(type(error))
        return _reply_symptom(error.smtp_code, error.smtp_error, command)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return Symptom(kind="starttls_not_offered" if "STARTTLS" in text.upper() else "auth_not_offered", text=text)
    if isinstance(error, (poplib.error_proto, imaplib.IMAP4.error)) and re.search(
            r"(STLS|TLS) not supported", text, re.IGNORECASE):
        return Symptom(kind="starttls_not_offered", text=text)
    if isinstance(error, ssl.SSLCertVerificationError):
        mismatch = error.verify_code == 62 or "mismatch" in (error.verify_message or "").lower()
        return Symptom(kind="certificate_name_mismatch" if mismatch else "certificate_untrusted", text=text)
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return Symptom(kind="connection_dropped", text=text)
    if isinstance(error, ssl.SSLError):
        if re.search(r"WRONG_VERSION_NUMBER|wrong version number|packet length too long|record layer failure"
                     r"|http request|unknown protocol", text, re.IGNORECASE):
            return Symptom(kind="security_mode_mismatch", text=text)
        return Symptom(kind="tls_failed", text=text)
    if _timed_out(error) or "timed out" in text:
        return Symptom(kind="timeout", text=text)
    if isinstance(error, socket.gaierror):
        return Symptom(kind="host_not_found", text=text)
    if isinstance(error, ConnectionRefusedError):
        return Symptom(kind="connection_refused", text=text)
    if isinstance(error, (smtplib.SMTPServerDisconnected, ConnectionResetError, ConnectionAbortedError,
                          BrokenPipeError, EOFError, imaplib.IMAP4.abort)):
        return Symptom(kind="connection_dropped", text=text)
    if isinstance(error, OSError) and error.errno is not None:
        return Symptom(kind="host_unreachable", text=text)
    return Symptom(text=text)
