"""The JSON API under /api/v1: bearer tokens, JSON errors, and thin views over the same core the pages use."""
import hashlib
import json
from functools import partial

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_babel import force_locale
from werkzeug.exceptions import HTTPException

from portal import account_tests
from portal import mailboxes as service
from portal.api import shapes
from portal.api.openapi import BODY_LIMIT, MAX_ID, PREFIX, QUERIES, document
from portal.api.tokens import authenticate
from portal.api.validation import Invalid, validate
from portal.extensions import bearer_refusals_wait, count_bearer_refusal, csrf, limiter, spend_account_test
from portal.letters.compose import LetterError, NobodyCanSend, parse_recipients, queue_letter
from portal.letters.worker import wake_sender
from portal.mail.settings import MailConfig
from portal.models import Employee, Letter, Mailbox, Notification, Project, normalize_email
from portal.outages import CONNECTION_LOST, read_back
from portal.sender import may_use, resolve_sender

bp = Blueprint("api", __name__, url_prefix=PREFIX)
csrf.exempt(bp)  # no cookies here: a bearer token cannot be sent by another site's form
LANGS = ("en", "ru")
PUBLIC = {"api.openapi"}


class ApiError(Exception):
    """An answer in the API's error format: status, a stable code, an English message, per-field messages."""

    def __init__(self, status, code, message, fields=None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.extra = status, code, message, fields or {}, extra


def error_response(status, code, message, fields=None, **extra):
    """`{"error": {"code", "message", "fields"}}` with the status; never a page."""
    body = {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="portal"'
    return response


NOT_FOUND = (404, "not_found", "Not found.")


def not_found():
    """The one 404 for an unknown object and for one the caller may not see."""
    return ApiError(*NOT_FOUND)


# ---------------------------------------------------------------- before and after every request

def _rate_key():
    """Rate limits count per token (its hash, never the token), or per address without one."""
    header = request.headers.get("Authorization", "")
    if header:
        return "api-token:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()
    return "api-ip:" + (request.remote_addr or "")


limiter.limit(lambda: current_app.config.get("PORTAL_API_RATE_LIMIT") or "120 per minute", key_func=_rate_key)(bp)


@bp.before_app_request
def _json_routing_errors():
    """Unknown URLs and wrong methods under /api/v1 answer JSON too (no blueprint sees them otherwise)."""
    error = request.routing_exception
    if error is None or not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return None
    if isinstance(error, HTTPException) and error.code == 405:
        response = error_response(405, "method_not_allowed", "Method not allowed.")
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods or ()))
        return response
    if isinstance(error, HTTPException) and error.code == 404:
        return error_response(*NOT_FOUND)
    return None


@bp.before_request
def _authenticate():
    """Refuse bodies over 1 MB before anything else, then find the bearer token's owner."""
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        return error_response(413, "too_large", "The body is larger than 1 MB.")
    if request.endpoint in PUBLIC:
        return None
    address = request.remote_addr or ""
    wait = bearer_refusals_wait(address)
    if wait is not None:
        response = error_response(429, _HTTP_CODES[429], _HTTP_MESSAGES[429])
        response.headers["Retry-After"] = str(wait)
        return response
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    token = authenticate(value.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        count_bearer_refusal(address)
        return error_response(401, "unauthorized", "Send a valid token: Authorization: Bearer <token>.")
    g.api_token = token
    g.actor = token.owner
    return None


@bp.after_request
def _no_store(response):
    """Answers carry personal data: never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ApiError)
def _api_error(error):
    """An ApiError raised by a view, as JSON."""
    return error_response(error.status, error.code, error.message, error.fields, **error.extra)


@bp.errorhandler(Invalid)
def _invalid(error):
    """Values that failed the schema or the core's rules: 422 naming each field."""
    return error_response(422, "invalid", "Some values are not valid: see fields.", error.fields)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
               415: "unsupported_media_type", 429: "rate_limited"}
_HTTP_MESSAGES = {404: "Not found.", 413: "The body is larger than 1 MB.",
                  429: "Too many requests. Wait and try again."}


def _http_error(error):
    """Other HTTP errors (429 from the limiter, ...) in the API's format, not as the pages' HTML."""
    code = error.code or 500
    response = error_response(code, _HTTP_CODES.get(code, "error"), _HTTP_MESSAGES.get(code, f"{error.name}."))
    retry_after = dict(error.get_headers()).get("Retry-After")  # the account-test limit's 429 says when
    if retry_after is not None and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = retry_after
    return response


# By status code as well as by class: Flask prefers the app's page handler for a code over a
# blueprint's handler for a whole class.
for _code in (*_HTTP_CODES, 401, 403):
    bp.register_error_handler(_code, _http_error)
bp.register_error_handler(HTTPException, _http_error)


@bp.errorhandler(500)
def _server_error(error):
    """A crash: JSON without internals (the traceback goes to the log, as for pages)."""
    return error_response(500, "server_error", "Something went wrong. The error was logged.")


# ---------------------------------------------------------------- reading requests

def _reject_duplicates(pairs):
    found = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key!r}")
        found[key] = value
    return found


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def json_body(schema):
    """The request's JSON object, checked against a schema of the OpenAPI document (400, 413, 415, 422)."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    data = request.stream.read(BODY_LIMIT + 1)  # capped even without Content-Length (chunked)
    if len(data) > BODY_LIMIT:
        raise ApiError(413, "too_large", "The body is larger than 1 MB.")
    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "The body must be a JSON object.", {"body": "Must be an object."})
    return validate(body, schema)


def query(name):
    """The query string checked like a body: unknown parameters and repeated ones are refused."""
    values, errors = {}, {}
    for key in request.args:
        found = request.args.getlist(key)
        if len(found) > 1:
            errors[key] = "Give this parameter once."
        values[key] = found[0]
    if errors:
        raise Invalid(errors)
    return validate(values, QUERIES[name])


def lang():
    """The language of explanations: Accept-Language, else the token owner's, else the portal's default."""
    if request.headers.get("Accept-Language"):
        best = request.accept_languages.best_match(LANGS)
        if best:
            return best
    if g.actor.language in LANGS:
        return g.actor.language
    default = current_app.config.get("PORTAL_DEFAULT_LANGUAGE", "en")
    return default if default in LANGS else "en"


def _ip():
    return request.remote_addr or ""


def _mail_config():
    return MailConfig.from_mapping(current_app.config)


def _known_id(value):
    """An id a row could have; anything larger is simply not found (and never reaches the database)."""
    if not 0 < value <= MAX_ID:
        raise not_found()
    return value


def find_project(value):
    """A project by id (a number) or by name (a string; a string of digits that names none is tried as an id)."""
    if value is None:
        return None
    if isinstance(value, int):
        return Project.get_or_none(Project.id == value) if 0 < value <= MAX_ID else None
    project = Project.by_name(value)
    if project is None and value.strip().isdigit() and 0 < int(value) <= MAX_ID:
        project = Project.get_or_none(Project.id == int(value))
    return project


def _mailbox(mailbox_id, *, manage):
    try:
        return service.mailbox_for(g.actor, _known_id(mailbox_id), manage=manage)
    except service.MailboxNotFound:
        raise not_found() from None


def _test_failed(outcome):
    problem = outcome.result.problem
    message = f"The account test did not pass: {problem.title('en')}" if problem else "The account test did not pass."
    return ApiError(422, "account_test_failed", message, {}, test=outcome.result.to_dict(lang()))


def english(message):
    """A core module's (translated) message in English: every API error message is English."""
    with force_locale("en"):
        return str(message)


def _service_refusal(error):
    """The mailbox service's refusals as 422s naming their fields."""
    if isinstance(error, service.MailboxInvalid):
        return Invalid({name: english(message) for name, message in shapes.api_fields(error.errors).items()})
    if isinstance(error, shapes.ValuesInvalid):
        return Invalid(error.fields)
    return ApiError(422, "not_allowed", english(error.message))


# ---------------------------------------------------------------- the document and who I am

@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API (no token needed)."""
    return jsonify(document(request.script_root or "/"))


@bp.route("/me")
def me():
    """Who the token acts as."""
    query("none")
    return jsonify(shapes.me_json(g.api_token))


# ---------------------------------------------------------------- senders

@bp.route("/senders/resolve")
def resolve():
    """Which mailbox a letter from this employee in this project leaves from, every choice, and why."""
    asked = query("resolve")
    actor = g.actor
    employee = actor
    if asked.get("employee"):
        employee = Employee.by_email(asked["employee"])
        if employee is None or (employee.id != actor.id and not actor.is_admin):
            raise not_found()
    project = find_project(asked["project"])
    if project is None:
        raise not_found()
    return jsonify(shapes.decision_json(resolve_sender(employee, project), lang()))


# ---------------------------------------------------------------- mailboxes

@bp.route("/mailboxes")
def list_mailboxes():
    """Every mailbox the caller may see: admins all; others their own and the company ones they may use."""
    asked = query("mailboxes")
    actor = g.actor
    if actor.is_admin:
        rows = Mailbox.select().order_by(Mailbox.scope, Mailbox.address, Mailbox.id)
        if asked.get("scope"):
            rows = rows.where(Mailbox.scope == asked["scope"])
        if asked.get("owner"):
            owner = Employee.by_email(asked["owner"])
            rows = rows.where(Mailbox.owner == (owner.id if owner else 0))
        rows = list(rows)
    else:
        rows = service.personal_mailboxes(actor) + service.company_mailboxes_for(actor)
        if asked.get("scope"):
            rows = [m for m in rows if m.scope == asked["scope"]]
        if asked.get("owner"):
            rows = [m for m in rows if m.owner_id == actor.id] if normalize_email(asked["owner"]) == actor.email else []
    return jsonify({"mailboxes": shapes.mailboxes_json(rows, actor)})


@bp.route("/mailboxes/<int:mailbox_id>")
def get_mailbox(mailbox_id):
    """One mailbox the caller may see (settings only if they manage it; never a secret)."""
    query("none")
    mailbox = _mailbox(mailbox_id, manage=False)
    return jsonify({**shapes.mailbox_json(mailbox, g.actor), **shapes.health_json(mailbox, lang())})


def _account_test(values, actor, **options):
    """The account test as every call here runs it: the portal's mail rules, the caller's address and allowance.

    It runs in the request, bounded by PORTAL_MAIL_DEADLINE, and counts against the same limits as the
    form's tests (one per employee at a time, PORTAL_ACCOUNT_TESTS_AT_ONCE in all): 429 past them.
    """
    try:
        return account_tests.run_now(values, actor=actor, at_once=current_app.config["PORTAL_ACCOUNT_TESTS_AT_ONCE"],
                                     mail_config=_mail_config(), secret_key=current_app.secret_key, ip=_ip(),
                                     admit=spend_account_test, **options)
    except account_tests.TestsBusy as busy:
        raise ApiError(429, "tests_busy", str(busy.message)) from None


@bp.route("/mailboxes/test", methods=["POST"])
def test_mailbox():
    """The account test for these settings (or a stored mailbox's, changed by them); the check's own JSON."""
    body = json_body("MailboxTest")
    actor = g.actor
    existing = _mailbox(body["mailbox_id"], manage=True) if "mailbox_id" in body else None
    settings = {k: v for k, v in body.items() if k not in ("mailbox_id", "send_test_letter")}
    try:
        values = shapes.mailbox_values(settings, existing=existing)
        outcome = _account_test(values, actor, mailbox=existing,
                                owner=existing.owner if existing is not None else actor,
                                send_test_letter=bool(body.get("send_test_letter")))
    except (service.MailboxInvalid, shapes.ValuesInvalid) as error:
        raise _service_refusal(error) from None
    return jsonify(outcome.result.to_dict(lang()))


@bp.route("/mailboxes", methods=["POST"])
def create_mailbox():
    """Add a mailbox: the account test runs first; it is saved only if it passed (else 422 with the result)."""
    body = json_body("MailboxCreate")
    actor = g.actor
    scope = body.get("scope") or "employee"
    owner_email = body.get("owner")
    if not actor.is_admin:
        if scope == "company" or (owner_email and normalize_email(owner_email) != actor.email):
            raise not_found()
        owner = actor
        if not service.employees_may_add(current_app.config["PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES"]):
            raise ApiError(422, "not_allowed", "Admins have switched off adding own addresses. Ask an admin to add it.")
    elif scope == "company":
        if owner_email:
            raise Invalid({"owner": "A company mailbox has no owner."})
        owner = None
    else:
        owner = Employee.by_email(owner_email) if owner_email else actor
        if owner is None:
            raise Invalid({"owner": "No employee with this e-mail."})
    settings = {k: v for k, v in body.items() if k not in ("scope", "owner")}
    try:
        values = shapes.mailbox_values(settings, company=scope == "company")
        outcome = _account_test(values, actor, owner=owner)
        if not outcome.result.ok:
            raise _test_failed(outcome)
        saved = service.save_mailbox(
            values, actor=actor, secret_key=current_app.secret_key, scope=scope, owner=owner, proof=outcome.proof,
            ip=_ip(), employees_may_add_default=current_app.config["PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES"])
    except (service.MailboxInvalid, shapes.ValuesInvalid, service.NotAllowed, service.SaveRefused) as error:
        raise _service_refusal(error) from None
    mailbox = Mailbox.get_by_id(saved.mailbox.id)
    response = jsonify(shapes.mailbox_json(mailbox, actor))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_mailbox", mailbox_id=mailbox.id)
    return response


@bp.route("/mailboxes/<int:mailbox_id>", methods=["PATCH"])
def update_mailbox(mailbox_id):
    """Change a mailbox by the pages' rules: changed servers or secrets must pass the account test first."""
    mailbox = _mailbox(mailbox_id, manage=True)
    body = json_body("MailboxPatch")
    actor = g.actor
    active = body.pop("active", None)
    if body:
        try:
            values = shapes.mailbox_values(body, existing=mailbox, company=mailbox.scope == "company")
            try:
                service.save_mailbox(values, actor=actor, secret_key=current_app.secret_key, mailbox=mailbox,
                                     ip=_ip())
            except service.SaveRefused:
                # Servers or secrets changed: the same values must pass the test before they are saved.
                outcome = _account_test(values, actor, mailbox=mailbox, owner=mailbox.owner)
                if not outcome.result.ok:
                    raise _test_failed(outcome) from None
                service.save_mailbox(values, actor=actor, secret_key=current_app.secret_key, mailbox=mailbox,
                                     proof=outcome.proof, ip=_ip())
        except (service.MailboxInvalid, shapes.ValuesInvalid, service.NotAllowed, service.SaveRefused) as error:
            raise _service_refusal(error) from None
    if active is not None:
        service.set_active(Mailbox.get_by_id(mailbox.id), active, actor=actor, ip=_ip())
    return jsonify(shapes.mailbox_json(Mailbox.get_by_id(mailbox.id), actor))


@bp.route("/mailboxes/<int:mailbox_id>", methods=["DELETE"])
def delete_mailbox(mailbox_id):
    """Delete a mailbox; its audit trail stays."""
    query("none")
    service.delete_mailbox(_mailbox(mailbox_id, manage=True), actor=g.actor, ip=_ip())
    return "", 204


# ---------------------------------------------------------------- letters

def _recipients(items, kind, errors):
    found = []
    for index, item in enumerate(items):
        try:
            parsed = parse_recipients(item, kind)
        except LetterError as error:
            errors[f"{kind}[{index}]"] = english(error.message)
            continue
        if len(parsed) != 1:
            errors[f"{kind}[{index}]"] = "Give one address per item."
        else:
            found.append(parsed[0])
    return found


def _submit_token(author, key):
    """The letters queue's submit token for an API idempotency key: one per author and key."""
    return hashlib.sha256(f"api:{author.id}:{key}".encode("utf-8")).hexdigest()


def _accepted(letter, *, replay=False):
    response = jsonify(shapes.letter_json(letter, lang(), just_stored=not replay and letter.attempts == 0))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_letter", letter_id=letter.id)
    if replay:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.route("/letters", methods=["POST"])
def send_letter():
    """Queue a letter from the mailbox the rule picks (or the one named, if the caller may use it)."""
    body = json_body("LetterCreate")
    author = g.actor
    submit_token = _submit_token(author, body["idempotency_key"]) if body.get("idempotency_key") else None
    if submit_token:
        first = Letter.get_or_none((Letter.submit_token == submit_token) & (Letter.author == author.id))
        if first is not None:
            return _accepted(first, replay=True)
    project = find_project(body["project"])
    errors = {}
    if body["project"] is not None and project is None:
        errors["project"] = "No such project."
    elif project is not None and project.archived:
        errors["project"] = "This project is archived: letters are no longer sent in it."
    to = _recipients(body["to"], "to", errors)
    cc = _recipients(body.get("cc", []), "cc", errors)
    if errors:
        raise Invalid(errors)
    mailbox = None  # the sender rule picks
    if "mailbox_id" in body:
        mailbox = Mailbox.get_or_none(Mailbox.id == body["mailbox_id"])
        if mailbox is None or not may_use(author, mailbox, project):
            raise not_found()
    try:
        letter = queue_letter(author, project, mailbox, to=to, cc=cc, subject=body["subject"], body=body["body"],
                              submit_token=submit_token, wake=partial(wake_sender, current_app._get_current_object()),
                              check_sender=False)  # may_use above, or the rule's own pick: checked once
    except NobodyCanSend as refusal:
        raise ApiError(422, "nobody_can_send", "Nobody can send this letter: see explanation.", {},
                       explanation=refusal.decision.explanation(lang())) from None
    except LetterError as error:
        field = {"mailbox": "mailbox_id", "": "body"}.get(error.field, error.field)
        raise Invalid({field: english(error.message)}) from None
    except CONNECTION_LOST:
        # The commit may have reached the database before the connection broke: the key tells.
        stored = read_back(lambda: Letter.get_or_none((Letter.submit_token == submit_token)
                                                      & (Letter.author == author.id))) if submit_token else None
        if stored is None:
            raise
        letter = stored
        wake_sender(current_app._get_current_object(), letter)
    return read_back(lambda: _accepted(letter))  # stored: a database blip now must not answer 500


@bp.route("/letters/<int:letter_id>")
def get_letter(letter_id):
    """A letter's state, attempts, problem and replies: the author's own, or any for an admin."""
    query("none")
    letter = Letter.visible_to(g.actor).where(Letter.id == _known_id(letter_id)).first()
    if letter is None:
        raise not_found()
    return jsonify(shapes.letter_json(letter, lang()))


# ---------------------------------------------------------------- notifications

@bp.route("/notifications")
def list_notifications():
    """The token owner's notifications, newest first (the latest NOTIFICATIONS_MAX), and how many are unread."""
    from portal.notifications import NOTIFICATIONS_MAX, link_of, notifications_of, unread_count

    asked = query("notifications")
    rows = notifications_of(g.actor)
    if asked.get("unread") == "true":
        rows = rows.where(Notification.read_at.is_null())

    def link(entry):
        target = link_of(entry.target)
        return url_for(target[0], **target[1], _external=True) if target else None

    language = lang()
    return jsonify({"unread": unread_count(g.actor.id),
                    "notifications": [shapes.notification_json(entry, language, link)
                                      for entry in rows.limit(NOTIFICATIONS_MAX)]})
