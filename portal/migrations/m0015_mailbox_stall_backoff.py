"""A mailbox whose server stalled a send pass waits on its own until ``stalled_until``."""
from peewee import DateTimeField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(migrator.add_column("mailbox", "stalled_until", DateTimeField(null=True)))
