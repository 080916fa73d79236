"""Letters: contacts, the letters queue with recipients and attempts, replies and reply-fetching state."""
import datetime

from peewee import (
    BigIntegerField,
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

    class Mailbox(BaseModel):  # made by m0002; declared here only to point at it
        class Meta:
            table_name = "mailbox"

    class Contact(BaseModel):
        name = CharField(max_length=255, default="")
        email = CharField(max_length=255, unique=True)
        organisation = CharField(max_length=255, default="")
        notes = TextField(default="")
        created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

    class Letter(BaseModel):
        author = ForeignKeyField(Employee, on_delete="CASCADE")
        project = ForeignKeyField(Project, null=True, on_delete="SET NULL")
        mailbox = ForeignKeyField(Mailbox, null=True, on_delete="SET NULL")
        from_address = CharField(max_length=255)
        from_name = CharField(max_length=255, default="")
        to_header = TextField(default="")
        cc_header = TextField(default="")
        subject = CharField(max_length=1020, default="")
        body_text = TextField(default="")
        message_id = CharField(max_length=255, unique=True)
        in_reply_to = CharField(max_length=1020, default="")
        references = TextField(default="")
        raw_message = TextField()
        submit_token = CharField(max_length=64, null=True, unique=True)
        state = CharField(max_length=16, default="queued", index=True)
        phase = CharField(max_length=8, default="")
        attempts = IntegerField(default=0)
        round_start = IntegerField(default=0)
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        queued_at = DateTimeField(default=datetime.datetime.utcnow)
        next_attempt_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        sent_at = DateTimeField(null=True, index=True)
        finished_at = DateTimeField(null=True)
        lease_token = CharField(max_length=64, null=True, index=True)
        lease_expires_at = DateTimeField(null=True)
        problem_code = CharField(max_length=64, default="")
        problem_stage = CharField(max_length=32, default="")
        server_reply = TextField(default="")
        smtp_code = IntegerField(null=True)
        waiting_for = CharField(max_length=32, default="")
        failure_seen = BooleanField(default=False)
        reply_count = IntegerField(default=0)

    class LetterRecipient(BaseModel):
        letter = ForeignKeyField(Letter, on_delete="CASCADE")
        kind = CharField(max_length=4, default="to")
        name = CharField(max_length=255, default="")
        address = CharField(max_length=255, index=True)
        status = CharField(max_length=16, default="pending")
        smtp_code = IntegerField(null=True)
        server_reply = TextField(default="")
        problem_code = CharField(max_length=64, default="")
        accepted_at = DateTimeField(null=True, index=True)

    class LetterAttempt(BaseModel):
        letter = ForeignKeyField(Letter, on_delete="CASCADE")
        number = IntegerField(null=True)
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        finished_at = DateTimeField(default=datetime.datetime.utcnow)
        outcome = CharField(max_length=16)
        stage = CharField(max_length=32, default="")
        problem_code = CharField(max_length=64, default="")
        server_reply = TextField(default="")
        smtp_code = IntegerField(null=True)
        mailbox_address = CharField(max_length=255, default="")

    class Reply(BaseModel):
        letter = ForeignKeyField(Letter, on_delete="CASCADE")
        mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="SET NULL")
        message_id = CharField(max_length=1020)
        sender = CharField(max_length=510, default="")
        subject = CharField(max_length=1020, default="")
        date = DateTimeField(null=True)
        body_text = TextField(default="")
        attachments_json = TextField(default="[]")
        references = TextField(default="")
        fetched_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = ((("letter", "message_id"), True),)

    class MailboxInbox(BaseModel):
        mailbox = ForeignKeyField(Mailbox, unique=True, backref="+", on_delete="CASCADE")
        source = CharField(max_length=510, default="")
        uidvalidity = BigIntegerField(null=True)
        last_uid = BigIntegerField(default=0)
        last_fetch_at = DateTimeField(null=True)
        last_success_at = DateTimeField(null=True)
        problem_code = CharField(max_length=64, default="")
        problem_stage = CharField(max_length=32, default="")
        server_reply = TextField(default="")
        failed_at = DateTimeField(null=True)

    class SeenMessage(BaseModel):
        mailbox = ForeignKeyField(Mailbox, backref="+", on_delete="CASCADE")
        uid = CharField(max_length=128)

        class Meta:
            indexes = ((("mailbox", "uid"), True),)

    db.create_tables([Contact, Letter, LetterRecipient, LetterAttempt, Reply, MailboxInbox, SeenMessage])
