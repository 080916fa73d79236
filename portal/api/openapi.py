"""The OpenAPI 3.1 description of /api/v1, as data.

The request-body and query schemas here are also what `portal.api.validation` checks requests
against, so the document cannot drift from what the API accepts; a test checks every route of
the app against `paths` and back.
"""
from __future__ import annotations

import copy

from portal.mail.settings import mailbox_fields

PREFIX = "/api/v1"
MAX_ID = 2**63 - 1  # the largest id either database stores; larger ones are simply not found
BODY_LIMIT = 1024 * 1024  # bytes; larger bodies are refused with 413
# One line, no control characters (no header injection): the same set portal.fields refuses.
SINGLE_LINE = "^[^\\u0000-\\u001f\\u007f\\u0085\\u2028\\u2029]*$"
NO_NUL = "^[^\\u0000]*$"
TEXT_MAX = 255
SECRET_MAX = 1024
SUBJECT_MAX = 900
BODY_MAX = 200_000
RECIPIENTS_MAX = 100
LIST_MAX = 500
SECURITY_MODES = ["ssl", "starttls", "none"]
INCOMING_PROTOCOLS = ["pop3", "imap"]


def line(max_length=TEXT_MAX, **extra):
    """A single-line string schema."""
    return {"type": "string", "maxLength": max_length, "pattern": SINGLE_LINE, **extra}


def nullable(schema):
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties, required=(), **extra):
    """A closed object: unknown fields are refused."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _id(description="An id."):
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": description}


# How each server field of portal.mail.settings.MAILBOX_FIELDS is written in a request body, by API name.
_SERVER_IN = {
    "protocol": {"type": "string", "enum": INCOMING_PROTOCOLS},
    "host": line(description="Server name or IP address."),
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "security": {"type": "string", "enum": SECURITY_MODES, "description": "Implicit TLS, STARTTLS or none."},
    "username": line(),
    "password": {"type": "string", "maxLength": SECRET_MAX, "pattern": SINGLE_LINE, "writeOnly": True,
                 "description": "Accepted on writes, never returned. Left out on PATCH: the stored one is kept "
                                "(unless the host changes)."},
    "trusted_fingerprint": nullable(line(description="SHA-256 of a certificate to trust, 64 hex digits.")),
    "allow_plaintext_auth": {
        "type": "boolean", "description": "Allow a password over an unencrypted connection (both servers)."},
}
# ... and how an answer shows it (a secret as "<name>_set": whether one is stored).
_SERVER_OUT = {
    "protocol": {"type": "string", "enum": INCOMING_PROTOCOLS},
    "host": {"type": "string"},
    "port": {"type": "integer"},
    "security": {"type": "string", "enum": SECURITY_MODES},
    "username": {"type": "string"},
    "password_set": {"type": "boolean"},
    "trusted_fingerprint": {"type": ["string", "null"]},
    "allow_plaintext_auth": {"type": "boolean"},
}


def _server_in(*, incoming, partial):
    fields = mailbox_fields("incoming" if incoming else "smtp")
    properties = {f.api_name: _SERVER_IN[f.api_name] for f in fields}
    required = () if partial else (("protocol", "host", "port") if incoming else ("host", "port"))
    return obj(properties, required)


def _server_out(*, incoming):
    fields = mailbox_fields("incoming" if incoming else "smtp")
    names = [f"{f.api_name}_set" if f.secret else f.api_name for f in fields]
    properties = {name: _SERVER_OUT[name] for name in names}
    schema = obj(properties, list(properties))
    schema.pop("additionalProperties")
    return schema


def _out(properties, required=None):
    """A response object (clients should ignore fields they do not know)."""
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else list(required)}


_ACCESS_IN = obj({
    "everyone": {"type": "boolean"},
    "employees": {"type": "array", "maxItems": LIST_MAX, "items": line(description="An employee's e-mail.")},
    "departments": {"type": "array", "maxItems": LIST_MAX, "items": line()},
})

_MAILBOX_WRITABLE = {
    "address": line(description="The mailbox's e-mail address."),
    "display_name": line(),
    "receive_replies": {"type": "boolean"},
    "projects": {"type": "array", "maxItems": LIST_MAX, "items": line(description="A project's name."),
                 "description": "Projects the mailbox serves; none: every project."},
    "default": {"type": "boolean", "description": "The owner's Default for these projects."},
    "access": {**_ACCESS_IN, "description": "Company mailboxes only: who may use it."},
}

SCHEMAS = {
    "Error": _out({"error": _out({
        "code": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "test": ref("CheckResult"),
        "explanation": {"type": "string", "description": "nobody_can_send: why, and what to configure."},
    }, ["code", "message", "fields"])}),
    "TokenInfo": _out({
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
    }),
    "Notification": _out({
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["letter_failed", "letter_bounced", "reply_received", "letter_waiting",
                                            "mailbox_needs_attention", "mailbox_paused", "mailbox_assigned",
                                            "password_ending"]},
        "text": {"type": "string"},
        "about": {"type": "string", "description": "the letter's subject or the mailbox's address"},
        "link": {"type": ["string", "null"], "format": "uri"},
        "created_at": {"type": "string", "format": "date-time"},
        "read_at": {"type": ["string", "null"], "format": "date-time"},
    }),
    "NotificationList": _out({
        "unread": {"type": "integer"},
        "notifications": {"type": "array", "items": ref("Notification")},
    }),
    "Me": _out({
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "name": {"type": "string"},
        "department": {"type": "string"},
        "position": {"type": "string"},
        "admin": {"type": "boolean"},
        "language": {"type": ["string", "null"]},
        "token": ref("TokenInfo"),
    }),
    "SenderMailbox": _out({
        "id": {"type": "integer"},
        "address": {"type": "string"},
        "display_name": {"type": "string"},
        "level": {"type": "string", "enum": ["employee", "company"]},
    }),
    "SenderDecision": _out({
        "mailbox": nullable(ref("SenderMailbox")),
        "choices": {"type": "array", "items": ref("SenderMailbox")},
        "explanation": {"type": "string"},
        "conflict": {"type": "boolean"},
        "reason": {"type": "string", "description": "e.g. employee.default, company.every, nobody"},
    }),
    "SmtpServer": _server_out(incoming=False),
    "IncomingServer": _server_out(incoming=True),
    "Mailbox": _out({
        "id": {"type": "integer"},
        "scope": {"type": "string", "enum": ["company", "employee"]},
        "owner": {"type": ["string", "null"], "description": "The owner's e-mail; null for a company mailbox."},
        "address": {"type": "string"},
        "display_name": {"type": "string"},
        "smtp": nullable(ref("SmtpServer")),
        "incoming": nullable(ref("IncomingServer")),
        "receive_replies": {"type": "boolean"},
        "projects": {"type": "array", "items": {"type": "string"}},
        "default": {"type": "boolean"},
        "access": nullable(_out({
            "everyone": {"type": "boolean"},
            "employees": {"type": "array", "items": {"type": "string"}},
            "departments": {"type": "array", "items": {"type": "string"}},
        })),
        "active": {"type": "boolean"},
        "last_passed_test_at": {"type": ["string", "null"], "format": "date-time"},
        "manageable": {"type": "boolean", "description": "false for a company mailbox the caller may only use: "
                                                         "its servers and access list are not shown (null)."},
        "auth": {"type": "string", "enum": ["password", "oauth"],
                 "description": "oauth: it signs in with the provider (Microsoft, Google, Yandex, the company's own)."},
        "needs_reconnect": {"type": "boolean", "description": "The provider no longer accepts its sign-in: its "
                                                              "owner must press Reconnect on the portal's page."},
        "password_sign_in_ends": {"type": ["string", "null"], "format": "date",
                                  "description": "It still signs in with a password at a provider that stops taking "
                                                 "passwords on this day (Microsoft 365: 2026-12-31; Outlook.com: "
                                                 "2024-09-16, already past): sign it in with the provider on the "
                                                 "portal's page before then. null when it signs in with the provider "
                                                 "or its provider keeps passwords."},
        "health": ref("MailboxHealth"),  # GET /mailboxes/{id} only
        "deliverability": nullable(ref("Deliverability")),  # GET /mailboxes/{id} only; null until DNS was asked
    }, required=("id", "scope", "owner", "address", "display_name", "smtp", "incoming", "receive_replies", "projects",
                 "default", "access", "active", "last_passed_test_at", "manageable")),
    "MailboxHealth": _out({
        "state": {"type": "string", "enum": ["working", "warning", "paused_by_portal", "paused_by_person"]},
        "last_check_at": {"type": ["string", "null"], "format": "date-time"},
        "last_send_at": {"type": ["string", "null"], "format": "date-time"},
        "last_incoming_at": {"type": ["string", "null"], "format": "date-time",
                             "description": "When replies were last read from its incoming server."},
        "certificate_expires_at": {"type": ["string", "null"], "format": "date-time"},
        "problem": nullable(ref("CheckProblem")),
    }),
    "Deliverability": _out({
        "domain": {"type": "string"},
        "ok": {"type": "boolean"},
        "checks": {"type": "array", "items": _out({
            "kind": {"type": "string", "enum": ["spf", "dmarc", "dkim", "mx", "dns"]},
            "ok": {"type": "boolean"},
            "code": {"type": "string", "description": "e.g. spf_pass, spf_missing_include, spf_refuses, dmarc_missing"},
            "text": {"type": "string", "description": "The finding and its advice, in the answer's language."},
        })},
    }),
    "MailboxList": _out({"mailboxes": {"type": "array", "items": ref("Mailbox")}}),
    "Stage": _out({
        "name": {"type": "string"}, "ok": {"type": "boolean"}, "ms": {"type": "integer"},
        "detail": {"type": "string"},
    }),
    "CheckProblem": _out({
        "code": {"type": "string"}, "title": {"type": "string"}, "advice": {"type": "string"},
        "server_reply": {"type": "string"},
    }),
    "CheckResult": _out({
        "ok": {"type": "boolean"},
        "problem": nullable(ref("CheckProblem")),
        "stages": {"type": "array", "items": ref("Stage")},
    }),
    "MailboxTest": obj({
        "mailbox_id": _id("Test a stored mailbox with these changes; fields left out keep their stored values."),
        "address": line(),
        "display_name": line(),
        "smtp": _server_in(incoming=False, partial=True),
        "incoming": nullable(_server_in(incoming=True, partial=True)),
        "send_test_letter": {"type": "boolean", "description": "Also send a real letter to the mailbox's own address."},
    }),
    "MailboxCreate": obj({
        "scope": {"type": "string", "enum": ["company", "employee"],
                  "description": "company: admins only. Default employee."},
        "auth": {"type": "string", "enum": ["password", "oauth"],
                 "description": "oauth is refused with 422: a person must consent at the provider on the page."},
        "owner": nullable(line(description="The owner's e-mail (admins); others always own what they add.")),
        **{k: v for k, v in _MAILBOX_WRITABLE.items() if k == "address"},
        "smtp": _server_in(incoming=False, partial=False),
        "incoming": nullable(_server_in(incoming=True, partial=False)),
        **{k: v for k, v in _MAILBOX_WRITABLE.items() if k != "address"},
    }, ["address", "smtp"]),
    "MailboxPatch": obj({
        **{k: v for k, v in _MAILBOX_WRITABLE.items() if k == "address"},
        "smtp": _server_in(incoming=False, partial=True),
        "incoming": nullable(_server_in(incoming=True, partial=True)),
        **{k: v for k, v in _MAILBOX_WRITABLE.items() if k != "address"},
        "active": {"type": "boolean", "description": "false pauses the mailbox, true resumes it."},
    }),
    "LetterCreate": obj({
        "project": {"anyOf": [line(), {"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"type": "null"}],
                    "description": "The project's name or id; null for a letter outside any project."},
        "to": {"type": "array", "minItems": 1, "maxItems": RECIPIENTS_MAX,
               "items": line(description="An address, optionally with a name: Name <a@b.com>.")},
        "cc": {"type": "array", "maxItems": RECIPIENTS_MAX, "items": line()},
        "subject": line(SUBJECT_MAX),
        "body": {"type": "string", "maxLength": BODY_MAX, "pattern": NO_NUL},
        "mailbox_id": _id("Send from this mailbox instead of the one the rule picks."),
        "idempotency_key": line(200, description="The same key again returns the first letter."),
    }, ["project", "to", "subject", "body"]),
    "LetterProblem": _out({
        "code": {"type": "string"},
        "title": {"type": "string"},
        "explanation": {"type": "string"},
        "server_reply": {"type": "string"},
        "smtp_code": {"type": ["integer", "null"]},
        "stage": {"type": "string"},
    }),
    "Attempt": _out({
        "number": {"type": ["integer", "null"]},
        "outcome": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
        "mailbox_address": {"type": "string"},
        "problem": nullable(ref("LetterProblem")),
    }),
    "Recipient": _out({
        "address": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["to", "cc"]},
        "status": {"type": "string", "enum": ["pending", "accepted", "refused", "deferred", "bounced"],
                   "description": "bounced: a delivery status notification came back for this recipient after "
                                  "its server had accepted the letter; server_reply holds its status and words"},
        "smtp_code": {"type": ["integer", "null"]},
        "server_reply": {"type": "string"},
    }),
    "Reply": _out({
        "id": {"type": "integer"},
        "from": {"type": "string"},
        "subject": {"type": "string"},
        "date": {"type": ["string", "null"], "format": "date-time"},
        "text": {"type": "string"},
        "attachments": {"type": "array", "items": _out({"name": {"type": "string"}, "size": {"type": "integer"}})},
    }),
    "Letter": _out({
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": ["queued", "sending", "sent", "deferred", "failed", "uncertain",
                                             "cancelled"]},
        "project": {"type": ["string", "null"]},
        "mailbox": nullable(_out({"id": {"type": "integer"}, "address": {"type": "string"}})),
        "from": {"type": "string"},
        "subject": {"type": "string"},
        "bounced": {"type": "integer", "description": "how many recipients a bounce came back for"},
        "recipients": {"type": "array", "items": ref("Recipient")},
        "created_at": {"type": "string", "format": "date-time"},
        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "attempt_count": {"type": "integer"},
        "attempts": {"type": "array", "items": ref("Attempt")},
        "problem": nullable(ref("LetterProblem")),
        "replies": {"type": "array", "items": ref("Reply")},
    }),
}

# Query strings, checked like bodies (unknown parameters are refused).
QUERIES = {
    "resolve": obj({
        "employee": line(description="The employee's e-mail; default: the caller."),
        "project": line(description="The project's name or id."),
    }, ["project"]),
    "mailboxes": obj({
        "scope": {"type": "string", "enum": ["company", "employee"]},
        "owner": line(description="Only this employee's mailboxes (admins)."),
    }),
    "none": obj({}),
    "notifications": obj({
        "unread": {"type": "string", "enum": ["true", "false"], "description": "true: only the unread ones."},
    }),
}


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


ERRORS = {
    "400": _error("Malformed JSON."),
    "401": _error("No token, or a revoked or unknown one."),
    "404": _error("Not found, or not yours to see: the two answer alike."),
    "405": _error("Method not allowed."),
    "413": _error("Body over 1 MB."),
    "415": _error("The body is not application/json."),
    "422": _error("Invalid values: `fields` names each one; unknown fields are refused."),
    "429": _error("Too many requests: see Retry-After."),
}


def _json(description, schema):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(operation_id, summary, responses, *, errors, body=None, parameters=(), security=True,
               description=None):
    operation = {"operationId": operation_id, "summary": summary, "responses": dict(responses)}
    if description:
        operation["description"] = description
    for code in errors:
        operation["responses"][code] = ERRORS[code]
    if parameters:
        operation["parameters"] = list(parameters)
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    if not security:
        operation["security"] = []
    return operation


def _query(name, schema, required=False, description=None):
    parameter = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _path_id(name):
    return {"name": name, "in": "path", "required": True, "schema": _id()}


_READ = ("401", "413", "422", "429")
_WRITE = ("400", "401", "413", "415", "422", "429")
_LANG = {"name": "Accept-Language", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "ru or en: the language of explanations and advice (default: the token owner's)."}

PATHS = {
    f"{PREFIX}/openapi.json": {"get": _operation(
        "openapi", "This document", {"200": {"description": "The OpenAPI document",
                                             "content": {"application/json": {"schema": {"type": "object"}}}}},
        errors=("413", "422", "429"), security=False)},
    f"{PREFIX}/me": {"get": _operation(
        "me", "Who the token acts as", {"200": _json("The token's owner", ref("Me"))}, errors=_READ)},
    f"{PREFIX}/senders/resolve": {"get": _operation(
        "resolve_sender", "Which mailbox a letter from this employee in this project leaves from",
        {"200": _json("The rule's answer", ref("SenderDecision"))},
        errors=_READ + ("404",),
        parameters=[_query("employee", QUERIES["resolve"]["properties"]["employee"]),
                    _query("project", QUERIES["resolve"]["properties"]["project"], required=True), _LANG],
        description="An employee may ask about themself; an admin about anyone. Unknown or someone else's "
                    "employee, or an unknown project: 404.")},
    f"{PREFIX}/mailboxes": {
        "get": _operation("list_mailboxes", "Mailboxes the caller may see (never a secret)",
                          {"200": _json("The mailboxes", ref("MailboxList"))}, errors=_READ,
                          parameters=[_query("scope", QUERIES["mailboxes"]["properties"]["scope"]),
                                      _query("owner", QUERIES["mailboxes"]["properties"]["owner"])]),
        "post": _operation("create_mailbox", "Add a mailbox; it is saved only after its account test passes",
                           {"201": _json("Saved", ref("Mailbox"))}, errors=_WRITE + ("404",), body="MailboxCreate",
                           parameters=[_LANG],
                           description="A failed account test answers 422 with `error.test` (the check's result) "
                                       "and saves nothing. scope company, or another owner: admins only (404 "
                                       "otherwise)."),
    },
    f"{PREFIX}/mailboxes/test": {"post": _operation(
        "test_mailbox", "Run the account test on these settings",
        {"200": _json("The check's result, as `portal check-account --json` prints it", ref("CheckResult"))},
        errors=_WRITE + ("404",), body="MailboxTest", parameters=[_LANG],
        description="Answers when the test is over, within PORTAL_MAIL_DEADLINE. 429 with `tests_busy` while the "
                    "caller's previous test (from a page or here) or PORTAL_ACCOUNT_TESTS_AT_ONCE tests are running.")},
    f"{PREFIX}/mailboxes/{{mailbox_id}}": {
        "parameters": [_path_id("mailbox_id")],
        "get": _operation("get_mailbox", "One mailbox", {"200": _json("The mailbox", ref("Mailbox"))},
                          errors=_READ + ("404",)),
        "patch": _operation("update_mailbox", "Change a mailbox; changed servers or secrets are tested first",
                            {"200": _json("Saved", ref("Mailbox"))}, errors=_WRITE + ("404",), body="MailboxPatch",
                            parameters=[_LANG]),
        "delete": _operation("delete_mailbox", "Delete a mailbox (its audit trail stays)",
                             {"204": {"description": "Deleted"}}, errors=_READ + ("404",)),
    },
    f"{PREFIX}/letters": {"post": _operation(
        "send_letter", "Queue a letter", {"202": _json("Queued (or the first letter for this idempotency key)",
                                                       ref("Letter"))},
        errors=_WRITE + ("404",), body="LetterCreate", parameters=[_LANG],
        description="Without mailbox_id the sender rule picks; a mailbox the caller may not use: 404; nobody "
                    "can send in the project: 422 with the explanation.")},
    f"{PREFIX}/letters/{{letter_id}}": {
        "parameters": [_path_id("letter_id")],
        "get": _operation("get_letter", "A letter's state, attempts, problem and replies",
                          {"200": _json("The letter", ref("Letter"))}, errors=_READ + ("404",),
                          parameters=[_LANG])},
    f"{PREFIX}/notifications": {"get": _operation(
        "list_notifications", "The token owner's notifications, newest first",
        {"200": _json("The latest 200 notifications and the unread count", ref("NotificationList"))},
        errors=_READ, parameters=[_query("unread", QUERIES["notifications"]["properties"]["unread"]), _LANG],
        description="What the bell in the portal lists: a letter failed or bounced, a reply arrived, a mailbox "
                    "needs attention or was paused, letters wait on a paused mailbox, a mailbox was given to the "
                    "owner. `text` follows Accept-Language; `link` is the portal page where to act.")},
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "External addresses portal API",
        "version": "1.0.0",
        "description": "Which mailbox each letter to an external contact leaves from, the mailboxes, their "
                       "account tests, and letters. Send `Authorization: Bearer <token>` (a personal token "
                       "from My profile, or `portal create-token`). Errors are "
                       "`{\"error\": {\"code\", \"message\", \"fields\"}}`; messages are in English, "
                       "explanations follow Accept-Language.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}


def document(server_url="/"):
    """The document, its server URL set to where the portal is mounted."""
    found = copy.deepcopy(DOCUMENT)
    found["servers"] = [{"url": server_url or "/"}]
    return found
