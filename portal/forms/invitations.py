"""Setting one's first password through an invitation link: My profile's new-password fields, no current one."""
from flask_wtf import FlaskForm

from portal.forms.profile import PasswordForm


class SetPasswordForm(FlaskForm):
    new_password = PasswordForm.new_password
    confirm_password = PasswordForm.confirm_password
