"""Webhooks: the endpoints an API token's systems registered, each event's delivery to one, and every try."""
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from portal.models.api import ApiToken
from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee
from portal.secret_box import active_box, new_context

URL_MAX = 2000
# pending -> delivered | failed (gave up after retries) | cancelled (the endpoint was disabled or deleted meanwhile)
DELIVERY_STATES = ("pending", "delivered", "failed", "cancelled")


class WebhookEndpoint(BaseModel):
    """A URL that hears some of the portal's events with the rights of the API token it belongs to."""

    token = ForeignKeyField(ApiToken, backref="webhooks", on_delete="CASCADE")
    url = CharField(max_length=URL_MAX)
    events = CharField(max_length=255)  # event names, space-separated
    secret = TextField()  # Fernet ciphertext bound to secret_context; shown once, at creation
    secret_context = CharField(max_length=64, default=new_context)
    enabled = BooleanField(default=True)
    disabled_reason = CharField(max_length=32, default="")  # "" | "person" | "failing"
    disabled_detail = CharField(max_length=500, default="")  # the last error when the portal disabled it
    failing_since = DateTimeField(null=True)  # the first failed try since the last success
    created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    @property
    def event_names(self):
        return self.events.split()

    def set_secret(self, plaintext, box=None):
        """Store the signing secret encrypted for this row."""
        self.secret = (box or active_box()).encrypt(plaintext, self.secret_context)

    def signing_secret(self, box=None):
        """The signing secret's plaintext; SecretError if the configured keys cannot open it."""
        return (box or active_box()).decrypt(self.secret, self.secret_context)


class WebhookDelivery(BaseModel):
    """One event for one endpoint: its body is fixed when the event happens, stored before any try."""

    endpoint = ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    delivery_id = CharField(max_length=36, unique=True)  # X-Portal-Delivery: the same on every retry
    event = CharField(max_length=32)
    body = TextField()
    state = CharField(max_length=16, default="pending")
    attempts = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    next_attempt_at = DateTimeField(default=utcnow)
    lease_expires_at = DateTimeField(null=True)  # a worker is trying it until then
    finished_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),)


class WebhookAttempt(BaseModel):
    """One try of a delivery: what the endpoint answered (or why nothing did), and how long it took."""

    delivery = ForeignKeyField(WebhookDelivery, backref="tries", on_delete="CASCADE")
    number = IntegerField()
    started_at = DateTimeField(default=utcnow)
    status_code = IntegerField(null=True)
    duration_ms = IntegerField(default=0)
    error = CharField(max_length=500, default="")  # "" when the endpoint answered 2xx

    @property
    def succeeded(self):
        return not self.error
