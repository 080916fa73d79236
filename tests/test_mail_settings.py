"""Mailbox settings and the engine's configuration."""
from __future__ import annotations

import ipaddress

import pytest

from portal.mail.settings import (DEFAULT_MAIL_PORTS, AllowedHost, MailboxSettings, MailConfig, ServerSettings,
                                  format_fingerprint)


def test_password_never_appears_in_repr():
    server = ServerSettings("smtp.example.com", 465, "ssl", "me@example.com", "hunter2-secret")
    mailbox = MailboxSettings("me@example.com", "Me", server)
    assert "hunter2-secret" not in repr(server)
    assert "hunter2-secret" not in repr(mailbox)
    assert "hunter2-secret" not in str(mailbox)


@pytest.mark.parametrize("kwargs", [dict(security="tls"), dict(port=0), dict(port=70000), dict(host=" ")])
def test_bad_server_settings_are_refused(kwargs):
    fields = dict(host="smtp.example.com", port=465, security="ssl", username="u", password="p")
    with pytest.raises(ValueError):
        ServerSettings(**{**fields, **kwargs})


def test_fingerprint_accepts_colons_and_is_shown_with_them():
    pin = "AB:" * 31 + "CD"
    server = ServerSettings("h.example.com", 465, "ssl", "u", "p", trusted_fingerprint=pin)
    assert server.trusted_fingerprint == "ab" * 31 + "cd"
    assert format_fingerprint(server.trusted_fingerprint) == pin


def test_config_defaults():
    config = MailConfig.from_mapping({})
    assert config.timeout == 10.0
    assert config.allowed_ports == DEFAULT_MAIL_PORTS == {25, 465, 587, 2525, 110, 995, 143, 993}
    assert config.allowed_hosts == () and config.ca_file is None


def test_config_from_environment_strings():
    config = MailConfig.from_mapping({
        "PORTAL_MAIL_TIMEOUT": "2.5", "PORTAL_MAIL_ALLOWED_PORTS": "587, 465",
        "PORTAL_MAIL_ALLOWED_HOSTS": "mail.corp.example, 10.0.0.0/8:25, [fd00::1]:587",
        "PORTAL_MAIL_CA_FILE": "/etc/ssl/corp.pem", "UNRELATED": "x"})
    assert config.timeout == 2.5
    assert config.allowed_ports == {587, 465}
    assert config.allowed_hosts == (
        AllowedHost(host="mail.corp.example"),
        AllowedHost(network=ipaddress.ip_network("10.0.0.0/8"), port=25),
        AllowedHost(network=ipaddress.ip_network("fd00::1/128"), port=587))
    assert config.ca_file == "/etc/ssl/corp.pem"


def test_config_from_typed_values():
    config = MailConfig.from_mapping({"PORTAL_MAIL_TIMEOUT": 4, "PORTAL_MAIL_ALLOWED_PORTS": [25],
                                      "PORTAL_MAIL_ALLOWED_HOSTS": ["mx.corp.example:25"]})
    assert config.timeout == 4.0 and config.allowed_ports == {25}
    assert config.allowed_hosts == (AllowedHost(host="mx.corp.example", port=25),)


@pytest.mark.parametrize("mapping", [{"PORTAL_MAIL_TIMEOUT": "soon"}, {"PORTAL_MAIL_TIMEOUT": "0"},
                                     {"PORTAL_MAIL_ALLOWED_PORTS": "smtp"},
                                     {"PORTAL_MAIL_ALLOWED_HOSTS": "mail.corp:99999"},
                                     {"PORTAL_MAIL_ALLOWED_HOSTS": "bad host!"}])
def test_bad_config_is_refused_with_the_key_named(mapping):
    with pytest.raises(ValueError):
        MailConfig.from_mapping(mapping)


def test_the_form_the_api_and_the_openapi_document_list_exactly_the_mailbox_fields(app):
    from portal.api import openapi, shapes
    from portal.forms.mailboxes import MailboxForm
    from portal.mail.settings import MAILBOX_FIELDS, mailbox_fields
    from portal.models import Mailbox

    names = [f.name for f in MAILBOX_FIELDS]
    with app.test_request_context():
        form = MailboxForm()
        assert list(form.values()) == names
        # Every other field of the form is about the page, not a setting of the mailbox.
        assert {field.name for field in form} - set(names) == {
            "csrf_token", "scope", "owner_id", "proof", "provider", "send_test_letter",
            "submit_token"}

    assert set(shapes.SERVICE_FIELDS) == set(names) | {"scope", "owner"}
    assert {shapes.SERVICE_FIELDS[name] for name in names} == {f.api_path for f in MAILBOX_FIELDS}
    schemas = openapi.SCHEMAS
    stored = Mailbox(incoming_protocol="imap")
    for side, answer in (("smtp", "SmtpServer"), ("incoming", "IncomingServer")):
        written = [f.api_name for f in mailbox_fields(side)]
        shown = [f"{name}_set" if f.secret else name for f, name in zip(mailbox_fields(side), written)]
        assert list(shapes.server_json(stored, side)) == shown
        assert list(schemas[answer]["properties"]) == shown
        for body in ("MailboxCreate", "MailboxPatch", "MailboxTest"):
            schema = schemas[body]["properties"][side]
            schema = schema["anyOf"][0] if "anyOf" in schema else schema
            assert list(schema["properties"]) == written, (body, side)
    top = {f.api_name for f in mailbox_fields("mailbox")}
    # "auth": only to be told that a provider sign-in is added on the page (issue 12), like scope and owner no setting.
    assert set(schemas["MailboxCreate"]["properties"]) == top | {"smtp", "incoming", "access", "scope", "owner",
                                                                 "auth"}
    assert set(schemas["MailboxCreate"]["properties"]["access"]["properties"]) == {
        f.api_name for f in mailbox_fields("access")}
    assert set(schemas["Mailbox"]["properties"]) >= top | {"smtp", "incoming", "access"}
