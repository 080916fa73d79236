"""External addresses: mailboxes, their projects and access lists, the audit log and portal switches."""
import datetime

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class Project(BaseModel):
        class Meta:
            table_name = "project"

    class Mailbox(BaseModel):
        scope = CharField(max_length=16, default="employee", index=True)
        owner = ForeignKeyField(Employee, null=True, on_delete="CASCADE")
        address = CharField(max_length=255, index=True)
        display_name = CharField(max_length=255, default="")
        smtp_host = CharField(max_length=255)
        smtp_port = IntegerField()
        smtp_security = CharField(max_length=16)
        smtp_username = CharField(max_length=255, default="")
        smtp_password = TextField(default="")
        smtp_trusted_fingerprint = CharField(max_length=64, null=True)
        allow_plaintext_auth = BooleanField(default=False)
        incoming_protocol = CharField(max_length=8, null=True)
        incoming_host = CharField(max_length=255, default="")
        incoming_port = IntegerField(null=True)
        incoming_security = CharField(max_length=16, default="ssl")
        incoming_username = CharField(max_length=255, default="")
        incoming_password = TextField(default="")
        incoming_trusted_fingerprint = CharField(max_length=64, null=True)
        receive_replies = BooleanField(default=False)
        is_default = BooleanField(default=False)
        access_everyone = BooleanField(default=True)
        active = BooleanField(default=True)
        last_passed_test_at = DateTimeField(null=True)
        tested_settings_digest = CharField(max_length=64, default="")
        secret_context = CharField(max_length=64, default="")
        created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        updated_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

    class MailboxProject(BaseModel):
        mailbox = ForeignKeyField(Mailbox, on_delete="CASCADE")
        project = ForeignKeyField(Project, on_delete="CASCADE")

        class Meta:
            indexes = ((("mailbox", "project"), True),)

    class MailboxAccess(BaseModel):
        mailbox = ForeignKeyField(Mailbox, on_delete="CASCADE")
        employee = ForeignKeyField(Employee, null=True, on_delete="CASCADE")
        department = CharField(max_length=255, null=True)

    class AuditEvent(BaseModel):
        mailbox = ForeignKeyField(Mailbox, null=True, on_delete="SET NULL")
        address = CharField(max_length=255, index=True)
        actor = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        owner = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        action = CharField(max_length=16)
        changed_fields = TextField(default="[]")
        ip = CharField(max_length=64, default="")
        at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        detail = TextField(default="")

    class PortalSetting(BaseModel):
        key = CharField(max_length=64, primary_key=True)
        value = TextField(default="")

    db.create_tables([Mailbox, MailboxProject, MailboxAccess, AuditEvent, PortalSetting])
