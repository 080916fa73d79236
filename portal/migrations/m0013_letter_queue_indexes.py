"""The letter tables' indexes fitted to the queries that read them, so storing a letter writes fewer pages.

Storing one letter wrote sixteen pages to the WAL, most of them index leaves: every column
with `index=True` took an entry, even the ones that are empty until the letter is sent
(sent_at, lease_token, a recipient's accepted_at) or never set (a letter made without a submit token).
Partial indexes on those leave a new letter out of them; the queue's claim and the Outbox's
state filter read one (state, next_attempt_at) index instead of two, and a mailbox's pass
reads (mailbox_id, state, next_attempt_at) instead of every letter the mailbox ever sent.
PostgreSQL and SQLite both take partial indexes, and use them for `column = ?` and `>= ?`.
"""

DROPPED = ("letter_mailbox_id", "letter_state", "letter_next_attempt_at", "letter_sent_at", "letter_lease_token",
           "letter_submit_token", "letter_recipient_address", "letter_recipient_accepted_at")

CREATED = (
    # The claim: state IN ('queued', 'deferred') AND next_attempt_at <= now, or state = 'sending'; Outbox filters.
    "CREATE INDEX letter_state_due ON letter (state, next_attempt_at)",
    # The same for one mailbox's pass (a wake-up after New letter), and the mailbox's letters in the Outbox.
    "CREATE INDEX letter_mailbox_due ON letter (mailbox_id, state, next_attempt_at)",
    # The mailbox's sending limit: what it sent in the last minute.
    "CREATE INDEX letter_mailbox_sent ON letter (mailbox_id, sent_at) WHERE sent_at IS NOT NULL",
    # A claim batch read back by its lease.
    "CREATE INDEX letter_lease ON letter (lease_token) WHERE lease_token IS NOT NULL",
    # A double submit of the New letter form makes one letter.
    "CREATE UNIQUE INDEX letter_submit ON letter (submit_token) WHERE submit_token IS NOT NULL",
    # The per-recipient limit: what each address received in the last ten minutes (its only reader).
    "CREATE INDEX letter_recipient_accepted ON letter_recipient (address, accepted_at) WHERE accepted_at IS NOT NULL",
)


def upgrade(db, migrator):
    for name in DROPPED:
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    for statement in CREATED:
        db.execute_sql(statement)
