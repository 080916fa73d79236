"""The Outbox's order as indexes: newest first, for everyone (admins) and for one author (employees, the filter).

The Outbox lists `ORDER BY created_at DESC, id DESC LIMIT 25`. Without an index for that order
every load and every poll sorted the whole letter table: 519 ms at 300,000 letters
(bench/bench_deploy.py). Read backwards, these indexes give the first page straight away.
"""

CREATED = (
    "CREATE INDEX letter_outbox ON letter (created_at, id)",
    "CREATE INDEX letter_outbox_author ON letter (author_id, created_at, id)",
)


def upgrade(db, migrator):
    for statement in CREATED:
        db.execute_sql(statement)
