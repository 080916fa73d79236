"""Mailboxes that sign in with the provider (OAuth 2.0): registered provider apps and each mailbox's grant."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class Mailbox(BaseModel):
        class Meta:
            table_name = "mailbox"

    class OAuthApp(BaseModel):
        provider = CharField(max_length=32, primary_key=True)
        client_id = CharField(max_length=255)
        client_secret = TextField(default="")
        tenant = CharField(max_length=255, default="")
        discovery_url = CharField(max_length=255, default="")
        sasl = CharField(max_length=16, default="")
        scopes = TextField(default="")
        secret_context = CharField(max_length=64)
        updated_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            table_name = "oauth_app"

    class MailboxGrant(BaseModel):
        mailbox = ForeignKeyField(Mailbox, null=True, unique=True, backref="+", on_delete="CASCADE")
        employee = ForeignKeyField(Employee, null=True, backref="+", on_delete="CASCADE")
        form_key = CharField(max_length=64, null=True, unique=True)
        provider = CharField(max_length=32)
        identity = CharField(max_length=255)
        sasl = CharField(max_length=16, default="XOAUTH2")
        access_token = TextField(default="")
        refresh_token = TextField(default="")
        expires_at = DateTimeField(null=True)
        lifetime = IntegerField(default=0)
        refreshes = IntegerField(default=0)
        needs_reconnect = BooleanField(default=False)
        reconnect_reason = TextField(default="")
        secret_context = CharField(max_length=64)
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        refreshed_at = DateTimeField(null=True)

        class Meta:
            table_name = "mailbox_grant"

    db.create_tables([OAuthApp, MailboxGrant])
