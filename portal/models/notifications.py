"""The notification centre: what the portal told each person, whether they read it, and how they want to hear."""
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField

from portal.models.base import BaseModel, utcnow
from portal.models.letters import Letter
from portal.models.mailboxes import Mailbox
from portal.models.people import FIELD_MAX, Employee

# What the e-mail side of an entry is: "" the portal only, "due" waiting for the next e-mail of its kind,
# "mailed" carried by one (``mail_letter``).
MAIL_STATES = ("", "due", "mailed")


class Notification(BaseModel):
    """One entry of a person's notification centre: what happened, about what, and where to act."""

    recipient = ForeignKeyField(Employee, backref="notifications", on_delete="CASCADE")
    kind = CharField(max_length=32)
    letter = ForeignKeyField(Letter, null=True, backref="+", on_delete="CASCADE")
    mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="CASCADE")
    about = CharField(max_length=FIELD_MAX * 4, default="")  # the letter's subject or the mailbox's address
    detail = CharField(max_length=FIELD_MAX, default="")  # a problem code, a reply's sender, who paused it
    target = CharField(max_length=64, default="")  # where to act: "letter:12", "reply:5", "mailbox:3"
    created_at = DateTimeField(default=utcnow)
    read_at = DateTimeField(null=True)
    mail_state = CharField(max_length=8, default="")
    mail_letter = ForeignKeyField(Letter, null=True, backref="+", on_delete="SET NULL")
    mailed_at = DateTimeField(null=True)

    @property
    def unread(self):
        return self.read_at is None


Notification.add_index(Notification.index(Notification.recipient, Notification.read_at, name="notification_unread"))
Notification.add_index(Notification.index(Notification.mail_state, Notification.recipient, Notification.kind,
                                          name="notification_mail_due"))


class NotificationPreference(BaseModel):
    """A person's choice for one kind of notification: in the portal only, or also by e-mail."""

    employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
    kind = CharField(max_length=32)
    by_email = BooleanField(default=False)

    class Meta:
        indexes = ((("employee", "kind"), True),)
