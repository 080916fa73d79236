"""The OpenAPI document: valid 3.1, true to every route, and schemathesis finds no input that makes a 500."""
import re

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance

from portal.api.openapi import PREFIX, document

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _rule_path(rule):
    """A werkzeug rule as an OpenAPI path: /api/v1/mailboxes/<int:mailbox_id> -> /api/v1/mailboxes/{mailbox_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def test_the_document_is_served_without_a_token_and_is_valid_openapi_3_1(app):
    response = app.test_client(use_cookies=False).get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    served = response.get_json()
    assert served["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(served).validate()  # raises on anything OpenAPI 3.1 does not allow


def test_the_document_names_where_the_portal_is_mounted(app):
    response = app.test_client().get("/api/v1/openapi.json", base_url="http://intranet.example/portal")
    assert response.get_json()["servers"] == [{"url": "/portal"}]


def test_every_api_route_is_described_and_every_description_is_a_route(app):
    routes = {
        (_rule_path(rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule == PREFIX or rule.rule.startswith(PREFIX + "/")
        for method in rule.methods - IGNORED_METHODS
    }
    described = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert routes == described


def test_every_described_path_parameter_is_in_its_route(app):
    for path, item in document()["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert names == declared, path


# ---------------------------------------------------------------- schemathesis

OPERATIONS = [(f"{method.upper()} {path}", operation) for path, item in document()["paths"].items()
              for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]
# Negative cases need something to get wrong: a body, a parameter or a path id.
RUNS = [(label, GenerationMode.POSITIVE) for label, _ in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label, operation in OPERATIONS
    if "requestBody" in operation or any(p["in"] != "header" for p in operation.get("parameters", ()))
    or "{" in label]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture
def api_schema(app, employee, other_employee, make_project, make_mailbox):
    """The served document, called in-process on the test app, with a few rows for ids to hit."""
    alpha = make_project("Alpha")
    make_mailbox(employee, projects=[alpha])
    make_mailbox(address="sales@example.com")
    make_mailbox(other_employee)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _to_loopback(case):
    """Generated host names would be looked up in DNS: point every server at loopback instead, where the
    connection guard refuses them (tests talk to nothing but 127.0.0.1)."""
    if isinstance(case.body, dict):
        for side in ("smtp", "incoming"):
            if isinstance(case.body.get(side), dict) and "host" in case.body[side]:
                case.body[side]["host"] = "127.0.0.1"


def test_no_generated_request_makes_a_server_error(api_schema, admin, make_token, subtests):
    """Positive and negative cases for every operation, in one app and database (set up once: it is the slow part)."""
    headers = {"Authorization": f"Bearer {make_token(admin, 'schemathesis')}"}
    for label, mode in RUNS:
        method, path = label.split(" ", 1)
        operation = api_schema[path][method]

        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            _to_loopback(case)
            response = case.call(headers={**(case.headers or {}), **headers})
            case.validate_response(response, checks=CHECKS)

        with subtests.test(msg=f"{label} {mode.value}"):
            call()
