"""My profile: one's own name and language, and a password change."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.forms import max_length, not_blank, single_line, strip
from portal.forms.employees import language_or_browser_choices
from portal.people import PASSWORD_MIN


class ProfileForm(FlaskForm):
    name = StringField(_l("Name"), filters=[strip], validators=[not_blank, max_length(), single_line])
    language = SelectField(_l("Language"), choices=language_or_browser_choices())


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(_l("Enter your current password."))]
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(_l("Enter a new password.")),
            Length(min=PASSWORD_MIN, message=_l("At least %(min)d characters.", min=PASSWORD_MIN)),
            max_length(),
        ],
        description=_l("At least 10 characters."),
    )
    confirm_password = PasswordField(
        _l("Repeat the new password"),
        validators=[
            DataRequired(_l("Repeat the new password.")),
            EqualTo("new_password", message=_l("The two passwords differ.")),
        ],
    )
