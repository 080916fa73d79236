"""What happened to letters and mailboxes, said once, for whoever needs to know. No Flask here.

The code that makes a thing happen sends the signal after its transaction commits; the
notification centre, the webhooks and the health record connect to the signals they care
about, so the queue, the reply fetcher and the health checks do not import any of them.
Signals are blinker's (the library Flask's own signals use); each receives the sender
object named in its comment, and keyword arguments only.
"""
from blinker import Namespace

_events = Namespace()

#: A letter's last recipient was accepted. Sender: the Letter.
letter_sent = _events.signal("letter-sent")
#: A letter failed for good (refused, gave up, cancelled by the queue). Sender: the Letter; ``problem``.
letter_failed = _events.signal("letter-failed")
#: A delivery status notification named some of a letter's recipients. Sender: the Letter; ``recipients``.
letter_bounced = _events.signal("letter-bounced")
#: A reply to a letter was stored. Sender: the Reply.
reply_received = _events.signal("reply-received")
#: The portal or a person paused a mailbox. Sender: the Mailbox; ``problem`` (code or ""), ``by`` (Employee or None).
mailbox_paused = _events.signal("mailbox-paused")
#: A mailbox needs its owner's attention (a failed check, a grant to reconnect, a certificate about to expire).
#: Sender: the Mailbox; ``problem`` (a catalogue code).
mailbox_needs_attention = _events.signal("mailbox-needs-attention")
#: A mailbox works again (a passing check or test, a reconnect, resumed by a person). Sender: the Mailbox.
mailbox_recovered = _events.signal("mailbox-recovered")
#: Someone was given the use of a mailbox. Sender: the Mailbox; ``employee``.
mailbox_assigned = _events.signal("mailbox-assigned")
#: A mailbox still signs in with a password its provider stops taking within WARN_DAYS (or already refuses): sent by
#: every health check of it, so a receiver acts once per mailbox. Sender: the Mailbox; ``ending`` (a
#: portal.password_ending.PasswordEnding).
mailbox_password_ending = _events.signal("mailbox-password-ending")
