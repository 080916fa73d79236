"""External addresses: company and employee mailboxes, their projects and access, and their audit trail."""
import json

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from portal.models.base import BaseModel, utcnow
from portal.models.people import FIELD_MAX, Employee, Project, normalize_email
from portal.secret_box import active_box, new_context

SCOPES = ("company", "employee")
AUDIT_ACTIONS = ("created", "changed", "tested", "test_failed", "paused", "resumed", "deleted",
                 "needs_reconnect", "reconnected")  # the last two: signing in with the provider (issue 12)


class Mailbox(BaseModel):
    scope = CharField(max_length=16, default="employee", index=True)
    owner = ForeignKeyField(Employee, null=True, backref="mailboxes", on_delete="CASCADE")
    address = CharField(max_length=FIELD_MAX, index=True)
    display_name = CharField(max_length=FIELD_MAX, default="")
    smtp_host = CharField(max_length=FIELD_MAX)
    smtp_port = IntegerField()
    smtp_security = CharField(max_length=16)
    smtp_username = CharField(max_length=FIELD_MAX, default="")
    smtp_password = TextField(default="")  # Fernet ciphertext bound to secret_context
    smtp_trusted_fingerprint = CharField(max_length=64, null=True)
    allow_plaintext_auth = BooleanField(default=False)
    incoming_protocol = CharField(max_length=8, null=True)  # None | "pop3" | "imap"
    incoming_host = CharField(max_length=FIELD_MAX, default="")
    incoming_port = IntegerField(null=True)
    incoming_security = CharField(max_length=16, default="ssl")
    incoming_username = CharField(max_length=FIELD_MAX, default="")
    incoming_password = TextField(default="")  # Fernet ciphertext bound to secret_context
    incoming_trusted_fingerprint = CharField(max_length=64, null=True)
    receive_replies = BooleanField(default=False)
    is_default = BooleanField(default=False)
    access_everyone = BooleanField(default=True)
    active = BooleanField(default=True)
    sign_in_failures = IntegerField(default=0)  # refused in a row by the provider; the queue pauses at three
    paused_problem = CharField(max_length=64, default="")  # the problem code when the queue paused the mailbox
    paused_reply = TextField(default="")  # the provider's words then
    stalled_until = DateTimeField(null=True)  # its server stalled a send pass: its letters wait until then
    last_passed_test_at = DateTimeField(null=True)
    tested_settings_digest = CharField(max_length=64, default="")
    secret_context = CharField(max_length=64, default=new_context)
    created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    updated_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    submit_token = CharField(max_length=64, null=True)  # the Add form's token; unique where set (m0056)

    @property
    def is_company(self):
        return self.scope == "company"

    @property
    def has_incoming(self):
        return bool(self.incoming_protocol)

    @property
    def tested(self):
        """Whether these settings passed the account test (the rule never picks an untested one)."""
        return self.last_passed_test_at is not None and bool(self.tested_settings_digest)

    @property
    def has_smtp_password(self):
        return bool(self.smtp_password)

    @property
    def has_incoming_password(self):
        return bool(self.incoming_password)

    def save(self, *args, **kwargs):
        self.address = normalize_email(self.address)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    def set_secret(self, field, plaintext, box=None):
        """Store a secret (``smtp_password`` or ``incoming_password``) encrypted for this row."""
        if field not in ("smtp_password", "incoming_password"):
            raise ValueError(f"{field} is not a secret field")
        setattr(self, field, (box or active_box()).encrypt(plaintext or "", self.secret_context))

    def secret(self, field, box=None):
        """The plaintext of a stored secret; SecretError if it does not belong to this row."""
        if field not in ("smtp_password", "incoming_password"):
            raise ValueError(f"{field} is not a secret field")
        return (box or active_box()).decrypt(getattr(self, field), self.secret_context)

    def to_settings(self, box=None):
        """The mail engine's MailboxSettings for this mailbox, secrets decrypted (never shown to anyone)."""
        from portal.mail.settings import IncomingSettings, MailboxSettings, ServerSettings

        smtp = ServerSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.secret("smtp_password", box),
            trusted_fingerprint=self.smtp_trusted_fingerprint,
            allow_plaintext_auth=self.allow_plaintext_auth,
        )
        incoming = None
        if self.incoming_protocol:
            incoming = IncomingSettings(
                protocol=self.incoming_protocol,
                server=ServerSettings(
                    host=self.incoming_host,
                    port=self.incoming_port,
                    security=self.incoming_security,
                    username=self.incoming_username,
                    password=self.secret("incoming_password", box),
                    trusted_fingerprint=self.incoming_trusted_fingerprint,
                    allow_plaintext_auth=self.allow_plaintext_auth,
                ),
            )
        settings = MailboxSettings(address=self.address, display_name=self.display_name, smtp=smtp, incoming=incoming)
        from portal.oauth.tokens import with_grant  # signing in with the provider (issue 12)

        return with_grant(settings, self, box)

    def project_ids(self):
        """Ids of the projects this mailbox is tied to (empty: every project)."""
        return [link.project_id for link in self.project_links]

    def __str__(self):
        return self.address


Mailbox.add_index(Mailbox.index(Mailbox.submit_token, name="mailbox_submit", unique=True,
                                where=Mailbox.submit_token.is_null(False)))


class MailboxProject(BaseModel):
    """A project a mailbox serves; a mailbox with none serves every project."""

    mailbox = ForeignKeyField(Mailbox, backref="project_links", on_delete="CASCADE")
    project = ForeignKeyField(Project, backref="mailbox_links", on_delete="CASCADE")

    class Meta:
        indexes = ((("mailbox", "project"), True),)


class MailboxAccess(BaseModel):
    """Who may use a company mailbox that is not open to everyone: one employee or one department."""

    mailbox = ForeignKeyField(Mailbox, backref="access_rules", on_delete="CASCADE")
    employee = ForeignKeyField(Employee, null=True, backref="mailbox_access", on_delete="CASCADE")
    department = CharField(max_length=FIELD_MAX, null=True)


class AuditEvent(BaseModel):
    """Who did what to which address, when and from where; never a secret's value."""

    mailbox = ForeignKeyField(Mailbox, null=True, backref="audit_events", on_delete="SET NULL")
    address = CharField(max_length=FIELD_MAX, index=True)
    actor = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    owner = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    action = CharField(max_length=16)
    changed_fields = TextField(default="[]")
    ip = CharField(max_length=64, default="")
    at = DateTimeField(default=utcnow, index=True)
    detail = TextField(default="")

    @property
    def fields(self):
        """The names of the fields that changed."""
        return json.loads(self.changed_fields or "[]")


class PortalSetting(BaseModel):
    """A small key/value store for switches admins flip on pages."""

    key = CharField(max_length=64, primary_key=True)
    value = TextField(default="")

    @classmethod
    def read(cls, key, default=None):
        row = cls.get_or_none(cls.key == key)
        return default if row is None else json.loads(row.value)

    @classmethod
    def write(cls, key, value):
        cls.insert(key=key, value=json.dumps(value)).on_conflict(
            conflict_target=[cls.key], update={cls.value: json.dumps(value)}
        ).execute()
