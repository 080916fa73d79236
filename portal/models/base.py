"""The one base model every table subclasses."""
import datetime

from peewee import Model

from portal.db import database


def utcnow():
    """Naive UTC now, the form every timestamp is stored in."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False
