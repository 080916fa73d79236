"""A grant's refresh is claimed with a short lease (``refreshing_until``) instead of holding the database's write
lock across the provider's answer."""
from peewee import DateTimeField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(migrator.add_column("mailbox_grant", "refreshing_until", DateTimeField(null=True)))
