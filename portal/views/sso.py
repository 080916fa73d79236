"""Single sign-on: "Sign in with <company>", the provider's callback, the sign-out offer, and the admin's page."""
import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import admin_required
from portal.extensions import limiter
from portal.forms.sso import SsoForm
from portal.htmx import render_htmx
from portal.provider_trips import remember_state
from portal.secret_box import active_box
from portal.security import local_target
from portal.views.page_settings import stored
from portal.sso import (MESSAGES, SsoRefusal, check_provider, configured_settings, employee_for, finish_flow,
                        keep_for_sign_out, logout_url, provider_sign_out, start_flow, store_settings)
from portal.views.signing_in import sign_in_as

bp = Blueprint("sso", __name__)
log = logging.getLogger("portal.sso")
STATES = "sso_states"  # the states of the sign-ins this browser started: all its session keeps of them


def current_settings():
    """The single sign-on settings in force (configuration, then the admin's page)."""
    return configured_settings(current_app.config, active_box())


@bp.app_template_global()
def sso_sign_in():
    """The settings the sign-in page shows its "Sign in with" button from."""
    return current_settings()


def _refused(refusal, status=403):
    log.warning("single sign-on refused: %s", refusal)
    return render_template("sso/refused.html", message=refusal.message, messages=MESSAGES), status


def _start_limit():
    return current_app.config["PORTAL_SSO_START_RATE_LIMIT"]


@bp.route("/sso/start")
@limiter.limit(_start_limit)
def start():
    """Send the browser to the provider's sign-in; the sign-in is kept on the server, the browser keeps its state."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    settings = current_settings()
    if not settings.configured:
        flash(_(MESSAGES["not_configured"]), "info")
        return redirect(url_for("auth.sign_in"))
    try:
        started = start_flow(settings, url_for("sso.callback", _external=True), local_target(request.args.get("next")))
    except SsoRefusal as refusal:
        return _refused(refusal, 502)
    session[STATES] = remember_state(session.get(STATES), started.state)
    return redirect(started.url)


@bp.route("/sso/callback")
def callback():
    """The provider's answer: sign the employee in, or say why not."""
    if current_user.is_authenticated:  # a stale answer in a browser signed in meanwhile
        return redirect(url_for("home.index"))
    if not request.args:  # opened by hand: nothing to answer
        return redirect(url_for("auth.sign_in"))
    settings = current_settings()
    try:
        identity, target = finish_flow(settings, request.args, session.get(STATES))
        employee, how = employee_for(identity, settings)
    except SsoRefusal as refusal:
        return _refused(refusal)
    log.info("single sign-on: employee %s signed in (%s)", employee.id, how)
    response = sign_in_as(employee, remember=False, target=target)
    keep_for_sign_out(employee.session_token, identity)
    return response


def sign_out_offer():
    """The provider's logout URL for this browser's SSO sign-in (read before its session ends), or None."""
    found = provider_sign_out(current_user.get_id())
    if found is None:
        return None
    end_session, id_token = found
    return logout_url(end_session, current_settings(), id_token, url_for("auth.sign_in", _external=True))


def signed_out_page(provider_logout):
    """After the portal's sign-out: offer to sign out at the provider too."""
    return render_template("sso/signed_out.html", provider_logout=provider_logout, settings=current_settings())


def _page(form, results=None, partial=None):
    return render_htmx("sso/settings.html", partial=partial, form=form, settings=current_settings(),
                       redirect_uri=url_for("sso.callback", _external=True), results=results, messages=MESSAGES)


def _form():
    values = current_settings().public()
    values.pop("client_secret")
    return SsoForm(data=values)


@bp.route("/admin/sign-in")
@admin_required
def settings_page():
    """Account management → Sign-in: the OpenID Connect provider and how its people become employees."""
    return _page(_form())


@bp.route("/admin/sign-in", methods=["POST"])
@admin_required
def save():
    """Store the settings (the client secret encrypted, never shown again)."""
    form = SsoForm()
    if not form.validate_on_submit() or not stored(form, store_settings, _(
            "Type the client secret again: the stored one was given for another provider or client.")):
        return _page(form)
    flash(_("Sign-in settings saved. Check them with the provider before people use them."), "success")
    return redirect(url_for("sso.settings_page"))


@bp.route("/admin/sign-in/check", methods=["POST"])
@admin_required
def check():
    """Ask the provider: discovery, signing keys, clocks and the client's credentials, each explained."""
    return _page(_form(), results=check_provider(current_settings()), partial="sso/partial/check.html")
