"""The portal's own words in a test stage's detail ("TLSv1.3, verified certificate, SHA-256 …"): written in
English where the stage happens (and so stored and logged), shown in the reader's language through the
catalogues. A server's own words (a greeting, a reply) match no line here and are shown as they came."""
from __future__ import annotations

import re

from portal.words import N_, translate

# One line per kind of detail; the stage writes it with detail(), a page reads it back with detail_in().
DETAILS = {
    "tls.verified": N_("{version}, verified certificate, SHA-256 {fingerprint}"),
    "tls.pinned": N_("{version}, pinned certificate, SHA-256 {fingerprint}"),
    "tls.untrusted": N_("certificate not trusted; SHA-256 {fingerprint}"),
    "tls.not_the_pinned": N_("certificate is not the trusted one; SHA-256 {fingerprint}"),
    "login.skipped": N_("no login configured: signing in skipped"),
    "pop3.mailbox": N_("{count} messages, {size} bytes"),
    "imap.mailbox": N_("{count} messages in INBOX"),
    "round_trip": N_("arrived {seconds} s after sending (code {code})"),
    "deadline": N_("the server did not finish answering within {seconds} s"),
}


def detail(key: str, **values: object) -> str:
    """A stage's detail in English, as it is stored."""
    return DETAILS[key].format(**values)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # text, name, text, name, …, text
    return re.compile("".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)))


_PATTERNS = tuple((template, _pattern(template)) for template in DETAILS.values())


def detail_in(text: str, lang: str) -> str:
    """A stored detail in ``lang``: the portal's own words translated (a decimal comma in Russian), anything else
    (a server's greeting or reply) unchanged."""
    for template, pattern in _PATTERNS:
        found = pattern.fullmatch(text or "")
        if found:
            values = found.groupdict()
            if lang == "ru" and "seconds" in values:
                values["seconds"] = values["seconds"].replace(".", ",")
            return translate(template, lang).format(**values)
    return text
