"""Webhooks on pages: added on My profile to one's own token (the secret shown once), by admins for anyone's;
errors beside the field; test, disable, enable, delete; the delivery log; nobody else's."""
import re

import pytest

from portal import webhooks
from portal.api.tokens import create_token, revoke_token
from portal.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import page_text

SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{43}")
ALLOW_LOCAL = {"PORTAL_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:*"}


def htmx(client, url, data=None):
    return client.post(url, data=data or {}, headers={"HX-Request": "true"})


def add_form(token, url, events=webhooks.EVENTS):
    return {"webhook-token": str(token.id), "webhook-url": url, "webhook-events": list(events)}


@pytest.fixture
def local_hooks(app):
    app.config.update(ALLOW_LOCAL)


def test_adding_a_webhook_on_my_profile_shows_its_secret_once(as_employee, employee, local_hooks, webhook_receiver):
    token, _ = create_token(employee, "CRM")
    response = htmx(as_employee, "/profile/webhooks", add_form(token, webhook_receiver.url, ["letter.sent"]))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith("<section id=\"webhooks\"")  # the fragment
    secret = SECRET.search(html).group(0)
    endpoint = WebhookEndpoint.get()
    assert endpoint.signing_secret() == secret and endpoint.event_names == ["letter.sent"]
    assert "Copy the signing secret now" in page_text(response)
    again = as_employee.get("/profile").get_data(as_text=True)
    assert secret not in again and webhook_receiver.url in again and "Nothing sent yet." in again
    assert secret not in as_employee.get("/profile/webhooks").get_data(as_text=True)


def test_a_webhook_needs_a_token_first(as_employee):
    assert "A webhook belongs to an API token: create a token first." in page_text(as_employee.get("/profile"))


@pytest.mark.parametrize("url, events, field, message", [
    ("", ["letter.sent"], "url", "Give the address the portal should send events to."),
    ("ftp://example.com/x", ["letter.sent"], "url", "Give a full http:// or https:// address"),
    ("https://user:pw@example.com/x", ["letter.sent"], "url", "without a user name, password"),
    ("http://127.0.0.1:8080/hook", ["letter.sent"], "url", "PORTAL_WEBHOOK_ALLOWED_HOSTS"),
    ("http://10.0.0.7/hook", ["letter.sent"], "url", "The portal may not send to this address"),
    ("https://93.184.215.14/hook", [], "events", "Choose at least one event."),
])
def test_bad_input_is_explained_beside_the_field_and_nothing_is_saved(as_employee, employee, url, events, field,
                                                                      message):
    token, _ = create_token(employee, "CRM")
    response = htmx(as_employee, "/profile/webhooks", add_form(token, url, events))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="webhook-{field}-error"' in html
    assert message in page_text(response)
    assert WebhookEndpoint.select().count() == 0 and not SECRET.search(html)


def test_another_employees_token_cannot_be_chosen(as_employee, employee, other_employee, local_hooks,
                                                  webhook_receiver):
    create_token(employee, "My CRM")
    theirs, _ = create_token(other_employee, "Their CRM")
    response = htmx(as_employee, "/profile/webhooks", add_form(theirs, webhook_receiver.url))
    assert "Choose one of the tokens." in page_text(response)
    assert WebhookEndpoint.select().count() == 0


def test_a_revoked_token_is_not_offered(as_employee, employee):
    token, _ = create_token(employee, "Old CRM")
    revoke_token(token, actor=employee)
    assert "A webhook belongs to an API token" in page_text(as_employee.get("/profile"))


def make_endpoint(owner, url="http://127.0.0.1:1/in"):
    token, _ = create_token(owner, "CRM")
    return webhooks.create_endpoint(token, url, webhooks.EVENTS, actor=owner,
                                    settings=webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",)))[0]


def test_send_a_test_event_disable_enable_and_delete(app, as_employee, employee, webhook_receiver):
    endpoint = make_endpoint(employee, webhook_receiver.url)
    response = htmx(as_employee, f"/webhooks/{endpoint.id}/test")
    assert "A test event is on its way" in page_text(response)
    [delivery] = WebhookDelivery.select()
    assert delivery.event == "webhook.test" and delivery.state == "pending"
    html = response.get_data(as_text=True)
    assert f'hx-get="/webhooks/{endpoint.id}/log"' in html and "Waiting" in page_text(response)  # it polls its log
    webhooks.deliver(delivery.id, webhooks.WebhookSettings(allowed_hosts=("127.0.0.1:*",)))
    log = as_employee.get(f"/webhooks/{endpoint.id}/log", headers={"HX-Request": "true"})
    assert "HTTP 200" in page_text(log) and "webhook.test" in page_text(log) and "hx-get" not in log.get_data(True)

    assert "is disabled" in page_text(htmx(as_employee, f"/webhooks/{endpoint.id}/disable"))
    assert not WebhookEndpoint.get_by_id(endpoint.id).enabled
    assert "Enable" in page_text(as_employee.get("/profile"))
    assert "is enabled" in page_text(htmx(as_employee, f"/webhooks/{endpoint.id}/enable"))
    assert WebhookEndpoint.get_by_id(endpoint.id).enabled
    assert "is deleted" in page_text(htmx(as_employee, f"/webhooks/{endpoint.id}/delete"))
    assert WebhookEndpoint.select().count() == 0 and WebhookDelivery.select().count() == 0


def test_without_htmx_the_buttons_go_back_to_my_profile(as_employee, employee):
    endpoint = make_endpoint(employee)
    response = as_employee.post(f"/webhooks/{endpoint.id}/disable")
    assert response.status_code == 302 and response.headers["Location"].endswith("/profile")
    assert as_employee.get(f"/webhooks/{endpoint.id}/log").status_code == 302


def test_a_webhook_the_portal_disabled_says_why(as_employee, employee):
    endpoint = make_endpoint(employee)
    WebhookEndpoint.update(enabled=False, disabled_reason="failing", disabled_detail="HTTP 500").execute()
    text = page_text(as_employee.get("/profile"))
    assert "Disabled by the portal" in text and "It failed for a day" in text and "HTTP 500" in text
    assert endpoint.url in text


@pytest.mark.parametrize("action", ["test", "enable", "disable", "delete"])
def test_nobody_touches_someone_elses_webhook(as_employee, other_employee, action):
    endpoint = make_endpoint(other_employee)
    assert htmx(as_employee, f"/webhooks/{endpoint.id}/{action}").status_code == 404
    assert as_employee.get(f"/webhooks/{endpoint.id}/log", headers={"HX-Request": "true"}).status_code == 404
    assert WebhookEndpoint.get_by_id(endpoint.id).enabled and WebhookDelivery.select().count() == 0
    assert endpoint.url not in as_employee.get("/profile").get_data(as_text=True)


def test_an_admin_adds_a_webhook_to_an_employees_token(as_admin, employee, local_hooks, webhook_receiver):
    token, _ = create_token(employee, "CRM of Erik")
    page = as_admin.get(f"/admin/employees/{employee.id}/api-tokens")
    assert "Webhooks" in page_text(page) and "CRM of Erik" in page_text(page)
    response = htmx(as_admin, f"/admin/employees/{employee.id}/webhooks", add_form(token, webhook_receiver.url))
    assert SECRET.search(response.get_data(as_text=True))
    endpoint = WebhookEndpoint.get()
    assert endpoint.token.id == token.id
    assert webhook_receiver.url in page_text(as_admin.get(f"/admin/employees/{employee.id}/webhooks"))
    assert "is disabled" in page_text(htmx(as_admin, f"/webhooks/{endpoint.id}/disable"))


@pytest.mark.parametrize("method, url", [
    ("get", "/admin/employees/{id}/webhooks"),
    ("post", "/admin/employees/{id}/webhooks"),
])
def test_the_admin_webhook_pages_are_not_there_for_employees(as_employee, other_employee, method, url):
    assert getattr(as_employee, method)(url.format(id=other_employee.id)).status_code == 404


def test_forms_keep_csrf(as_employee, employee, local_hooks, webhook_receiver):
    token, _ = create_token(employee, "CRM")
    response = as_employee.post("/profile/webhooks", data=add_form(token, webhook_receiver.url), csrf=False)
    assert response.status_code == 400 and WebhookEndpoint.select().count() == 0


def test_the_webhooks_section_speaks_russian(client, auth, make_employee):
    person = make_employee(email="irina@example.com", language="ru")
    make_endpoint(person)
    auth.login(person)
    text = page_text(client.get("/profile"))
    assert "Вебхуки" in text and "Отправить тестовое событие" in text and "Журнал доставки" in text


def test_a_new_or_revoked_token_refreshes_the_webhooks_section(as_employee, employee):
    page = as_employee.get("/profile").get_data(as_text=True)
    assert 'hx-get="/profile/webhooks" hx-trigger="api-tokens-changed from:body"' in page
    created = htmx(as_employee, "/profile/api-tokens", {"token-name": "CRM"})
    assert created.headers["HX-Trigger"] == "api-tokens-changed"
    section = as_employee.get("/profile/webhooks", headers={"HX-Request": "true"})
    assert section.get_data(as_text=True).lstrip().startswith('<section id="webhooks"')
    assert "CRM (ptk_" in page_text(section)  # the new token is offered at once


def test_a_webhook_of_a_revoked_token_says_it_stopped(as_employee, employee):
    endpoint = make_endpoint(employee)
    revoked = htmx(as_employee, f"/api-tokens/{endpoint.token.id}/revoke")
    assert revoked.headers["HX-Trigger"] == "api-tokens-changed"
    assert "Stopped: its token is revoked" in page_text(as_employee.get("/profile"))


@pytest.mark.parametrize("path", ["/profile/webhooks", "/profile/api-tokens", "/profile"])
def test_my_profile_is_the_current_section_on_its_pages(as_employee, path):
    """My webhooks and My API tokens are My profile's pages: the navigation marks it, and nothing else, as current."""
    html = as_employee.get(path).get_data(as_text=True)
    current = re.findall(r'<a href="([^"]+)"[^>]*aria-current="page"', html)
    assert current == ["/profile"], current
