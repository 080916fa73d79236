"""The Outbox's filters as indexes: newest first within one state, one project or one address.

m0051 indexed the Outbox's order. A filter on a state, project or address few letters have still read that
index backwards through every other letter to fill a page (at 300,000 letters, "Cancelled" with none read all
300,000 for an empty page, and so did its count). Each index below gives a filtered page, and its capped
count, straight away.
"""

CREATED = (
    "CREATE INDEX letter_outbox_state ON letter (state, created_at, id)",
    "CREATE INDEX letter_outbox_project ON letter (project_id, created_at, id)",
    "CREATE INDEX letter_outbox_mailbox ON letter (mailbox_id, created_at, id)",
)


def upgrade(db, migrator):
    for statement in CREATED:
        db.execute_sql(statement)
