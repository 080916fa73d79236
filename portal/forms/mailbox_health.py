"""The Health page's filters (a GET form)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField

from portal.forms import choices, strip

STATE_CHOICES = (
    ("", _l("Every state")),
    ("attention", _l("Needs attention (warning or paused)")),
    ("working", _l("Working")),
    ("warning", _l("Warning")),
    ("paused_by_portal", _l("Paused by the portal")),
    ("paused_by_person", _l("Paused by a person")),
)
SCOPE_CHOICES = (("", _l("Company and employees'")), ("company", _l("Company addresses")),
                 ("employee", _l("Employees' addresses")))
DELIVERABILITY_CHOICES = (("", _l("Any deliverability")), ("problems", _l("With DNS problems")))


class HealthFilterForm(FlaskForm):
    """Filters of the Health page (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    address = StringField(_l("Address contains"), filters=[strip])
    state = SelectField(_l("State"), choices=choices(STATE_CHOICES), validate_choice=False)
    scope = SelectField(_l("Whose"), choices=choices(SCOPE_CHOICES), validate_choice=False)
    deliverability = SelectField(_l("Deliverability"), choices=choices(DELIVERABILITY_CHOICES),
                                 validate_choice=False)
