"""Letters to external contacts: composing, the sending queue, replies and bounces.

`compose` builds and stores a letter (`queue_letter` is the use case the page and the API call);
`queue` runs a send pass over `claims` (leases and the "data" mark), `deliver` (one SMTP
transaction), `outcomes` (recording, retry, cancel) and `limits` (sending limits); `replies`
fetches answers over POP3/IMAP and hands bounces to `bounces`; `worker` wires them to huey.
None of them but `worker` and `cli` imports Flask.
"""
