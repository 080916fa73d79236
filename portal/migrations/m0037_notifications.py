"""The notification centre: each person's entries (read or not, e-mailed or not) and their choices per kind."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class Letter(BaseModel):
        class Meta:
            table_name = "letter"

    class Mailbox(BaseModel):
        class Meta:
            table_name = "mailbox"

    class Notification(BaseModel):
        recipient = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
        kind = CharField(max_length=32)
        letter = ForeignKeyField(Letter, null=True, backref="+", on_delete="CASCADE")
        mailbox = ForeignKeyField(Mailbox, null=True, backref="+", on_delete="CASCADE")
        about = CharField(max_length=1020, default="")
        detail = CharField(max_length=255, default="")
        target = CharField(max_length=64, default="")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        read_at = DateTimeField(null=True)
        mail_state = CharField(max_length=8, default="")
        mail_letter = ForeignKeyField(Letter, null=True, backref="+", on_delete="SET NULL")
        mailed_at = DateTimeField(null=True)

        class Meta:
            table_name = "notification"

    Notification.add_index(Notification.index(Notification.recipient, Notification.read_at,
                                              name="notification_unread"))
    Notification.add_index(Notification.index(Notification.mail_state, Notification.recipient, Notification.kind,
                                              name="notification_mail_due"))

    class NotificationPreference(BaseModel):
        employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
        kind = CharField(max_length=32)
        by_email = BooleanField(default=False)

        class Meta:
            table_name = "notification_preference"
            indexes = ((("employee", "kind"), True),)

    db.create_tables([Notification, NotificationPreference])
