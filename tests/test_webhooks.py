"""Webhooks: a real letter through aiosmtpd becomes a signed POST to a real HTTP server, through the queue,
retried, logged, scoped to what the token's owner may see, and only to addresses the guard allows."""
import datetime
import json
import logging
import re
import time
from pathlib import Path

import pytest

from portal import webhooks
from portal.api.tokens import create_token, revoke_token
from portal.mailboxes import set_active
from portal.models import Letter, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow

LOCAL = webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",), read_timeout=2, deadline=5)
ALL = list(webhooks.EVENTS)


def endpoint_for(owner, url, events=ALL, settings=LOCAL):
    """An endpoint on a fresh token of ``owner``; (endpoint, secret)."""
    token, _ = create_token(owner, "CRM")
    return webhooks.create_endpoint(token, url, events, actor=owner, settings=settings)


def deliveries(endpoint):
    return list(WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id).order_by(WebhookDelivery.id))


class Clock:
    """A stopped clock the test moves forward, for retries and the day after which an endpoint is disabled."""

    def __init__(self):
        self.now = utcnow()
        self.offset = datetime.timedelta()

    def __call__(self):
        return self.now + self.offset

    def later(self, **delta):
        self.offset += datetime.timedelta(**delta)


def test_a_sent_letter_reaches_the_receiver_signed_through_the_queue(
        app, employee, sending_mailbox, write_letter, run_queue, smtp_server, webhook_receiver, queue_worker):
    endpoint, secret = endpoint_for(employee, webhook_receiver.url, [webhooks.LETTER_SENT])
    queue_worker()
    letter = write_letter(sending_mailbox, to="client@example.com", subject="Invoice 42")
    run_queue()
    assert Letter.get_by_id(letter.id).state == "sent" and len(smtp_server.messages) == 1

    [request] = webhook_receiver.wait_for(1)
    assert request.path == "/hooks/portal"
    assert request.headers["x-portal-event"] == "letter.sent"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert webhooks.verify(secret, request.headers["x-portal-signature"], request.body)
    timestamp = int(re.match(r"t=(\d+),v1=[0-9a-f]{64}$", request.headers["x-portal-signature"]).group(1))
    assert abs(time.time() - timestamp) < 60
    payload = request.json()
    assert payload["event"] == "letter.sent" and payload["id"] == request.headers["x-portal-delivery"]
    letter_shape = payload["data"]["letter"]
    assert letter_shape["id"] == letter.id and letter_shape["state"] == "sent"
    assert letter_shape["subject"] == "Invoice 42" and letter_shape["from"] == sending_mailbox.address
    assert [r["address"] for r in letter_shape["recipients"]] == ["client@example.com"]
    assert secret not in request.body.decode() and smtp_server.password not in request.body.decode()
    # The log says so: one try, 200.
    wait_until(lambda: WebhookDelivery.get().state == "delivered")
    [attempt] = WebhookAttempt.select()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")


def wait_until(condition, timeout=10.0):
    ends = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.05)


def test_the_readme_example_verifies_a_real_delivery(app, employee, webhook_receiver):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Webhooks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    example = {}
    exec(compile(code, "README.md", "exec"), example)  # the example as people will paste it
    endpoint, secret = endpoint_for(employee, webhook_receiver.url)
    delivery = webhooks.send_test_event(endpoint, actor=employee)
    assert webhooks.deliver(delivery.id, LOCAL).state == "delivered"
    [request] = webhook_receiver.received
    assert example["verify"](secret, request.headers["x-portal-signature"], request.body)
    assert not example["verify"](secret, request.headers["x-portal-signature"], request.body + b" ")
    assert not example["verify"]("whsec_other", request.headers["x-portal-signature"], request.body)


def test_a_500_then_a_200_is_retried_through_the_queue_and_both_tries_are_logged(
        app, employee, webhook_receiver, queue_worker):
    endpoint, secret = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [500]
    queue_worker(PORTAL_WEBHOOK_RETRY_BASE="1")
    webhooks.send_test_event(endpoint, actor=employee)
    first, second = webhook_receiver.wait_for(2)
    # The same delivery id both times (the receiver's idempotency key), each try signed afresh.
    assert first.headers["x-portal-delivery"] == second.headers["x-portal-delivery"]
    assert first.body == second.body and webhooks.verify(secret, second.headers["x-portal-signature"], second.body)
    wait_until(lambda: WebhookDelivery.get().state == "delivered")
    tries = [(a.number, a.status_code, a.error) for a in WebhookAttempt.select().order_by(WebhookAttempt.id)]
    assert tries == [(1, 500, webhooks.HTTP_STATUS), (2, 200, "")]
    log = webhooks.delivery_log(endpoint)
    assert [t.status_code for t in log.tries] == [200, 500] and log.waiting == []
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None  # the success ends the failing spell


def test_retries_back_off_and_a_delivery_stored_first_survives_a_dead_worker(app, employee, webhook_receiver):
    endpoint, _ = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [503, 503]
    delivery = webhooks.send_test_event(endpoint, actor=employee)
    clock = Clock()
    first = webhooks.deliver(delivery.id, LOCAL, clock=clock)
    assert first.state == "pending" and first.retry_at - clock() == datetime.timedelta(seconds=30)
    assert webhooks.deliver(delivery.id, LOCAL, clock=clock) is None  # not due yet: nothing sent
    clock.later(seconds=31)
    second = webhooks.deliver(delivery.id, LOCAL, clock=clock)
    assert second.state == "pending" and second.retry_at - clock() == datetime.timedelta(seconds=60)
    # A worker that claimed the delivery and died: nothing is lost, the sweep finds it once its lease is over.
    clock.later(seconds=61)
    WebhookDelivery.update(lease_expires_at=clock() + datetime.timedelta(seconds=10)).execute()
    assert webhooks.due_deliveries(clock()) == []
    clock.later(seconds=31)  # past the lease, and past the grace the delivery's own scheduled task has
    assert webhooks.due_deliveries(clock()) == [delivery.id]
    assert webhooks.deliver(delivery.id, LOCAL, clock=clock).state == "delivered"
    assert len(webhook_receiver.received) == 3


def test_an_endpoint_failing_for_a_day_is_disabled_with_the_reason(app, employee, webhook_receiver):
    endpoint, _ = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [500] * 5
    first = webhooks.send_test_event(endpoint, actor=employee)
    clock = Clock()
    assert webhooks.deliver(first.id, LOCAL, clock=clock).state == "pending"
    clock.later(hours=23)
    waiting = webhooks.send_test_event(endpoint, actor=employee)
    WebhookDelivery.update(next_attempt_at=clock()).where(WebhookDelivery.id == first.id).execute()
    assert webhooks.deliver(first.id, LOCAL, clock=clock).state == "pending"  # 23 h: still trying
    clock.later(hours=1, seconds=1)
    WebhookDelivery.update(next_attempt_at=clock()).where(WebhookDelivery.id == first.id).execute()
    assert webhooks.deliver(first.id, LOCAL, clock=clock).state == "failed"
    endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert not endpoint.enabled and endpoint.disabled_reason == "failing" and endpoint.disabled_detail == "HTTP 500"
    assert WebhookDelivery.get_by_id(waiting.id).state == "cancelled"  # nothing more goes to it
    # Enabled again by a person: the count starts afresh, and new events go to it.
    webhooks.set_enabled(endpoint, True)
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None


def test_a_private_address_is_refused_unless_allowed(app, employee, webhook_receiver):
    token, _ = create_token(employee, "CRM")
    closed = webhooks.WebhookSettings()
    for url in (webhook_receiver.url, "http://10.1.2.3/hook", "http://[::1]/hook", "http://169.254.169.254/latest"):
        with pytest.raises(webhooks.EndpointInvalid) as refused:
            webhooks.create_endpoint(token, url, ALL, actor=employee, settings=closed)
        assert (refused.value.field, refused.value.code) == ("url", webhooks.NOT_ALLOWED)
    # A public name that resolves to a loopback address is refused too.
    with pytest.raises(webhooks.EndpointInvalid):
        webhooks.create_endpoint(token, "https://hooks.example.com/x", ALL, actor=employee, settings=closed,
                                 resolver=lambda host, port: ["127.0.0.1"])
    # Allowed by the host entry (host:port only, like PORTAL_MAIL_ALLOWED_HOSTS): accepted.
    allowed = webhooks.WebhookSettings(allowed_hosts=(f"127.0.0.1:{webhook_receiver.port}",))
    endpoint, _ = webhooks.create_endpoint(token, webhook_receiver.url, ALL, actor=employee, settings=allowed)
    # ... and when the allowance is taken away, nothing is sent: the try says why.
    delivery = webhooks.send_test_event(endpoint, actor=employee)
    outcome = webhooks.deliver(delivery.id, closed)
    assert outcome.state == "pending" and outcome.attempt.error == webhooks.NOT_ALLOWED
    assert webhook_receiver.received == []
    assert WebhookEndpoint.select().count() == 1  # the refused ones were never stored


def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(app, employee, webhook_receiver):
    port = webhook_receiver.port
    settings = webhooks.WebhookSettings(allowed_hosts=("hooks.corp.test:*",))
    looked_up = []

    def resolver(host, port):
        looked_up.append(host)
        # A rebinding DNS answers loopback once, then something else: the portal must not ask twice.
        return ["127.0.0.1"] if len(looked_up) == 1 else ["203.0.113.9"]

    token, _ = create_token(employee, "CRM")
    endpoint = WebhookEndpoint.create(token=token.id, url=f"http://hooks.corp.test:{port}/in", events="letter.sent",
                                      secret="")
    endpoint.set_secret("whsec_test")
    endpoint.save()
    delivery = webhooks.send_test_event(endpoint, actor=employee)
    assert webhooks.deliver(delivery.id, settings, resolver=resolver).state == "delivered"
    assert looked_up == ["hooks.corp.test"]
    assert webhook_receiver.received[0].headers["host"] == f"hooks.corp.test:{port}"


def test_redirects_are_not_followed_and_a_slow_receiver_times_out(app, employee, webhook_receiver):
    endpoint, _ = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [(302, {"Location": webhook_receiver.url + "/elsewhere"})]
    delivery = webhooks.send_test_event(endpoint, actor=employee)
    outcome = webhooks.deliver(delivery.id, LOCAL)
    assert (outcome.attempt.status_code, outcome.attempt.error) == (302, webhooks.REDIRECT)
    assert [r.path for r in webhook_receiver.received] == ["/hooks/portal"]

    webhook_receiver.delay = 2
    slow = webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",), read_timeout=0.5, deadline=1)
    other = webhooks.send_test_event(endpoint, actor=employee)
    started = time.monotonic()
    outcome = webhooks.deliver(other.id, slow)
    assert webhooks.error_code(outcome.attempt.error) == webhooks.TIMEOUT
    assert time.monotonic() - started < 1.9

    # A receiver that trickles its answer never trips the per-read timeout: the try's deadline ends it.
    webhook_receiver.delay = 0
    trickle = webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",), read_timeout=5, deadline=1)
    webhook_receiver.trickle = 0.3
    started = time.monotonic()
    outcome = webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, trickle)
    assert webhooks.error_code(outcome.attempt.error) == webhooks.TIMEOUT and outcome.attempt.status_code is None
    assert time.monotonic() - started < 2.5


def test_a_receiver_that_answers_200_and_hangs_up_mid_body_has_the_delivery(app, employee, webhook_receiver):
    # Only the status counts: a body cut short after "200" is not a failure to retry (a second copy of the event).
    endpoint, _ = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [(200, {"Content-Length": "100"})]
    outcome = webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, LOCAL)
    assert (outcome.attempt.status_code, outcome.attempt.error) == (200, "")
    assert deliveries(endpoint)[0].state == "delivered"


def test_nothing_is_listening_is_logged_as_could_not_connect(app, employee, webhook_receiver):
    endpoint, _ = endpoint_for(employee, "http://127.0.0.1:9/nothing-here")
    outcome = webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, LOCAL)
    assert webhooks.error_code(outcome.attempt.error) == webhooks.UNREACHABLE and outcome.attempt.status_code is None


def test_only_the_letters_a_token_owner_may_see_reach_their_endpoints(
        app, employee, other_employee, admin, sending_mailbox, write_letter, run_queue, smtp_server):
    mine, _ = endpoint_for(employee, "http://127.0.0.1:1/erik")
    theirs, _ = endpoint_for(other_employee, "http://127.0.0.1:1/olga")
    admins, _ = endpoint_for(admin, "http://127.0.0.1:1/admin")
    only_failures, _ = endpoint_for(employee, "http://127.0.0.1:1/failures", [webhooks.LETTER_FAILED])
    revoked, _ = endpoint_for(employee, "http://127.0.0.1:1/revoked")
    revoke_token(revoked.token, actor=employee)
    write_letter(sending_mailbox)
    run_queue()
    assert [d.event for d in deliveries(mine)] == ["letter.sent"]
    assert [d.event for d in deliveries(admins)] == ["letter.sent"]  # admins' tokens see everything
    assert deliveries(theirs) == []  # another employee's letter: nothing, not even a stored delivery
    assert deliveries(only_failures) == [] and deliveries(revoked) == []


def test_a_paused_mailbox_is_told_to_those_who_use_or_manage_it(app, admin, employee, other_employee, make_mailbox):
    shared = make_mailbox(scope="company", address="sales@example.com", access_everyone=False,
                          access_employees=[employee.id])
    user, _ = endpoint_for(employee, "http://127.0.0.1:1/erik", [webhooks.MAILBOX_PAUSED])
    stranger, _ = endpoint_for(other_employee, "http://127.0.0.1:1/olga", [webhooks.MAILBOX_PAUSED])
    set_active(shared, False, actor=admin)
    [delivery] = deliveries(user)
    body = json.loads(delivery.body)
    assert body["event"] == "mailbox.paused" and body["data"]["mailbox"]["address"] == "sales@example.com"
    assert body["data"]["paused_by"] == admin.email and body["data"]["mailbox"]["smtp"] is None  # not a manager
    assert deliveries(stranger) == []


def test_a_bounce_and_a_reply_are_told_with_the_letter(app, employee, sending_mailbox, write_letter, run_queue,
                                                       smtp_server):
    from portal.letters.bounces import Bounce, BouncedRecipient, record_bounce
    from portal.letters.replies import store_reply
    from tests.fixtures.letters import reply_to

    endpoint, _ = endpoint_for(employee, "http://127.0.0.1:1/in", [webhooks.LETTER_BOUNCED, webhooks.REPLY_RECEIVED])
    letter = write_letter(sending_mailbox, to="client@example.com")
    run_queue()
    letter = Letter.get_by_id(letter.id)
    store_reply(letter.id, sending_mailbox, reply_to(letter, text="Thanks!"))
    record_bounce(Bounce(message_id=letter.message_id, recipients=(
        BouncedRecipient("client@example.com", "5.1.1", "smtp; 550 no such user"),), text=""), sending_mailbox.id)
    reply, bounce = [json.loads(d.body) for d in deliveries(endpoint)]
    assert reply["event"] == "reply.received" and reply["data"]["reply"]["text"].strip() == "Thanks!"
    assert reply["data"]["letter"]["id"] == letter.id
    assert bounce["event"] == "letter.bounced" and bounce["data"]["recipients"] == ["client@example.com"]
    assert bounce["data"]["letter"]["bounced"] == 1


def test_the_secret_never_reaches_a_log(app, employee, webhook_receiver, caplog):
    caplog.set_level(logging.DEBUG)
    endpoint, secret = endpoint_for(employee, webhook_receiver.url)
    webhook_receiver.answers = [500]
    for _ in range(2):
        delivery = webhooks.send_test_event(endpoint, actor=employee)
        webhooks.deliver(delivery.id, LOCAL)
    webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, webhooks.WebhookSettings())
    assert caplog.records, "the refused address was logged for the admin"
    assert secret not in caplog.text
    stored = WebhookEndpoint.get_by_id(endpoint.id)
    assert secret not in stored.secret and stored.signing_secret() == secret  # encrypted at rest


def test_a_receiver_that_breaks_does_not_break_the_queue(app, employee, sending_mailbox, write_letter, run_queue,
                                                         smtp_server, monkeypatch, caplog):
    endpoint_for(employee, "http://127.0.0.1:1/in")
    monkeypatch.setattr(webhooks, "_store_delivery", lambda *a: 1 / 0)
    letter = write_letter(sending_mailbox)
    run_queue()
    assert Letter.get_by_id(letter.id).state == "sent"
    assert "could not store the webhook deliveries" in caplog.text


def test_settings_from_the_environment_and_the_signature_window():
    settings = webhooks.WebhookSettings.from_mapping({"PORTAL_WEBHOOK_ALLOWED_HOSTS": "10.0.0.0/8, hooks.local:*",
                                                      "PORTAL_WEBHOOK_READ_TIMEOUT": "3"})
    assert settings.read_timeout == 3 and len(settings.allowed_hosts) == 2
    assert settings.guard_config().allowed_ports == webhooks.DEFAULT_PORTS
    with pytest.raises(ValueError):
        webhooks.WebhookSettings.from_mapping({"PORTAL_WEBHOOK_DEADLINE": "soon"})
    header = webhooks.sign("whsec_x", 1_700_000_000, b"{}")
    assert webhooks.verify("whsec_x", header, b"{}", now=1_700_000_000 + 299)
    assert not webhooks.verify("whsec_x", header, b"{}", now=1_700_000_000 + 301)  # a replay after the window
    assert not webhooks.verify("whsec_x", header, b"{ }", now=1_700_000_000)
    assert [settings.retry_delay(n) for n in (1, 2, 3, 20)] == [30, 60, 120, 3600]


def test_rotate_secrets_re_encrypts_the_signing_secrets_too(app, runner, employee):
    from portal.secret_box import SecretBox, SecretError, active_box, configured_keys, install

    endpoint, secret = endpoint_for(employee, "http://127.0.0.1:1/in")
    old_box = active_box()
    keys = configured_keys(app.config.get("PORTAL_SECRET_KEYS"), app.instance_path)
    new_box = install(SecretBox(["brand-new-key", *keys]))
    app.extensions["portal_secret_box"] = new_box
    result = runner.invoke(args=["rotate-secrets"])
    assert result.exit_code == 0 and "1 webhook (signing secret)" in result.output
    fresh = WebhookEndpoint.get_by_id(endpoint.id)
    assert fresh.signing_secret(SecretBox(["brand-new-key"])) == secret
    with pytest.raises(SecretError):
        fresh.signing_secret(old_box)
    assert secret not in result.output


def test_the_worker_registers_the_delivery_task_and_the_sweep(tmp_path):
    from portal.letters.worker import make_huey

    tasks = make_huey({}, str(tmp_path)).portal_tasks
    names = (tasks.deliver_webhook.name, tasks.sweep_webhooks.name)
    assert names == ("portal.deliver_webhook", "portal.sweep_webhooks")


def test_https_receivers_are_verified_against_the_name_in_the_url(app, employee, make_webhook_receiver,
                                                                  server_certificate, untrusted_certificate):
    trusted = make_webhook_receiver(server_certificate)
    settings = webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*", "localhost:*"),
                                        ca_file=server_certificate.ca_file)
    endpoint, secret = endpoint_for(employee, f"https://localhost:{trusted.port}/hooks/portal", settings=settings)
    assert webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, settings).state == "delivered"
    assert webhooks.verify(secret, trusted.received[0].headers["x-portal-signature"], trusted.received[0].body)

    impostor = make_webhook_receiver(untrusted_certificate)
    endpoint, _ = endpoint_for(employee, f"https://localhost:{impostor.port}/hooks/portal", settings=settings)
    outcome = webhooks.deliver(webhooks.send_test_event(endpoint, actor=employee).id, settings)
    assert webhooks.error_code(outcome.attempt.error) == webhooks.TLS_FAILED and impostor.received == []


def test_a_disabled_endpoint_hears_only_its_test_events(app, employee, sending_mailbox, write_letter, run_queue,
                                                        smtp_server, webhook_receiver):
    endpoint, _ = endpoint_for(employee, webhook_receiver.url)
    webhooks.set_enabled(endpoint, False)
    write_letter(sending_mailbox)
    run_queue()
    assert deliveries(endpoint) == []  # no delivery stored for a disabled endpoint
    test = webhooks.send_test_event(endpoint, actor=employee)
    assert webhooks.deliver(test.id, LOCAL).state == "delivered"  # a fix can be checked before enabling it
    assert [r.json()["event"] for r in webhook_receiver.received] == ["webhook.test"]


def test_the_minute_sweep_sends_what_a_dead_worker_left_and_forgets_old_deliveries(app, employee, webhook_receiver):
    from portal.letters.worker import huey_for

    app.config.update(PORTAL_WEBHOOK_ALLOWED_HOSTS="127.0.0.1:*")
    app.extensions.pop("portal.huey", None)
    huey = huey_for(app)
    huey.immediate = True  # the tasks the sweep enqueues run at once, in this thread
    endpoint, secret = endpoint_for(employee, webhook_receiver.url)
    long_ago = utcnow() - datetime.timedelta(minutes=5)
    # Stored, its task lost with the worker that held it (no doorbell rang for it).
    left = WebhookDelivery.create(endpoint=endpoint.id, delivery_id="left-behind", event="letter.sent", body="{}",
                                  created_at=long_ago, next_attempt_at=long_ago)
    old = WebhookDelivery.create(endpoint=endpoint.id, delivery_id="old", event="letter.sent", body="{}",
                                 state="delivered", created_at=utcnow() - datetime.timedelta(days=31))
    WebhookAttempt.create(delivery=old.id, number=1, status_code=200)
    assert huey.portal_tasks.sweep_webhooks.call_local() == 1
    [request] = webhook_receiver.received
    assert request.headers["x-portal-delivery"] == "left-behind"
    assert webhooks.verify(secret, request.headers["x-portal-signature"], request.body)
    assert WebhookDelivery.get_by_id(left.id).state == "delivered"
    assert WebhookDelivery.get_or_none(WebhookDelivery.id == old.id) is None  # kept 30 days, then forgotten
    assert WebhookAttempt.select().where(WebhookAttempt.delivery == old.id).count() == 0


def test_the_queue_pausing_a_mailbox_after_three_refused_sign_ins_is_told(
        app, employee, sending_mailbox, write_letter, run_queue, smtp_server):
    endpoint, _ = endpoint_for(employee, "http://127.0.0.1:1/in", [webhooks.MAILBOX_PAUSED])
    smtp_server.password = "changed-at-the-provider"  # the real aiosmtpd now refuses the stored one
    write_letter(sending_mailbox)
    for _ in range(3):
        run_queue()
        run_queue.later(hours=1)
    [delivery] = deliveries(endpoint)
    data = json.loads(delivery.body)["data"]
    assert data["problem"] == "auth_failed" and data["paused_by"] is None  # the portal paused it, not a person
    assert data["mailbox"]["id"] == sending_mailbox.id and data["mailbox"]["active"] is False
    assert data["mailbox"]["smtp"]["password_set"] is True and smtp_server.password not in delivery.body
    assert "password" not in data["mailbox"]["smtp"]
