"""Single sign-on's tables: which employee an OpenID Connect identity (issuer + subject) is, once linked; the trips to
the provider a browser started (m0058); and what signing out at the provider needs for a session it opened (m0058)."""
from peewee import CharField, DateTimeField, ForeignKeyField, TextField

from portal.models.base import BaseModel, SecretColumns, utcnow
from portal.models.people import Employee, EmployeeSession
from portal.secret_box import new_context


class SsoLink(BaseModel):
    """An employee's identity at the company's OpenID provider: matched by it on every later sign-in."""

    employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
    issuer = CharField(max_length=255)
    subject = CharField(max_length=255)  # the provider's stable `sub`, never the e-mail (which may change)
    created_at = DateTimeField(default=utcnow)
    last_sign_in_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "sso_link"
        indexes = ((("issuer", "subject"), True),)


class SsoFlow(SecretColumns, BaseModel):
    """One "Sign in with" a browser started: what the callback must find again by its state (the browser keeps only
    the state). Used once; good for FLOW_MAX_AGE (portal/provider_trips.py)."""

    SECRET_FIELDS = ("code_verifier",)

    state = CharField(max_length=128, unique=True)
    nonce = CharField(max_length=128)
    code_verifier = TextField(default="")  # Fernet ciphertext bound to secret_context
    redirect_uri = TextField()
    next_target = TextField(default="")  # the page inside the portal to open once signed in
    created_at = DateTimeField(default=utcnow, index=True)
    used_at = DateTimeField(null=True)
    secret_context = CharField(max_length=64, default=new_context)

    class Meta:
        table_name = "sso_flow"


class SsoSignIn(SecretColumns, BaseModel):
    """A browser's portal session that single sign-on opened: the ID token (the hint the provider's logout asks for)
    and where that logout is. Goes with its session: sign-out, "Sign out everywhere" and expiry delete it."""

    SECRET_FIELDS = ("id_token",)

    session = ForeignKeyField(EmployeeSession, primary_key=True, backref="+", on_delete="CASCADE")
    id_token = TextField(default="")  # Fernet ciphertext bound to secret_context
    end_session_endpoint = TextField()
    secret_context = CharField(max_length=64, default=new_context)

    class Meta:
        table_name = "sso_sign_in"
