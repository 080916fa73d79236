"""Personal API tokens: what the systems around the portal sign in with, stored only as a hash."""
from peewee import CharField, DateTimeField, ForeignKeyField

from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee

TOKEN_NAME_MAX = 100


class ApiToken(BaseModel):
    """A bearer token acting with its owner's rights; the token itself is shown once and never stored."""

    owner = ForeignKeyField(Employee, backref="api_tokens", on_delete="CASCADE")
    name = CharField(max_length=TOKEN_NAME_MAX)
    token_hash = CharField(max_length=64, unique=True)  # sha256 hex of the whole token
    hint = CharField(max_length=16, default="")  # the token's first characters, to tell tokens apart
    created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)
    revoked_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")

    @property
    def revoked(self):
        return self.revoked_at is not None

    def __str__(self):
        return f"{self.name} ({self.hint}…)"
