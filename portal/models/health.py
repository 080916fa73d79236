"""A mailbox's health record (what its last background check found) and each sending domain's DNS findings."""
import json

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from portal.models.base import BaseModel
from portal.models.mailboxes import Mailbox
from portal.models.people import FIELD_MAX


class MailboxHealth(BaseModel):
    """One row per mailbox once it has been checked in the background or had a reply fetch asked for."""

    mailbox = ForeignKeyField(Mailbox, unique=True, backref="+", on_delete="CASCADE")
    last_check_at = DateTimeField(null=True)
    last_check_ok = BooleanField(null=True)
    failed_checks = IntegerField(default=0)  # checks failed in a row; the first one makes the mailbox Warning
    problem_code = CharField(max_length=64, default="")  # the last failed check's problem
    problem_stage = CharField(max_length=32, default="")
    server_reply = TextField(default="")
    certificate_expires_at = DateTimeField(null=True)  # the earliest of its servers' certificates, at the last check
    fetch_asked_at = DateTimeField(null=True)  # the last "Fetch now" (rate limit)

    class Meta:
        table_name = "mailbox_health"

    def problem(self):
        """The engine's Problem of the last failed check, or None after a good one."""
        if not self.problem_code:
            return None
        from portal.mail.problems import Problem

        return Problem(code=self.problem_code, stage=self.problem_stage, server_reply=self.server_reply)


class DomainDeliverability(BaseModel):
    """What DNS said about one sending domain (SPF, DMARC, DKIM, MX records as found), kept for a while."""

    domain = CharField(max_length=FIELD_MAX, primary_key=True)
    checked_at = DateTimeField()
    records = TextField(default="{}")  # JSON: the record texts found, per kind

    class Meta:
        table_name = "domain_deliverability"

    def record_texts(self):
        return json.loads(self.records or "{}")
