"""A mailbox counts the sign-ins its provider refused in a row, and says why the queue paused it."""
from peewee import IntegerField, TextField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(
        migrator.add_column("mailbox", "sign_in_failures", IntegerField(default=0)),
        migrator.add_column("mailbox", "paused_problem", TextField(default="")),
        migrator.add_column("mailbox", "paused_reply", TextField(default="")),
    )
