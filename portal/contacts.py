"""External contacts: checked values, saving, and CSV import (all rows or none)."""
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from portal.csv_import import IMPORT_MAX_BYTES, IMPORT_MAX_ROWS, ImportReport, ImportRow, read_table, write_in_batches
from portal.fields import CONTROL_CHARACTERS
from portal.models import Contact, normalize_email
from portal.models.people import FIELD_MAX

CSV_COLUMNS = ("name", "email", "organisation", "notes")
NOTES_MAX = 4000


class ContactError(ValueError):
    """A value that cannot make a contact; `field` names which one."""

    def __init__(self, field, message):
        super().__init__(str(message))
        self.field = field
        self.message = message


def _line(name, value, *, required=False):
    value = (value or "").strip()
    if required and not value:
        raise ContactError(name, _l("This field is required."))
    if len(value) > FIELD_MAX:
        raise ContactError(name, _l("At most %(max)d characters.", max=FIELD_MAX))
    if CONTROL_CHARACTERS.search(value):
        raise ContactError(name, _l("Use a single line without control characters."))
    return value


def clean_contact(*, name="", email="", organisation="", notes=""):
    """The contact's fields checked and in stored form, or ContactError."""
    address = _line("email", email, required=True)
    try:
        address = normalize_email(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError:
        raise ContactError("email", _l("Enter a valid e-mail address.")) from None
    notes = (notes or "").replace("\r\n", "\n").strip()
    if len(notes) > NOTES_MAX or "\x00" in notes:
        raise ContactError("notes", _l("At most %(max)d characters.", max=NOTES_MAX))
    return {"name": _line("name", name), "email": address, "organisation": _line("organisation", organisation),
            "notes": notes}


def save_contact(contact, *, author=None, **values):
    """Create (contact=None) or update a contact, refusing an e-mail another contact has."""
    cleaned = clean_contact(**values)
    other = Contact.by_email(cleaned["email"])
    if other is not None and (contact is None or other.id != contact.id):
        raise ContactError("email", _l("A contact with this e-mail already exists."))
    contact = contact or Contact(created_by=author)
    for key, value in cleaned.items():
        setattr(contact, key, value)
    contact.save()
    return contact


def import_contacts(data, *, author=None, max_bytes=IMPORT_MAX_BYTES, max_rows=IMPORT_MAX_ROWS):
    """Import contacts from CSV (columns name, email, organisation, notes; email required): all rows or none.

    Every line is checked before anything is written; the rows are then written in batches.
    """
    report = ImportReport()
    table = read_table(data, report, columns=CSV_COLUMNS, required=("email",), max_bytes=max_bytes,
                       max_rows=max_rows,
                       header_error=_l("The first line must name the columns, from: %(columns)s (email is required).",
                                       columns=", ".join(CSV_COLUMNS)))
    if table is None:
        return report
    header, rows = table
    planned, seen = [], set()
    for line, values in rows:
        named = dict(zip(header, values))
        try:
            if len(values) != len(header):
                raise ContactError("", _l("This line has %(found)d values; the first line names %(expected)d columns.",
                                          found=len(values), expected=len(header)))
            cleaned = clean_contact(**{column: named.get(column, "") for column in header})
            if cleaned["email"] in seen:
                raise ContactError("email", _l("This e-mail appears twice in the file."))
            seen.add(cleaned["email"])
        except ContactError as error:
            report.rows.append(ImportRow(line, (named.get("email") or "").strip(), "refused", str(error.message)))
            continue
        planned.append(cleaned)
        report.rows.append(ImportRow(line, cleaned["email"], "created"))
    if not report.rows:
        report.error = str(_l("The file has no contacts in it."))
        return report
    existing = {}
    emails = [cleaned["email"] for cleaned in planned]
    for start in range(0, len(emails), 500):
        for contact in Contact.select().where(Contact.email.in_(emails[start:start + 500])):
            existing[contact.email] = contact
    for row in report.rows:
        if row.outcome == "created" and row.email in existing:
            row.outcome = "updated"
    if report.ok:
        def write(cleaned):
            contact = existing.get(cleaned["email"]) or Contact(created_by=author)
            for key in header:
                setattr(contact, key, cleaned[key])
            contact.save()

        write_in_batches(planned, write)
    return report
