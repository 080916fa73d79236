"""Single sign-on on the server: the trips to the provider a browser started (state, nonce, the PKCE verifier
encrypted), and the ID token kept with the portal session it opened, for signing out at the provider."""
import datetime

from peewee import CharField, DateTimeField, ForeignKeyField, Model, TextField


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class EmployeeSession(BaseModel):
        class Meta:
            table_name = "employee_session"

    class SsoFlow(BaseModel):
        state = CharField(max_length=128, unique=True)
        nonce = CharField(max_length=128)
        code_verifier = TextField(default="")
        redirect_uri = TextField()
        next_target = TextField(default="")
        created_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        used_at = DateTimeField(null=True)
        secret_context = CharField(max_length=64)

        class Meta:
            table_name = "sso_flow"

    class SsoSignIn(BaseModel):
        session = ForeignKeyField(EmployeeSession, primary_key=True, backref="+", on_delete="CASCADE")
        id_token = TextField(default="")
        end_session_endpoint = TextField()
        secret_context = CharField(max_length=64)

        class Meta:
            table_name = "sso_sign_in"

    db.create_tables([SsoFlow, SsoSignIn])
