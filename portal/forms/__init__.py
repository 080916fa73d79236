"""Flask-WTF forms, one module per area; shared validators live here."""
from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice
from wtforms.validators import Length, ValidationError

from portal.fields import CONTROL_CHARACTERS
from portal.models.people import FIELD_MAX


def single_line(form, field):
    """Refuse line breaks and control characters in a one-line field."""
    if field.data and CONTROL_CHARACTERS.search(str(field.data)):
        raise ValidationError(_l("Use a single line without control characters."))


def not_blank(form, field):
    """Refuse a value that is only spaces."""
    if field.data is None or not str(field.data).strip():
        raise ValidationError(_l("This field is required."))


def max_length(limit=FIELD_MAX):
    """The over-long-field message every form uses."""
    return Length(max=limit, message=_l("At most %(max)d characters.", max=limit))


def strip(value):
    """Filter that trims surrounding spaces from text input."""
    return value.strip() if isinstance(value, str) else value


def choices(pairs):
    """Select choices from (value, label) pairs."""
    return [SelectChoice(str(value), label) for value, label in pairs]


def language_choices():
    """The languages the portal speaks, each named in itself."""
    from portal.i18n import LANGUAGE_NAMES

    return choices(LANGUAGE_NAMES.items())
