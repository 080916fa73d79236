"""Letters to external contacts: contacts, the queue of letters, their attempts, and the replies fetched back."""
import json

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from portal.models.base import BaseModel, utcnow
from portal.models.mailboxes import Mailbox
from portal.models.people import FIELD_MAX, Employee, Project, normalize_email

# queued -> sending -> sent | deferred | failed | uncertain; cancelled by a person.
STATES = ("queued", "sending", "sent", "deferred", "failed", "uncertain", "cancelled")
PENDING_STATES = ("queued", "sending", "deferred")
NEEDS_ATTENTION_STATES = ("failed", "uncertain")
RECIPIENT_KINDS = ("to", "cc")


class Contact(BaseModel):
    """An external person letters go to; the company shares one address book."""

    name = CharField(max_length=FIELD_MAX, default="")
    email = CharField(max_length=FIELD_MAX, unique=True)
    organisation = CharField(max_length=FIELD_MAX, default="")
    notes = TextField(default="")
    created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    @classmethod
    def by_email(cls, address):
        return cls.get_or_none(cls.email == normalize_email(address))

    @classmethod
    def search(cls, text=""):
        """Contacts whose name, e-mail or organisation contains the text, by name."""
        query = cls.select()
        text = (text or "").strip().lower()
        if text:
            query = query.where(
                fn.LOWER(cls.name).contains(text)
                | cls.email.contains(text)
                | fn.LOWER(cls.organisation).contains(text)
            )
        return query.order_by(fn.LOWER(cls.name), cls.email)

    def __str__(self):
        return f"{self.name} <{self.email}>" if self.name else self.email


class Letter(BaseModel):
    """One letter: stored before any attempt, with the Message-ID it keeps on every attempt."""

    author = ForeignKeyField(Employee, backref="letters", on_delete="CASCADE")
    project = ForeignKeyField(Project, null=True, backref="letters", on_delete="SET NULL")
    mailbox = ForeignKeyField(Mailbox, null=True, backref="letters", on_delete="SET NULL", index=False)  # m0013
    from_address = CharField(max_length=FIELD_MAX)
    from_name = CharField(max_length=FIELD_MAX, default="")
    to_header = TextField(default="")
    cc_header = TextField(default="")
    subject = CharField(max_length=FIELD_MAX * 4, default="")
    body_text = TextField(default="")
    message_id = CharField(max_length=FIELD_MAX, unique=True)
    in_reply_to = CharField(max_length=FIELD_MAX * 4, default="")
    references = TextField(default="")
    raw_message = TextField()  # the exact bytes (ASCII) sent on every attempt
    submit_token = CharField(max_length=64, null=True)  # unique where set: see m0013
    state = CharField(max_length=16, default="queued")
    # "" until the final dot may have gone out; "data" from then on (a lost worker then means uncertain).
    phase = CharField(max_length=8, default="")
    attempts = IntegerField(default=0)
    round_start = IntegerField(default=0)  # attempts made before the last manual retry
    created_at = DateTimeField(default=utcnow)
    queued_at = DateTimeField(default=utcnow)
    next_attempt_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    lease_token = CharField(max_length=64, null=True)
    lease_expires_at = DateTimeField(null=True)
    problem_code = CharField(max_length=64, default="")
    problem_stage = CharField(max_length=32, default="")
    server_reply = TextField(default="")
    smtp_code = IntegerField(null=True)
    waiting_for = CharField(max_length=32, default="")  # "mailbox_limit" | "recipient_limit" while held back
    failure_seen = BooleanField(default=False)
    reply_count = IntegerField(default=0)
    bounced = IntegerField(default=0)  # recipients a bounce came back for (portal.letters.bounces)
    # The portal's own mail (m0038): "" a person's letter; "portal" a notification or invitation the portal
    # sends through its system mailbox, addressed to ``author``, who did not write it (portal.portal_mail).
    origin = CharField(max_length=8, default="")

    @property
    def pending(self):
        return self.state in PENDING_STATES

    @property
    def can_retry(self):
        return self.state in ("failed", "uncertain", "deferred", "cancelled")

    @property
    def can_cancel(self):
        return self.state in ("queued", "deferred")

    @property
    def round_attempts(self):
        """Attempts since the letter was (re)queued by a person: what the attempt limit counts."""
        return self.attempts - self.round_start

    def problem(self):
        """The engine's Problem for the last failure, or None."""
        if not self.problem_code:
            return None
        from portal.mail.problems import Problem

        return Problem(code=self.problem_code, stage=self.problem_stage, server_reply=self.server_reply,
                       smtp_code=self.smtp_code)

    @classmethod
    def visible_to(cls, employee):
        """The letters this person may see: their own, or every letter for an admin."""
        query = cls.select()
        if not employee.is_admin:
            query = query.where((cls.author == employee.id) & (cls.origin == ""))
        return query

    @classmethod
    def needing_attention(cls, employee):
        """How many of this person's own letters failed (or may not have arrived) and are not yet looked at."""
        return cls.select().where(
            (cls.author == employee.id) & (cls.origin == "") & cls.state.in_(NEEDS_ATTENTION_STATES)
            & (cls.failure_seen == False)  # noqa: E712
        ).count()


class LetterRecipient(BaseModel):
    """One To or Cc address of a letter and what its server said about it."""

    letter = ForeignKeyField(Letter, backref="recipients", on_delete="CASCADE")
    kind = CharField(max_length=4, default="to")
    name = CharField(max_length=FIELD_MAX, default="")
    address = CharField(max_length=FIELD_MAX)
    status = CharField(max_length=16, default="pending")  # pending | accepted | refused | deferred | bounced
    smtp_code = IntegerField(null=True)
    server_reply = TextField(default="")
    problem_code = CharField(max_length=64, default="")
    accepted_at = DateTimeField(null=True)


# Partial where a column is empty until the letter is sent, so storing a letter skips them (migration m0013).
Letter.add_index(Letter.index(Letter.state, Letter.next_attempt_at, name="letter_state_due"))
Letter.add_index(Letter.index(Letter.mailbox, Letter.state, Letter.next_attempt_at, name="letter_mailbox_due"))
Letter.add_index(Letter.index(Letter.mailbox, Letter.sent_at, name="letter_mailbox_sent",
                              where=Letter.sent_at.is_null(False)))
Letter.add_index(Letter.index(Letter.lease_token, name="letter_lease", where=Letter.lease_token.is_null(False)))
Letter.add_index(Letter.index(Letter.submit_token, name="letter_submit", unique=True,
                              where=Letter.submit_token.is_null(False)))
LetterRecipient.add_index(LetterRecipient.index(LetterRecipient.address, LetterRecipient.accepted_at,
                                                name="letter_recipient_accepted",
                                                where=LetterRecipient.accepted_at.is_null(False)))


class LetterAttempt(BaseModel):
    """One try at sending (or one hold-back by a sending limit), for the letter's history."""

    letter = ForeignKeyField(Letter, backref="history", on_delete="CASCADE")
    number = IntegerField(null=True)  # None for a hold-back that never reached the server
    started_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(default=utcnow)
    outcome = CharField(max_length=16)  # sent | deferred | failed | uncertain | limited | lost
    stage = CharField(max_length=32, default="")
    problem_code = CharField(max_length=64, default="")
    server_reply = TextField(default="")
    smtp_code = IntegerField(null=True)
    mailbox_address = CharField(max_length=FIELD_MAX, default="")

    def problem(self):
        if not self.problem_code:
            return None
        from portal.mail.problems import Problem

        return Problem(code=self.problem_code, stage=self.stage, server_reply=self.server_reply,
                       smtp_code=self.smtp_code)


class Reply(BaseModel):
    """A message fetched from a mailbox whose In-Reply-To or References names one of our letters."""

    letter = ForeignKeyField(Letter, backref="replies", on_delete="CASCADE")
    mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="SET NULL")
    message_id = CharField(max_length=FIELD_MAX * 4)
    sender = CharField(max_length=FIELD_MAX * 2, default="")
    subject = CharField(max_length=FIELD_MAX * 4, default="")
    date = DateTimeField(null=True)
    body_text = TextField(default="")
    attachments_json = TextField(default="[]")
    references = TextField(default="")
    fetched_at = DateTimeField(default=utcnow)
    read_at = DateTimeField(null=True, index=True)  # m0055: when the letter's author first opened it

    class Meta:
        indexes = ((("letter", "message_id"), True),)

    @property
    def attachments(self):
        """[{"name": ..., "size": ...}] for each attachment."""
        return json.loads(self.attachments_json or "[]")

    @classmethod
    def mark_read_by(cls, employee, *reply_ids):
        """The letter's author opened the replies: they are no longer new (an admin reading along marks nothing)."""
        authored = Letter.select(Letter.id).where(Letter.author == employee.id)
        return cls.update(read_at=utcnow()).where(
            cls.id.in_(reply_ids) & cls.read_at.is_null() & cls.letter.in_(authored)).execute()


class MailboxInbox(BaseModel):
    """Where fetching replies from a mailbox got to, and its last failure (shown to the owner)."""

    mailbox = ForeignKeyField(Mailbox, unique=True, backref="+", on_delete="CASCADE")
    source = CharField(max_length=FIELD_MAX * 2, default="")  # protocol/host/login the remembered ids belong to
    uidvalidity = BigIntegerField(null=True)
    last_uid = BigIntegerField(default=0)
    last_fetch_at = DateTimeField(null=True)
    last_success_at = DateTimeField(null=True)
    problem_code = CharField(max_length=64, default="")
    problem_stage = CharField(max_length=32, default="")
    server_reply = TextField(default="")
    failed_at = DateTimeField(null=True)

    def problem(self):
        """The engine's Problem for the last failed fetch, or None after a good one."""
        if not self.problem_code:
            return None
        from portal.mail.problems import Problem

        return Problem(code=self.problem_code, stage=self.problem_stage, server_reply=self.server_reply)


class SeenMessage(BaseModel):
    """A POP3 UIDL already looked at, so no message is downloaded twice."""

    mailbox = ForeignKeyField(Mailbox, backref="+", on_delete="CASCADE")
    uid = CharField(max_length=128)

    class Meta:
        indexes = ((("mailbox", "uid"), True),)
