"""My profile: every signed-in employee's own name, language and password, and signing out everywhere."""
from flask import Blueprint, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.forms.employees import ConfirmForm
from portal.forms.profile import PasswordForm, ProfileForm
from portal.htmx import render_htmx
from portal.people import EmployeeError, change_password, clean_text
from portal.sessions import end_sessions, open_sessions
from portal.views.auth import forget_browser
from portal.views.notifications import preferences_context

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _page(profile_form=None, password_form=None):
    return render_htmx(
        "profile/edit.html",
        profile_form=profile_form or ProfileForm(formdata=None, name=current_user.name,
                                                 language=current_user.language or ""),
        password_form=password_form or PasswordForm(formdata=None),
        sign_out_form=ConfirmForm(formdata=None),
        open_sessions=open_sessions(current_user),
        **preferences_context(current_user),
    )


@bp.route("", methods=["GET", "POST"])
@login_required
def edit():
    """Change one's own name and language; the new language applies at once."""
    form = ProfileForm(name=current_user.name, language=current_user.language or "")
    if form.validate_on_submit():
        employee = current_user._get_current_object()
        try:
            employee.name = clean_text("name", form.name.data, required=True)
        except EmployeeError as error:
            form.name.errors.append(str(error.message))
            return _page(profile_form=form)
        employee.language = form.language.data or None
        employee.save()
        flash(_("Your profile is saved."), "success")
        return redirect(url_for("profile.edit"))
    return _page(profile_form=form)


@bp.route("/password", methods=["POST"])
@login_required
def password():
    """Change one's own password, proving the current one first."""
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            change_password(current_user._get_current_object(), form.current_password.data, form.new_password.data,
                            keep=current_user.get_id())
        except EmployeeError as error:
            getattr(form, error.field).errors.append(str(error.message))
        else:
            flash(_("Your password is changed. You are signed out on every other browser."), "success")
            return redirect(url_for("profile.edit"))
    return _page(password_form=form)


@bp.route("/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    """End every session of one's own, this one too: a lost phone or a shared computer is signed out."""
    if ConfirmForm().validate_on_submit():
        end_sessions(current_user)
        forget_browser()
        flash(_("You have signed out on every browser."), "info")
        return redirect(url_for("auth.sign_in"))
    return redirect(url_for("profile.edit"))
