"""Forms for personal API tokens."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField

from portal.forms import max_length, not_blank, single_line, strip
from portal.models.api import TOKEN_NAME_MAX


class TokenForm(FlaskForm):
    name = StringField(
        _l("Token name"),
        filters=[strip],
        validators=[not_blank, single_line, max_length(TOKEN_NAME_MAX)],
        description=_l("What will use it, e.g. “CRM” or “Task tracker”."),
    )


class TokenForEmployeeForm(TokenForm):
    owner = SelectField(_l("Employee"), validate_choice=True)
