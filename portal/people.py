"""Creating employees and importing them from CSV: rules shared by the pages and the command line."""
from email_validator import EmailNotValidError, validate_email
from peewee import fn
from flask_babel import lazy_gettext as _l

from portal.csv_import import IMPORT_MAX_BYTES, IMPORT_MAX_ROWS, ImportReport, ImportRow, read_table, write_in_batches
from portal.db import database
from portal.fields import CONTROL_CHARACTERS
from portal.models import Employee, normalize_email
from portal.models.people import FIELD_MAX, ROLES
from portal.pagination import paginate
from portal.sessions import end_sessions

CSV_COLUMNS = ("name", "email", "position", "department", "role")
PASSWORD_MIN = 10


class EmployeeError(ValueError):
    """A value that cannot make an employee; `field` names which one."""

    def __init__(self, field, message):
        super().__init__(str(message))
        self.field = field
        self.message = message


def clean_email(address):
    """A syntactically valid e-mail in stored form, or EmployeeError."""
    try:
        valid = validate_email((address or "").strip(), check_deliverability=False)
    except EmailNotValidError:
        raise EmployeeError("email", _l("Enter a valid e-mail address.")) from None
    return normalize_email(valid.normalized)


def clean_text(name, value, *, required=False):
    """A one-line text value within the length limit."""
    value = (value or "").strip()
    if required and not value:
        raise EmployeeError(name, _l("This field is required."))
    if len(value) > FIELD_MAX:
        raise EmployeeError(name, _l("At most %(max)d characters.", max=FIELD_MAX))
    if CONTROL_CHARACTERS.search(value):
        raise EmployeeError(name, _l("Use a single line without control characters."))
    return value


def create_employee(*, email, name, position="", department="", role="employee", password=None, language=None):
    """Create an employee, refusing a duplicate e-mail; returns the new Employee."""
    email = clean_email(email)
    if Employee.by_email(email):
        raise EmployeeError("email", _l("An employee with this e-mail already exists."))
    if role not in ROLES:
        raise EmployeeError("role", _l("Choose a role from the list."))
    employee = Employee(
        email=email,
        name=clean_text("name", name, required=True),
        position=clean_text("position", position),
        department=clean_text("department", department),
        role=role,
        language=language,
    )
    if password:
        employee.set_password(password)
    employee.save()
    return employee


LIST_COLUMNS = ("id", "name", "email", "position", "department", "role", "active")


def _list_order(sort, descending):
    """ORDER BY terms matching the sort indexes (m0010), so a page is read in order, not sorted whole."""
    name = fn.LOWER(Employee.name)
    terms = {
        "name": [name, Employee.id],
        "email": [Employee.email],
        "department": [fn.LOWER(Employee.department), Employee.id],
        "position": [fn.LOWER(Employee.position), Employee.id],
        "role": [Employee.role, name, Employee.id],
    }.get(sort, [name, Employee.id])
    return [term.desc() if descending else term.asc() for term in terms]


def list_employees(text="", *, sort="name", descending=False, page=1, size=25):
    """A page of employees whose name, e-mail or department contains the text; two queries at any size."""
    columns = [getattr(Employee, column) for column in LIST_COLUMNS]
    # Whether they can sign in yet (the list offers an invitation otherwise), not the hash itself.
    columns.append((Employee.password_hash != "").alias("has_password"))
    query, total = Employee.search_counted(text, *columns)
    return paginate(query.order_by(*_list_order(sort, descending)), page, size, total=total)


def update_employee(employee, *, email, name, position="", department="", role="employee", language=None,
                    password=None, keep_session=None):
    """Change an employee's details, refusing an e-mail another employee has; returns the employee.

    A new password ends every session of the employee but `keep_session` (the admin's own, when
    admins change their own password here).
    """
    email = clean_email(email)
    holder = Employee.by_email(email)
    if holder and holder.id != employee.id:
        raise EmployeeError("email", _l("An employee with this e-mail already exists."))
    if role not in ROLES:
        raise EmployeeError("role", _l("Choose a role from the list."))
    employee.email = email
    employee.name = clean_text("name", name, required=True)
    employee.position = clean_text("position", position)
    employee.department = clean_text("department", department)
    employee.role = role
    employee.language = language or None
    with database.atomic():
        if password:
            employee.set_password(password)
            end_sessions(employee, keep=keep_session)
        employee.save()
    return employee


def set_employee_active(employee, active):
    """Let an employee sign in again, or no longer: deactivation also ends every session they have.

    Reactivating later does not bring those sessions back.
    """
    with database.atomic():
        employee.active = active
        employee.save()
        if not active:
            end_sessions(employee)


def change_password(employee, current, new, *, keep=None):
    """Set a new password after checking the current one; every other session of the employee ends."""
    if not employee.check_password(current or ""):
        raise EmployeeError("current_password", _l("The current password is wrong."))
    set_password(employee, new, keep=keep, field="new_password")


def set_password(employee, new, *, keep=None, field="password"):
    """Set a password without the current one (the command line, an invitation link); sessions but `keep` end."""
    if len(new or "") < PASSWORD_MIN:
        raise EmployeeError(field, _l("At least %(min)d characters.", min=PASSWORD_MIN))
    with database.atomic():
        employee.set_password(new)
        employee.save()
        end_sessions(employee, keep=keep)


def _existing_by_email(emails, chunk=500):
    """The employees already holding these e-mails, in a few queries rather than one per row."""
    emails = list(emails)
    found = {}
    for start in range(0, len(emails), chunk):
        for employee in Employee.select().where(Employee.email.in_(emails[start:start + chunk])):
            found[employee.email] = employee
    return found


def _clean_row(values, header):
    """The employee fields of one CSV row, or EmployeeError; only columns the file has are set."""
    email = clean_email(values.get("email"))
    cleaned = {"name": clean_text("name", values.get("name"), required=True)}
    for column in ("position", "department"):
        if column in header:
            cleaned[column] = clean_text(column, values.get(column))
    if "role" in header:
        role = (values.get("role") or "employee").strip().lower()
        if role not in ROLES:
            raise EmployeeError("role", _l("Role must be “employee” or “admin”."))
        cleaned["role"] = role
    return email, cleaned


def import_employees(data, *, apply=True, max_bytes=IMPORT_MAX_BYTES, max_rows=IMPORT_MAX_ROWS):
    """Import employees from CSV bytes or text: all rows or none.

    Every row is checked first; if any row is refused, nothing is written and the report
    says why for each row. New e-mails are created, known ones updated (only the columns
    the file has), in batches so other writers get in between.
    """
    report = ImportReport()
    table = read_table(
        data, report, columns=CSV_COLUMNS, required=("name", "email"), max_bytes=max_bytes, max_rows=max_rows,
        header_error=_l("The first line must name the columns, from: %(columns)s (name and email are required).",
                        columns=", ".join(CSV_COLUMNS)))
    if table is None:
        return report
    header, rows = table
    planned = []
    seen = set()
    for line, values in rows:
        named = dict(zip(header, values))
        try:
            if len(values) != len(header):
                raise EmployeeError(
                    "", _l("This line has %(found)d values; the first line names %(expected)d columns.",
                           found=len(values), expected=len(header))
                )
            email, cleaned = _clean_row(named, header)
            if email in seen:
                raise EmployeeError("email", _l("This e-mail appears twice in the file."))
            seen.add(email)
        except EmployeeError as error:
            report.rows.append(
                ImportRow(line, (named.get("email") or "").strip(), "refused", str(error.message), error.field)
            )
            continue
        planned.append((email, cleaned))
        report.rows.append(ImportRow(line, email, "created"))
    if not report.rows:
        report.error = str(_l("The file has no employees in it."))
        return report
    existing = _existing_by_email(email for email, _ in planned)
    for row in report.rows:
        if row.outcome == "created" and row.email in existing:
            row.outcome = "updated"
    if report.ok and apply:
        def write(plan):
            email, cleaned = plan
            employee = existing.get(email) or Employee(email=email)
            for key, value in cleaned.items():
                setattr(employee, key, value)
            employee.save()

        write_in_batches(planned, write)
    return report
