"""Replies get a read mark: the Replies page marks what is new, and the navigation counts it."""
from peewee import DateTimeField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(
        migrator.add_column("reply", "read_at", DateTimeField(null=True)),
        migrator.add_index("reply", ("read_at",), False),
    )
