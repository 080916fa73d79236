"""Creating, testing, changing, pausing and deleting external addresses: the rules the pages and the API share.

Independent of WTForms and of the request: callers pass plain values, the acting employee,
the app's secret (for the save gate's signed proof) and the client's IP (for the audit log).
Every refusal names the field it is about.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from peewee import JOIN, fn

from portal import events, mailbox_health
from portal.db import database, locked, whole_number, writing
from portal.fields import CONTROL_CHARACTERS, single_line
from portal.mail.settings import MAILBOX_FIELDS
from portal.models import AuditEvent, Employee, Mailbox, MailboxAccess, MailboxProject, PortalSetting, Project, utcnow
from portal.models.people import FIELD_MAX, normalize_email
from portal.secret_box import SecretError, active_box

PROOF_MAX_AGE = 15 * 60  # seconds a passed test stays good for saving
PROOF_SALT = "portal.mailbox-test-proof"
SECRET_MAX = 1024
SECURITY_MODES = ("ssl", "starttls", "none")
INCOMING_PROTOCOLS = ("pop3", "imap")
EMPLOYEES_MAY_ADD = "employees_may_add_mailboxes"

# Changing any server field needs a new passed test before saving; the rest (display name,
# projects, Default, access, receive replies) keeps the last one.
SERVER_FIELDS = tuple(f.name for f in MAILBOX_FIELDS if f.server)
SECRET_FIELDS = tuple(f.name for f in MAILBOX_FIELDS if f.secret)
PLAIN_FIELDS = ("display_name", "receive_replies", "is_default", "access_everyone")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


class MailboxInvalid(ValueError):
    """Values that cannot make a mailbox; ``errors`` maps each field to its message."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


class MailboxNotFound(LookupError):
    """No such mailbox, or one the employee may not see: the two are told apart by nobody."""


class SaveRefused(PermissionError):
    """The save gate refused: the settings did not pass the account test for this user recently."""

    def __init__(self, reason, message):
        super().__init__(str(message))
        self.reason = reason  # "untested" | "other_settings" | "expired" | "other_user"
        self.message = message


class NotAllowed(PermissionError):
    """The employee may not do this (e.g. add own mailboxes when admins switched that off)."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


# ---------------------------------------------------------------- who may see what

def employees_may_add(default=True):
    """Whether employees may add their own external addresses (admins switch it on Outgoing messages)."""
    return bool(PortalSetting.read(EMPLOYEES_MAY_ADD, default))


def set_employees_may_add(allowed, *, actor):
    """Let employees add their own addresses, or stop them (admins only)."""
    if not actor.is_admin:
        raise NotAllowed(_l("Only admins change this."))
    PortalSetting.write(EMPLOYEES_MAY_ADD, bool(allowed))


def may_manage(actor, mailbox):
    """Admins manage every mailbox; an employee only their own."""
    return actor.is_admin or (mailbox.scope == "employee" and mailbox.owner_id == actor.id)


def may_see(actor, mailbox):
    """Manage it, or a company mailbox shared with them (seen without settings or secrets)."""
    if may_manage(actor, mailbox):
        return True
    if mailbox.scope != "company" or not mailbox.active:
        return False
    return mailbox.id in {m.id for m in company_mailboxes_for(actor)}


# What decides where, and how protected, a stored password is sent on each side of a mailbox.
SECRET_DESTINATION = {
    "smtp": ("smtp_host", "smtp_port", "smtp_security", "smtp_username", "smtp_trusted_fingerprint",
             "allow_plaintext_auth"),
    "incoming": ("incoming_protocol", "incoming_host", "incoming_port", "incoming_security", "incoming_username",
                 "incoming_trusted_fingerprint", "allow_plaintext_auth"),
}


def _where_the_secret_goes(settings, side):
    """The values that decide where a side's password is sent, from a Mailbox or a cleaned mapping."""
    read = settings.get if isinstance(settings, dict) else (lambda name: getattr(settings, name))
    return tuple(read(name) or None for name in SECRET_DESTINATION[side])


def mailbox_for(actor, mailbox_id, *, manage=True):
    """The mailbox with this id if the actor may manage (or, with manage=False, see) it; else MailboxNotFound."""
    try:
        mailbox = Mailbox.get_by_id(whole_number(mailbox_id))
    except (Mailbox.DoesNotExist, TypeError, ValueError):
        raise MailboxNotFound(mailbox_id) from None
    allowed = may_manage(actor, mailbox) if manage else may_see(actor, mailbox)
    if not allowed:
        raise MailboxNotFound(mailbox_id)
    return mailbox


def personal_mailboxes(owner):
    """An employee's own mailboxes, oldest first."""
    return list(
        Mailbox.select().where((Mailbox.scope == "employee") & (Mailbox.owner == owner.id))
        .order_by(Mailbox.created_at, Mailbox.id)
    )


def company_mailboxes():
    """Every company mailbox, by address."""
    return list(Mailbox.select().where(Mailbox.scope == "company").order_by(Mailbox.address, Mailbox.id))


def company_mailboxes_for(employee):
    """Active company mailboxes this employee may use, by address."""
    department = (employee.department or "").lower()
    shared = MailboxAccess.select(MailboxAccess.mailbox).where(
        (MailboxAccess.employee == employee.id)
        | ((fn.LOWER(MailboxAccess.department) == department) & (MailboxAccess.department != ""))
    )
    return list(
        Mailbox.select()
        .where(
            (Mailbox.scope == "company")
            & Mailbox.active
            & ((Mailbox.access_everyone == True) | Mailbox.id.in_(shared))  # noqa: E712
        )
        .order_by(Mailbox.address, Mailbox.id)
    )


def projects_of(mailboxes):
    """{mailbox id: [Project, ...]} for these mailboxes, in one query (an empty list means every project)."""
    ids = [m.id for m in mailboxes]
    found = {i: [] for i in ids}
    if ids:
        links = (
            MailboxProject.select(MailboxProject, Project).join(Project)
            .where(MailboxProject.mailbox.in_(ids)).order_by(fn.LOWER(Project.name))
        )
        for link in links:
            found[link.mailbox_id].append(link.project)
    return found


def access_of(mailboxes):
    """{mailbox id: ([Employee, ...], [department, ...])} for these mailboxes, in one query."""
    ids = [m.id for m in mailboxes]
    found = {i: ([], []) for i in ids}
    if ids:
        rules = (
            MailboxAccess.select(MailboxAccess, Employee).join(Employee, JOIN.LEFT_OUTER)
            .where(MailboxAccess.mailbox.in_(ids)).order_by(MailboxAccess.id)
        )
        for rule in rules:
            if rule.employee_id:
                found[rule.mailbox_id][0].append(rule.employee)
            elif rule.department:
                found[rule.mailbox_id][1].append(rule.department)
    return found


# ---------------------------------------------------------------- cleaning values

@dataclass
class Cleaned:
    """Validated values, ready to store; ``settings`` is what the account test checks."""

    values: dict
    projects: list = field(default_factory=list)  # Project rows
    access_employees: list = field(default_factory=list)  # Employee rows
    access_departments: list = field(default_factory=list)
    settings: object = None  # portal.mail.settings.MailboxSettings
    grant: object = None  # portal.models.oauth.MailboxGrant when it signs in with the provider (issue 12)

    @property
    def canonical(self):
        return canonical_settings(self.settings)


def _text(values, name, errors, *, required=False, limit=FIELD_MAX):
    return single_line(values.get(name), name, errors, required=required, limit=limit)


def _secret(values, name, errors):
    value = values.get(name) or ""
    if not isinstance(value, str):
        value = str(value)
    if CONTROL_CHARACTERS.search(value):
        errors[name] = _l("A password cannot contain line breaks or control characters.")
    elif len(value) > SECRET_MAX:
        errors[name] = _l("At most %(max)d characters.", max=SECRET_MAX)
    return value


def _host(values, name, errors):
    value = _text(values, name, errors, required=True)
    if name in errors:
        return value
    bare = value.strip("[]")
    try:
        ipaddress.ip_address(bare)
        return bare
    except ValueError:
        pass
    if not _HOST.fullmatch(value) or len(value) > 253:
        errors[name] = _l("Enter a server name such as smtp.example.com, or an IP address.")
    return value.rstrip(".").lower()


def _port(values, name, errors, *, required=True):
    raw = values.get(name)
    raw = "" if raw is None else str(raw).strip()
    if not raw:
        if required:
            errors[name] = _l("Enter a port from 1 to 65535.")
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        errors[name] = _l("Enter a port from 1 to 65535.")
        return None
    return int(raw)


def _choice(values, name, allowed, errors, default=""):
    value = str(values.get(name) or default).strip().lower()
    if value not in allowed:
        errors[name] = _l("Choose a value from the list.")
    return value


def _flag(values, name):
    value = values.get(name)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y"}
    return bool(value)


def _fingerprint(values, name, errors):
    from portal.mail.settings import normalize_fingerprint

    value = _text(values, name, errors)
    if not value or name in errors:
        return None
    try:
        return normalize_fingerprint(value)
    except ValueError:
        errors[name] = _l("A certificate fingerprint is 64 hexadecimal digits (SHA-256).")
        return None


def _ids(raw):
    if raw is None or raw == "":
        return []
    if isinstance(raw, (str, int)):
        raw = [raw]
    return list(raw)


def clean_mailbox(values, *, existing=None, is_admin=False):
    """Validate posted values into a Cleaned mailbox, or raise MailboxInvalid naming every bad field.

    A blank password keeps the stored one, except when its server changed: then it must be typed
    again, so a stored password is never sent to a server its owner did not choose.
    """
    from portal.mail.settings import IncomingSettings, MailboxSettings, ServerSettings

    errors = {}
    out = {}
    address = _text(values, "address", errors, required=True)
    if "address" not in errors:
        try:
            address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            errors["address"] = _l("Enter a valid e-mail address.")
    out["address"] = normalize_email(address)
    out["display_name"] = _text(values, "display_name", errors)
    out["smtp_host"] = _host(values, "smtp_host", errors)
    out["smtp_port"] = _port(values, "smtp_port", errors)
    out["smtp_security"] = _choice(values, "smtp_security", SECURITY_MODES, errors, "ssl")
    out["smtp_username"] = _text(values, "smtp_username", errors)
    out["smtp_trusted_fingerprint"] = _fingerprint(values, "smtp_trusted_fingerprint", errors)
    out["allow_plaintext_auth"] = _flag(values, "allow_plaintext_auth")
    protocol = str(values.get("incoming_protocol") or "").strip().lower()
    if protocol and protocol not in INCOMING_PROTOCOLS:
        errors["incoming_protocol"] = _l("Choose a value from the list.")
    out["incoming_protocol"] = protocol or None
    if protocol:
        out["incoming_host"] = _host(values, "incoming_host", errors)
        out["incoming_port"] = _port(values, "incoming_port", errors)
        out["incoming_security"] = _choice(values, "incoming_security", SECURITY_MODES, errors, "ssl")
        out["incoming_username"] = _text(values, "incoming_username", errors)
        out["incoming_trusted_fingerprint"] = _fingerprint(values, "incoming_trusted_fingerprint", errors)
    else:
        out.update(incoming_host="", incoming_port=None, incoming_security="ssl", incoming_username="",
                   incoming_trusted_fingerprint=None)
    out["receive_replies"] = _flag(values, "receive_replies")
    if out["receive_replies"] and not protocol:
        errors["receive_replies"] = _l("Receiving replies needs the incoming server (POP3 or IMAP) below.")
    out["is_default"] = _flag(values, "is_default")

    grant = _sign_in_grant(values, existing, errors)
    for name, side in (("smtp_password", "smtp"), ("incoming_password", "incoming")):
        typed = _secret(values, name, errors)
        if grant is not None:  # signs in with the provider's token: no password is kept
            out[name] = ""
            continue
        if name == "incoming_password" and not protocol:
            out[name] = ""
            continue
        if typed:
            out[name] = typed
        elif existing is not None and getattr(existing, name):
            if _where_the_secret_goes(existing, side) != _where_the_secret_goes(out, side):
                # The stored password may only ever go where it went before: same server, same
                # protection, same login. Otherwise it must be typed again.
                errors.setdefault(name, _l("The server changed: type the password again."))
            else:
                try:
                    out[name] = existing.secret(name)
                except SecretError:
                    errors.setdefault(name, _l("The stored password cannot be read any more: type it again."))
        else:
            out[name] = ""

    project_ids = []
    for raw in _ids(values.get("projects")):
        try:
            project_ids.append(whole_number(raw))
        except (TypeError, ValueError):
            errors["projects"] = _l("This project does not exist.")
    projects = list(Project.select().where(Project.id.in_(project_ids))) if project_ids else []
    if len({p.id for p in projects}) != len(set(project_ids)):
        errors["projects"] = _l("This project does not exist.")

    access_employees, access_departments = [], []
    out["access_everyone"] = True
    if is_admin:
        out["access_everyone"] = _flag(values, "access_everyone")
        employee_ids = []
        for raw in _ids(values.get("access_employees")):
            try:
                employee_ids.append(whole_number(raw))
            except (TypeError, ValueError):
                errors["access_employees"] = _l("This employee does not exist.")
        if employee_ids:
            access_employees = list(Employee.select().where(Employee.id.in_(employee_ids)))
            if len({e.id for e in access_employees}) != len(set(employee_ids)):
                errors["access_employees"] = _l("This employee does not exist.")
        for raw in _ids(values.get("access_departments")):
            name = str(raw).strip()
            if CONTROL_CHARACTERS.search(name) or len(name) > FIELD_MAX:
                errors["access_departments"] = _l("Use a single line without control characters.")
            elif name and name.lower() not in {d.lower() for d in access_departments}:
                access_departments.append(name)

    if errors:
        raise MailboxInvalid(errors)
    try:
        smtp = ServerSettings(
            host=out["smtp_host"], port=out["smtp_port"], security=out["smtp_security"],
            username=out["smtp_username"], password=out["smtp_password"],
            trusted_fingerprint=out["smtp_trusted_fingerprint"], allow_plaintext_auth=out["allow_plaintext_auth"],
        )
        incoming = None
        if protocol:
            incoming = IncomingSettings(protocol=protocol, server=ServerSettings(
                host=out["incoming_host"], port=out["incoming_port"], security=out["incoming_security"],
                username=out["incoming_username"], password=out["incoming_password"],
                trusted_fingerprint=out["incoming_trusted_fingerprint"],
                allow_plaintext_auth=out["allow_plaintext_auth"],
            ))
    except ValueError:
        raise MailboxInvalid({"smtp_host": _l("These server settings are not valid.")}) from None
    settings = MailboxSettings(address=out["address"], display_name=out["display_name"], smtp=smtp, incoming=incoming)
    if grant is not None:
        from portal.oauth.tokens import with_grant

        settings = with_grant(settings, None, grant=grant)
    return Cleaned(out, projects, access_employees, access_departments, settings, grant)


_GRANT_ERRORS = {
    "expired": _l("The sign-in with the provider has expired. Press the sign-in button again."),
    "missing": _l("Sign in with the provider first, or use a password instead."),
}


def _sign_in_grant(values, existing, errors):
    """The provider grant the form signs in with (see portal.oauth.grants.form_grant), or None for a password."""
    from portal.oauth.grants import form_grant

    chosen = str(values.get("auth") or "").strip().lower() or None
    if chosen not in (None, "oauth", "password"):
        errors["auth"] = _l("Choose a value from the list.")
        return None
    try:
        return form_grant(str(values.get("oauth_grant") or "").strip() or None, existing, chosen=chosen)
    except ValueError as error:
        errors["auth"] = _GRANT_ERRORS[str(error)]
        return None


def canonical_settings(settings):
    """The exact server settings a test checks, secrets included, as one stable string (never stored as is)."""

    def server(s):
        # A token changes with every refresh: what was tested is signing in as this identity by this mechanism.
        secret = f"token:{s.sasl}" if s.sasl else s.password
        return [s.host, s.port, s.security, s.username, secret, s.trusted_fingerprint, s.allow_plaintext_auth]

    incoming = [settings.incoming.protocol, server(settings.incoming.server)] if settings.incoming else None
    return json.dumps([settings.address.lower(), server(settings.smtp), incoming], separators=(",", ":"))


# ---------------------------------------------------------------- the save gate

def _proof_serializer(secret_key):
    return URLSafeTimedSerializer(secret_key, salt=PROOF_SALT)


def _proof_digest(secret_key, canonical):
    import hashlib
    import hmac

    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def make_proof(settings, actor, secret_key):
    """A signed proof that these exact settings passed the test for this user (good for 15 minutes)."""
    canonical = canonical_settings(settings)
    return _proof_serializer(secret_key).dumps({"u": actor.id, "d": _proof_digest(secret_key, canonical)})


def check_proof(proof, settings, actor, secret_key, *, max_age=PROOF_MAX_AGE):
    """The time the proof was made, if it is this user's fresh proof for exactly these settings; else SaveRefused."""
    if not proof:
        raise SaveRefused("untested", _l("Run Test account first: settings are saved only after they pass it."))
    try:
        payload, signed_at = _proof_serializer(secret_key).loads(proof, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise SaveRefused("expired", _l("The test passed more than 15 minutes ago. Run Test account again.")) from None
    except BadSignature:
        raise SaveRefused("untested",
                          _l("Run Test account first: settings are saved only after they pass it.")) from None
    if not isinstance(payload, dict) or payload.get("u") != actor.id:
        raise SaveRefused("other_user", _l("This test was run by someone else. Run Test account yourself."))
    if payload.get("d") != _proof_digest(secret_key, canonical_settings(settings)):
        raise SaveRefused("other_settings", _l("The settings changed after the test. Run Test account again."))
    return signed_at.replace(tzinfo=None)


def needs_test(cleaned, mailbox):
    """Whether saving these values needs a fresh passed test: a new mailbox, changed server settings or secrets."""
    if mailbox is None or not mailbox.tested:
        return True
    try:
        stored = mailbox.to_settings()
    except SecretError:
        return True
    return canonical_settings(stored) != cleaned.canonical


# ---------------------------------------------------------------- testing

@dataclass
class TestOutcome:
    """The account test's result and, when it passed, the proof that lets these settings be saved."""

    result: object  # portal.mail.check.CheckResult
    proof: str | None
    cleaned: Cleaned

    __test__ = False  # not a pytest test class


def test_mailbox(values, *, actor, mail_config, secret_key, mailbox=None, owner=None, ip="",
                 send_test_letter=False, admit=None, **check_options):
    """Run Test account on posted values; audit it; return the outcome with a proof when it passed.

    `admit(actor)`, when given, is called once the values are clean and before any connection; it
    raises to refuse the test (the web layer's per-employee allowance of tests). `check_options`
    go to check_account (a deadline, a listener for stages as they finish).
    """
    from portal.mail.check import check_account

    cleaned = clean_mailbox(values, existing=mailbox, is_admin=actor.is_admin)
    if admit is not None:
        admit(actor)
    if cleaned.grant is not None:
        send_test_letter = _with_fresh_token(cleaned) or send_test_letter
    result = check_account(cleaned.settings, mail_config, send_test_letter=send_test_letter, **check_options)
    proof = make_proof(cleaned.settings, actor, secret_key) if result.ok else None
    detail = "" if result.ok else result.problem.code
    same_servers = mailbox is not None and _same_servers(cleaned, mailbox)
    if result.ok and same_servers:
        mailbox.last_passed_test_at = utcnow()
        mailbox.tested_settings_digest = active_box().digest(cleaned.canonical)
        mailbox.save(only=[Mailbox.last_passed_test_at, Mailbox.tested_settings_digest, Mailbox.updated_at])
    if same_servers:  # a check of the stored settings like the background one: the same state and count of refusals
        mailbox_health.record_check(mailbox, result)
    record(
        "tested" if result.ok else "test_failed",
        actor=actor,
        mailbox=mailbox,
        address=cleaned.values["address"],
        owner=mailbox.owner if mailbox is not None else owner,
        ip=ip,
        detail=detail,
    )
    return TestOutcome(result, proof, cleaned)


def _with_fresh_token(cleaned):
    """Put a token good for the test into the cleaned settings; True when the test must send its letter: the
    provider signed in another identity, so only its answer to MAIL FROM and DATA shows the right to send as
    this address (Microsoft's Send As, Google's aliases)."""
    from portal.oauth import grants
    from portal.oauth.tokens import with_grant

    try:
        cleaned.grant = grants.fresh_grant(cleaned.grant)
    except grants.NeedsReconnecting:
        raise MailboxInvalid({"auth": _l("The provider no longer accepts this sign-in: press Reconnect.")}) from None
    except grants.TokenUnavailable:
        raise MailboxInvalid({"auth": _l("The provider could not give a sign-in token just now. "
                                         "Try again in a minute.")}) from None
    cleaned.settings = with_grant(cleaned.settings, None, grant=cleaned.grant)
    return cleaned.grant.identity != cleaned.values["address"]


def _same_servers(cleaned, mailbox):
    try:
        return canonical_settings(mailbox.to_settings()) == cleaned.canonical
    except SecretError:
        return False


# ---------------------------------------------------------------- saving

def default_conflicts(owner_id, project_ids, *, exclude_id=None):
    """The owner's other personal Defaults that overlap these projects (none chosen = every project)."""
    if owner_id is None:
        return []
    query = Mailbox.select().where(
        (Mailbox.scope == "employee") & (Mailbox.owner == owner_id) & (Mailbox.is_default == True)  # noqa: E712
    )
    if exclude_id is not None:
        query = query.where(Mailbox.id != exclude_id)
    others = list(query.order_by(Mailbox.created_at, Mailbox.id))
    projects = projects_of(others)
    wanted = set(project_ids)
    clash = []
    for other in others:
        theirs = {p.id for p in projects[other.id]}
        if not wanted or not theirs or wanted & theirs:
            clash.append(other)
    return clash


@dataclass
class Saved:
    """What saving did: the mailbox, whether it is new, the fields that changed, and the Defaults it replaced."""

    mailbox: Mailbox
    created: bool
    changed_fields: list
    replaced_defaults: list


def save_mailbox(values, *, actor, secret_key, mailbox=None, scope="employee", owner=None, proof=None, ip="",
                 employees_may_add_default=True):
    """Create or change a mailbox, refusing unless the settings being saved passed the test (the save gate).

    Only admins choose the scope, the owner and the access list; for anyone else a new mailbox is
    their own and those values are ignored, and it is refused while employees may not add their own
    (an admin's choice, else `employees_may_add_default`, the portal's configured default). Editing
    only display name, projects, Default, access or receive-replies keeps the last passed test.
    """
    if mailbox is not None and not may_manage(actor, mailbox):
        raise MailboxNotFound(mailbox.id)
    if mailbox is None:
        if not actor.is_admin:
            scope, owner = "employee", actor
            if not employees_may_add(employees_may_add_default):
                raise NotAllowed(_l("Admins have switched off adding own addresses. Ask an admin to add it."))
        if scope not in ("employee", "company"):
            raise MailboxInvalid({"scope": _l("Choose a value from the list.")})
        if scope == "employee" and owner is None:
            raise MailboxInvalid({"owner": _l("Choose the employee the address belongs to.")})
        if scope == "company":
            owner = None
    else:
        scope, owner = mailbox.scope, mailbox.owner

    cleaned = clean_mailbox(values, existing=mailbox, is_admin=actor.is_admin and scope == "company")
    tested_at = None
    if needs_test(cleaned, mailbox):
        tested_at = check_proof(proof, cleaned.settings, actor, secret_key)

    box = active_box()
    with database.atomic():
        created = mailbox is None
        if created:
            mailbox = Mailbox(scope=scope, owner=owner.id if owner is not None else None, created_by=actor.id)
            before = {}
            before_projects, before_access = set(), set()
        else:
            before = {name: getattr(mailbox, name) for name in SERVER_FIELDS + PLAIN_FIELDS
                      if name not in SECRET_FIELDS}
            before_projects = set(mailbox.project_ids())
            before_access = {(r.employee_id, (r.department or "").lower()) for r in mailbox.access_rules}
            before_secrets = {name: _readable(mailbox, name) for name in SECRET_FIELDS}
        values_out = cleaned.values
        for name in SERVER_FIELDS + PLAIN_FIELDS:
            if name in SECRET_FIELDS:
                continue
            if name == "access_everyone" and scope != "company":
                mailbox.access_everyone = True
                continue
            setattr(mailbox, name, values_out[name])
        for name in SECRET_FIELDS:
            if created or values_out[name] != before_secrets[name]:  # an unchanged secret keeps its ciphertext
                mailbox.set_secret(name, values_out[name], box)
        resumed = False
        if tested_at is not None:
            mailbox.last_passed_test_at = tested_at
            mailbox.tested_settings_digest = box.digest(cleaned.canonical)
            if not mailbox.active and mailbox.paused_problem:  # new settings passed where the old were refused
                mailbox.active, mailbox.paused_problem, mailbox.paused_reply = True, "", ""
                mailbox.sign_in_failures, resumed = 0, True
        mailbox.updated_by = actor.id
        mailbox.save()
        released = _keep_sign_in(mailbox, cleaned.grant)

        project_ids = {p.id for p in cleaned.projects}
        if project_ids != before_projects:
            MailboxProject.delete().where(MailboxProject.mailbox == mailbox.id).execute()
            if project_ids:
                MailboxProject.insert_many([(mailbox.id, pid) for pid in sorted(project_ids)],
                                           fields=[MailboxProject.mailbox, MailboxProject.project]).execute()
        access = set()
        if scope == "company":
            access = ({(e.id, "") for e in cleaned.access_employees}
                      | {(None, d.lower()) for d in cleaned.access_departments})
            if access != before_access:
                MailboxAccess.delete().where(MailboxAccess.mailbox == mailbox.id).execute()
                rows = [(mailbox.id, e.id, None) for e in cleaned.access_employees]
                rows += [(mailbox.id, None, d) for d in cleaned.access_departments]
                if rows:
                    MailboxAccess.insert_many(rows, fields=[MailboxAccess.mailbox, MailboxAccess.employee,
                                                            MailboxAccess.department]).execute()

        replaced = []
        if scope == "employee" and mailbox.is_default:
            replaced = default_conflicts(mailbox.owner_id, project_ids, exclude_id=mailbox.id)
            for other in replaced:
                other.is_default = False
                other.updated_by = actor.id
                other.save(only=[Mailbox.is_default, Mailbox.updated_by, Mailbox.updated_at])
                record("changed", actor=actor, mailbox=other, ip=ip, fields=["is_default"],
                       detail=f"replaced by {mailbox.address}")

        if created:
            changed = sorted(name for name in SERVER_FIELDS + PLAIN_FIELDS
                             if values_out.get(name) not in (None, "", False))
            changed += ["projects"] if project_ids else []
            changed += ["access"] if access else []
        else:
            changed = [name for name, old in before.items() if getattr(mailbox, name) != old]
            changed += [name for name in SECRET_FIELDS if values_out[name] != before_secrets[name]]
            changed += ["projects"] if project_ids != before_projects else []
            changed += ["access"] if scope == "company" and access != before_access else []
        record("created" if created else "changed", actor=actor, mailbox=mailbox, ip=ip, fields=changed)
    if resumed or released:
        if released:
            from portal.oauth.grants import release_waiting

            release_waiting(mailbox)
        events.mailbox_recovered.send(mailbox)
    # Someone else gave the employee an address of their own, or named them on a company address's access list.
    given = {mailbox.owner_id} if created and scope == "employee" else {e for e, _ in access - before_access if e}
    for employee_id in sorted(given - {actor.id}):
        events.mailbox_assigned.send(mailbox, employee=Employee.get_by_id(employee_id))
    return Saved(mailbox, created, changed, replaced)


def _keep_sign_in(mailbox, grant):
    """Bind the form's provider grant to the saved mailbox, or drop the old one when it now uses a password;
    True when a grant that needed reconnecting was replaced (its letters are released after the commit)."""
    from portal.models.oauth import MailboxGrant
    from portal.oauth.grants import bind

    if grant is None:
        MailboxGrant.delete().where(MailboxGrant.mailbox == mailbox.id).execute()
        return False
    return bind(mailbox, grant)


def _readable(mailbox, name):
    try:
        return mailbox.secret(name)
    except SecretError:
        return None


def set_active(mailbox, active, *, actor, ip=""):
    """Pause a mailbox (letters stop leaving from it) or resume it."""
    if not may_manage(actor, mailbox):
        raise MailboxNotFound(mailbox.id)
    if mailbox.active == bool(active):
        return mailbox
    mailbox.active = bool(active)
    mailbox.updated_by = actor.id
    # A person resuming it starts the count of refused sign-ins (see portal.letters.queue) from nought.
    mailbox.sign_in_failures, mailbox.paused_problem, mailbox.paused_reply = 0, "", ""
    mailbox.save(only=[Mailbox.active, Mailbox.updated_by, Mailbox.updated_at, Mailbox.sign_in_failures,
                       Mailbox.paused_problem, Mailbox.paused_reply])
    record("resumed" if active else "paused", actor=actor, mailbox=mailbox, ip=ip, fields=["active"])
    if active:
        events.mailbox_recovered.send(mailbox)
    else:
        events.mailbox_paused.send(mailbox, problem="", by=actor)
    return mailbox


def delete_mailbox(mailbox, *, actor, ip=""):
    """Delete a mailbox; its audit trail stays, naming the address."""
    if not may_manage(actor, mailbox):
        raise MailboxNotFound(mailbox.id)
    with database.atomic():
        record("deleted", actor=actor, mailbox=mailbox, ip=ip)
        mailbox.delete_instance()


# ---------------------------------------------------------------- audit and rotation

def record(action, *, actor, mailbox=None, address=None, owner=None, ip="", fields=(), detail=""):
    """Write one audit event; field names only, never a value."""
    if mailbox is not None:
        address = mailbox.address
        owner = mailbox.owner_id if owner is None else owner
    owner_id = owner.id if isinstance(owner, Employee) else owner
    return AuditEvent.create(
        mailbox=mailbox.id if mailbox is not None else None,
        address=normalize_email(address or ""),
        actor=actor.id if actor is not None else None,
        owner=owner_id,
        action=action,
        changed_fields=json.dumps(list(fields)),
        ip=(ip or "")[:64],
        detail=(detail or "")[:500],
    )


def audit_events(*, address="", employee_id=None):
    """Audit events, newest first, narrowed by part of an address and by an employee (as actor or owner)."""
    query = AuditEvent.select().order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    address = (address or "").strip().lower()
    if address:
        query = query.where(AuditEvent.address.contains(address))
    if employee_id:
        query = query.where((AuditEvent.actor == employee_id) | (AuditEvent.owner == employee_id))
    return query


def rotate_secrets(box):
    """Re-encrypt every mailbox's secrets with the newest key (and re-key still-valid settings digests); the count.

    All or nothing: a secret no configured key opens raises SecretError naming its mailbox, and no row changes.
    """
    count = 0
    with writing():
        for mailbox in locked(Mailbox.select().order_by(Mailbox.id)):
            for name in SECRET_FIELDS:
                try:
                    setattr(mailbox, name, box.rotate(getattr(mailbox, name), mailbox.secret_context))
                except SecretError as error:
                    raise SecretError(f"mailbox {mailbox.id} ({mailbox.address}), {name}: {error}") from None
            if mailbox.tested:
                canonical = canonical_settings(mailbox.to_settings(box))
                # Only a digest that still matches today's settings moves to the newest key: settings
                # changed since their last test stay untested.
                if box.matches(mailbox.tested_settings_digest, canonical):
                    mailbox.tested_settings_digest = box.digest(canonical)
            Mailbox.update(
                smtp_password=mailbox.smtp_password,
                incoming_password=mailbox.incoming_password,
                tested_settings_digest=mailbox.tested_settings_digest,
            ).where(Mailbox.id == mailbox.id).execute()
            count += 1
    return count
