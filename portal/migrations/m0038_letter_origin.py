"""The portal's own mail (notifications, invitations) travels the letters queue marked as such: "portal"."""
from peewee import CharField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(migrator.add_column("letter", "origin", CharField(max_length=8, default="")))
