"""Bounces: a delivery status notification (RFC 3464 ``multipart/report; report-type=delivery-status``) or a
common non-standard bounce that quotes the original headers, read for the letter it returns (by the original
Message-ID) and the recipients it names, and recorded on them as "bounced" with the reported status and
diagnostic text. The reply fetcher hands over what it finds in the sending mailbox. No Flask here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy as email_policy
from email.parser import BytesParser, Parser

from peewee import fn

from portal import events
from portal.db import writing
from portal.models import Letter, LetterRecipient

BOUNCED = "bounced"  # a recipient's status, and the problem code that explains it
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(r"undeliver|delivery status notification|delivery failure|mail delivery failed|"
                             r"returned mail|failure notice|недоставлен|не доставлен", re.IGNORECASE)
# Where a non-standard bounce starts quoting the original message: a header line of it.
_QUOTED_HEADERS = re.compile(r"^(Return-path|Received|Message-ID|From|To|Subject|Date|MIME-Version):", re.IGNORECASE
                             | re.MULTILINE)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w.-]+\.\w+", re.UNICODE)


@dataclass(frozen=True)
class BouncedRecipient:
    address: str
    status: str  # the enhanced status code, e.g. "5.1.1" ("" when the bounce gives none)
    diagnostic: str  # the receiving server's words


@dataclass(frozen=True)
class Bounce:
    """What a bounce says: the Message-ID of the letter it returns, and each recipient it failed for."""

    message_id: str
    recipients: tuple  # BouncedRecipient; empty: match the letter's recipients named in ``text``
    text: str = ""  # a non-standard bounce's explanation, before the quoted original


def looks_like_bounce(headers) -> bool:
    """Whether a message's headers say it is a bounce: a delivery-status report, or sent by a mailer daemon
    with a bounce's subject."""
    content_type = str(headers.get("Content-Type") or "").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return True
    return bool(_BOUNCE_SENDER.search(str(headers.get("From") or ""))
                and _BOUNCE_SUBJECT.search(str(headers.get("Subject") or "")))


def read_bounce(raw: bytes) -> Bounce | None:
    """The bounce in these bytes, or None when they return no letter we can name."""
    message = BytesParser(policy=email_policy.default).parsebytes(raw)
    if message.get_content_type() == "multipart/report" and \
            str(message.get_param("report-type") or "").lower() == "delivery-status":
        return _read_report(message)
    return _read_plain(message)


def _read_report(message) -> Bounce | None:
    recipients, original_id = [], ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in part.get_payload()[1:]:  # the per-message block first, then one per recipient
                if str(block.get("Action") or "").strip().lower() != "failed":
                    continue  # "delayed", "delivered", "relayed": not a bounce
                address = _after_type(block.get("Final-Recipient") or block.get("Original-Recipient"))
                if address:
                    recipients.append(BouncedRecipient(address.lower(), str(block.get("Status") or "").strip(),
                                                       _after_type(block.get("Diagnostic-Code"))))
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers") and not original_id:
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) else Parser().parsestr(str(payload), headersonly=True)
            found = _MESSAGE_ID.findall(str(original.get("Message-ID") or ""))
            original_id = found[0] if found else ""
    if not original_id or not recipients:
        return None
    return Bounce(original_id, tuple(recipients))


def _read_plain(message) -> Bounce | None:
    text = "\n".join(_texts(message))
    quoted = _QUOTED_HEADERS.search(text)
    explanation, original = (text[:quoted.start()], text[quoted.start():]) if quoted else (text, "")
    found = re.search(r"^Message-ID:\s*(<[^<>\s]+>)", original, re.IGNORECASE | re.MULTILINE)
    if not found:
        return None
    return Bounce(found.group(1), (), explanation)


def _texts(message):
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            try:
                yield part.get_content()
            except (LookupError, ValueError):
                yield (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        elif part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            yield str(payload[0] if isinstance(payload, list) else payload)


def _after_type(value) -> str:
    """"rfc822; a@example.com" -> "a@example.com"; "smtp; 550 5.1.1 ..." -> "550 5.1.1 ..." (one line)."""
    text = " ".join(str(value or "").split())
    return text.split(";", 1)[1].strip() if ";" in text else text


def _named_in(text: str, address: str) -> BouncedRecipient | None:
    """The recipient as a non-standard bounce names it: the lines from its address to the next blank line."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if address in (found.lower() for found in _ADDRESS.findall(line)):
            said = []
            for following in lines[index:index + 6]:
                if not following.strip() and said:
                    break
                said.append(following.strip())
            diagnostic = " ".join(" ".join(said).split())
            status = _ENHANCED.search(diagnostic)
            return BouncedRecipient(address, status.group(1) if status else "", diagnostic)
    return None


def record_bounce(bounce: Bounce, mailbox_id: int) -> int | None:
    """Mark the recipients the bounce names as "bounced" on the letter it returns (sent from this mailbox);
    returns the letter's id, or None when no letter of ours matches."""
    letter = Letter.get_or_none((Letter.message_id == bounce.message_id) & (Letter.mailbox == mailbox_id))
    if letter is None:
        return None
    rows = {r.address.lower(): r for r in LetterRecipient.select().where(LetterRecipient.letter == letter.id)}
    named = [r for r in bounce.recipients if r.address in rows] if bounce.recipients else \
        [found for found in (_named_in(bounce.text, address) for address in rows) if found is not None]
    if not named:
        return None
    with writing():
        for recipient in named:
            LetterRecipient.update(status=BOUNCED, problem_code=BOUNCED, smtp_code=None,
                                   server_reply=" ".join(filter(None, (recipient.status, recipient.diagnostic)))[:2000]
                                   ).where(LetterRecipient.id == rows[recipient.address].id).execute()
        Letter.update(bounced=LetterRecipient.select(fn.COUNT(LetterRecipient.id)).where(
            (LetterRecipient.letter == letter.id) & (LetterRecipient.status == BOUNCED))).where(
            Letter.id == letter.id).execute()
    events.letter_bounced.send(letter, recipients=[recipient.address for recipient in named])
    return letter.id
