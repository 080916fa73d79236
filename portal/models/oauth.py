"""Signing mailboxes in with a provider (OAuth 2.0): the apps the admin registered, and each mailbox's grant."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from portal.models.base import BaseModel, SecretColumns, utcnow
from portal.models.mailboxes import Mailbox
from portal.models.people import FIELD_MAX, Employee
from portal.secret_box import new_context


class OAuthApp(SecretColumns, BaseModel):
    """The portal's app at one sign-in provider, as the admin registered it there."""

    SECRET_FIELDS = ("client_secret",)

    provider = CharField(max_length=32, primary_key=True)  # a key of portal.oauth.providers.PROVIDERS
    client_id = CharField(max_length=FIELD_MAX)
    client_secret = TextField(default="")  # Fernet ciphertext bound to secret_context
    tenant = CharField(max_length=FIELD_MAX, default="")  # Microsoft: common, organizations or a tenant ID
    discovery_url = CharField(max_length=FIELD_MAX, default="")  # a company's own server: OpenID discovery
    sasl = CharField(max_length=16, default="")  # a company's own server: XOAUTH2 or OAUTHBEARER
    scopes = TextField(default="")  # a company's own server: the scopes to ask for, space-separated
    secret_context = CharField(max_length=64, default=new_context)
    updated_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "oauth_app"

    @property
    def has_client_secret(self):
        return bool(self.client_secret)


class MailboxGrant(SecretColumns, BaseModel):
    """What a person's consent at the provider gave: tokens for one identity, bound to one mailbox.

    Made by the form's sign-in before the mailbox exists (``mailbox`` empty, ``employee`` and ``form_key`` say
    whose form); saving the form binds it. ``needs_reconnect``: the provider no longer honours it.
    """

    SECRET_FIELDS = ("access_token", "refresh_token")

    mailbox = ForeignKeyField(Mailbox, null=True, unique=True, backref="oauth_grants", on_delete="CASCADE")
    employee = ForeignKeyField(Employee, null=True, backref="+", on_delete="CASCADE")
    form_key = CharField(max_length=64, null=True, unique=True)
    provider = CharField(max_length=32)
    identity = CharField(max_length=FIELD_MAX)  # the address the provider says signed in
    sasl = CharField(max_length=16, default="XOAUTH2")
    access_token = TextField(default="")  # Fernet ciphertext bound to secret_context
    refresh_token = TextField(default="")  # Fernet ciphertext bound to secret_context
    expires_at = DateTimeField(null=True)
    lifetime = IntegerField(default=0)  # seconds the current access token was issued for
    refreshes = IntegerField(default=0)  # how many times the portal has refreshed it
    needs_reconnect = BooleanField(default=False)
    reconnect_reason = TextField(default="")  # the provider's error code and words, never a token
    secret_context = CharField(max_length=64, default=new_context)
    created_at = DateTimeField(default=utcnow)
    refreshed_at = DateTimeField(null=True)
    refreshing_until = DateTimeField(null=True)  # a process is asking the provider for new tokens until then

    class Meta:
        table_name = "mailbox_grant"

    def expiring(self, now, margin_share=0.2, margin_max=300):
        """Whether the access token ends within a fifth of its lifetime (at most five minutes) from ``now``."""
        if self.expires_at is None:
            return False
        margin = min(margin_max, max(1.0, self.lifetime * margin_share))
        return self.expires_at - datetime.timedelta(seconds=margin) <= now


class OAuthFlow(SecretColumns, BaseModel):
    """One trip to a provider's consent page: what the callback must find again, and what came back.

    ``id`` names it to the form (the form key); ``state`` goes to the provider. Used once; good for
    FLOW_MAX_AGE. The form's values are kept without any password.
    """

    SECRET_FIELDS = ("code_verifier",)

    id = CharField(max_length=64, primary_key=True)
    state = CharField(max_length=64, unique=True)
    employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
    provider = CharField(max_length=32)
    purpose = CharField(max_length=16, default="form")  # "form" | "reconnect"
    mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="CASCADE")
    nonce = CharField(max_length=64)
    code_verifier = TextField(default="")  # Fernet ciphertext bound to secret_context
    form_values = TextField(default="{}")  # JSON, passwords left out
    created_at = DateTimeField(default=utcnow, index=True)
    used_at = DateTimeField(null=True)
    identity = CharField(max_length=FIELD_MAX, default="")  # who signed in, once back
    error = CharField(max_length=64, default="")  # the provider's error code, once back
    error_description = TextField(default="")
    secret_context = CharField(max_length=64, default=new_context)

    class Meta:
        table_name = "oauth_flow"
