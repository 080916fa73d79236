"""The page an invitation link opens: the employee sets a password, then signs in."""
from flask import Blueprint, current_app, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import logout_user

from portal.extensions import limiter
from portal.forms.invitations import SetPasswordForm
from portal.htmx import render_htmx
from portal.invitations import InvitationInvalid, invited_employee
from portal.people import EmployeeError, set_password

bp = Blueprint("invitations", __name__)


def _reasons():
    return {
        "expired": _("This link has expired: links work for 7 days. Ask your administrator for a new one."),
        "used": _("This link has been used already. Sign in with your password, or ask your administrator "
                  "for a new link."),
        "invalid": _("This link does not work. Ask your administrator for a new one."),
    }


@bp.route("/set-password/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def accept(token):
    """Set a password with an invitation link; the link works once."""
    try:
        employee = invited_employee(token, current_app.secret_key)
    except InvitationInvalid as error:
        body, headers = render_htmx("invitations/set_password.html", problem=_reasons()[error.reason], form=None,
                                    employee=None)
        return body, 404 if error.reason == "invalid" else 410, headers
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            set_password(employee, form.new_password.data)
        except EmployeeError as error:
            form.new_password.errors.append(str(error.message))
        else:
            logout_user()  # whoever was signed in on this browser is not the invited employee
            flash(_("Your password is set. Sign in with your e-mail and the new password."), "success")
            return redirect(url_for("auth.sign_in"))
    return render_htmx("invitations/set_password.html", problem=None, form=form, employee=employee)
