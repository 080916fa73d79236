"""The one base model every table subclasses."""
import datetime

from peewee import Model

from portal.db import database
from portal.secret_box import active_box


def utcnow():
    """Naive UTC now, the form every timestamp is stored in."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SecretColumns:
    """Secret columns stored encrypted for their own row (the row's ``secret_context``), like mailbox passwords."""

    SECRET_FIELDS = ()

    def set_secret(self, field, plaintext, box=None):
        if field not in self.SECRET_FIELDS:
            raise ValueError(f"{field} is not a secret field")
        setattr(self, field, (box or active_box()).encrypt(plaintext or "", self.secret_context))

    def secret(self, field, box=None):
        """The plaintext; SecretError if the ciphertext belongs to another row or no key opens it."""
        if field not in self.SECRET_FIELDS:
            raise ValueError(f"{field} is not a secret field")
        return (box or active_box()).decrypt(getattr(self, field), self.secret_context)
