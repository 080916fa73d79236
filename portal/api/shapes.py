"""Rows as the API's JSON, and API bodies as the plain values the mailbox service takes. No Flask here.

Passwords go in (as values for the service) and never come out: a mailbox answers
``"password_set": true`` instead.
"""
from __future__ import annotations

from peewee import fn

from portal import mailboxes as service
from portal.mail.settings import MAILBOX_FIELDS, mailbox_fields
from portal.models import Employee, LetterAttempt, LetterRecipient, Project, Reply, normalize_email
from portal.oauth import grants

# The mailbox service's field names, as the API names them in error messages.
SERVICE_FIELDS = {**{f.name: f.api_path for f in MAILBOX_FIELDS}, "scope": "scope", "owner": "owner"}
_SMTP = {f.api_name: f.name for f in mailbox_fields("smtp")}
_INCOMING = {f.api_name: f.name for f in mailbox_fields("incoming")}
_ID_LISTS = ("projects", "access_employees", "access_departments")  # rows of their own, not columns


class ValuesInvalid(ValueError):
    """A body that names things that do not exist; ``fields`` maps API field names to messages."""

    def __init__(self, fields):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


OAUTH_IS_A_PAGE_FLOW = ("A mailbox that signs in with the provider (Microsoft, Google, Yandex, the company's own "
                        "server) needs a person's consent in a browser: add it on the portal's External addresses "
                        "page with \"Sign in with ...\". Once added, the API sends from it like any other.")


def api_fields(errors):
    """The mailbox service's {field: message} with the API's field names."""
    return {SERVICE_FIELDS.get(name, name): message for name, message in errors.items()}


def timestamp(value):
    """A stored naive-UTC datetime as ISO 8601 with Z, or None."""
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


# ---------------------------------------------------------------- mailboxes out

def mailboxes_json(mailboxes, actor):
    """Each mailbox as JSON, in four queries whatever the count; settings only for those the actor manages."""
    projects = service.projects_of(mailboxes)
    access = service.access_of(mailboxes)
    owner_ids = {m.owner_id for m in mailboxes if m.owner_id}
    owners = {e.id: e.email for e in Employee.select(Employee.id, Employee.email).where(Employee.id.in_(owner_ids))
              } if owner_ids else {}
    signed_in = grants.sign_ins_of(m.id for m in mailboxes)
    return [{**_mailbox_json(m, actor, projects[m.id], access[m.id], owners.get(m.owner_id)),
             "auth": "oauth" if m.id in signed_in else "password",
             "needs_reconnect": signed_in.get(m.id, False),
             "password_sign_in_ends": None if m.id in signed_in else _password_sign_in_ends(m)} for m in mailboxes]


def _password_sign_in_ends(mailbox):
    """The day its provider stops (or stopped) taking its password, as YYYY-MM-DD; None at other providers (the
    caller leaves out the mailboxes that sign in with the provider, as ``password_ending`` does)."""
    from portal.password_ending import ending_provider

    preset = ending_provider(mailbox.smtp_host, mailbox.address)
    return preset.password_sign_in_ends.isoformat() if preset is not None else None


def mailbox_json(mailbox, actor):
    """One mailbox as JSON."""
    return mailboxes_json([mailbox], actor)[0]


def _mailbox_json(mailbox, actor, projects, access, owner_email):
    manageable = service.may_manage(actor, mailbox)
    found = {
        "id": mailbox.id,
        "scope": mailbox.scope,
        "owner": owner_email,
        "address": mailbox.address,
        "display_name": mailbox.display_name,
        "smtp": None,
        "incoming": None,
        "receive_replies": mailbox.receive_replies,
        "projects": [p.name for p in projects],
        "default": mailbox.is_default,
        "access": None,
        "active": mailbox.active,
        "last_passed_test_at": timestamp(mailbox.last_passed_test_at),
        "manageable": manageable,
    }
    if not manageable:
        return found
    found["smtp"] = server_json(mailbox, "smtp")
    if mailbox.incoming_protocol:
        found["incoming"] = server_json(mailbox, "incoming")
    if mailbox.scope == "company":
        employees, departments = access
        found["access"] = {"everyone": mailbox.access_everyone, "employees": [e.email for e in employees],
                           "departments": list(departments)}
    return found


def server_json(mailbox, side):
    """One server of a mailbox ("smtp" or "incoming") with the table's fields; a secret only as whether it is set."""
    found = {}
    for f in mailbox_fields(side):
        if f.secret:
            found[f"{f.api_name}_set"] = bool(getattr(mailbox, f.name))
        else:
            found[f.api_name] = getattr(mailbox, f.name)
    return found


# ---------------------------------------------------------------- mailboxes in

def stored_values(mailbox):
    """A stored mailbox as the service's values, passwords left blank (blank keeps the stored one)."""
    values = {f.name: getattr(mailbox, f.name) for f in MAILBOX_FIELDS if not f.secret and f.name not in _ID_LISTS}
    values["incoming_protocol"] = mailbox.incoming_protocol or ""
    values["smtp_password"] = values["incoming_password"] = ""
    values["projects"] = mailbox.project_ids()
    if mailbox.scope == "company":
        rules = list(mailbox.access_rules)
        values["access_employees"] = [r.employee_id for r in rules if r.employee_id]
        values["access_departments"] = [r.department for r in rules if r.department]
    return values


def mailbox_values(body, *, existing=None, company=False):
    """The service's values for an API body (validated against its schema), over a stored mailbox's if given.

    Names that match nothing (a project, an employee in the access list) raise ValuesInvalid.
    """
    values = stored_values(existing) if existing is not None else {
        "smtp_security": "ssl", "incoming_protocol": "", "access_everyone": True}
    errors = {}
    if body.get("auth") == "oauth":
        errors["auth"] = OAUTH_IS_A_PAGE_FLOW
    for name in ("address", "display_name", "receive_replies"):
        if name in body:
            values[name] = body[name]
    if "default" in body:
        values["is_default"] = body["default"]
    for name, value in (body.get("smtp") or {}).items():
        values[_SMTP[name]] = value
    if "incoming" in body:
        if body["incoming"] is None:
            values["incoming_protocol"] = ""
        else:
            if existing is None or not existing.incoming_protocol:
                values.setdefault("incoming_security", "ssl")
            for name, value in body["incoming"].items():
                values[_INCOMING[name]] = value
    if "projects" in body:
        values["projects"] = _project_ids(body["projects"], errors)
    if "access" in body:
        if not company:
            errors["access"] = "Only company mailboxes have an access list."
        else:
            access = body["access"]
            if "everyone" in access:
                values["access_everyone"] = access["everyone"]
            if "employees" in access:
                values["access_employees"] = _employee_ids(access["employees"], errors)
            if "departments" in access:
                values["access_departments"] = list(access["departments"])
    if errors:
        raise ValuesInvalid(errors)
    return {name: ("" if value is None else value) for name, value in values.items()}


def _project_ids(names, errors):
    wanted = {name.strip().lower(): name for name in names}
    found = {p.name.lower(): p.id for p in Project.select().where(fn.LOWER(Project.name).in_(list(wanted)))} \
        if wanted else {}
    missing = [name for key, name in wanted.items() if key not in found]
    if missing:
        errors["projects"] = "No project named: " + ", ".join(missing) + "."
    return [found[key] for key in wanted if key in found]


def _employee_ids(emails, errors):
    wanted = {normalize_email(e): e for e in emails}
    found = {e.email: e.id for e in Employee.select().where(Employee.email.in_(list(wanted)))} if wanted else {}
    missing = [email for key, email in wanted.items() if key not in found]
    if missing:
        errors["access.employees"] = "No employee with the e-mail: " + ", ".join(missing) + "."
    return [found[key] for key in wanted if key in found]


# ---------------------------------------------------------------- senders

def decision_json(decision, lang):
    """The sender rule's answer for one employee and project."""

    def choice(mailbox):
        return {"id": mailbox.id, "address": mailbox.address, "display_name": mailbox.display_name or "",
                "level": mailbox.scope}

    return {
        "mailbox": choice(decision.mailbox) if decision.mailbox is not None else None,
        "choices": [choice(m) for m in decision.choices],
        "explanation": decision.explanation(lang),
        "conflict": decision.conflict,
        "reason": decision.reason(),
    }


# ---------------------------------------------------------------- letters

def problem_json(problem, lang):
    """A sending problem: its code, what it means and what to do, and the server's own words."""
    if problem is None:
        return None
    return {"code": problem.code, "title": problem.title(lang), "explanation": problem.advice(lang),
            "server_reply": problem.server_reply or "", "smtp_code": problem.smtp_code, "stage": problem.stage or ""}


def letter_json(letter, lang, *, just_stored=False):
    """A letter's state, recipients, attempts, problem and replies (four queries; two for a letter `just_stored`,
    which has neither attempts nor replies yet)."""
    recipients = list(LetterRecipient.select().where(LetterRecipient.letter == letter.id).order_by(LetterRecipient.id))
    attempts, replies = [], []
    if not just_stored:
        attempts = list(LetterAttempt.select().where(LetterAttempt.letter == letter.id).order_by(LetterAttempt.id))
        replies = list(Reply.select().where(Reply.letter == letter.id).order_by(Reply.fetched_at, Reply.id))
    project = Project.get_or_none(Project.id == letter.project_id) if letter.project_id else None
    return {
        "id": letter.id,
        "state": letter.state,
        "project": project.name if project is not None else None,
        "mailbox": {"id": letter.mailbox_id, "address": letter.from_address} if letter.mailbox_id else None,
        "from": letter.from_address,
        "subject": letter.subject,
        "bounced": letter.bounced,
        "recipients": [{"address": r.address, "name": r.name, "kind": r.kind, "status": r.status,
                        "smtp_code": r.smtp_code, "server_reply": r.server_reply or ""} for r in recipients],
        "created_at": timestamp(letter.created_at),
        "next_attempt_at": timestamp(letter.next_attempt_at) if letter.pending else None,
        "sent_at": timestamp(letter.sent_at),
        "attempt_count": letter.attempts,
        "attempts": [{"number": a.number, "outcome": a.outcome, "started_at": timestamp(a.started_at),
                      "finished_at": timestamp(a.finished_at), "mailbox_address": a.mailbox_address or "",
                      "problem": problem_json(a.problem(), lang)} for a in attempts],
        "problem": problem_json(letter.problem(), lang),
        "replies": [{"id": r.id, "from": r.sender, "subject": r.subject, "date": timestamp(r.date),
                     "text": r.body_text, "attachments": r.attachments} for r in replies],
    }


# ---------------------------------------------------------------- who

def me_json(token):
    """The token's owner, and the token (never its value)."""
    owner = token.owner
    return {
        "id": owner.id,
        "email": owner.email,
        "name": owner.name,
        "department": owner.department or "",
        "position": owner.position or "",
        "admin": owner.is_admin,
        "language": owner.language,
        "token": {"id": token.id, "name": token.name, "created_at": timestamp(token.created_at),
                  "last_used_at": timestamp(token.last_used_at)},
    }


# ---------------------------------------------------------------- a mailbox's health (issue 16)

def health_json(mailbox, lang):
    """The ``health`` and ``deliverability`` (null until its domain's DNS was first asked) a mailbox's answer adds."""
    from portal import deliverability, mailbox_health

    checklist = deliverability.kept_checklist(mailbox)
    return {"health": mailbox_health.health(mailbox).to_dict(lang),
            "deliverability": checklist.to_dict(lang) if checklist is not None else None}


# ---------------------------------------------------------------- notifications

def notification_json(entry, lang, link):
    """One entry of the notification centre; ``link`` gives an entry's absolute URL (None when it names nothing)."""
    from portal.notifications import describe
    from portal.words import catalogue

    return {"id": entry.id, "kind": entry.kind, "text": describe(entry, catalogue(lang).gettext, lang),
            "about": entry.about, "link": link(entry), "created_at": timestamp(entry.created_at),
            "read_at": timestamp(entry.read_at)}
