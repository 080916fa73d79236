"""The sending limits on their own: when each holds a letter back, and until when (no database, no server)."""
import datetime

from portal.letters.limits import MAILBOX_LIMIT, RECIPIENT_LIMIT, Limits
from portal.letters.queue import QueuePolicy

NOON = datetime.datetime(2026, 12, 6, 12, 0, 0)


def seconds(n):
    return datetime.timedelta(seconds=n)


def test_the_mailbox_limit_holds_the_letter_until_the_oldest_send_of_the_minute_leaves_the_window():
    policy = QueuePolicy(mailbox_per_minute=3, recipient_limit=0)
    limits = Limits(policy, [NOON - seconds(50), NOON - seconds(20), NOON - seconds(5)], {})

    reason, until = limits.hold_until(["a@example.com"], NOON)

    assert reason == MAILBOX_LIMIT and until == NOON + seconds(10.01)
    assert limits.hold_until(["a@example.com"], NOON + seconds(11)) is None  # the first send left the window


def test_a_letter_counted_now_takes_the_mailbox_to_its_limit():
    limits = Limits(QueuePolicy(mailbox_per_minute=2, recipient_limit=0), [NOON - seconds(30)], {})
    assert limits.hold_until(["a@example.com"], NOON) is None
    limits.count(["a@example.com"], NOON)
    assert limits.hold_until(["b@example.com"], NOON + seconds(1))[0] == MAILBOX_LIMIT


def test_the_recipient_limit_holds_only_letters_to_that_recipient_until_the_window_allows():
    policy = QueuePolicy(mailbox_per_minute=0, recipient_limit=2, recipient_window=600)
    limits = Limits(policy, [], {"busy@example.com": [NOON - seconds(500), NOON - seconds(100)]})

    assert limits.hold_until(["calm@example.com"], NOON) is None
    reason, until = limits.hold_until(["calm@example.com", "busy@example.com"], NOON)
    assert reason == RECIPIENT_LIMIT and until == NOON + seconds(100.01)


def test_no_limit_holds_anything_when_both_are_off():
    limits = Limits(QueuePolicy(mailbox_per_minute=0, recipient_limit=0), [NOON] * 100, {"a@example.com": [NOON] * 100})
    assert limits.hold_until(["a@example.com"], NOON) is None
