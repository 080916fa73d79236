"""Webhooks: endpoints per API token, their deliveries (stored before sending) and every try."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class ApiToken(BaseModel):
        class Meta:
            table_name = "api_token"

    class WebhookEndpoint(BaseModel):
        token = ForeignKeyField(ApiToken, backref="webhooks", on_delete="CASCADE")
        url = CharField(max_length=2000)
        events = CharField(max_length=255)
        secret = TextField()
        secret_context = CharField(max_length=64)
        enabled = BooleanField(default=True)
        disabled_reason = CharField(max_length=32, default="")
        disabled_detail = CharField(max_length=500, default="")
        failing_since = DateTimeField(null=True)
        created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            table_name = "webhook_endpoint"

    class WebhookDelivery(BaseModel):
        endpoint = ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
        delivery_id = CharField(max_length=36, unique=True)
        event = CharField(max_length=32)
        body = TextField()
        state = CharField(max_length=16, default="pending")
        attempts = IntegerField(default=0)
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        next_attempt_at = DateTimeField(default=datetime.datetime.utcnow)
        lease_expires_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)

        class Meta:
            table_name = "webhook_delivery"
            indexes = ((("state", "next_attempt_at"), False),)

    class WebhookAttempt(BaseModel):
        delivery = ForeignKeyField(WebhookDelivery, backref="tries", on_delete="CASCADE")
        number = IntegerField()
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        status_code = IntegerField(null=True)
        duration_ms = IntegerField(default=0)
        error = CharField(max_length=500, default="")

        class Meta:
            table_name = "webhook_attempt"

    db.create_tables([WebhookEndpoint, WebhookDelivery, WebhookAttempt])
