"""Trips to a provider's consent page: state, nonce and PKCE verifier kept server-side, used once."""
import datetime

from peewee import CharField, DateTimeField, ForeignKeyField, Model, TextField


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

    class OAuthFlow(BaseModel):
        id = CharField(max_length=64, primary_key=True)
        state = CharField(max_length=64, unique=True)
        employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
        provider = CharField(max_length=32)
        purpose = CharField(max_length=16, default="form")
        mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="CASCADE")
        nonce = CharField(max_length=64)
        code_verifier = TextField(default="")
        form_values = TextField(default="{}")
        created_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        used_at = DateTimeField(null=True)
        identity = CharField(max_length=255, default="")
        error = CharField(max_length=64, default="")
        error_description = TextField(default="")
        secret_context = CharField(max_length=64)

        class Meta:
            table_name = "oauth_flow"

    db.create_tables([OAuthFlow])
