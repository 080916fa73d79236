"""The external-address form and the small forms around it; the rules themselves live in portal.mailboxes."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)

from portal.forms import choices, strip
from portal.mail.settings import MAILBOX_FIELDS

SECURITY_CHOICES = (
    ("ssl", _l("SSL/TLS from the start")),
    ("starttls", _l("STARTTLS")),
    ("none", _l("None (plain text)")),
)
PROTOCOL_CHOICES = (("", _l("No incoming server")), ("pop3", "POP3"), ("imap", "IMAP"))
PROBLEM_CHOICES = (
    ("", _l("Every cell")),
    ("any", _l("Only problems")),
    ("conflict", _l("Two Defaults or more tie")),
    ("nobody", _l("Nobody can send")),
)

# The values the service takes, by field name (passwords included; they are never rendered back).
VALUE_FIELDS = tuple(f.name for f in MAILBOX_FIELDS)


class MailboxForm(FlaskForm):
    """Add or edit an external address. Validation is the service's, so the page and the API agree."""

    scope = HiddenField()
    owner_id = HiddenField()
    proof = HiddenField()
    submit_token = HiddenField()  # one Add form, one mailbox: a double-click or a replay finds the first
    provider = SelectField(_l("Mail service"), validate_choice=False,
                           description=_l("Fills in the server settings for you."))
    address = EmailField(_l("E-mail address"), filters=[strip])
    display_name = StringField(_l("Name shown to recipients"), filters=[strip])
    smtp_host = StringField(_l("Server"), filters=[strip])
    smtp_port = StringField(_l("Port"), filters=[strip])
    smtp_security = SelectField(_l("Encryption"), choices=choices(SECURITY_CHOICES), validate_choice=False)
    smtp_username = StringField(_l("Login"), filters=[strip])
    smtp_password = PasswordField(_l("Password or app password"))
    incoming_protocol = SelectField(_l("Incoming server"), choices=choices(PROTOCOL_CHOICES), validate_choice=False)
    incoming_host = StringField(_l("Server"), filters=[strip])
    incoming_port = StringField(_l("Port"), filters=[strip])
    incoming_security = SelectField(_l("Encryption"), choices=choices(SECURITY_CHOICES), validate_choice=False)
    incoming_username = StringField(_l("Login"), filters=[strip])
    incoming_password = PasswordField(_l("Password or app password"))
    receive_replies = BooleanField(
        _l("Receive replies at this address"),
        description=_l("Replies arrive in this mailbox and reach the portal from there; needs the incoming server."),
    )
    smtp_trusted_fingerprint = StringField(_l("Trusted certificate of the outgoing server (SHA-256)"), filters=[strip])
    incoming_trusted_fingerprint = StringField(_l("Trusted certificate of the incoming server (SHA-256)"),
                                               filters=[strip])
    allow_plaintext_auth = BooleanField(
        _l("Allow signing in without encryption"),
        description=_l("Only for a server inside the company network that cannot encrypt."),
    )
    projects = SelectMultipleField(
        _l("Projects"), validate_choice=False, description=_l("None chosen: every project.")
    )
    is_default = BooleanField(
        _l("Default"), description=_l("Chosen automatically for these projects for everyone who may use it.")
    )
    access_everyone = BooleanField(_l("Everyone may use it"), default=True)
    access_employees = SelectMultipleField(_l("Employees who may use it"), validate_choice=False)
    access_departments = SelectMultipleField(_l("Departments that may use it"), validate_choice=False)
    send_test_letter = BooleanField(_l("Also send a test letter to this address"))

    def values(self):
        """The posted values as the service takes them."""
        return {name: self[name].data for name in VALUE_FIELDS}

    def add_errors(self, errors):
        """Put the service's messages beside their fields (the form-wide ones under None)."""
        for name, message in errors.items():
            target = self._fields.get(name)
            if target is None:
                self.form_errors.append(str(message))
                continue
            target.errors = list(target.errors or []) + [str(message)]


class EmployeesMayAddForm(FlaskForm):
    """The admin switch: may employees add their own external addresses."""

    allowed = BooleanField(_l("Employees may add their own external addresses"))


class SendersFilterForm(FlaskForm):
    """Filters of Who sends from what (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    project = SelectField(_l("Project"), validate_choice=False)
    department = SelectField(_l("Department"), validate_choice=False)
    problem = SelectField(_l("Show"), choices=choices(PROBLEM_CHOICES), validate_choice=False)


class AuditFilterForm(FlaskForm):
    """Filters of the audit log (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    address = StringField(_l("Address contains"), filters=[strip])
    employee = StringField(_l("Employee (name or e-mail)"), filters=[strip])


class EmployeeSearchForm(FlaskForm):
    """The live search over employees (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Find an employee"), filters=[strip])
