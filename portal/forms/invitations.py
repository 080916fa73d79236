"""Setting one's first password through an invitation link."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.forms import max_length
from portal.people import PASSWORD_MIN


class SetPasswordForm(FlaskForm):
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
