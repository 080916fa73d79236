"""The API's front door: bearer tokens, no cookies or CSRF, the JSON error format, bad input, size and rate limits."""
import io
import json

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from portal.api.tokens import create_token, revoke_token
from portal.models import ApiToken, Letter


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    return body["error"]


def test_me_answers_who_the_token_acts_as_and_never_the_token(api_employee, employee):
    response = api_employee.get("/me")
    assert response.status_code == 200
    me = response.get_json()
    assert me["email"] == "erik@example.com" and me["name"] == "Erik Employee" and me["admin"] is False
    assert me["token"]["name"] == "CRM" and me["token"]["last_used_at"]
    assert api_employee.token not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer ptk_not-a-real-token",
                                    "Token ptk_x"])
def test_a_missing_or_unknown_token_is_401_in_the_error_format(app, header):
    client = app.test_client(use_cookies=False)
    response = client.get("/api/v1/me", headers={"Authorization": header} if header is not None else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthorized"


def test_a_revoked_token_stops_working_at_once(api_employee, employee):
    assert api_employee.get("/me").status_code == 200
    row = ApiToken.get(ApiToken.owner == employee.id)
    revoke_token(row, actor=employee)
    assert api_employee.get("/me").status_code == 401


def test_a_deactivated_employees_tokens_stop_working(api_employee, employee):
    employee.active = False
    employee.save()
    assert api_employee.get("/me").status_code == 401


def test_a_signed_in_browser_session_is_no_way_into_the_api(as_employee):
    response = as_employee.get("/api/v1/me")
    assert response.status_code == 401
    response = as_employee.post("/api/v1/letters", json={"project": None, "to": ["a@b.com"], "subject": "s",
                                                         "body": "b"})
    assert response.status_code == 401


def test_writes_need_no_csrf_token(app, make_token, employee, make_mailbox, make_project):
    make_mailbox(employee)
    project = make_project("Alpha")
    client = app.test_client()  # cookies on, but no CSRF header and no session: the token is enough
    response = client.post("/api/v1/letters", headers={"Authorization": f"Bearer {make_token(employee)}"},
                           json={"project": project.name, "to": ["friend@example.com"], "subject": "Hi",
                                 "body": "Hello"})
    assert response.status_code == 202, response.get_json()


def test_a_token_acts_with_its_owners_rights_no_more(api_as, employee, admin):
    assert api_as(employee).get("/me").get_json()["admin"] is False
    assert api_as(admin).get("/me").get_json()["admin"] is True
    employee.role = "admin"
    employee.save()  # rights are read at each request, not frozen into the token
    assert api_as(employee).get("/me").get_json()["admin"] is True


def test_unknown_urls_and_wrong_methods_answer_json_not_pages(api_employee):
    missing = api_employee.get("/no-such-thing")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = api_employee.delete("/me")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
    assert api_employee.get("/mailboxes/99999999999999999999999").status_code == 404
    assert api_employee.get("/letters/9223372036854775808").status_code == 404


def test_pages_keep_their_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_malformed_json_is_400(api_employee):
    for raw in ("{bad", '{"a": NaN}', '{"to": [], "to": []}', "\xff", "[" * 100_000):
        response = api_employee.post("/letters", data=raw.encode("utf-8", "surrogateescape") if raw != "\xff"
                                     else b"\xff", headers={"Content-Type": "application/json"})
        assert response.status_code == 400, raw[:20]
        assert error_of(response)["code"] == "invalid_json"


def test_a_body_that_is_not_json_is_415(api_employee):
    response = api_employee.post("/letters", data="project=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"


def test_a_json_value_that_is_not_an_object_is_422(api_employee):
    response = api_employee.post("/letters", json=["a"])
    assert response.status_code == 422 and error_of(response)["code"] == "invalid"


def test_unknown_fields_are_refused_by_name_and_nothing_is_created(api_employee, make_mailbox, employee):
    make_mailbox(employee)
    response = api_employee.post("/letters", json={"project": None, "to": ["a@example.com"], "subject": "s",
                                                   "body": "b", "bcc": ["spy@example.com"], "priority": 1})
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"bcc": "Unknown field.", "priority": "Unknown field."}
    assert Letter.select().count() == 0


def test_unknown_nested_fields_and_query_parameters_are_refused(api_admin, make_project):
    make_project("Alpha")
    response = api_admin.post("/mailboxes", json={"address": "a@example.com",
                                                  "smtp": {"host": "h", "port": 25, "tls": True}})
    assert error_of(response)["fields"] == {"smtp.tls": "Unknown field."}
    response = api_admin.get("/senders/resolve?project=Alpha&lang=ru")
    assert response.status_code == 422 and error_of(response)["fields"] == {"lang": "Unknown field."}
    response = api_admin.get("/senders/resolve?project=Alpha&project=Beta")
    assert error_of(response)["fields"] == {"project": "Give this parameter once."}


@pytest.mark.parametrize("body, field, message", [
    ({"to": "a@example.com"}, "to", "Must be a list."),
    ({"to": [1]}, "to[0]", "Must be a string."),
    ({"to": []}, "to", "At least 1 item."),
    ({"subject": 5}, "subject", "Must be a string."),
    ({"subject": "x" * 901}, "subject", "At most 900 characters."),
    ({"subject": "Hello\r\nBcc: spy@example.com"}, "subject",
     "Use a single line without line breaks or control characters."),
    ({"to": ["a@example.com\nBcc: spy@example.com"]}, "to[0]",
     "Use a single line without line breaks or control characters."),
    ({"to": ["x@example.com"] * 101}, "to", "At most 100 items."),
    ({"mailbox_id": "1"}, "mailbox_id", "Must be an integer."),
    ({"mailbox_id": True}, "mailbox_id", "Must be an integer."),
    ({"mailbox_id": 1.5}, "mailbox_id", "Must be an integer."),
    ({"mailbox_id": 0}, "mailbox_id", "At least 1."),
    ({"body": "a\x00b"}, "body", "Use a single line without line breaks or control characters."),
    ({"idempotency_key": "k" * 201}, "idempotency_key", "At most 200 characters."),
    ({"project": ["Alpha"]}, "project", "Must be a string."),
])
def test_wrong_types_and_over_long_or_multi_line_values_get_field_messages(api_employee, body, field, message):
    letter = {"project": None, "to": ["a@example.com"], "subject": "s", "body": "b", **body}
    response = api_employee.post("/letters", json=letter)
    assert response.status_code == 422
    assert error_of(response)["fields"][field] == message
    assert Letter.select().count() == 0


def test_a_body_over_one_megabyte_is_413_by_its_length(api_employee):
    big = json.dumps({"project": None, "to": ["a@example.com"], "subject": "s", "body": "x" * (1024 * 1024)})
    response = api_employee.post("/letters", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and error_of(response)["code"] == "too_large"


def test_a_chunked_body_over_one_megabyte_is_413_too(api_employee):
    body = b'{"project": null, "to": ["a@example.com"], "subject": "s", "body": "' + b"x" * (1300 * 1024) + b'"}'
    builder = EnvironBuilder(path="/api/v1/letters", method="POST", data=body,
                             headers={**api_employee.headers(), "Content-Type": "application/json"})
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]  # sent chunked: nobody announced the length
    environ.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
    app_iter, status, headers = run_wsgi_app(api_employee.app, environ, buffered=True)
    assert status.startswith("413"), b"".join(app_iter)
    assert json.loads(b"".join(app_iter))["error"]["code"] == "too_large"
    assert Letter.select().count() == 0


def test_too_many_requests_get_429_json_with_retry_after(config, employee, make_token):
    config.update(RATELIMIT_ENABLED=True, PORTAL_API_RATE_LIMIT="3 per minute")
    from portal import create_app

    app = create_app(config)
    client = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {make_token(employee)}"}
    statuses = [client.get("/api/v1/me", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/me", headers=headers)
    assert error_of(limited)["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # Another token has its own allowance.
    other = {"Authorization": f"Bearer {create_token(employee, 'Other')[1]}"}
    assert client.get("/api/v1/me", headers=other).status_code == 200


def test_server_errors_answer_json_without_internals(config, api_employee, monkeypatch):
    api_employee.app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("portal.api.shapes.me_json", broken)
    response = api_employee.get("/me")
    assert response.status_code == 500
    assert error_of(response)["code"] == "server_error"
    assert "internals" not in response.get_data(as_text=True)
