"""One mailbox form submission makes at most one mailbox: the form's token is kept on what it made."""
from peewee import CharField
from playhouse.migrate import migrate


def upgrade(db, migrator):
    migrate(migrator.add_column("mailbox", "submit_token", CharField(max_length=64, null=True)))
    db.execute_sql("CREATE UNIQUE INDEX mailbox_submit ON mailbox (submit_token) WHERE submit_token IS NOT NULL")
