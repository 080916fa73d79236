"""Single sign-on's table: which employee an OpenID Connect identity (issuer + subject) is, once linked."""
from peewee import CharField, DateTimeField, ForeignKeyField

from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee


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
