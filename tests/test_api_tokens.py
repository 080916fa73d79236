"""Personal API tokens: stored hashed, shown once, named, listed, revoked; on My profile, for admins, and by command."""
import datetime
import hashlib
import re

import pytest
from flask.testing import FlaskClient

from portal.api.tokens import (
    LAST_USED_EVERY,
    TokenInvalid,
    TokenNotFound,
    authenticate,
    create_token,
    revoke_token,
    token_for,
    tokens_of,
)
from portal.models import ApiToken, utcnow
from tests.conftest import page_text

TOKEN = re.compile(r"ptk_[A-Za-z0-9_-]{43}")


def htmx(client, url, data=None):
    return client.post(url, data=data or {}, headers={"HX-Request": "true"})


# ---------------------------------------------------------------- the core

def test_a_token_is_stored_only_as_its_sha256(app, employee):
    row, token = create_token(employee, "CRM")
    assert TOKEN.fullmatch(token)
    stored = ApiToken.get_by_id(row.id)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in stored.__data__.values()}
    assert token.startswith(stored.hint) and len(stored.hint) < 12
    assert authenticate(token).owner.id == employee.id


def test_every_token_is_different(app, employee):
    assert len({create_token(employee, "CRM")[1] for _ in range(20)}) == 20


@pytest.mark.parametrize("name, message", [
    ("", "Name the token after the system that will use it."),
    ("   ", "Name the token after the system that will use it."),
    ("CRM\nX-Other: 1", "Use a single line without control characters."),
    ("x" * 101, "At most 100 characters."),
])
def test_a_token_needs_a_one_line_name(app, employee, name, message):
    with pytest.raises(TokenInvalid) as refused:
        create_token(employee, name)
    assert str(refused.value.message) == message
    assert ApiToken.select().count() == 0


def test_last_used_is_recorded_but_not_written_on_every_request(app, employee):
    row, token = create_token(employee, "CRM")
    start = utcnow()
    authenticate(token, now=start)
    assert ApiToken.get_by_id(row.id).last_used_at == start
    authenticate(token, now=start + datetime.timedelta(seconds=5))
    assert ApiToken.get_by_id(row.id).last_used_at == start
    later = start + LAST_USED_EVERY + datetime.timedelta(seconds=1)
    authenticate(token, now=later)
    assert ApiToken.get_by_id(row.id).last_used_at == later


def test_only_the_owner_or_an_admin_may_revoke(app, employee, other_employee, admin):
    row, token = create_token(employee, "CRM")
    with pytest.raises(TokenNotFound):
        token_for(other_employee, row.id)
    with pytest.raises(TokenNotFound):
        revoke_token(row, actor=other_employee)
    assert token_for(admin, row.id).id == row.id
    assert revoke_token(row, actor=admin) is True
    assert revoke_token(row, actor=admin) is False
    assert authenticate(token) is None
    assert ApiToken.get_by_id(row.id).revoked_by_id == admin.id


def test_lists_show_live_tokens_first(app, employee):
    old, _ = create_token(employee, "Old")
    revoke_token(old, actor=employee)
    live, _ = create_token(employee, "Live")
    assert [t.name for t in tokens_of(employee)] == ["Live", "Old"]


# ---------------------------------------------------------------- the command

def test_create_token_command_prints_a_working_token_once(app, runner, employee):
    result = runner.invoke(args=["create-token", "--email", "ERIK@example.com", "--name", "Task tracker"])
    assert result.exit_code == 0, result.output
    token = TOKEN.search(result.stdout).group(0)
    assert authenticate(token).name == "Task tracker"
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_create_token_command_names_the_token_by_default_and_refuses_strangers(app, runner, employee):
    assert runner.invoke(args=["create-token", "--email", employee.email]).exit_code == 0
    assert ApiToken.get().name == "command line"
    result = runner.invoke(args=["create-token", "--email", "nobody@example.com"])
    assert result.exit_code == 1 and "no active employee" in result.output


# ---------------------------------------------------------------- My profile

def test_my_profile_has_my_tokens_section(as_employee, employee):
    create_token(employee, "CRM")
    text = page_text(as_employee.get("/profile"))
    assert "API tokens" in text and "CRM" in text and "Create token" in text


def test_creating_a_token_on_my_profile_shows_it_once(as_employee, employee):
    response = htmx(as_employee, "/profile/api-tokens", {"token-name": "Task tracker"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<section id=\"api-tokens\"")  # the fragment, not a page
    token = TOKEN.search(html).group(0)
    assert authenticate(token).owner.id == employee.id
    assert "Copy the token now" in page_text(response)
    again = as_employee.get("/profile").get_data(as_text=True)
    assert token not in again and "Task tracker" in again


def test_a_token_without_a_name_is_refused_beside_the_field(as_employee):
    response = htmx(as_employee, "/profile/api-tokens", {"token-name": " "})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="token-name-error"' in html and "This field is required." in page_text(response)
    assert ApiToken.select().count() == 0


def test_creating_without_htmx_shows_the_token_on_a_whole_page(as_employee):
    response = as_employee.post("/profile/api-tokens", data={"token-name": "CRM"})
    assert response.status_code == 200 and "<html" in response.get_data(as_text=True)
    assert TOKEN.search(response.get_data(as_text=True))


def test_revoking_my_token_from_my_profile(as_employee, employee):
    row, token = create_token(employee, "CRM")
    response = htmx(as_employee, f"/api-tokens/{row.id}/revoke")
    assert response.status_code == 200 and "Revoked" in page_text(response)
    assert authenticate(token) is None


def test_nobody_sees_or_revokes_someone_elses_tokens(as_employee, other_employee):
    row, token = create_token(other_employee, "Theirs")
    assert as_employee.post(f"/api-tokens/{row.id}/revoke").status_code == 404
    assert as_employee.post("/api-tokens/99999999999999999999999/revoke").status_code == 404
    assert authenticate(token) is not None
    assert "Theirs" not in page_text(as_employee.get("/profile"))


@pytest.mark.parametrize("method, url", [
    ("get", "/admin/api-tokens"),
    ("post", "/admin/api-tokens"),
    ("get", "/admin/employees/{id}/api-tokens"),
    ("post", "/admin/employees/{id}/api-tokens"),
])
def test_the_admin_token_pages_are_not_there_for_employees(as_employee, other_employee, method, url):
    response = getattr(as_employee, method)(url.format(id=other_employee.id), data={"token-name": "x"})
    assert response.status_code == 404
    assert ApiToken.select().count() == 0


def test_signed_out_visitors_are_sent_to_sign_in(client):
    assert client.get("/profile/api-tokens").status_code == 302
    assert client.post("/profile/api-tokens", data={"token-name": "x"}).status_code == 302


def test_forms_keep_csrf(as_employee):
    response = as_employee.post("/profile/api-tokens", data={"token-name": "CRM"}, csrf=False)
    assert response.status_code == 400
    assert ApiToken.select().count() == 0


# ---------------------------------------------------------------- admins

def test_an_admin_creates_and_revokes_an_employees_token(as_admin, admin, employee):
    response = htmx(as_admin, f"/admin/employees/{employee.id}/api-tokens", {"token-name": "CRM for Erik"})
    token = TOKEN.search(response.get_data(as_text=True)).group(0)
    row = authenticate(token)
    assert row.owner.id == employee.id and row.created_by_id == admin.id
    page = page_text(as_admin.get(f"/admin/employees/{employee.id}/api-tokens"))
    assert "Erik Employee" in page and "CRM for Erik" in page and token not in page
    htmx(as_admin, f"/api-tokens/{row.id}/revoke")
    assert authenticate(token) is None


def test_the_admin_list_shows_every_token_and_creates_for_anyone(as_admin, employee, other_employee):
    create_token(other_employee, "Olga CRM")
    page = page_text(as_admin.get("/admin/api-tokens"))
    assert "Olga Other" in page and "Olga CRM" in page
    response = htmx(as_admin, "/admin/api-tokens", {"token-owner": str(employee.id), "token-name": "Tracker"})
    token = TOKEN.search(response.get_data(as_text=True)).group(0)
    assert authenticate(token).owner.id == employee.id
    refused = htmx(as_admin, "/admin/api-tokens", {"token-owner": "", "token-name": "Tracker"})
    assert "Choose an employee." in page_text(refused)


def test_revoking_from_the_admin_list_stays_on_the_list(as_admin, employee):
    row, token = create_token(employee, "CRM")
    response = htmx(as_admin, f"/api-tokens/{row.id}/revoke", {"back": "all"})
    assert 'id="every-token"' in response.get_data(as_text=True)
    assert authenticate(token) is None


def test_the_tokens_section_speaks_russian(client, auth, make_employee):
    person = make_employee(language="ru")
    auth.login(person)
    create_token(person, "CRM")
    text = page_text(client.get("/profile"))
    assert "API-токены" in text and "Создать токен" in text


def test_refused_bearer_tokens_are_limited_per_client_address(config, employee):
    config.update(RATELIMIT_ENABLED=True, PORTAL_API_FAILED_AUTH_RATE_LIMIT="3 per minute")
    from portal import create_app

    app = create_app(config)
    client = FlaskClient(app, app.response_class, use_cookies=False)
    valid = create_token(employee, "CRM")[1]

    def me(token, address="192.0.2.10"):
        return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                          environ_base={"REMOTE_ADDR": address})

    # A new guess on every request: the per-token limit never saw the same value twice.
    guesses = [me(f"ptk_guess{number}").status_code for number in range(4)]
    assert guesses == [401, 401, 401, 429]
    refused = me(valid)  # past the limit even a right token is not looked at from that address
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert me(valid, address="192.0.2.11").status_code == 200  # another address is not held back


def test_a_valid_token_used_often_is_not_counted_as_refused(config, employee):
    config.update(RATELIMIT_ENABLED=True, PORTAL_API_FAILED_AUTH_RATE_LIMIT="2 per minute")
    from portal import create_app

    app = create_app(config)
    client = FlaskClient(app, app.response_class, use_cookies=False)
    headers = {"Authorization": f"Bearer {create_token(employee, 'CRM')[1]}"}
    assert [client.get("/api/v1/me", headers=headers).status_code for _ in range(5)] == [200] * 5
