"""Who may open what: every URL of the portal, tried anonymously, as an employee and as an admin.

ROUTES below is the table of every (endpoint, method) the app serves, pages and htmx fragments
alike. A route missing from it fails `test_every_route_is_in_the_table`, so a new route cannot
ship without its access rule. OTHER AREAS: add one Route(...) line per endpoint and method of
yours; `args` receives `get` (request.getfixturevalue) to make the objects your URL needs.
"""
from collections import namedtuple

import pytest
from flask import url_for
from werkzeug.security import generate_password_hash

from portal.models import Employee
from tests.conftest import PASSWORD

ANYONE = "anyone"  # open without signing in
SIGNED_IN = "signed-in"  # every signed-in employee; anonymous visitors go to the sign-in page
ADMIN = "admin"  # admins only; anonymous visitors go to sign-in, employees get 404
API = "api"  # /api/v1: a bearer token only; without one 401 JSON, signed in or not (tests/test_api_*.py)

Route = namedtuple("Route", "endpoint method access args", defaults=(None,))


def _employee_id(get):
    return {"employee_id": _person("employee", "access-target@example.com").id}


def _project_id(get):
    return {"project_id": get("make_project")().id}


def _letter_id(get):
    from portal.models import Letter

    author = _person("employee", "access-employee@example.com")
    letter = Letter.create(author=author, from_address="box@example.com", to_header="friend@example.com",
                           subject="Access", message_id=f"<access-{Letter.select().count()}@example.com>",
                           raw_message="Subject: Access\r\n\r\nHello\r\n", state="failed")
    return {"letter_id": letter.id}


def _worker_alive():
    from portal.health import beat

    beat("access-test:1")
    return {}


def _reply_id(get):
    from portal.models import Reply

    letter_id = _letter_id(get)["letter_id"]
    return {"reply_id": Reply.create(letter=letter_id, message_id=f"<reply-{letter_id}@example.com>").id}


def _notification_id(get):
    from portal.notifications import notify

    return {"notification_id": notify(_person("employee", "access-employee@example.com"), "mailbox_assigned",
                                      about="access@example.com").id}


def _invitation(get):
    from portal.invitations import invitation_token

    return {"token": invitation_token(_person("employee", "access-invited@example.com"), get("app").secret_key)}


def _contact_id(get):
    from portal.models import Contact

    return {"contact_id": Contact.get_or_create(email="access-contact@example.com")[0].id}


def _test_dns(get):
    """DNS questions of the page go to the test DNS server, never out of the machine."""
    get("app").config["PORTAL_MAIL_DNS_SERVERS"] = f"127.0.0.1:{get('dns_server').port}"
    return get


def _own_mailbox(get):
    """A fresh mailbox of the signed-in employee of these tests (admins manage it too)."""
    from portal.models import Mailbox

    owner = _person("employee", "access-employee@example.com")
    mailbox = Mailbox(scope="employee", owner=owner.id, address=f"access{Mailbox.select().count()}@example.com",
                      smtp_host="smtp.example.com", smtp_port=465, smtp_security="ssl")
    mailbox.save()
    return {"mailbox_id": mailbox.id}


def _own_test_run(get):
    """A running account test of the signed-in employee of these tests (admins may follow it too)."""
    from portal.models import AccountTestRun

    owner = _person("employee", "access-employee@example.com")
    return {"run_id": AccountTestRun.create(id=f"{AccountTestRun.select().count():032x}", employee=owner.id).id}


def _sender_cell(get):
    return {**_employee_id(get), **_project_id(get)}


def _token_id(get):
    from portal.api.tokens import create_token

    return {"token_id": create_token(_person("employee", "access-employee@example.com"), "Access")[0].id}


def _webhook_id(get):
    """A webhook on a token of the signed-in employee of these tests (admins manage it too)."""
    from portal.models import WebhookEndpoint

    endpoint = WebhookEndpoint(token=_token_id(get)["token_id"], url="https://hooks.example.com/in",
                               events="letter.sent")
    endpoint.set_secret("whsec_access")
    endpoint.save()
    return {"endpoint_id": endpoint.id}


# ---- The table: one line per endpoint and method (add yours here) ----
ROUTES = [
    Route("static", "GET", ANYONE, lambda get: {"filename": "css/portal.css"}),
    Route("auth.sign_in", "GET", ANYONE),
    Route("auth.sign_in", "POST", ANYONE),
    Route("auth.set_language", "POST", ANYONE),
    Route("auth.sign_out", "POST", SIGNED_IN),
    Route("home.index", "GET", SIGNED_IN),
    # Account management: employees
    Route("employees.index", "GET", ADMIN),
    Route("employees.new", "GET", ADMIN),
    Route("employees.new", "POST", ADMIN),
    Route("employees.card", "GET", ADMIN, _employee_id),
    Route("employees.profile_tab", "GET", ADMIN, _employee_id),
    Route("employees.status", "GET", ADMIN, _employee_id),
    Route("employees.edit", "GET", ADMIN, _employee_id),
    Route("employees.edit", "POST", ADMIN, _employee_id),
    Route("employees.deactivate", "GET", ADMIN, _employee_id),
    Route("employees.deactivate", "POST", ADMIN, _employee_id),
    Route("employees.reactivate", "GET", ADMIN, _employee_id),
    Route("employees.reactivate", "POST", ADMIN, _employee_id),
    Route("employees.import_csv", "GET", ADMIN),
    Route("employees.import_csv", "POST", ADMIN),
    Route("employees.sign_out", "POST", ADMIN, _employee_id),
    # Account management: projects
    Route("projects.index", "GET", ADMIN),
    Route("projects.index", "POST", ADMIN),
    Route("projects.row", "GET", ADMIN, _project_id),
    Route("projects.rename", "GET", ADMIN, _project_id),
    Route("projects.rename", "POST", ADMIN, _project_id),
    Route("projects.archive", "POST", ADMIN, _project_id),
    Route("projects.unarchive", "POST", ADMIN, _project_id),
    # My profile
    Route("profile.edit", "GET", SIGNED_IN),
    Route("profile.edit", "POST", SIGNED_IN),
    Route("profile.password", "POST", SIGNED_IN),
    Route("profile.sign_out_everywhere", "POST", SIGNED_IN),
    # Letters and contacts (issue 5): everyone signed in; other people's letters answer 404 (test_letters_views)
    Route("letters.new", "GET", SIGNED_IN),
    Route("letters.new", "POST", SIGNED_IN),
    Route("letters.sender", "GET", SIGNED_IN),
    Route("letters.outbox", "GET", SIGNED_IN),
    Route("letters.letter", "GET", SIGNED_IN, _letter_id),
    Route("letters.retry", "POST", SIGNED_IN, _letter_id),
    Route("letters.seen", "POST", SIGNED_IN, _letter_id),
    Route("letters.cancel", "POST", SIGNED_IN, _letter_id),
    Route("replies.index", "GET", SIGNED_IN),
    Route("replies.open_reply", "GET", SIGNED_IN, _reply_id),
    Route("replies.read_reply", "POST", SIGNED_IN, _reply_id),
    Route("replies.read_shown", "POST", SIGNED_IN, _letter_id),
    Route("invitations.accept", "GET", ANYONE, _invitation),
    Route("invitations.accept", "POST", ANYONE, _invitation),
    Route("employees.invitation", "POST", ADMIN, _employee_id),
    Route("employees.invitations", "POST", ADMIN),
    Route("contacts.index", "GET", SIGNED_IN),
    Route("contacts.pick", "GET", SIGNED_IN),
    Route("contacts.new", "GET", SIGNED_IN),
    Route("contacts.new", "POST", SIGNED_IN),
    Route("contacts.edit", "GET", SIGNED_IN, _contact_id),
    Route("contacts.edit", "POST", SIGNED_IN, _contact_id),
    Route("contacts.delete", "POST", SIGNED_IN, _contact_id),
    Route("contacts.import_csv", "GET", SIGNED_IN),
    Route("contacts.import_csv", "POST", SIGNED_IN),
    # External addresses (issue 4); owner / other employee / 404 details in tests/test_mailboxes_access.py
    Route("mailboxes.outgoing", "GET", ADMIN),
    Route("mailboxes.employees_may_add", "POST", ADMIN),
    Route("mailboxes.employees", "GET", ADMIN),
    Route("mailboxes.employee_addresses", "GET", ADMIN, _employee_id),
    Route("mailboxes.senders", "GET", ADMIN),
    Route("mailboxes.sender_cell", "GET", ADMIN, _sender_cell),
    Route("mailboxes.audit", "GET", ADMIN),
    Route("mailboxes.mine", "GET", SIGNED_IN),
    Route("mailboxes.new", "GET", SIGNED_IN),
    Route("mailboxes.new", "POST", SIGNED_IN),
    Route("mailboxes.edit", "GET", SIGNED_IN, _own_mailbox),
    Route("mailboxes.edit", "POST", SIGNED_IN, _own_mailbox),
    Route("mailboxes.test", "POST", SIGNED_IN, _own_mailbox),
    Route("mailboxes.test_progress", "GET", SIGNED_IN, _own_test_run),
    Route("mailboxes.provider", "POST", SIGNED_IN),
    Route("mailboxes.default_hint", "POST", SIGNED_IN),
    Route("discovery.find_settings", "POST", SIGNED_IN),
    Route("mailboxes.trust", "POST", SIGNED_IN),
    Route("mailboxes.pause", "POST", SIGNED_IN, _own_mailbox),
    Route("mailboxes.resume", "POST", SIGNED_IN, _own_mailbox),
    Route("mailboxes.delete", "POST", SIGNED_IN, _own_mailbox),
    # API tokens (issue 6); other people's tokens answer 404 (tests/test_api_tokens.py)
    Route("api_tokens.mine", "GET", SIGNED_IN),
    Route("api_tokens.create_mine", "POST", SIGNED_IN),
    Route("api_tokens.revoke", "POST", SIGNED_IN, _token_id),
    Route("api_tokens.every", "GET", ADMIN),
    Route("api_tokens.create_any", "POST", ADMIN),
    Route("api_tokens.employee", "GET", ADMIN, _employee_id),
    Route("api_tokens.create_for", "POST", ADMIN, _employee_id),
    # Directory sync (issue 17)
    Route("directory.index", "GET", ADMIN),
    Route("directory.save", "POST", ADMIN),
    Route("directory.preview", "POST", ADMIN),
    Route("directory.sync", "POST", ADMIN),
    Route("sso.start", "GET", ANYONE),
    Route("sso.callback", "GET", ANYONE),
    Route("sso.settings_page", "GET", ADMIN),
    Route("sso.save", "POST", ADMIN),
    Route("sso.check", "POST", ADMIN),
    # Mailboxes that sign in with the provider (issue 12): tests/test_oauth_views.py
    Route("oauth.providers", "GET", ADMIN),
    Route("oauth.save_provider", "POST", ADMIN, lambda get: {"provider": "google"}),
    Route("oauth.check_provider", "POST", ADMIN, lambda get: {"provider": "google"}),
    Route("oauth.sign_in", "POST", SIGNED_IN, lambda get: {"provider": "google"}),
    Route("oauth.reconnect", "POST", SIGNED_IN, _own_mailbox),
    Route("oauth.callback", "GET", SIGNED_IN),
    # The JSON API (issue 6): tokens, not sessions; permissions per object in tests/test_api_*.py
    Route("api.openapi", "GET", ANYONE),
    # Health for the proxy and the monitoring (issue 14): status words only, tests/test_health.py
    Route("health.healthz", "GET", ANYONE),
    Route("health.readyz", "GET", ANYONE, lambda get: _worker_alive()),
    Route("health.metrics", "GET", ANYONE),  # by address or bearer token, not by session: tests/test_metrics.py
    Route("api.me", "GET", API),
    Route("api.resolve", "GET", API),
    Route("api.list_mailboxes", "GET", API),
    Route("api.create_mailbox", "POST", API),
    Route("api.test_mailbox", "POST", API),
    Route("api.get_mailbox", "GET", API, _own_mailbox),
    Route("api.update_mailbox", "PATCH", API, _own_mailbox),
    Route("api.delete_mailbox", "DELETE", API, _own_mailbox),
    Route("api.send_letter", "POST", API),
    Route("api.get_letter", "GET", API, _letter_id),
    # Mailbox health (issue 16): the admins' page; a mailbox's panel (its DNS asked of the test DNS server)
    Route("mailbox_health.index", "GET", ADMIN),
    Route("mailbox_health.panel", "GET", SIGNED_IN, _own_mailbox),
    Route("mailbox_health.check_dns", "POST", SIGNED_IN, lambda get: _own_mailbox(_test_dns(get))),
    Route("mailbox_health.fetch_now", "POST", SIGNED_IN, _own_mailbox),
    Route("notifications.index", "GET", SIGNED_IN),
    Route("notifications.follow", "GET", SIGNED_IN, _notification_id),
    Route("notifications.open_notification", "POST", SIGNED_IN, _notification_id),
    Route("notifications.read", "POST", SIGNED_IN, _notification_id),
    Route("notifications.read_all", "POST", SIGNED_IN),
    Route("notifications.preferences", "POST", SIGNED_IN),
    Route("notifications.system_mailbox", "POST", ADMIN),
    Route("api.list_notifications", "GET", API),
    # Webhooks (issue 16); other people's answer 404 (tests/test_webhooks_views.py)
    Route("webhooks.mine", "GET", SIGNED_IN),
    Route("webhooks.create_mine", "POST", SIGNED_IN),
    Route("webhooks.employee", "GET", ADMIN, _employee_id),
    Route("webhooks.create_for", "POST", ADMIN, _employee_id),
    Route("webhooks.send_test", "POST", SIGNED_IN, _webhook_id),
    Route("webhooks.enable", "POST", SIGNED_IN, _webhook_id),
    Route("webhooks.disable", "POST", SIGNED_IN, _webhook_id),
    Route("webhooks.delete", "POST", SIGNED_IN, _webhook_id),
    Route("webhooks.log", "GET", SIGNED_IN, _webhook_id),
]
# ---- end of the table ----

# Signing out and the sign-in page's language switch land on the sign-in page by design; anything
# else that sends a signed-in person there has wrongly refused them.
LEAVES_FOR_SIGN_IN = {"auth.sign_out", "auth.set_language", "profile.sign_out_everywhere"}


def test_every_route_is_in_the_table(app):
    served = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(route.endpoint, route.method) for route in ROUTES}
    assert served - listed == set(), "add these routes to ROUTES in tests/test_access.py"
    assert listed - served == set(), "these ROUTES entries name routes that no longer exist"


def _ids(route):
    return f"{route.endpoint}-{route.method}"


# Hashing a password costs ~0.15 s; the people of these tests share one hash made once.
_HASH = []


def _person(role, email):
    """An employee who signs in with tests.conftest.PASSWORD, made (once) without hashing again."""
    if not _HASH:
        _HASH.append(generate_password_hash(PASSWORD, method="scrypt"))
    person, _ = Employee.get_or_create(
        email=email, defaults={"name": role.title(), "role": role, "department": "Sales", "password_hash": _HASH[0]}
    )
    return person


def _goes_to_sign_in(response):
    """A redirect to sign-in: a 302 for a page, an HX-Redirect (401, nothing to swap) for htmx."""
    if response.status_code == 401:
        return response.headers.get("HX-Redirect", "").startswith("/sign-in") and not response.get_data()
    return response.status_code in (301, 302, 303) and response.headers["Location"].startswith("/sign-in")


def _assert_allowed(route, response, who):
    assert response.status_code in (200, 204, 302, 303), f"{who}: {response.status_code}"
    if route.endpoint not in LEAVES_FOR_SIGN_IN:
        assert not _goes_to_sign_in(response), f"{who} was sent to sign in"


def _answer(client, app, route, get, headers):
    with app.test_request_context():
        url = url_for(route.endpoint, **(route.args(get) if route.args else {}))
    return client.open(url, method=route.method, headers=headers, data={})


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
def test_access(client, auth, app, request, route):
    """Anonymous, employee and admin, each with a page request and an htmx request."""
    get = request.getfixturevalue
    if route.access == API:
        for role in (None, "employee", "admin"):
            if role:
                auth.login(_person(role, f"access-{role}@example.com"))
            response = _answer(client, app, route, get, {})
            assert response.status_code == 401, f"{role or 'anonymous'}: {response.status_code}"
            assert response.get_json()["error"]["code"] == "unauthorized"
        return
    for headers in ({}, {"HX-Request": "true"}):
        response = _answer(client, app, route, get, headers)
        if route.access == ANYONE:
            assert response.status_code in (200, 302), f"anonymous: {response.status_code}"
        else:
            assert _goes_to_sign_in(response), f"anonymous: {response.status_code} {response.headers.get('Location')}"

    for role in ("employee", "admin"):
        person = _person(role, f"access-{role}@example.com")
        auth.login(person)
        for headers in ({}, {"HX-Request": "true"}):
            if route.endpoint in LEAVES_FOR_SIGN_IN:
                auth.login(person)
            response = _answer(client, app, route, get, headers)
            if role == "employee" and route.access == ADMIN:
                assert response.status_code == 404, f"employee: {response.status_code}"
            else:
                _assert_allowed(route, response, role)
        auth.logout()


def test_missing_ids_get_404(as_admin):
    assert as_admin.get("/admin/employees/999999").status_code == 404
    assert as_admin.get("/admin/employees/999999/profile", headers={"HX-Request": "true"}).status_code == 404
    assert as_admin.post("/admin/projects/999999/archive").status_code == 404
