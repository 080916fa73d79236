"""Employees from the company's directory (LDAP, Active Directory) through ldap3: read, plan, apply.

A sync reads every person under the base DN with paged searches (over LDAPS, or StartTLS with the
certificate verified: never in plain text), compares them with the employees it keeps, and writes only
the rows that changed. People gone from the directory or disabled there (Active Directory's
``userAccountControl`` ACCOUNTDISABLE bit) are deactivated, never deleted: their mailboxes and letters
stay. Employees the directory does not know are kept by hand and left alone. An entry that cannot be
applied whole (no e-mail, an e-mail used twice, a field too long) is skipped and reported. No Flask
import: the command line, the queue's periodic task and the admin page call it alike.
"""
from __future__ import annotations

import json
import ssl
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

import ldap3
from huey import crontab
from huey.exceptions import TaskLockedException
from ldap3.core import exceptions as ldap_errors

from portal.admin_settings import PageSettings
from portal.coded_messages import CodedError, CodedMessage
from portal.db import database
from portal.models import DirectoryLink, DirectorySync, Employee, normalize_email, utcnow
from portal.models.people import FIELD_MAX, search_text_of
from portal.words import N_

ACCOUNT_DISABLED = 0x2  # userAccountControl's ACCOUNTDISABLE bit
DN_MAX = 1024
SETTING_KEY = "directory"
SYNC_LOCK = "portal.sync_directory"  # huey's lock: one real sync at a time, scheduled or started by hand
ENVIRONMENT = {  # DirectorySettings field: the configuration key that sets it
    "url": "PORTAL_LDAP_URL", "ca_file": "PORTAL_LDAP_CA_FILE", "bind_dn": "PORTAL_LDAP_BIND_DN",
    "bind_password": "PORTAL_LDAP_BIND_PASSWORD", "base_dn": "PORTAL_LDAP_BASE_DN",
    "search_filter": "PORTAL_LDAP_FILTER", "admin_group_dn": "PORTAL_LDAP_ADMIN_GROUP_DN",
    "name_attribute": "PORTAL_LDAP_NAME_ATTRIBUTE", "mail_attribute": "PORTAL_LDAP_MAIL_ATTRIBUTE",
    "title_attribute": "PORTAL_LDAP_TITLE_ATTRIBUTE", "department_attribute": "PORTAL_LDAP_DEPARTMENT_ATTRIBUTE",
    "manager_attribute": "PORTAL_LDAP_MANAGER_ATTRIBUTE",
}


# Every message a sync can leave for the admin, by code: English here (the command line, logs), and the same
# text is the msgid the page translates (N_ marks it for `make messages`).
MESSAGES = {
    "bad_url": N_("The directory address %(url)s is not an ldap:// or ldaps:// URL."),
    "not_configured": N_("The directory is not configured: set its address and base DN."),
    "bind_refused": N_("The directory refused the bind DN or password; nothing was changed."),
    "certificate": N_("The directory's certificate could not be verified (%(detail)s); set the CA file it is "
                      "signed by."),
    "unreachable": N_("Cannot reach the directory at %(url)s (%(detail)s)."),
    "refused": N_("The directory refused the connection: %(detail)s"),
    "no_admin_group": N_("The admin group %(dn)s does not exist in the directory."),
    "no_base": N_("The base DN %(dn)s does not exist in the directory."),
    "bad_filter": N_("The search filter or an attribute name is not valid: %(detail)s"),
    "search_failed": N_("The directory search failed: %(detail)s"),
    "running": N_("Another directory sync is running; this one did not start. Try again when it has finished."),
    "found_nobody": N_("The search found nobody although the directory kept employees before; nothing was changed "
                       "(check the base DN and the filter)."),
    "no_email": N_("no e-mail"),
    "bad_email": N_("e-mail %(email)s is not an address"),
    "name_too_long": N_("name longer than %(limit)d characters"),
    "email_too_long": N_("e-mail longer than %(limit)d characters"),
    "title_too_long": N_("title longer than %(limit)d characters"),
    "department_too_long": N_("department longer than %(limit)d characters"),
    "dn_too_long": N_("DN longer than %(limit)d characters"),
    "no_name": N_("no name"),
    "duplicate": N_("e-mail %(email)s is on %(count)d directory entries"),
    "taken_by_entry": N_("e-mail %(email)s belongs to another directory entry's employee"),
    "taken": N_("e-mail %(email)s belongs to another employee"),
}


class Message(CodedMessage):
    """One message of MESSAGES with its values; str() is the English text."""

    catalogue = MESSAGES


class DirectoryError(CodedError):
    """The directory cannot be read as configured; the message says why, for the admin."""

    message_class = Message


@dataclass(frozen=True)
class DirectorySettings(PageSettings):
    """Where the directory is, how to sign in to it, and which attribute holds which field."""

    setting_key: ClassVar[str] = SETTING_KEY
    secret_name: ClassVar[str] = "bind_password"
    secret_bound_to: ClassVar[tuple] = ("url", "bind_dn")  # the directory and account it was given for
    environment: ClassVar[dict] = ENVIRONMENT
    page_fields: ClassVar[tuple] = tuple(ENVIRONMENT)

    url: str = ""
    base_dn: str = ""
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    ca_file: str = ""
    search_filter: str = "(objectClass=inetOrgPerson)"
    admin_group_dn: str = ""
    name_attribute: str = "cn"
    mail_attribute: str = "mail"
    title_attribute: str = "title"
    department_attribute: str = "departmentNumber"
    manager_attribute: str = "manager"
    page_size: int = 500
    timeout: int = 10  # seconds; ldap3 wants a whole number for the receive timeout

    @property
    def configured(self):
        return bool(self.url and self.base_dn)


@dataclass(frozen=True)
class DirectoryPerson:
    """One person as the directory describes them."""

    dn: str
    name: str
    email: str
    title: str = ""
    department: str = ""
    manager_dn: str = ""
    disabled: bool = False
    admin: bool = False


def _first(attributes, name):
    if not name:
        return ""
    value = attributes.get(name)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return "" if value is None else str(value).strip()


def _disabled(attributes):
    value = attributes.get("userAccountControl")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return bool(int(value) & ACCOUNT_DISABLED)
    except (TypeError, ValueError):
        return False


def _server(settings):
    parts = urlsplit(settings.url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise DirectoryError("bad_url", url=settings.url)
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file or None)
    secure = parts.scheme == "ldaps"
    return ldap3.Server(parts.hostname, port=parts.port or (636 if secure else 389), use_ssl=secure, tls=tls,
                        connect_timeout=settings.timeout), secure


def _close(connection):
    """Unbind, ignoring a connection that is broken already (a failed TLS handshake closes the socket)."""
    try:
        connection.unbind()
    except (ldap_errors.LDAPException, OSError):
        pass


def connect(settings):
    """A bound ldap3 connection over TLS; DirectoryError explaining what went wrong otherwise."""
    if not settings.configured:
        raise DirectoryError("not_configured")
    server, secure = _server(settings)
    connection = ldap3.Connection(server, settings.bind_dn or None, settings.bind_password or None,
                                  receive_timeout=settings.timeout, raise_exceptions=True)
    try:
        connection.open()
        if not secure:
            connection.start_tls()
        connection.bind()
    except ldap_errors.LDAPInvalidCredentialsResult:
        _close(connection)
        raise DirectoryError("bind_refused") from None
    except (ldap_errors.LDAPStartTLSError, ssl.SSLError, ldap_errors.LDAPSSLConfigurationError) as error:
        _close(connection)
        raise DirectoryError("certificate", detail=str(error)) from None
    except ldap_errors.LDAPSocketOpenError as error:
        message = str(error)
        _close(connection)
        if "certificate" in message.lower() or "ssl" in message.lower():
            raise DirectoryError("certificate", detail=message) from None
        raise DirectoryError("unreachable", url=settings.url, detail=message) from None
    except ldap_errors.LDAPException as error:
        _close(connection)
        raise DirectoryError("refused", detail=str(error)) from None
    return connection


def _admin_members(connection, settings):
    if not settings.admin_group_dn:
        return None
    try:
        connection.search(settings.admin_group_dn, "(objectClass=*)", search_scope=ldap3.BASE,
                          attributes=["member", "uniqueMember"])
    except ldap_errors.LDAPNoSuchObjectResult:
        raise DirectoryError("no_admin_group", dn=settings.admin_group_dn) from None
    members = set()
    for entry in connection.response or ():
        for name in ("member", "uniqueMember"):
            members.update(str(dn).lower() for dn in entry.get("attributes", {}).get(name) or ())
    return members


def read_people(settings):
    """Every person the search finds, read page by page (directories cap what one answer may hold)."""
    attributes = [name for name in (settings.name_attribute, settings.mail_attribute, settings.title_attribute,
                                    settings.department_attribute, settings.manager_attribute) if name]
    attributes.append("userAccountControl")
    connection = connect(settings)
    try:
        admins = _admin_members(connection, settings)
        people = []
        for entry in connection.extend.standard.paged_search(
                settings.base_dn, settings.search_filter, attributes=attributes,
                paged_size=settings.page_size, generator=True):
            if entry.get("type") != "searchResEntry":
                continue
            values = entry["attributes"]
            dn = entry["dn"]
            people.append(DirectoryPerson(
                dn=dn, name=_first(values, settings.name_attribute), email=_first(values, settings.mail_attribute),
                title=_first(values, settings.title_attribute),
                department=_first(values, settings.department_attribute),
                manager_dn=_first(values, settings.manager_attribute), disabled=_disabled(values),
                admin=admins is not None and dn.lower() in admins))
        return people, admins is not None
    except ldap_errors.LDAPNoSuchObjectResult:
        raise DirectoryError("no_base", dn=settings.base_dn) from None
    except (ldap_errors.LDAPInvalidFilterError, ldap_errors.LDAPAttributeError) as error:
        raise DirectoryError("bad_filter", detail=str(error)) from None
    except ldap_errors.LDAPException as error:
        raise DirectoryError("search_failed", detail=str(error)) from None
    finally:
        _close(connection)


@dataclass
class SyncReport:
    """What a sync did (or, for a dry run, would do)."""

    read: int = 0
    created: list = field(default_factory=list)  # {"email", "name", "department"}
    updated: list = field(default_factory=list)  # {"email", "changes": {field: [before, after]}}
    linked: list = field(default_factory=list)  # e-mails of hand-kept employees the directory now keeps
    deactivated: list = field(default_factory=list)  # {"email", "reason": "disabled" | "gone"}
    skipped: list = field(default_factory=list)  # {"dn", "reason"}
    unchanged: int = 0
    hand_kept: int = 0
    rows_written: int = 0

    def as_dict(self):
        return asdict(self)

    @property
    def changes(self):
        return len(self.created) + len(self.updated) + len(self.deactivated)


@dataclass
class _Plan:
    report: SyncReport
    create: list = field(default_factory=list)  # (DirectoryPerson, row values)
    update: dict = field(default_factory=dict)  # employee id: changed values
    links: dict = field(default_factory=dict)  # employee id: (dn, manager_dn, gone) to store
    new_links: list = field(default_factory=list)  # (email, dn, manager_dn) of created employees


_FIELDS = ("name", "email", "position", "department", "role", "active")


def _problem(person):
    if not person.email:
        return Message("no_email")
    if "@" not in person.email.strip("@"):
        return Message("bad_email", {"email": person.email})
    for name, value in (("name", person.name), ("email", person.email), ("title", person.title),
                        ("department", person.department)):
        if len(value) > FIELD_MAX:
            return Message(f"{name}_too_long", {"limit": FIELD_MAX})
    if len(person.dn) > DN_MAX or len(person.manager_dn) > DN_MAX:
        return Message("dn_too_long", {"limit": DN_MAX})
    if not person.name:
        return Message("no_name")
    return None


def plan_sync(people, employees, links, *, roles_from_group):
    """Decide every change from the people read and the current rows; touches nothing.

    `employees`: {id: {field: value}} for _FIELDS; `links`: {dn lower case: (employee id, manager_dn, gone)}.
    """
    report = SyncReport(read=len(people))
    plan = _Plan(report)
    emails = Counter(normalize_email(person.email) for person in people if person.email)
    by_email = {row["email"]: employee_id for employee_id, row in employees.items()}
    linked_ids = {employee_id: dn for dn, (employee_id, _, _) in links.items()}
    seen = {person.dn.lower() for person in people}
    matched = set()  # employees an entry of this read stands for (a renamed or moved entry keeps its person)
    for person in people:
        problem = _problem(person)
        email = normalize_email(person.email)
        if problem is None and emails[email] > 1:
            problem = Message("duplicate", {"email": email, "count": emails[email]})
        dn = person.dn.lower()
        employee_id = links.get(dn, (None,))[0]
        if problem is None and employee_id is None:
            owner = by_email.get(email)
            if owner is not None and linked_ids.get(owner) in seen:
                problem = Message("taken_by_entry", {"email": email})
            employee_id = owner
        if problem is None and employee_id is not None and by_email.get(email, employee_id) != employee_id:
            problem = Message("taken", {"email": email})
        if problem:
            report.skipped.append({"dn": person.dn, "reason": str(problem), "code": problem.code,
                                   "params": problem.params})
            continue
        wanted = {"name": person.name, "email": email, "position": person.title, "department": person.department,
                  "active": not person.disabled}
        if roles_from_group:
            wanted["role"] = "admin" if person.admin else "employee"
        if employee_id is None:
            wanted.setdefault("role", "employee")
            plan.create.append((person, wanted))
            plan.new_links.append((email, person.dn, person.manager_dn))
            report.created.append({"email": email, "name": person.name, "department": person.department})
            continue
        matched.add(employee_id)
        current = employees[employee_id]
        changes = {name: value for name, value in wanted.items() if current[name] != value}
        link = links.get(dn)
        if link is None:
            report.linked.append(email)
            plan.links[employee_id] = (person.dn, person.manager_dn, False)
        elif link[1] != person.manager_dn or link[2]:
            plan.links[employee_id] = (person.dn, person.manager_dn, False)
        if changes.get("active") is False:
            report.deactivated.append({"email": email, "reason": "disabled"})
        if changes:
            plan.update[employee_id] = changes
            if set(changes) != {"active"} or changes["active"]:
                report.updated.append({"email": email, "changes": {
                    name: [current[name], value] for name, value in changes.items()}})
        else:
            report.unchanged += 1
    for dn, (employee_id, manager_dn, gone) in links.items():
        if dn in seen or employee_id in matched:
            continue
        if employees[employee_id]["active"]:
            plan.update[employee_id] = {"active": False}
            report.deactivated.append({"email": employees[employee_id]["email"], "reason": "gone"})
        if not gone:
            plan.links[employee_id] = (None, manager_dn, True)
    report.hand_kept = len(employees) - len(set(linked_ids) | set(plan.links))
    # The directory answers in no particular order; the admin reads the report sorted.
    report.created.sort(key=lambda entry: (entry["name"].casefold(), entry["email"]))
    for entries in (report.updated, report.deactivated):
        entries.sort(key=lambda entry: entry["email"])
    report.linked.sort()
    report.skipped.sort(key=lambda entry: entry["dn"].lower())
    return plan


def _current_rows():
    columns = [getattr(Employee, name) for name in _FIELDS]
    employees = {row[0]: dict(zip(_FIELDS, row[1:])) for row in Employee.select(Employee.id, *columns).tuples()}
    links = {dn.lower(): (employee_id, manager_dn, gone) for dn, employee_id, manager_dn, gone in
             DirectoryLink.select(DirectoryLink.dn, DirectoryLink.employee_id, DirectoryLink.manager_dn,
                                  DirectoryLink.gone).tuples()}
    return employees, links


def _apply(plan, employees):
    now = utcnow()
    written = 0
    for batch_start in range(0, len(plan.create), 500):
        rows = [dict(values, search_text=search_text_of(values["name"], values["email"], values["department"]),
                     created_at=now, updated_at=now)
                for _, values in plan.create[batch_start:batch_start + 500]]
        Employee.insert_many(rows).execute()
        written += len(rows)
    for employee_id, changes in plan.update.items():
        merged = dict(employees[employee_id], **changes)
        Employee.update(**changes, search_text=search_text_of(merged["name"], merged["email"], merged["department"]),
                        updated_at=now).where(Employee.id == employee_id).execute()
        written += 1
    for employee_id, (dn, manager_dn, gone) in plan.links.items():
        values = {"manager_dn": manager_dn, "gone": gone}
        if dn is not None:
            values["dn"] = dn
        if DirectoryLink.update(**values).where(DirectoryLink.employee_id == employee_id).execute() == 0:
            DirectoryLink.create(employee=employee_id, **values)
    if plan.new_links:
        ids = dict(Employee.select(Employee.email, Employee.id).tuples())  # one read, however many were created
        rows = [{"employee": ids[email], "dn": dn, "manager_dn": manager_dn}
                for email, dn, manager_dn in plan.new_links]
        for batch_start in range(0, len(rows), 500):
            DirectoryLink.insert_many(rows[batch_start:batch_start + 500]).execute()
    return written


def sync_directory(settings, *, dry_run=False, people=None):
    """Read the directory (unless `people` is given), apply the changes (unless a dry run) and store the report.

    Returns the stored DirectorySync. A directory that cannot be read changes nothing and is reported.
    """
    record = DirectorySync.create(dry_run=dry_run)
    try:
        if people is None:
            people, roles_from_group = read_people(settings)
        else:
            roles_from_group = bool(settings.admin_group_dn)
        with database.atomic():
            employees, links = _current_rows()
            if not people and links:
                raise DirectoryError("found_nobody")
            plan = plan_sync(people, employees, links, roles_from_group=roles_from_group)
            if not dry_run:
                plan.report.rows_written = _apply(plan, employees)
        record.ok = True
        record.report = json.dumps(plan.report.as_dict())
    except DirectoryError as error:
        record.problem = str(error)
        record.report = json.dumps({"problem": error.message.as_dict()})
    record.finished_at = utcnow()
    record.save()
    return record


def sync_directory_alone(huey, settings, *, dry_run=False):
    """`sync_directory` under the lock the scheduled sync takes; DirectoryError("running") while another runs.

    A dry run writes no employee, so it needs no lock. A process killed during a sync leaves the lock
    behind until a worker starts (it flushes the locks registered on its huey, this one among them).
    """
    if dry_run:
        return sync_directory(settings, dry_run=True)
    try:
        with huey.lock_task(SYNC_LOCK):
            return sync_directory(settings)
    except TaskLockedException:
        raise DirectoryError("running") from None


store_settings = DirectorySettings.store


def configured_settings(config, box):
    """The settings in force: PORTAL_LDAP_* from the configuration, overridden by the page's."""
    return DirectorySettings.from_mapping(config, DirectorySettings.stored(box))


def scheduled_sync(config, box):
    """The periodic sync: only once an admin has run a first real sync (after the preview), else nothing."""
    settings = configured_settings(config, box)
    if not settings.configured or not DirectorySync.first_sync_done():
        return None
    return sync_directory(settings)


def register_directory_sync(huey, config, box):
    """The hourly sync as a huey periodic task (PORTAL_LDAP_SYNC_MINUTES changes the interval), one at a time."""
    minutes = max(1, int(config.get("PORTAL_LDAP_SYNC_MINUTES") or 60))
    schedule = crontab(minute="0") if minutes == 60 else crontab(minute=f"*/{minutes}")

    @huey.periodic_task(schedule, name="portal.sync_directory")
    @huey.lock_task(SYNC_LOCK)
    def sync_directory_task():
        """Every hour: employees follow the directory."""
        with database.connection_context():
            record = scheduled_sync(config, box())
        return None if record is None else {"ok": record.ok, "problem": record.problem}

    return sync_directory_task
