"""Writing a letter: checked addresses and headers, a safe HTML part, and a stored queue row."""
import base64
import datetime
import email.policy
import html
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from peewee import IntegrityError

from portal.db import writing
from portal.fields import CONTROL_CHARACTERS
from portal.models import Contact, Letter, LetterRecipient, normalize_email, utcnow
from portal.models.people import FIELD_MAX

SUBJECT_MAX = 900
BODY_MAX = 200_000
RECIPIENTS_MAX = 100
_URL = re.compile(r"\bhttps?://[^\s<>\"']*[^\s<>\"'.,;:!?)]")


class LetterError(ValueError):
    """A letter that cannot be queued; `field` names the form field at fault."""

    def __init__(self, field, message):
        super().__init__(str(message))
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Recipient:
    """One checked address of a letter, with the name shown beside it."""

    address: str
    name: str = ""
    kind: str = "to"

    def shown(self):
        """The address as people read it: `Name <address>`."""
        address = readable_address(self.address)
        if not self.name:
            return address
        if any(char in self.name for char in ',;"<>'):  # quoted, so the list still reads (and parses) as one entry
            return '"' + self.name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
        return f"{self.name} <{address}>"


def refuse_control_characters(field, value):
    """Refuse line breaks, NUL, other control characters and Unicode line separators: no header injection."""
    if value and CONTROL_CHARACTERS.search(value):
        raise LetterError(field, _l("Use a single line without line breaks or control characters."))


def clean_address(field, address, shown=None):
    """A syntactically valid e-mail address in stored form (an international domain as IDNA "xn--" ASCII, as
    headers and the SMTP envelope carry it), or LetterError naming ``field`` and quoting ``shown`` (what the
    person typed; the address itself by default)."""
    refuse_control_characters(field, address)
    shown = address if shown is None else shown
    try:
        return _valid_address((address or "").strip())
    except EmailNotValidError:
        raise LetterError(field, _l("“%(address)s” is not a valid e-mail address.", address=shown)) from None
    except _NonAsciiLocalPart:
        raise LetterError(field, _l("“%(address)s” has letters other than Latin before the @, which most mail "
                                    "servers cannot take. Ask the recipient for an address in Latin letters.",
                                    address=shown)) from None


class _NonAsciiLocalPart(ValueError):
    """An address whose local part is not ASCII: it would need SMTPUTF8, which the portal does not send."""


@lru_cache(maxsize=4096)
def _valid_address(address):
    # Remembered: the same mailbox and contacts come back letter after letter, and the syntax check
    # (IDNA, Unicode tables) costs more than storing the letter. Only valid answers are kept.
    valid = validate_email(address, check_deliverability=False)
    if valid.ascii_email is None:
        raise _NonAsciiLocalPart(address)
    return normalize_email(valid.ascii_email)


def readable_address(address):
    """An address as people read it: an IDNA ("xn--") domain shown in its own letters."""
    local, _, domain = address.rpartition("@")
    if "xn--" not in domain:
        return address
    try:
        return f"{local}@{domain.encode('ascii').decode('idna')}"
    except UnicodeError:
        return address


# A field whose every , and ; separates: no quotes, comments or escapes, and only whole <…> without either inside.
_PLAIN_FIELD = re.compile(r'[^"(\\<>]*(?:<[^"(\\<>,;]*>[^"(\\<>]*)*')


def _address_entries(text):
    """The entries of a To or Cc field, split at commas and semicolons outside quotes, <…> and (…)."""
    if _PLAIN_FIELD.fullmatch(text):
        return [entry.strip() for entry in re.split(r"[,;]", text) if entry.strip()]
    return _split_by_character(text)


def _split_by_character(text):
    """_address_entries the long way: every character read in turn, quotes, <…>, (…) and escapes followed."""
    entries, current, quoted, escaped, angle, comment = [], [], False, False, 0, 0
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment):
            escaped = True
        elif char == '"' and not comment:
            quoted = not quoted
        elif not quoted and char == "(":
            comment += 1
        elif not quoted and char == ")" and comment:
            comment -= 1
        elif not quoted and not comment and char == "<":
            angle += 1
        elif not quoted and not comment and char == ">" and angle:
            angle -= 1
        elif char in ",;" and not (quoted or comment or angle):
            entries.append("".join(current))
            current = []
            continue
        current.append(char)
    entries.append("".join(current))
    return [entry.strip() for entry in entries if entry.strip()]


# The forms nearly every entry takes, `Name <address>` and a bare address, read without the header parser:
# a name of words (letters, digits, dots, hyphens, apostrophes) separated by single spaces, an address
# without quotes or brackets. No two parts of the pattern can match the same characters, so it runs in
# linear time on any input (a lazy name followed by \s* took quadratic time on a long run of spaces).
_ATOMS = r"[^<>\s\"(),;:\\@\[\]]+"
_SIMPLE_ENTRY = re.compile(rf"(?:((?:[\w'.-]+(?: +[\w'.-]+)*)?)\s*<({_ATOMS}@{_ATOMS})>|({_ATOMS}@{_ATOMS}))")
_SIMPLE_ENTRY_MAX = 512  # longer entries are rare enough for the header parser


def _entry_addresses(entry):
    """The (name, address) pairs in one To/Cc entry, as email.utils.getaddresses reads them."""
    simple = _SIMPLE_ENTRY.fullmatch(entry) if len(entry) <= _SIMPLE_ENTRY_MAX else None
    if simple:
        name, bracketed, bare = simple.groups()
        return [(name or "", bracketed or bare)]
    return [(name, address) for name, address in getaddresses([entry]) if address]


def _recipient(entry, kind):
    """One entry of a To or Cc field as a checked Recipient, or LetterError quoting the entry as typed."""
    # One address per entry, read as getaddresses reads a header (a comma inside quotes is part of the name).
    pairs = _entry_addresses(entry)
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise LetterError(kind, _l("“%(address)s” is not a valid e-mail address.", address=entry))
    name, address = pairs[0]
    address = clean_address(kind, address, shown=entry)
    name = " ".join((name or "").split())
    refuse_control_characters(kind, name)
    if len(name) > FIELD_MAX:
        raise LetterError(kind, _l("At most %(max)d characters.", max=FIELD_MAX))
    return Recipient(address, name, kind)


def parse_recipients(text, kind="to"):
    """The addresses in a To or Cc field: `a@b.com, "Doe, John" <c@d.com>; …`, checked, without repeats."""
    refuse_control_characters(kind, text)
    found, seen = [], set()
    for entry in _address_entries(text or ""):
        recipient = _recipient(entry, kind)
        if recipient.address not in seen:
            seen.add(recipient.address)
            found.append(recipient)
    return found


def recipient_problems(text, kind="to"):
    """Every problem of a To or Cc field, one message per bad entry (parse_recipients stops at the first), so a
    form can name every bad address at once."""
    try:
        refuse_control_characters(kind, text)
    except LetterError as error:
        return [error.message]
    problems = []
    for entry in _address_entries(text or ""):
        try:
            _recipient(entry, kind)
        except LetterError as error:
            problems.append(error.message)
    return problems


def html_from_text(body):
    """The HTML part for a plain-text body: everything escaped, paragraphs and line breaks kept, links made
    clickable."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", body.replace("\r\n", "\n").strip()):
        pieces, last = [], 0
        for link in _URL.finditer(block):
            url = html.escape(link.group(0), quote=True)
            pieces += [html.escape(block[last:link.start()], quote=True), f'<a href="{url}">{url}</a>']
            last = link.end()
        pieces.append(html.escape(block[last:], quote=True))
        paragraphs.append("<p>" + "".join(pieces).replace("\n", "<br>\n") + "</p>")
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"></head>\n<body>\n'
        + "\n".join(paragraphs)
        + "\n</body></html>\n"
    )


def new_message_id(domain):
    """A Message-ID fixed when the letter is made and reused on every attempt."""
    return f"<{secrets.token_hex(16)}@{domain or 'portal.invalid'}>"


# What the letter is written with: EmailMessage and the SMTP policy build the MIME structure and the bodies.
# The headers a person writes (subject, names) and the thread ids are written here and stored raw, because
# Python's folding, checked on the bytes it sends, drops the space where it splits a subject between two
# encoded words, writes encoded words of 76 and 77 characters (RFC 2047 allows 75), and turns a Message-ID
# longer than a line into encoded words, which breaks threading. ``check_header_lines`` checks the result.
MESSAGE_POLICY = email.policy.SMTP.clone(refold_source="none")
LINE = 78  # RFC 5322's recommended line length
LINE_MAX = 998  # RFC 5322: no line of a message may be longer, whatever a header holds
ENCODED_WORD_MAX = 75  # RFC 2047
_WORD_BYTES = 42  # UTF-8 bytes per encoded word: "=?utf-8?b?" + 56 base64 + "?=" is 68, so "Subject: " fits
_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_HEADER_FIELDS = {"subject": "subject", "to": "to", "cc": "cc", "in-reply-to": "in_reply_to",
                  "references": "in_reply_to", "from": "mailbox", "reply-to": "mailbox"}


def encoded_words(text):
    """The text as RFC 2047 encoded words (UTF-8, base64), each of whole characters and 68 characters at most;
    a reader joins adjacent words without the folding space between them, so every space is inside a word."""
    chunks, chunk = [], b""
    for char in text:
        data = char.encode("utf-8")
        if chunk and len(chunk) + len(data) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += data
    if chunk:
        chunks.append(chunk)
    return ["=?utf-8?b?" + base64.b64encode(part).decode("ascii") + "?=" for part in chunks]


def _folded_text(name, text):
    """A header of free text (a subject): plain ASCII folded at its spaces (unfolding gives it back exactly),
    anything else as encoded words."""
    if not text.isascii() or "=?" in text:
        return "\r\n ".join(encoded_words(text))
    lines, line, room = [], None, LINE - len(name) - 2
    for word in text.split(" "):
        if line is None:
            line = word
        elif line and len(line) + 1 + len(word) > room:
            lines.append(line)  # the space before the word becomes the fold's
            line, room = word, LINE - 1
        else:
            line += " " + word
    return "\r\n ".join(lines + [line or ""])


def _mailbox_header(recipient):
    """One address as a header writes it: a non-ASCII name as encoded words, one per line, then <address>."""
    if not recipient.name:
        return recipient.address
    if recipient.name.isascii() and "=?" not in recipient.name:
        return formataddr((recipient.name, recipient.address))
    return "\r\n ".join(encoded_words(recipient.name) + [f"<{recipient.address}>"])


def _address_list(recipients):
    return ",\r\n ".join(_mailbox_header(r) for r in recipients)


def _transfer_encoding(text):
    """7bit for ASCII text with short lines (readable as is); base64 for anything else."""
    if text.isascii() and all(len(line) <= 900 for line in text.splitlines()):
        return "7bit"
    return "base64"


def sending_login(mailbox):
    """The login's own address when the mailbox sends as an address its login does not own (a shared sales@
    through anna@'s login), else None: that address goes in the Sender: header (RFC 5322 3.6.2)."""
    login = (mailbox.smtp_username or "").strip()
    if "@" not in login or normalize_email(login) == normalize_email(mailbox.address):
        return None
    try:
        return clean_address("mailbox", login)
    except LetterError:
        return None


def build_message(*, from_address, from_name, to, cc, subject, body, message_id, date,
                  reply_to=None, in_reply_to="", references="", sender=None):
    """The letter's bytes as the worker sends them: plain text and its HTML rendering, multipart/alternative,
    ASCII with CRLF, written by ``email.message.EmailMessage`` with ``MESSAGE_POLICY``.

    Raises ValueError for header values with line breaks or control characters, and LetterError (naming
    the field) for a header no server would take: a line longer than RFC 5322's 998 characters.
    """
    values = [from_address, from_name, subject, message_id, in_reply_to, references, sender or ""]
    values += [r.address for r in to + cc] + [r.name for r in to + cc]
    if any(CONTROL_CHARACTERS.search(value or "") for value in values):
        raise ValueError("header values may not contain line breaks or control characters")
    author, sender_address = Recipient(from_address, from_name), sender
    text = body.replace("\r\n", "\n")
    text = text if text.endswith("\n") else text + "\n"
    message = EmailMessage(policy=MESSAGE_POLICY)
    message.set_raw("From", _mailbox_header(author))
    if sender_address:
        message.set_raw("Sender", sender_address)
    if to:
        message.set_raw("To", _address_list(to))
    if cc:
        message.set_raw("Cc", _address_list(cc))
    message.set_raw("Subject", _folded_text("Subject", subject))
    message["Date"] = format_datetime(date.replace(tzinfo=datetime.timezone.utc))
    message["Message-ID"] = message_id
    message.set_raw("Reply-To", _mailbox_header(reply_to or author))
    if in_reply_to:
        message.set_raw("In-Reply-To", in_reply_to)
    if references:
        message.set_raw("References", "\r\n ".join(references.split()))
    message.set_content(text, cte=_transfer_encoding(text))
    rendered = html_from_text(text)
    message.add_alternative(rendered, subtype="html", cte=_transfer_encoding(rendered))
    raw = message.as_bytes()
    check_header_lines(raw)
    return raw


def check_header_lines(raw):
    """Refuse a letter whose header a server would refuse (a line over 998 characters: "500 Line too long"),
    naming the field behind it; and fail loudly on an encoded word over 75 characters (the writer's fault)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    name = ""
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            name = line.split(b":", 1)[0].decode("ascii").lower()
        if len(line) > LINE_MAX:
            raise LetterError(_HEADER_FIELDS.get(name, ""), _l(
                "Too long to send: a line of a letter's header may hold at most %(max)d characters.", max=LINE_MAX))
        longest = max((len(word) for word in _ENCODED_WORD.findall(line)), default=0)
        if longest > ENCODED_WORD_MAX:
            raise ValueError(f"the {name} header has an encoded word of {longest} characters")


def _clean_thread_ids(value):
    """Message-IDs given for In-Reply-To/References: only <…> tokens, nothing that could break a header."""
    refuse_control_characters("in_reply_to", value)
    return " ".join(re.findall(r"<[^<>\s]+>", value or ""))


def _may_send_from(author, mailbox, project):
    """The sender rule's may_use, on the mailbox's candidate as the one loader reads it."""
    from portal.sender import load_candidate, may_use

    return may_use(author, load_candidate(mailbox), project)


def create_letter(author, *, mailbox, project, to, cc="", subject, body, in_reply_to="", references="",
                  submit_token=None, save_contacts=False, check_sender=True, origin=""):
    """Store a letter in the queue (state "queued") and return it; the same submit_token returns the same letter.

    ``to`` and ``cc`` are header-style text or lists of Recipient. Raises LetterError naming the
    field at fault; nothing is stored then. ``check_sender`` (default on) re-checks that the author
    may send from ``mailbox`` in ``project``. ``origin`` "portal" marks the portal's own mail (portal.portal_mail).
    """
    if submit_token:
        existing = Letter.get_or_none(Letter.submit_token == submit_token)
        if existing is not None:
            if existing.author_id != author.id:
                raise LetterError("", _l("This form was already used. Open a new letter."))
            return existing
    if mailbox is None:
        raise LetterError("mailbox", _l("Choose the address the letter leaves from."))
    if check_sender and not _may_send_from(author, mailbox, project):
        raise LetterError("mailbox", _l("You may not send from this address in this project."))
    to_list = to if isinstance(to, list) else parse_recipients(to, "to")
    cc_list = cc if isinstance(cc, list) else parse_recipients(cc, "cc")
    to_addresses = {r.address for r in to_list}
    cc_list = [r for r in cc_list if r.address not in to_addresses]
    if not to_list:
        raise LetterError("to", _l("Add at least one recipient."))
    if len(to_list) + len(cc_list) > RECIPIENTS_MAX:
        raise LetterError("to", _l("At most %(max)d recipients in one letter.", max=RECIPIENTS_MAX))
    subject = " ".join((subject or "").split(" "))
    refuse_control_characters("subject", subject)
    subject = subject.strip()
    if not subject:
        raise LetterError("subject", _l("Write a subject."))
    if len(subject) > SUBJECT_MAX:
        raise LetterError("subject", _l("At most %(max)d characters.", max=SUBJECT_MAX))
    body = (body or "").replace("\r\n", "\n")
    if "\x00" in body:
        raise LetterError("body", _l("The text contains a NUL character."))
    if not body.strip():
        raise LetterError("body", _l("Write the text of the letter."))
    if len(body) > BODY_MAX:
        raise LetterError("body", _l("At most %(max)d characters.", max=BODY_MAX))
    from_name = mailbox.display_name or ""
    try:
        refuse_control_characters("mailbox", from_name)
        from_address = clean_address("mailbox", mailbox.address)
    except LetterError:
        raise LetterError("mailbox", _l("This address's display name or e-mail has a line break or control "
                                        "character; fix the address first.")) from None
    in_reply_to = _clean_thread_ids(in_reply_to)
    references = _clean_thread_ids(references)
    if in_reply_to and in_reply_to not in references:
        references = (references + " " + in_reply_to).strip()
    now = utcnow()
    message_id = new_message_id(from_address.rpartition("@")[2])
    try:
        raw = build_message(from_address=from_address, from_name=from_name, to=to_list, cc=cc_list,
                            subject=subject, body=body, message_id=message_id, date=now,
                            in_reply_to=in_reply_to, references=references, sender=sending_login(mailbox))
    except LetterError:
        raise
    except (ValueError, TypeError) as error:  # the email package's own last line against bad headers
        # Not pinned on a field: whatever slipped past the checks above is not the subject's fault.
        raise LetterError("", _l("The letter could not be built: %(error)s", error=str(error))) from None
    try:
        fields = dict(
            author=author.id, project=project.id if project is not None else None, mailbox=mailbox.id,
            from_address=from_address, from_name=from_name,
            to_header=", ".join(r.shown() for r in to_list),
            cc_header=", ".join(r.shown() for r in cc_list),
            subject=subject, body_text=body, message_id=message_id, in_reply_to=in_reply_to,
            references=references, raw_message=raw.decode("ascii"), submit_token=submit_token or None,
            state="queued", created_at=now, queued_at=now, next_attempt_at=now, origin=origin,
        )
        with writing():
            letter_id = Letter.insert(**fields).execute()
            LetterRecipient.insert_many([
                {"letter": letter_id, "kind": r.kind, "name": r.name, "address": r.address}
                for r in to_list + cc_list
            ]).execute()
            if save_contacts:
                save_as_contacts(to_list + cc_list, author)
    except IntegrityError:
        # Two submits with one token raced; the first one's letter is the letter.
        existing = Letter.get_or_none(Letter.submit_token == submit_token) if submit_token else None
        if existing is None:
            raise
        return existing
    letter = Letter(id=letter_id, **{k: v for k, v in fields.items() if k not in ("author", "project", "mailbox")})
    letter.author, letter.project, letter.mailbox = author, project, mailbox
    return letter


class NobodyCanSend(LetterError):
    """The sender rule found no address this person may send from in this project; ``decision`` says why."""

    def __init__(self, decision):
        super().__init__("mailbox", _l("Nobody can send this letter: no address is open to you in this project."))
        self.decision = decision


def queue_letter(author, project, mailbox=None, *, wake=None, **letter):
    """Write a letter: the one use case the New letter page and the API both call.

    Without ``mailbox`` the sender rule picks the address (NobodyCanSend when there is none); a given one
    is checked again by the rule. The letter is stored in the queue (``create_letter`` takes the rest of
    the fields), and ``wake(letter)`` asks a worker to send it now; a letter already stored under the
    same submit token is returned as it is.
    """
    from portal.sender import resolve_sender

    if mailbox is None:
        decision = resolve_sender(author, project)
        if decision.mailbox is None:
            raise NobodyCanSend(decision)
        mailbox = decision.mailbox
    stored = create_letter(author, mailbox=mailbox, project=project, **letter)
    if wake is not None and stored.state == "queued" and stored.attempts == 0:
        wake(stored)
    return stored


def save_as_contacts(recipients, author):
    """Add the addresses that are not contacts yet; returns how many were added."""
    addresses = [r.address for r in recipients]
    known = {c.email for c in Contact.select(Contact.email).where(Contact.email.in_(addresses))}
    added = 0
    for r in recipients:
        if r.address not in known:
            Contact.create(name=r.name, email=r.address, created_by=author)
            known.add(r.address)
            added += 1
    return added
