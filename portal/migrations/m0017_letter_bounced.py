"""A letter counts the recipients a bounce came back for (a recipient's own status says "bounced")."""
from peewee import IntegerField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(migrator.add_column("letter", "bounced", IntegerField(default=0)))
