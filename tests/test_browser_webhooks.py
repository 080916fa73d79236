"""Webhooks in Chromium: add one on My profile, copy its secret once, send a test event through the real queue
and watch the log fill in; the section in both languages at 1366 and 390 px."""
import datetime

import pytest
from playwright.sync_api import expect

from portal import webhooks
from portal.api.tokens import create_token
from portal.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from tests.fixtures.browser import assert_no_sideways_scroll

pytestmark = pytest.mark.browser


def test_add_a_webhook_copy_its_secret_and_send_a_test_event(live_server, signed_in_page, employee, screenshot,
                                                             webhook_receiver, queue_worker):
    queue_worker()
    page = signed_in_page(employee)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(live_server + "/profile")
    assert page.get_by_text("A webhook belongs to an API token: create a token first.").is_visible()
    page.fill("#token-name", "CRM")
    page.press("#token-name", "Enter")
    # The new token is offered at once, without reloading the page.
    expect(page.locator("#webhook-token")).to_contain_text("CRM (ptk_")
    page.locator("#webhooks").scroll_into_view_if_needed()
    page.fill("#webhook-url", webhook_receiver.url)
    page.get_by_label("A mailbox was paused").uncheck()
    page.get_by_role("button", name="Add webhook").click()
    secret_box = page.locator("#new-webhook-secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert secret.startswith("whsec_")
    expect(secret_box).to_be_focused()
    page.get_by_role("button", name="Copy").last.click()
    assert page.get_by_role("button", name="Copied").is_visible()
    screenshot(page, "en-1366-secret-shown-once")

    page.get_by_role("button", name=f"Send a test event {webhook_receiver.url}").click()
    expect(page.locator("#webhooks .flash")).to_contain_text("A test event is on its way")
    # The worker sends it; the log asks for itself every 2 s until the try is there.
    expect(page.locator(".webhook-log-table")).to_contain_text("HTTP 200", timeout=15000)
    [request] = webhook_receiver.received
    assert webhooks.verify(secret, request.headers["x-portal-signature"], request.body)
    assert request.json()["event"] == "webhook.test"
    screenshot(page, "en-1366-test-event-logged")

    page.reload()
    assert page.locator("#new-webhook-secret").count() == 0 and secret not in page.content()  # shown once
    page.get_by_role("button", name=f"Disable {webhook_receiver.url}").click()
    expect(page.locator("#webhooks .webhook-url .badge")).to_have_text("Disabled")
    assert not WebhookEndpoint.get().enabled


def test_a_private_address_is_refused_beside_the_field(live_server, signed_in_page, employee, screenshot):
    create_token(employee, "CRM")
    page = signed_in_page(employee)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + "/profile")
    page.fill("#webhook-url", "http://10.0.0.7/hooks")
    page.get_by_role("button", name="Add webhook").click()
    error = page.locator("#webhook-url-error")
    error.wait_for()
    assert "PORTAL_WEBHOOK_ALLOWED_HOSTS" in error.inner_text()
    assert page.locator("#webhook-url").get_attribute("aria-invalid") == "true"
    page.locator("#webhook-url-field").scroll_into_view_if_needed()
    screenshot(page, "en-390-private-address-refused")
    assert WebhookEndpoint.select().count() == 0


def _webhooks_with_a_history(owner):
    """Two endpoints: one working (a 500, then a 200, and one waiting), one the portal disabled after a day."""
    settings = webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*", "crm.example.com"))
    token, _ = create_token(owner, "CRM")
    working, _ = webhooks.create_endpoint(token, "http://127.0.0.1:8080/hooks/portal", webhooks.EVENTS, actor=owner,
                                          settings=settings)
    now = utcnow()
    history = ((30, "letter.sent", [(500, "http_status"), (200, "")]), (10, "reply.received", [(200, "")]))
    for minutes, event, tries in history:
        delivery = WebhookDelivery.create(endpoint=working.id, delivery_id=f"d-{minutes}", event=event, body="{}",
                                          state="delivered", attempts=len(tries))
        for number, (status, error) in enumerate(tries, 1):
            WebhookAttempt.create(delivery=delivery.id, number=number, status_code=status, error=error,
                                  duration_ms=40 + number * 7,
                                  started_at=now - datetime.timedelta(minutes=minutes - number))
    WebhookDelivery.create(endpoint=working.id, delivery_id="d-w", event="letter.failed", body="{}",
                           next_attempt_at=now + datetime.timedelta(minutes=2), attempts=1)
    other, _ = webhooks.create_endpoint(
        token, "https://crm.example.com/very/long/path/to/the/integration/endpoint/of/the/customer/relations",
        [webhooks.LETTER_FAILED, webhooks.LETTER_BOUNCED], actor=owner, settings=settings,
        resolver=lambda host, port: ["93.184.215.14"])
    WebhookEndpoint.update(enabled=False, disabled_reason="failing", disabled_detail="HTTP 502").where(
        WebhookEndpoint.id == other.id).execute()


@pytest.mark.parametrize("language, width", [("en", 1366), ("en", 390), ("ru", 1366), ("ru", 390)])
def test_the_webhooks_section_in_both_languages_at_both_widths(live_server, signed_in_page, make_employee, screenshot,
                                                               language, width):
    person = make_employee(name="Ирина Петрова" if language == "ru" else "Irina Petrova",
                           email="irina@example.com", language=language)
    _webhooks_with_a_history(person)
    page = signed_in_page(person)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server + "/profile")
    heading = "Вебхуки" if language == "ru" else "Webhooks"
    assert page.get_by_role("heading", name=heading, exact=True).is_visible()
    page.locator("#webhooks").scroll_into_view_if_needed()
    screenshot(page, f"{language}-{width}-webhooks")
    assert_no_sideways_scroll(page)
    box = page.locator("#webhooks").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    disabled = "Отключён порталом" if language == "ru" else "Disabled by the portal"
    assert page.get_by_text(disabled).is_visible()
