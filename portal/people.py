"""Creating employees and importing them from CSV: rules shared by the pages and the command line."""
import csv
import io
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from portal.db import database
from portal.forms import CONTROL_CHARACTERS
from portal.models import Employee, normalize_email
from portal.models.people import FIELD_MAX, ROLES

CSV_COLUMNS = ("name", "email", "position", "department", "role")


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


@dataclass
class ImportRow:
    line: int
    email: str
    outcome: str  # created | updated | refused
    reason: str = ""


@dataclass
class ImportReport:
    rows: list = field(default_factory=list)
    error: str = ""

    @property
    def ok(self):
        return not self.error and not any(row.outcome == "refused" for row in self.rows)

    def count(self, outcome):
        return sum(1 for row in self.rows if row.outcome == outcome)


def import_employees(data, *, apply=True):
    """Import employees from CSV bytes or text: all rows or none.

    Every row is checked first; if any row is refused, nothing is written and the report
    says why for each row. New e-mails are created, known ones updated.
    """
    report = ImportReport()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            report.error = str(_l("The file is not UTF-8 text. Save it as CSV (UTF-8) and try again."))
            return report
    reader = csv.DictReader(io.StringIO(data))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [column for column in ("name", "email") if column not in header]
    if missing:
        report.error = str(_l("The file needs the columns: %(columns)s.", columns=", ".join(CSV_COLUMNS)))
        return report
    reader.fieldnames = header
    planned = []
    seen = set()
    try:
        for values in reader:
            line = reader.line_num
            values = {key: (value or "") for key, value in values.items() if key}
            try:
                email = clean_email(values.get("email"))
                if email in seen:
                    raise EmployeeError("email", _l("This e-mail appears twice in the file."))
                seen.add(email)
                role = (values.get("role") or "employee").strip().lower()
                if role not in ROLES:
                    raise EmployeeError("role", _l("Role must be “employee” or “admin”."))
                cleaned = {
                    "name": clean_text("name", values.get("name"), required=True),
                    "position": clean_text("position", values.get("position")),
                    "department": clean_text("department", values.get("department")),
                    "role": role,
                }
            except EmployeeError as error:
                report.rows.append(ImportRow(line, (values.get("email") or "").strip(), "refused", str(error.message)))
                continue
            existing = Employee.by_email(email)
            planned.append((existing, email, cleaned))
            report.rows.append(ImportRow(line, email, "updated" if existing else "created"))
    except csv.Error as error:
        report.error = str(_l("The file is not valid CSV: %(error)s", error=str(error)))
        return report
    if not report.rows:
        report.error = str(_l("The file has no employees in it."))
    if report.ok and apply:
        with database.atomic():
            for existing, email, cleaned in planned:
                employee = existing or Employee(email=email)
                for key, value in cleaned.items():
                    setattr(employee, key, value)
                employee.save()
    return report
