"""Letters to external contacts: composing, the sending queue, and fetching replies.

`compose` builds and stores a letter, `queue` sends due letters (state machine, retries,
limits, one SMTP connection per mailbox), `replies` fetches answers over POP3/IMAP, and
`worker` wires them to huey. None of them but `worker` and `cli` imports Flask.
"""
