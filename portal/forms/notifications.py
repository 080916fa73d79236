"""My profile's notification choices: per kind, in the portal only or also by e-mail."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField

from portal.forms import choices
from portal.notifications import KINDS, kind_label

WAYS = choices((("portal", _l("In the portal only")), ("email", _l("Also by e-mail"))))


def preferences_form(chosen, **kwargs):
    """A form with one choice per kind, filled with ``chosen`` ({kind: by e-mail}) unless the request says."""

    class NotificationPreferencesForm(FlaskForm):
        pass

    for kind in KINDS:
        setattr(NotificationPreferencesForm, kind,
                RadioField(kind_label(kind, _l), choices=WAYS, default="email" if chosen[kind] else "portal"))
    return NotificationPreferencesForm(**kwargs)


class SystemMailboxForm(FlaskForm):
    """Account management → Outgoing messages: the company mailbox the portal's own mail leaves from."""

    mailbox = SelectField(_l("System mailbox"), coerce=str, validate_choice=True)


def system_mailbox_form(mailboxes, chosen, **kwargs):
    form = SystemMailboxForm(mailbox=str(chosen.id) if chosen else "", **kwargs)
    form.mailbox.choices = choices([("", _l("None: notifications stay in the portal"))] + [
        (mailbox.id, mailbox.address) for mailbox in mailboxes])
    return form
