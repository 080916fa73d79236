"""What a failed account test points at: the setting at fault, and a fix the form can apply in one click.

A setting is named as ``side.name``: side "smtp" or "incoming", name "host", "port", "security", "username",
"password" or "address" (the mailbox's own address, side "smtp").
"""
from __future__ import annotations

from dataclasses import replace

from .problems import Problem
from .settings import MailboxSettings, ServerSettings

# The setting each stage leans on, when the problem itself does not say better.
_STAGE_SETTING = {"resolve": "host", "connect": "port", "greeting": "port", "tls": "security", "login": "password",
                  "mailbox": "username", "envelope": "address", "test_letter": "address", "round_trip": ""}
_PROBLEM_SETTING = {
    "security_mode_mismatch": "security", "choose_starttls": "security", "encryption_required": "security",
    "plaintext_auth_refused": "security", "starttls_not_offered": "security", "auth_not_offered": "port",
    "relay_denied": "port", "auth_required": "username", "host_not_resolved_here": "",
}
# The submission ports (RFC 8314 and RFC 6409) a letter should leave by, with the security each expects.
SUBMISSION_PORT = 587
MX_PORT = 25

FIX_LABELS: dict[str, dict[str, str]] = {
    "use_ssl": {"en": "Use SSL on this port and test again", "ru": "Включить SSL на этом порту и проверить снова"},
    "use_starttls": {"en": "Use STARTTLS on this port and test again",
                     "ru": "Включить STARTTLS на этом порту и проверить снова"},
    "use_submission_port": {"en": "Use port 587 with STARTTLS and test again",
                            "ru": "Использовать порт 587 со STARTTLS и проверить снова"},
    "whole_address_login": {"en": "Sign in with the whole address and test again",
                            "ru": "Войти с адресом целиком и проверить снова"},
}


def fix_label(code: str, lang: str = "en") -> str:
    """The words of a fix's button in "ru" or "en"."""
    labels = FIX_LABELS[code]
    return labels.get(lang) or labels["en"]


def with_remedy(problem: Problem, settings: MailboxSettings) -> Problem:
    """The problem with the setting at fault and, when the cause is fixable, the fix (changes to the settings)."""
    side = "incoming" if problem.stage.split(".")[0] in ("pop3", "imap") else "smtp"
    server = settings.incoming.server if side == "incoming" and settings.incoming else settings.smtp
    fix, changes = _fix(problem, side, server, settings.address)
    if fix == "whole_address_login" and settings.incoming is not None:
        # The other side signs in with the same short login: fix both at once, not one test after another.
        for other, other_server in (("smtp", settings.smtp), ("incoming", settings.incoming.server)):
            if other != side and other_server.username == server.username:
                changes[f"{other}.username"] = settings.address
    name = _PROBLEM_SETTING.get(problem.code, _STAGE_SETTING.get(problem.stage.partition(".")[2], ""))
    if changes:
        name = next(iter(changes)).partition(".")[2]
    at_fault = ("smtp.address" if name == "address" else f"{side}.{name}") if name else ""
    return replace(problem, at_fault=at_fault, fix=fix, changes=changes)


def _fix(problem: Problem, side: str, server: ServerSettings, address: str) -> tuple[str, dict[str, str]]:
    code = problem.code
    if (side == "smtp" and server.port == MX_PORT
            and code in ("auth_not_offered", "relay_denied", "auth_required", "choose_starttls")):
        return "use_submission_port", {"smtp.port": str(SUBMISSION_PORT), "smtp.security": "starttls"}
    if code == "security_mode_mismatch":
        # The port answered as a mail server of the other kind: keep the port, take its security.
        return ("use_starttls", {f"{side}.security": "starttls"}) if server.security == "ssl" else (
            "use_ssl", {f"{side}.security": "ssl"})
    if code in ("choose_starttls", "encryption_required") and server.security == "none":
        return "use_starttls", {f"{side}.security": "starttls"}
    if (code in ("auth_failed", "incoming_auth_failed") and server.username and "@" not in server.username
            and server.username.lower() != address.lower()):
        return "whole_address_login", {f"{side}.username": address}
    return "", {}


def _apply(server: ServerSettings, changes: dict[str, str], side: str) -> ServerSettings:
    values = {key.partition(".")[2]: value for key, value in changes.items() if key.startswith(f"{side}.")}
    if "port" in values:
        values["port"] = int(values["port"])
    return replace(server, **values)


def apply_fix(settings: MailboxSettings, changes: dict[str, str]) -> MailboxSettings:
    """The settings with a fix's changes made (what the form does when its button is pressed)."""
    fixed = replace(settings, smtp=_apply(settings.smtp, changes, "smtp"))
    if settings.incoming is not None:
        fixed = replace(fixed, incoming=replace(settings.incoming,
                                                server=_apply(settings.incoming.server, changes, "incoming")))
    return fixed
