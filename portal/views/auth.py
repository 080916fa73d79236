"""Signing in and out, and choosing the language before signing in."""
from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from portal.extensions import limiter
from portal.forms.auth import LanguageForm, SignInForm
from portal.htmx import render_htmx
from portal.sessions import authenticate, end_session
from portal.views.signing_in import sign_in_as
from portal.views.sso import current_settings as current_sso_settings
from portal.views.sso import sign_out_offer as sso_sign_out_offer
from portal.views.sso import signed_out_page as sso_signed_out_page

bp = Blueprint("auth", __name__)


def _signin_limit():
    return current_app.config["PORTAL_SIGNIN_RATE_LIMIT"]


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(_signin_limit, methods=["POST"], deduct_when=lambda response: response.status_code != 302)
def sign_in():
    """Sign in with e-mail and password; failed attempts are rate-limited."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = SignInForm()
    if form.validate_on_submit():
        employee = authenticate(form.email.data, form.password.data)
        sso = current_sso_settings()
        if employee and sso.passwords_allowed_for(employee):  # with single sign-on only, admins keep passwords
            return sign_in_as(employee, remember=form.remember.data, target=request.args.get("next"))
        if sso.configured and not sso.passwords_allowed:
            # The same words for a right and a wrong password, so an old password cannot be confirmed here.
            form.password.errors.append(_("Passwords are turned off: sign in with %(company)s.",
                                          company=sso.label))
        else:
            form.password.errors.append(_("The e-mail or password is wrong, or the account is deactivated."))
    language_form = LanguageForm(language=str(get_locale()))
    return render_htmx("auth/sign_in.html", form=form, language_form=language_form)


@bp.route("/language", methods=["POST"])
def set_language():
    """Remember the language picked on the sign-in page."""
    form = LanguageForm()
    if form.validate_on_submit():
        session["language"] = form.language.data
    return redirect(url_for("auth.sign_in"))


def forget_browser():
    """Empty this browser's session and delete its remember cookie; the sign-in page keeps its language."""
    language = str(get_locale())
    session.clear()
    logout_user()  # after clear(): it leaves the flag that deletes the remember cookie
    session["language"] = language


@bp.route("/sign-out", methods=["POST"])
@login_required
def sign_out():
    """Sign out: the session ends on the server, and the session and remember cookies are deleted."""
    provider_logout = sso_sign_out_offer()
    end_session(current_user.get_id())
    forget_browser()
    if provider_logout:  # signed in with the company's identity: offer to sign out there too
        return sso_signed_out_page(provider_logout)
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.sign_in"))
