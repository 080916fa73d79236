"""Fetching replies: only what is new (POP3 by remembered UIDL, IMAP by UID and UIDVALIDITY), mail left on the server.

A message is a reply when its In-Reply-To or References names the Message-ID of one of our
letters; only then is its body downloaded. Everything else is remembered as seen and never
looked at again. A failure is recorded on the mailbox's MailboxInbox row with the catalogue's
problem, and cleared by the next good fetch. No Flask here.
"""
from __future__ import annotations

import datetime
import hashlib
import imaplib
import json
import poplib
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from peewee import fn

from portal import events
from portal.db import database
from portal.letters.bounces import looks_like_bounce, read_bounce, record_bounce
from portal.mail.connection import open_incoming
from portal.mail.errors import MailError
from portal.mail.problems import Problem, classify
from portal.mail.settings import MailConfig
from portal.models import Letter, Mailbox, MailboxInbox, Reply, SeenMessage, utcnow
from portal.oauth import grants

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_HEADER_FIELDS = "MESSAGE-ID IN-REPLY-TO REFERENCES CONTENT-TYPE FROM SUBJECT"
IMAP_CHUNK = 500
BODY_MAX = 200_000


@dataclass
class FetchReport:
    """What one fetch from one mailbox did."""

    mailbox_id: int
    address: str
    new_messages: int = 0
    bodies_downloaded: int = 0
    replies: list = field(default_factory=list)  # Reply ids stored
    bounces: list = field(default_factory=list)  # ids of the letters bounces came back for
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def thread_ids(headers) -> tuple[list[str], list[str]]:
    """The Message-IDs a message answers: (In-Reply-To ids, References ids)."""
    in_reply_to = _MESSAGE_ID.findall(str(headers.get("In-Reply-To") or ""))
    references = _MESSAGE_ID.findall(str(headers.get("References") or ""))
    return in_reply_to, references


def match_letters(candidates: dict, mailbox_id: int) -> dict:
    """For {key: (in_reply_to ids, references ids)}: {key: Letter id} for those naming one of our letters
    sent from this mailbox (mail arriving in one inbox never attaches to a letter that left from another)."""
    wanted = {i for pair in candidates.values() for ids in pair for i in ids}
    if not wanted:
        return {}
    known = {}
    wanted = sorted(wanted)
    for start in range(0, len(wanted), 500):
        for letter_id, message_id in Letter.select(Letter.id, Letter.message_id).where(
                Letter.message_id.in_(wanted[start:start + 500]) & (Letter.mailbox == mailbox_id)).tuples():
            known[message_id] = letter_id
    matched = {}
    for key, (in_reply_to, references) in candidates.items():
        # The message it answers directly first, then the newest of the thread it belongs to.
        for message_id in in_reply_to + list(reversed(references)):
            if message_id in known:
                matched[key] = known[message_id]
                break
    return matched


def store_reply(letter_id: int, mailbox: Mailbox, raw: bytes) -> Reply | None:
    """Store a fetched reply (sender, subject, date, text, attachments by name and size); None if already stored."""
    message = BytesParser(policy=email_policy.default).parsebytes(raw)
    message_id = (_MESSAGE_ID.findall(str(message.get("Message-ID") or "")) or
                  [f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@portal.invalid>"])[0]
    if Reply.select().where((Reply.letter == letter_id) & (Reply.message_id == message_id)).exists():
        return None
    _, references = thread_ids(message)
    with database.atomic():
        reply = Reply.create(
            letter=letter_id, mailbox=mailbox.id, message_id=message_id[:1020],
            sender=_one_line(message.get("From"))[:510], subject=_one_line(message.get("Subject"))[:1020],
            date=_date(message.get("Date")), body_text=_text_body(message)[:BODY_MAX],
            attachments_json=json.dumps(_attachments(message), ensure_ascii=False),
            references=" ".join(references)[:4000],
        )
        Letter.update(reply_count=Reply.select(fn.COUNT(Reply.id)).where(Reply.letter == letter_id)).where(
            Letter.id == letter_id).execute()
    events.reply_received.send(reply)
    return reply


def _one_line(value) -> str:
    try:
        text = str(value or "")
    except Exception:  # a header too broken to decode
        text = ""
    return " ".join(text.split())


def _date(value) -> datetime.datetime | None:
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


def _text_body(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        content = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", content)
        content = re.sub(r"(?i)<br\s*/?>|</p>", "\n", content)
        import html

        content = html.unescape(re.sub(r"<[^>]+>", "", content))
    return content.replace("\r\n", "\n").strip()


def _attachments(message) -> list:
    found = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        found.append({"name": part.get_filename() or "", "size": len(payload),
                      "type": part.get_content_type()})
    return found


def _source(settings) -> str:
    incoming = settings.incoming
    server = incoming.server
    return f"{incoming.protocol}:{server.host}:{server.port}:{server.username}"


def fetch_mailbox(mailbox: Mailbox, mail_config: MailConfig, *, settings: Any = None) -> FetchReport:
    """Fetch what is new in one mailbox and store the replies; a failure is recorded on the mailbox, not raised."""
    report = FetchReport(mailbox.id, mailbox.address)
    inbox = MailboxInbox.get_or_none(MailboxInbox.mailbox == mailbox.id)
    if inbox is None:
        inbox, _ = MailboxInbox.get_or_create(mailbox=mailbox.id)
    now = utcnow()
    try:
        settings = settings or grants.settings_for(mailbox)
    except (grants.NeedsReconnecting, grants.TokenUnavailable) as error:  # signing in with the provider
        settings = None
        code = grants.NEEDS_RECONNECT if isinstance(error, grants.NeedsReconnecting) else grants.TOKEN_UNAVAILABLE
        report.problem = Problem(code=code, stage="incoming", server_reply="")
    except Exception as error:  # a secret that no configured key opens any more
        settings = None
        report.problem = Problem(code="settings_unreadable", stage="incoming", server_reply=type(error).__name__)
    try:
        if settings is None:
            raise _Skip()
        source = _source(settings)
        if inbox.source != source:
            # Other server or login: remembered ids mean nothing there.
            SeenMessage.delete().where(SeenMessage.mailbox == mailbox.id).execute()
            inbox.source, inbox.uidvalidity, inbox.last_uid = source, None, 0
        try:
            _fetch(settings, mail_config, mailbox, inbox, report)
        except MailError as error:
            settings = _after_token_refused(mailbox, settings, error.problem, report)
            if settings is None:
                raise
            _fetch(settings, mail_config, mailbox, inbox, report)  # once, with the token just refreshed
    except MailError as error:
        report.problem = error.problem
    except _Skip:
        pass
    inbox.last_fetch_at = now
    if report.problem is None:
        inbox.last_success_at = now
        inbox.problem_code = inbox.problem_stage = inbox.server_reply = ""
        inbox.failed_at = None
    else:
        inbox.problem_code = report.problem.code
        inbox.problem_stage = report.problem.stage
        inbox.server_reply = report.problem.server_reply
        inbox.failed_at = now
    MailboxInbox.update(**{name: getattr(inbox, name) for name in _INBOX_STATE}).where(
        MailboxInbox.id == inbox.id).execute()
    return report


def _fetch(settings, mail_config: MailConfig, mailbox: Mailbox, inbox: MailboxInbox, report: FetchReport) -> None:
    protocol = settings.incoming.protocol
    with open_incoming(settings, mail_config) as client:
        try:
            if protocol == "pop3":
                _fetch_pop3(client, mailbox, report)
            else:
                _fetch_imap(client, mailbox, inbox, report)
        except (OSError, EOFError, poplib.error_proto, imaplib.IMAP4.error) as error:
            raise MailError(classify(error, stage=f"{protocol}.mailbox")) from error


def _after_token_refused(mailbox: Mailbox, settings, problem: Problem, report: FetchReport):
    """The server refused the sign-in of a mailbox that signs in with its provider: the provider may have ended
    the token early, so refresh it once (as the queue does) and return the settings to sign in with again; None
    when the refusal was not a token's. A grant refused for good needs reconnecting: raises _Skip with that
    problem in the report (so does a provider that cannot give a token just now)."""
    if problem.stage != f"{settings.incoming.protocol}.login" or not settings.incoming.server.sasl:
        return None
    try:
        grants.token_refused(mailbox, settings)
    except (grants.NeedsReconnecting, grants.TokenUnavailable) as error:
        code = grants.NEEDS_RECONNECT if isinstance(error, grants.NeedsReconnecting) else grants.TOKEN_UNAVAILABLE
        report.problem = Problem(code=code, stage="incoming", server_reply=problem.server_reply)
        raise _Skip() from None
    return mailbox.to_settings()


# What a fetch changes on the mailbox's MailboxInbox row (one prepared UPDATE instead of save()).
_INBOX_STATE = ("source", "uidvalidity", "last_uid", "last_fetch_at", "last_success_at", "problem_code",
                "problem_stage", "server_reply", "failed_at")


class _Skip(Exception):
    """Nothing to fetch with: the problem is already in the report."""


def _fetch_pop3(client: poplib.POP3, mailbox: Mailbox, report: FetchReport) -> None:
    _, lines, _ = client.uidl()
    # Thousands of ids on every pass, and usually none new: the listing split in one go, the seen ids
    # read as one string the database joins, and a set difference before any entry is looked at.
    words = b" ".join(lines).decode("ascii", "replace").split()  # "number uid": no spaces in a UIDL (RFC 1939)
    if len(words) == 2 * len(lines):
        listing = list(zip(words[0::2], words[1::2]))
    else:  # a malformed line somewhere: take the lines one by one
        listing = [tuple(parts[:2]) for parts in (line.decode("ascii", "replace").split() for line in lines)
                   if len(parts) >= 2]
    seen = _seen_uids(mailbox.id)
    unseen = {uid for _, uid in listing} - seen
    new = [(int(number), uid) for number, uid in listing if uid in unseen]
    report.new_messages = len(new)
    if not new:
        return
    headers, bounces = {}, []
    for number, uid in new:
        _, top, _ = client.top(number, 0)  # headers only: no body is downloaded to decide
        parsed = BytesHeaderParser(policy=email_policy.default).parsebytes(b"\r\n".join(top))
        if looks_like_bounce(parsed):
            bounces.append(number)
        else:
            headers[number] = thread_ids(parsed)

    def download(number):
        _, body, _ = client.retr(number)
        report.bodies_downloaded += 1
        return b"\r\n".join(body) + b"\r\n"

    _take(report, mailbox, headers, bounces, download)
    rows = [{"mailbox": mailbox.id, "uid": uid[:128]} for _, uid in new]
    with database.atomic():
        for start in range(0, len(rows), 400):
            SeenMessage.insert_many(rows[start:start + 400]).on_conflict_ignore().execute()


def _seen_uids(mailbox_id: int) -> set:
    """The POP3 UIDLs already looked at in this mailbox."""
    return {uid for (uid,) in SeenMessage.select(SeenMessage.uid).where(SeenMessage.mailbox == mailbox_id).tuples()}


def _fetch_imap(client: imaplib.IMAP4, mailbox: Mailbox, inbox: MailboxInbox, report: FetchReport) -> None:
    typ, data = client.select("INBOX", readonly=True)  # read-only: flags such as \Seen stay as they are
    if typ != "OK":
        raise imaplib.IMAP4.error(_decode(data))
    _, validity = client.response("UIDVALIDITY")
    uidvalidity = int(validity[0]) if validity and validity[0] else None
    if uidvalidity != inbox.uidvalidity:
        inbox.uidvalidity, inbox.last_uid = uidvalidity, 0
    typ, data = client.uid("SEARCH", None, f"UID {inbox.last_uid + 1}:*")
    if typ != "OK":
        raise imaplib.IMAP4.error(_decode(data))
    # "n:*" always names the newest message, even one we have seen: keep only higher UIDs.
    uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) > inbox.last_uid)
    report.new_messages = len(uids)
    if not uids:
        return
    headers, bounces = {}, []
    for start in range(0, len(uids), IMAP_CHUNK):
        chunk = ",".join(str(u) for u in uids[start:start + IMAP_CHUNK])
        typ, data = client.uid("FETCH", chunk, f"(UID BODY.PEEK[HEADER.FIELDS ({_HEADER_FIELDS})])")
        if typ != "OK":
            raise imaplib.IMAP4.error(_decode(data))
        for item in data:
            if isinstance(item, tuple):
                found = re.search(rb"UID (\d+)", item[0])
                if found:
                    parsed = BytesHeaderParser(policy=email_policy.default).parsebytes(item[1])
                    if looks_like_bounce(parsed):
                        bounces.append(int(found.group(1)))
                    else:
                        headers[int(found.group(1))] = thread_ids(parsed)

    def download(uid):
        typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        raw = next((item[1] for item in data if isinstance(item, tuple)), None)
        if typ != "OK" or raw is None:
            return None
        report.bodies_downloaded += 1
        return raw

    _take(report, mailbox, headers, bounces, download)
    inbox.last_uid = uids[-1]


def _take(report: FetchReport, mailbox: Mailbox, headers: dict, bounces: list, download) -> None:
    """Download and store the replies to our letters among ``headers``, and read every bounce."""
    for key, letter_id in match_letters(headers, mailbox.id).items():
        raw = download(key)
        reply = store_reply(letter_id, mailbox, raw) if raw is not None else None
        if reply is not None:
            report.replies.append(reply.id)
    for key in bounces:
        raw = download(key)
        bounce = read_bounce(raw) if raw is not None else None
        letter_id = record_bounce(bounce, mailbox.id) if bounce is not None else None
        if letter_id is not None:
            report.bounces.append(letter_id)


def _decode(data) -> str:
    return " ".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part) for part in data or ())


def mailboxes_receiving_replies(mailbox_id: int | None = None):
    """Active mailboxes with Receive replies switched on and an incoming server."""
    query = Mailbox.select().where((Mailbox.receive_replies == True)  # noqa: E712
                                   & Mailbox.incoming_protocol.is_null(False)
                                   & (Mailbox.active == True))  # noqa: E712
    if mailbox_id is not None:
        query = query.where(Mailbox.id == mailbox_id)
    return query


def fetch_replies(mail_config: MailConfig, *, mailbox_id: int | None = None,
                  settings_for: Callable[[Mailbox], Any] | None = None) -> list[FetchReport]:
    """One pass over every mailbox that receives replies; returns a report per mailbox."""
    reports = []
    with database.connection_context():
        for mailbox in list(mailboxes_receiving_replies(mailbox_id)):
            settings = settings_for(mailbox) if settings_for else None
            reports.append(fetch_mailbox(mailbox, mail_config, settings=settings))
    return reports


def fetch_problem(mailbox: Mailbox) -> MailboxInbox | None:
    """The mailbox's reply-fetch state when its last fetch failed (for its owner to see), else None."""
    inbox = MailboxInbox.get_or_none(MailboxInbox.mailbox == mailbox.id)
    return inbox if inbox is not None and inbox.problem_code else None
