"""Sign-in and language forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired

from portal.forms import language_choices, max_length, strip


class SignInForm(FlaskForm):
    email = EmailField(
        _l("E-mail"), filters=[strip], validators=[DataRequired(_l("Enter your e-mail.")), max_length()]
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])
    remember = BooleanField(_l("Keep me signed in on this computer"))


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), choices=language_choices())
