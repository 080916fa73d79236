"""Mailbox health: what each mailbox's background check found, and each sending domain's DNS findings."""
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Mailbox(BaseModel):
        class Meta:
            table_name = "mailbox"

    class MailboxHealth(BaseModel):
        mailbox = ForeignKeyField(Mailbox, unique=True, backref="+", on_delete="CASCADE")
        last_check_at = DateTimeField(null=True)
        last_check_ok = BooleanField(null=True)
        failed_checks = IntegerField(default=0)
        problem_code = CharField(max_length=64, default="")
        problem_stage = CharField(max_length=32, default="")
        server_reply = TextField(default="")
        certificate_expires_at = DateTimeField(null=True)
        fetch_asked_at = DateTimeField(null=True)

        class Meta:
            table_name = "mailbox_health"

    class DomainDeliverability(BaseModel):
        domain = CharField(max_length=255, primary_key=True)
        checked_at = DateTimeField()
        records = TextField(default="{}")

        class Meta:
            table_name = "domain_deliverability"

    db.create_tables([MailboxHealth, DomainDeliverability])
