"""Forms for managing employees: add, edit, and import from CSV."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from portal.forms import choices, max_length, not_blank, single_line, strip
from portal.forms.uploads import CsvImportForm
from portal.people import PASSWORD_MIN, EmployeeError, clean_email


def valid_email(form, field):
    """An e-mail address the portal can store (the same rule as the import and the CLI)."""
    if not field.data:
        raise ValidationError(_l("This field is required."))
    try:
        clean_email(field.data)
    except EmployeeError as error:
        raise ValidationError(error.message) from None


def role_choices():
    return choices([("employee", _l("Employee")), ("admin", _l("Admin"))])


def language_or_browser_choices():
    from portal.i18n import LANGUAGE_NAMES

    return choices([("", _l("The browser's language"))] + list(LANGUAGE_NAMES.items()))


class EmployeeForm(FlaskForm):
    name = StringField(_l("Name"), filters=[strip], validators=[not_blank, max_length(), single_line])
    email = EmailField(_l("E-mail"), filters=[strip], validators=[valid_email, max_length(), single_line])
    position = StringField(_l("Position"), filters=[strip], validators=[max_length(), single_line])
    department = StringField(_l("Department"), filters=[strip], validators=[max_length(), single_line])
    role = SelectField(_l("Role"), choices=role_choices())
    language = SelectField(_l("Language"), choices=language_or_browser_choices())
    password = PasswordField(
        _l("New password"),
        validators=[
            Optional(),
            Length(min=PASSWORD_MIN, message=_l("At least %(min)d characters.", min=PASSWORD_MIN)),
            max_length(),
        ],
        description=_l("Leave empty to keep the current one. The employee can change it under My profile."),
    )


class NewEmployeeForm(EmployeeForm):
    password = PasswordField(
        _l("Password"),
        validators=[
            Optional(),
            Length(min=PASSWORD_MIN, message=_l("At least %(min)d characters.", min=PASSWORD_MIN)),
            max_length(),
        ],
        description=_l("At least 10 characters. Leave empty if the employee will not sign in yet."),
    )


class ImportForm(CsvImportForm):
    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(_l("Choose a CSV file."))],
        description=_l("Columns: name, email, position, department, role (employee or admin). UTF-8."),
    )


class ConfirmForm(FlaskForm):
    """An empty form: the CSRF token of a confirmed action."""
