"""Webhooks: the portal tells the systems around it what happened, signed, through the queue. No Flask here.

An API token's owner registers endpoints (a URL, the events it wants, a secret shown once). When a
domain event is sent (portal.events), a receiver here stores one delivery per endpoint whose token's
owner may see the thing, with its JSON body fixed then, before anything is sent; then it rings the
doorbell the app installed, which enqueues a huey task per delivery. The task claims the delivery
(a lease, so a task and the sweep never send it twice at once), POSTs it through the connection
guard (resolved once, connected to the checked address, no redirects, a deadline), and writes the
try to the delivery log. A failed try is retried with a doubling back-off; a delivery older than a
day gives up, and an endpoint that has failed for a day is disabled with the reason.

Signature: ``X-Portal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``;
a receiver refuses a timestamp older than REPLAY_WINDOW.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from huey import crontab

from portal import events
from portal import http as web
from portal.db import database, locked, writing
from portal.mail import guard
from portal.mail.errors import GuardRefused, HostNotFound
from portal.mail.settings import AllowedHost, MailConfig
from portal.models import ApiToken, Employee, Letter, Mailbox, utcnow
from portal.models.webhooks import URL_MAX, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from portal.secret_box import SecretError

log = logging.getLogger("portal.webhooks")

LETTER_SENT, LETTER_FAILED, LETTER_BOUNCED = "letter.sent", "letter.failed", "letter.bounced"
REPLY_RECEIVED, MAILBOX_PAUSED = "reply.received", "mailbox.paused"
#: What an endpoint may ask for, in the order the form lists them.
EVENTS = (LETTER_SENT, LETTER_FAILED, LETTER_BOUNCED, REPLY_RECEIVED, MAILBOX_PAUSED)
#: What "Send a test event" sends; every endpoint gets it, whatever it asked for.
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"
REPLAY_WINDOW = 300  # seconds: a receiver refuses a signature whose timestamp is further from its clock
DEFAULT_PORTS = web.WEB_PORTS
ANSWER_KEPT = 64 * 1024  # bytes of a receiver's answer read (and dropped) so that it can finish cleanly
LOG_LENGTH = 10  # tries shown per endpoint on My profile
KEPT_FOR = datetime.timedelta(days=30)  # finished deliveries and their tries are forgotten after this
SWEEP_GRACE = datetime.timedelta(seconds=30)  # a due delivery's own task runs first; the sweep takes the lost ones

# What a failed try stores as its error (a code, then ": " and details for the admin).
NOT_ALLOWED, NO_SUCH_HOST, TIMEOUT, UNREACHABLE = "not_allowed", "no_such_host", "timeout", "unreachable"
TLS_FAILED, REDIRECT, HTTP_STATUS, SECRET_UNREADABLE = "tls", "redirect", "http_status", "secret_unreadable"


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are sent: where they may go, how long a try may take, how long the portal keeps trying."""

    allowed_hosts: tuple[AllowedHost, ...] = ()
    allowed_ports: frozenset[int] = DEFAULT_PORTS
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 20.0  # one whole try: look-up, connect, TLS, request and answer
    retry_base: float = 30.0  # seconds before the first retry, doubled per try
    retry_max: float = 3600.0
    give_up_after: float = 24 * 3600.0  # a delivery this old is not tried again
    disable_after: float = 24 * 3600.0  # an endpoint failing this long is disabled
    ca_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", tuple(
            entry if isinstance(entry, AllowedHost) else AllowedHost.parse(entry) for entry in self.allowed_hosts))
        object.__setattr__(self, "allowed_ports", frozenset(int(p) for p in self.allowed_ports))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "WebhookSettings":
        """Read PORTAL_WEBHOOK_* from a plain mapping (e.g. Flask's config or the worker's)."""
        values: dict[str, Any] = {}
        numbers = {"connect_timeout": "PORTAL_WEBHOOK_CONNECT_TIMEOUT", "read_timeout": "PORTAL_WEBHOOK_READ_TIMEOUT",
                   "deadline": "PORTAL_WEBHOOK_DEADLINE", "retry_base": "PORTAL_WEBHOOK_RETRY_BASE",
                   "retry_max": "PORTAL_WEBHOOK_RETRY_MAX", "give_up_after": "PORTAL_WEBHOOK_GIVE_UP_AFTER",
                   "disable_after": "PORTAL_WEBHOOK_DISABLE_AFTER"}
        for attribute, key in numbers.items():
            if mapping.get(key) not in (None, ""):
                try:
                    values[attribute] = float(mapping[key])
                except (TypeError, ValueError):
                    raise ValueError(f"{key} must be a number of seconds") from None
                if not values[attribute] > 0:
                    raise ValueError(f"{key} must be positive")
        if mapping.get("PORTAL_WEBHOOK_ALLOWED_HOSTS") not in (None, ""):
            values["allowed_hosts"] = tuple(_items(mapping["PORTAL_WEBHOOK_ALLOWED_HOSTS"]))
        if mapping.get("PORTAL_WEBHOOK_ALLOWED_PORTS") not in (None, ""):
            try:
                values["allowed_ports"] = frozenset(int(p) for p in _items(mapping["PORTAL_WEBHOOK_ALLOWED_PORTS"]))
            except ValueError:
                raise ValueError("PORTAL_WEBHOOK_ALLOWED_PORTS must be a comma-separated list of ports") from None
        if mapping.get("PORTAL_WEBHOOK_CA_FILE"):
            values["ca_file"] = str(mapping["PORTAL_WEBHOOK_CA_FILE"])
        return cls(**values)

    def web_access(self) -> web.WebAccess:
        """Where webhooks may go: the web ports, PORTAL_WEBHOOK_ALLOWED_HOSTS; an answer's body is not kept."""
        return web.WebAccess(allowed_hosts=self.allowed_hosts, allowed_ports=self.allowed_ports,
                             connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                             deadline=self.deadline, max_bytes=ANSWER_KEPT, ca_file=self.ca_file)

    def guard_config(self) -> MailConfig:
        """The connection guard's settings for webhooks: the web ports, PORTAL_WEBHOOK_ALLOWED_HOSTS."""
        return self.web_access().guard_config()

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones."""
        return min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))


def _items(value: Any) -> list:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


# ---------------------------------------------------------------- signatures

def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Portal-Signature header for a body sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), str(int(timestamp)).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, window: int = REPLAY_WINDOW) -> bool:
    """Whether a signature header is this body's, signed with this secret within the replay window."""
    parts = dict(part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    timestamp = int(parts["t"])
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts['v1']}")


def new_secret() -> str:
    """A fresh signing secret (shown once, stored encrypted)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# ---------------------------------------------------------------- endpoints

class EndpointInvalid(ValueError):
    """An endpoint the portal will not store: ``field`` names the form field, ``code`` what is wrong."""

    def __init__(self, field: str, code: str):
        super().__init__(f"{field}: {code}")
        self.field, self.code = field, code


class EndpointNotFound(LookupError):
    """No such endpoint, or one the person may not see: the two are told apart by nobody."""


def clean_url(url: str, settings: WebhookSettings, *, resolver: guard.Resolver | None = None) -> str:
    """A URL webhooks may be sent to: http(s), a host, no credentials, and an address the guard allows."""
    url = (url or "").strip()
    if not url:
        raise EndpointInvalid("url", "missing")
    if len(url) > URL_MAX or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise EndpointInvalid("url", "bad_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointInvalid("url", "bad_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointInvalid("url", "bad_url")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise EndpointInvalid("url", "bad_url")
    try:
        guard.resolve_destination(parts.hostname, port or _default_port(parts.scheme), settings.guard_config(),
                                  resolver=resolver)
    except GuardRefused:
        raise EndpointInvalid("url", NOT_ALLOWED) from None
    except HostNotFound:
        raise EndpointInvalid("url", NO_SUCH_HOST) from None
    return url


def clean_events(names: Iterable[str]) -> list[str]:
    """The events asked for, in the catalogue's order; at least one."""
    wanted = set(names or ())
    chosen = [name for name in EVENTS if name in wanted]
    if not chosen or wanted - set(EVENTS):
        raise EndpointInvalid("events", "no_events")
    return chosen


def create_endpoint(token: ApiToken, url: str, event_names: Iterable[str], *, actor: Employee,
                    settings: WebhookSettings, resolver: guard.Resolver | None = None):
    """Register an endpoint for a live token; returns (WebhookEndpoint, the secret) - the secret's only showing."""
    if token.revoked:
        raise EndpointInvalid("token", "revoked")
    chosen = clean_events(event_names)
    url = clean_url(url, settings, resolver=resolver)
    secret = new_secret()
    endpoint = WebhookEndpoint(token=token.id, url=url, events=" ".join(chosen), created_by=actor.id)
    endpoint.set_secret(secret)
    endpoint.save()
    return endpoint, secret


def _endpoints_with_tokens():
    return (WebhookEndpoint.select(WebhookEndpoint, ApiToken, Employee)
            .join(ApiToken, on=(WebhookEndpoint.token == ApiToken.id))
            .join(Employee, on=(ApiToken.owner == Employee.id)))


def endpoints_of(owner: Employee) -> list[WebhookEndpoint]:
    """The endpoints of an employee's tokens, oldest first (their tokens loaded)."""
    return list(_endpoints_with_tokens().where(ApiToken.owner == owner.id)
                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))


def endpoint_for(actor: Employee, endpoint_id: Any) -> WebhookEndpoint:
    """The endpoint with this id if its token is the actor's or the actor is an admin; else EndpointNotFound."""
    try:
        endpoint = _endpoints_with_tokens().where(WebhookEndpoint.id == int(endpoint_id)).get()
    except (WebhookEndpoint.DoesNotExist, TypeError, ValueError):
        raise EndpointNotFound(endpoint_id) from None
    if not (actor.is_admin or endpoint.token.owner_id == actor.id):
        raise EndpointNotFound(endpoint_id)
    return endpoint


def set_enabled(endpoint: WebhookEndpoint, enabled: bool) -> WebhookEndpoint:
    """Enable an endpoint (its failure count starts again) or disable it (what waits for it is cancelled)."""
    with writing():
        if enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_detail = True, "", ""
            endpoint.failing_since = None
        else:
            endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_detail = False, "person", ""
            _cancel_pending(endpoint.id)
        endpoint.save(only=[WebhookEndpoint.enabled, WebhookEndpoint.disabled_reason,
                            WebhookEndpoint.disabled_detail, WebhookEndpoint.failing_since])
    return endpoint


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their log."""
    endpoint.delete_instance(recursive=True)


def _cancel_pending(endpoint_id: int, now: datetime.datetime | None = None) -> None:
    WebhookDelivery.update(state="cancelled", finished_at=now or utcnow(), lease_expires_at=None).where(
        (WebhookDelivery.endpoint == endpoint_id) & (WebhookDelivery.state == "pending")).execute()


def rotate_secrets(box) -> int:
    """Re-encrypt every endpoint's secret with the newest key (inside the caller's transaction); the count."""
    count = 0
    for endpoint in locked(WebhookEndpoint.select().order_by(WebhookEndpoint.id)):
        try:
            rotated = box.rotate(endpoint.secret, endpoint.secret_context)
        except SecretError as error:
            raise SecretError(f"webhook {endpoint.id}: {error}") from None
        WebhookEndpoint.update(secret=rotated).where(WebhookEndpoint.id == endpoint.id).execute()
        count += 1
    return count


# ---------------------------------------------------------------- events in: deliveries stored, doorbell rung

_doorbell: Callable[[int], None] | None = None


def install_doorbell(ring: Callable[[int], None] | None) -> None:
    """What is called with each new delivery's id, after it is stored (the app's: enqueue its huey task)."""
    global _doorbell
    _doorbell = ring


def ring(delivery_ids: Iterable[int]) -> None:
    """Ask for these deliveries to be tried now; the minute's sweep covers a queue that is down."""
    if _doorbell is None:
        return
    for delivery_id in delivery_ids:
        try:
            _doorbell(delivery_id)
        except Exception:
            log.exception("could not enqueue webhook delivery %s; the sweep will send it", delivery_id)


def queue_event(event: str, may_see: Callable[[Employee], bool], data_for: Callable[[Employee], dict], *,
                now: datetime.datetime | None = None) -> list[int]:
    """Store a delivery of ``event`` for every enabled endpoint that asked for it and whose token's owner may
    see it (``may_see``), with the body ``data_for`` that owner; ring the doorbell; the new deliveries' ids."""
    # Every sent letter asks: first the narrow question (a small query to build and answer), the joined one only
    # when some endpoint wants the event. Building the three-table select per letter cost the worker 0.7 ms.
    wanted = [endpoint_id for endpoint_id, names in WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.events)
              .where(WebhookEndpoint.enabled).tuples() if event in names.split()]
    if not wanted:
        return []
    endpoints = list(_endpoints_with_tokens()
                     .where(WebhookEndpoint.id.in_(wanted) & ApiToken.revoked_at.is_null() & Employee.active)
                     .order_by(WebhookEndpoint.id))
    if not endpoints:
        return []
    now = now or utcnow()
    # Read before the write transaction, so SQLite's write lock is held only for the inserts.
    data_by_owner: dict[int, dict | None] = {}
    for endpoint in endpoints:
        owner = endpoint.token.owner
        if owner.id not in data_by_owner:
            data_by_owner[owner.id] = data_for(owner) if may_see(owner) else None
    made = []
    with writing():
        for endpoint in endpoints:
            data = data_by_owner[endpoint.token.owner.id]
            if data is not None:
                made.append(_store_delivery(endpoint, event, data, now).id)
    ring(made)
    return made


def _store_delivery(endpoint: WebhookEndpoint, event: str, data: dict, now: datetime.datetime) -> WebhookDelivery:
    delivery_id = str(uuid.uuid4())
    body = {"id": delivery_id, "event": event, "occurred_at": _timestamp(now), "data": data}
    return WebhookDelivery.create(endpoint=endpoint.id, delivery_id=delivery_id, event=event, created_at=now,
                                  next_attempt_at=now, body=json.dumps(body, ensure_ascii=False))


def send_test_event(endpoint: WebhookEndpoint, *, actor: Employee) -> WebhookDelivery:
    """Store a ``webhook.test`` delivery for this endpoint (whatever it asked for, even disabled); ring the doorbell."""
    now = utcnow()
    data = {"endpoint": {"id": endpoint.id, "url": endpoint.url, "events": endpoint.event_names},
            "sent_by": actor.email}
    with writing():
        delivery = _store_delivery(endpoint, TEST_EVENT, data, now)
    ring([delivery.id])
    return delivery


def _timestamp(value: datetime.datetime) -> str:
    from portal.api.shapes import timestamp

    return timestamp(value)


def _language(owner: Employee) -> str:
    return owner.language or "en"


def _letter_event(event: str, letter: Letter, extra: dict | None = None) -> list[int]:
    from portal.api.shapes import letter_json

    def data_for(owner):  # read only when some endpoint wants the event: a sent letter costs one look, not two
        fresh = Letter.get_or_none(Letter.id == letter.id)
        return None if fresh is None else {"letter": letter_json(fresh, _language(owner)), **(extra or {})}

    return queue_event(event, lambda owner: Letter.visible_to(owner).where(Letter.id == letter.id).exists(), data_for)


def _may_use_or_manage(owner: Employee, mailbox: Mailbox) -> bool:
    from portal.mailboxes import may_manage
    from portal.sender import employee_row, load_candidate

    # open_to, not may_see: a paused company mailbox is still one its users hear about.
    return may_manage(owner, mailbox) or load_candidate(mailbox).open_to(employee_row(owner))


def on_letter_sent(letter, **_):
    """letter_sent -> ``letter.sent``."""
    _safely(LETTER_SENT, lambda: _letter_event(LETTER_SENT, letter))


def on_letter_failed(letter, problem="", **_):
    """letter_failed -> ``letter.failed``."""
    _safely(LETTER_FAILED, lambda: _letter_event(LETTER_FAILED, letter))


def on_letter_bounced(letter, recipients=(), **_):
    """letter_bounced -> ``letter.bounced`` with the addresses the bounce named."""
    _safely(LETTER_BOUNCED, lambda: _letter_event(LETTER_BOUNCED, letter, {"recipients": list(recipients)}))


def on_reply_received(reply, **_):
    """reply_received -> ``reply.received``: the reply as the letter's API answer shows it, and the letter."""
    from portal.api.shapes import letter_json

    def queue():
        letter = Letter.get_or_none(Letter.id == reply.letter_id)
        if letter is None:
            return []

        def data_for(owner):
            found = letter_json(letter, _language(owner))
            return {"reply": next((r for r in found["replies"] if r["id"] == reply.id), None), "letter": found}

        return queue_event(REPLY_RECEIVED, lambda owner: Letter.visible_to(owner).where(
            Letter.id == letter.id).exists(), data_for)

    _safely(REPLY_RECEIVED, queue)


def on_mailbox_paused(mailbox, problem="", by=None, **_):
    """mailbox_paused -> ``mailbox.paused``: to those who manage or may use the mailbox."""
    from portal.api.shapes import mailbox_json

    def queue():
        fresh = Mailbox.get_or_none(Mailbox.id == mailbox.id)
        if fresh is None:
            return []
        return queue_event(MAILBOX_PAUSED, lambda owner: _may_use_or_manage(owner, fresh), lambda owner: {
            "mailbox": mailbox_json(fresh, owner), "problem": problem or None,
            "paused_by": by.email if by is not None else None})

    _safely(MAILBOX_PAUSED, queue)


def _safely(event: str, queue: Callable[[], list]) -> None:
    # The queue, the fetcher and the pages that sent the signal have done their work: a webhook must not undo it.
    try:
        queue()
    except Exception:
        log.exception("could not store the webhook deliveries of a %s event", event)


_RECEIVERS = ((events.letter_sent, on_letter_sent), (events.letter_failed, on_letter_failed),
              (events.letter_bounced, on_letter_bounced), (events.reply_received, on_reply_received),
              (events.mailbox_paused, on_mailbox_paused))


def connect_receivers() -> None:
    """Listen to the domain events (connecting twice is connecting once)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver)


# ---------------------------------------------------------------- deliveries out

@dataclass(frozen=True)
class Outcome:
    """What one try of a delivery came to; ``retry_at`` when it is to be tried again."""

    state: str  # "delivered" | "pending" | "failed" | "cancelled"
    attempt: WebhookAttempt | None = None
    retry_at: datetime.datetime | None = None


class _Failed(Exception):
    def __init__(self, code: str, detail: str = "", status: int | None = None):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code, self.detail, self.status = code, detail, status


def post(url: str, body: bytes, headers: Mapping[str, str], settings: WebhookSettings, *,
         resolver: guard.Resolver | None = None) -> int:
    """POST ``body`` to ``url`` through the guard; the answer's status code (redirects are not followed). The
    answer's body is not read: a long one, or one cut short after the status, is still an answer."""
    return web.fetch("POST", url, settings.web_access(), body=body, headers=headers, resolver=resolver,
                     read_body=False).status


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _attempt(endpoint: WebhookEndpoint, delivery: WebhookDelivery, settings: WebhookSettings, box,
             resolver: guard.Resolver | None) -> int:
    """One POST of a delivery, signed now; the status code, or _Failed saying why there is none."""
    try:
        secret = endpoint.signing_secret(box)
    except SecretError:
        raise _Failed(SECRET_UNREADABLE) from None
    body = delivery.body.encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "mail-sender-portal webhooks",
               "X-Portal-Event": delivery.event, "X-Portal-Delivery": delivery.delivery_id,
               "X-Portal-Signature": sign(secret, int(time.time()), body)}
    try:
        return post(endpoint.url, body, headers, settings, resolver=resolver)
    except GuardRefused:
        raise _Failed(NOT_ALLOWED) from None
    except HostNotFound as error:
        raise _Failed(NO_SUCH_HOST, str(error)) from None
    except TimeoutError as error:  # the deadline's too
        raise _Failed(TIMEOUT, str(error)) from None
    except ssl.SSLError as error:
        raise _Failed(TLS_FAILED, getattr(error, "verify_message", "") or error.__class__.__name__) from None
    except (OSError, http.client.HTTPException) as error:
        raise _Failed(UNREACHABLE, str(error) or error.__class__.__name__) from None


def deliver(delivery_pk: int, settings: WebhookSettings, box=None, *, clock: Callable[[], datetime.datetime] = utcnow,
            resolver: guard.Resolver | None = None) -> Outcome | None:
    """Try one delivery if it is due and nobody else is trying it; record the try. None when not claimed."""
    now = clock()
    lease = datetime.timedelta(seconds=settings.deadline + 30)
    claimed = WebhookDelivery.update(attempts=WebhookDelivery.attempts + 1, lease_expires_at=now + lease).where(
        (WebhookDelivery.id == delivery_pk) & (WebhookDelivery.state == "pending")
        & (WebhookDelivery.next_attempt_at <= now)
        & (WebhookDelivery.lease_expires_at.is_null() | (WebhookDelivery.lease_expires_at < now))).execute()
    if not claimed:
        return None
    delivery = WebhookDelivery.get_by_id(delivery_pk)
    endpoint = _endpoints_with_tokens().where(WebhookEndpoint.id == delivery.endpoint_id).get()
    # A disabled endpoint still gets "Send a test event" (checking a fix before enabling it), nothing else.
    stopped = not endpoint.enabled and delivery.event != TEST_EVENT
    if stopped or endpoint.token.revoked or not endpoint.token.owner.active:
        WebhookDelivery.update(state="cancelled", finished_at=now, lease_expires_at=None).where(
            WebhookDelivery.id == delivery.id).execute()
        return Outcome("cancelled")
    started = time.monotonic()
    status, error = None, ""
    try:
        status = _attempt(endpoint, delivery, settings, box, resolver)
        if 300 <= status < 400:
            error = REDIRECT
        elif not 200 <= status < 300:
            error = HTTP_STATUS
    except _Failed as failed:
        error = str(failed)
    took = int((time.monotonic() - started) * 1000)
    return _record_try(endpoint, delivery, settings, now, status, error[:500], took)


def _record_try(endpoint, delivery, settings, now, status, error, took) -> Outcome:
    with writing():
        attempt = WebhookAttempt.create(delivery=delivery.id, number=delivery.attempts, started_at=now,
                                        status_code=status, duration_ms=took, error=error)
        this = WebhookDelivery.id == delivery.id
        if not error:
            WebhookDelivery.update(state="delivered", finished_at=now, lease_expires_at=None).where(this).execute()
            WebhookEndpoint.update(failing_since=None).where(WebhookEndpoint.id == endpoint.id).execute()
            return Outcome("delivered", attempt)
        WebhookEndpoint.update(failing_since=now).where(
            (WebhookEndpoint.id == endpoint.id) & WebhookEndpoint.failing_since.is_null()).execute()
        failing_since = WebhookEndpoint.select(WebhookEndpoint.failing_since).where(
            WebhookEndpoint.id == endpoint.id).scalar() or now
        if (now - failing_since).total_seconds() >= settings.disable_after:
            WebhookDelivery.update(state="failed", finished_at=now, lease_expires_at=None).where(this).execute()
            WebhookEndpoint.update(enabled=False, disabled_reason="failing", disabled_detail=_detail(status, error)
                                   ).where(WebhookEndpoint.id == endpoint.id).execute()
            _cancel_pending(endpoint.id, now)
            log.warning("webhook endpoint %s disabled: failing since %s (%s)", endpoint.id, failing_since, error)
            return Outcome("failed", attempt)
        if (now - delivery.created_at).total_seconds() >= settings.give_up_after:
            WebhookDelivery.update(state="failed", finished_at=now, lease_expires_at=None).where(this).execute()
            return Outcome("failed", attempt)
        retry_at = now + datetime.timedelta(seconds=settings.retry_delay(delivery.attempts))
        WebhookDelivery.update(next_attempt_at=retry_at, lease_expires_at=None).where(this).execute()
        return Outcome("pending", attempt, retry_at)


def _detail(status: int | None, error: str) -> str:
    return (f"HTTP {status}" if error in (HTTP_STATUS, REDIRECT) and status else error)[:500]


def due_deliveries(now: datetime.datetime, *, limit: int = 500) -> list[int]:
    """Pending deliveries due for a while that nobody is trying: their task was lost (a worker died)."""
    return [pk for (pk,) in WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.state == "pending") & (WebhookDelivery.next_attempt_at <= now - SWEEP_GRACE)
        & (WebhookDelivery.lease_expires_at.is_null() | (WebhookDelivery.lease_expires_at < now))
    ).order_by(WebhookDelivery.next_attempt_at).limit(limit).tuples()]


def forget_old_deliveries(now: datetime.datetime) -> int:
    """Delete finished deliveries (and their tries) older than KEPT_FOR."""
    old = WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.state != "pending") & (WebhookDelivery.created_at < now - KEPT_FOR))
    WebhookAttempt.delete().where(WebhookAttempt.delivery.in_(old)).execute()
    return WebhookDelivery.delete().where(WebhookDelivery.id.in_(old)).execute()


# ---------------------------------------------------------------- the log, as My profile shows it

@dataclass(frozen=True)
class DeliveryLog:
    """An endpoint's deliveries waiting for a try, and its latest tries with their deliveries."""

    waiting: list = field(default_factory=list)
    tries: list = field(default_factory=list)


def delivery_log(endpoint: WebhookEndpoint, limit: int = LOG_LENGTH) -> DeliveryLog:
    """What My profile shows under an endpoint (two queries)."""
    waiting = list(WebhookDelivery.select().where(
        (WebhookDelivery.endpoint == endpoint.id) & (WebhookDelivery.state == "pending"))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    tries = list(WebhookAttempt.select(WebhookAttempt, WebhookDelivery)
                 .join(WebhookDelivery, on=(WebhookAttempt.delivery == WebhookDelivery.id))
                 .where(WebhookDelivery.endpoint == endpoint.id)
                 .order_by(WebhookAttempt.started_at.desc(), WebhookAttempt.id.desc()).limit(limit))
    return DeliveryLog(waiting, tries)


def error_code(error: str) -> str:
    """The code part of a try's stored error (what the page translates)."""
    return error.partition(": ")[0]


def error_detail(error: str) -> str:
    """The details after the code, for the admin."""
    return error.partition(": ")[2]


# ---------------------------------------------------------------- the queue's tasks

def register_webhook_tasks(huey, config: Mapping[str, Any], box_getter: Callable[[], Any]):
    """The huey tasks: ``deliver_webhook(id)`` (one try, then its own retry scheduled) and the minute's sweep."""
    connect_receivers()

    def settings():
        return WebhookSettings.from_mapping(config)

    @huey.task(name="portal.deliver_webhook")
    def deliver_webhook(delivery_pk):
        """One try of a webhook delivery; a failed one schedules the next at its back-off."""
        with database.connection_context():
            outcome = deliver(delivery_pk, settings(), box_getter())
        if outcome is not None and outcome.retry_at is not None:
            from portal.letters.worker import _whole_second_after  # huey's eta is cut to the whole second

            deliver_webhook.schedule((delivery_pk,), eta=_whole_second_after(outcome.retry_at))
        return outcome.state if outcome is not None else None

    @huey.periodic_task(crontab(minute="*"), name="portal.sweep_webhooks")
    def sweep_webhooks():
        """Every minute: deliveries whose task was lost (the worker died) are enqueued again; old ones forgotten."""
        now = utcnow()
        with database.connection_context():
            due = due_deliveries(now)
            forget_old_deliveries(now)
        for delivery_pk in due:
            deliver_webhook(delivery_pk)
        return len(due)

    return deliver_webhook, sweep_webhooks
