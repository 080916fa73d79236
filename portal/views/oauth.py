"""Signing mailboxes in with the provider: Account management → Sign-in providers, the trip to the consent page
and back (for the mailbox form and for Reconnect)."""
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from portal import mailboxes as service
from portal.access import admin_required
from portal.forms.oauth import SignInProviderForm
from portal.htmx import is_htmx, render_htmx
from portal.models import Mailbox
from portal.oauth import apps, client, flows, grants
from portal.oauth.providers import PROVIDERS, provider_for_preset
from portal.provider_trips import remember_state
from portal.security import local_target

bp = Blueprint("oauth", __name__)
SESSION_KEY = "oauth_states"  # the states this browser was sent off with: the callback's must be one of them


def redirect_uri():
    """The exact callback address to register at the provider, from the public URL (path prefix included)."""
    return url_for("oauth.callback", _external=True)


# ---------------------------------------------------------------- Account management → Sign-in providers

def _providers_page(forms=None, checked=None, status=""):
    registered = apps.registered_apps()
    forms = forms or {}
    for key in PROVIDERS:
        if key not in forms:
            app = registered.get(key)
            data = {} if app is None else {"client_id": app.client_id, "tenant": app.tenant,
                                           "discovery_url": app.discovery_url, "sasl": app.sasl or "XOAUTH2",
                                           "scopes": app.scopes}
            forms[key] = SignInProviderForm(prefix=key, formdata=None, data=data)
    return render_htmx("oauth/providers.html", providers=PROVIDERS, registered=registered, forms=forms,
                       redirect_uri=redirect_uri(), checked=checked or {}, status=status)


@bp.route("/admin/sign-in-providers")
@admin_required
def providers():
    """Each provider: its registered app, the redirect URI to paste there and the scopes to grant."""
    return _providers_page()


@bp.route("/admin/sign-in-providers/<provider>", methods=["POST"])
@admin_required
def save_provider(provider):
    """Register or change one provider's app; errors beside the fields, nothing half-saved."""
    if provider not in PROVIDERS:
        abort(404)
    form = SignInProviderForm(prefix=provider)
    if form.validate_on_submit():
        try:
            apps.save_app(provider, actor=current_user, **form.values())
        except apps.AppInvalid as error:
            for name, message in error.errors.items():
                form[name].errors = list(form[name].errors) + [message]
        else:
            flash(_("Saved the %(name)s app.", name=provider_name(PROVIDERS[provider])), "success")
            return redirect(url_for("oauth.providers"))
    return _providers_page({provider: form}, status=_("Nothing was saved: fix the marked fields."))


@bp.route("/admin/sign-in-providers/<provider>/check", methods=["POST"])
@admin_required
def check_provider(provider):
    """Ask the provider for a token with a made-up code: invalid_grant means the ID and secret are right."""
    if provider not in PROVIDERS:
        abort(404)
    try:
        refusal = client.check_app(grants.app_settings(provider), redirect_uri())
        outcome = "ok" if refusal is None or refusal.error == "invalid_grant" else refusal.error
    except grants.AppNotRegistered:
        outcome = "not_registered"
    except client.ProviderUnreachable:
        outcome = "unreachable"
    return render_template("oauth/partial/check.html", name=provider_name(PROVIDERS[provider]), outcome=outcome), \
        {"Vary": "HX-Request"}


@bp.app_template_global("oauth_provider_name")
def provider_name(provider):
    """A provider as people call it: its brand, or "your company's server" for the company's own."""
    return _("your company's server") if provider.key == "company" else provider.name


# ---------------------------------------------------------------- the trip to the consent page and back

def _remember_state(state):
    session[SESSION_KEY] = remember_state(session.get(SESSION_KEY), state)


def _go(url):
    """Send the browser to the provider: HX-Redirect when htmx asked, else a page that goes on by itself (the
    Content-Security-Policy's form-action 'self' stops a form's redirect to another site)."""
    if is_htmx():
        return "", 200, {"HX-Redirect": url}
    return render_template("oauth/continue.html", url=url)


@bp.route("/mailboxes/sign-in/<provider>", methods=["POST"])
@login_required
def sign_in(provider):
    """From the mailbox form: keep its values (never a password) and go to the provider's consent page."""
    if provider not in PROVIDERS:
        abort(404)
    mailbox = None
    if request.form.get("mailbox_id"):
        mailbox = _managed_mailbox(request.form["mailbox_id"])
    values = {key: (request.form.getlist(key) if key in _LISTS else request.form.get(key))
              for key in request.form.keys()}
    try:
        started = flows.start(provider, current_user, redirect_uri(), mailbox=mailbox, form_values=values,
                              login_hint=(request.form.get("address") or "").strip())
    except (grants.AppNotRegistered, client.ProviderUnreachable):
        flash(_("Signing in with %(name)s is not available right now: an administrator must check it on "
                "Sign-in providers.", name=provider_name(PROVIDERS[provider])), "error")
        return _go(url_for("mailboxes.edit", mailbox_id=mailbox.id) if mailbox else url_for("mailboxes.new"))
    _remember_state(started.state)
    return _go(started.url)


_LISTS = ("projects", "access_employees", "access_departments")


def _managed_mailbox(mailbox_id):
    try:
        return service.mailbox_for(current_user, mailbox_id)
    except service.MailboxNotFound:
        abort(404)


@bp.route("/mailboxes/<int:mailbox_id>/reconnect", methods=["POST"])
@login_required
def reconnect(mailbox_id):
    """Sign the mailbox in with its provider again; its waiting letters leave once that works."""
    mailbox = _managed_mailbox(mailbox_id)
    grant = grants.grant_of(mailbox)
    if grant is None:  # it signs in with a password: the form is where to choose a provider
        return redirect(url_for("mailboxes.edit", mailbox_id=mailbox.id))
    try:
        started = flows.start(grant.provider, current_user, redirect_uri(), purpose="reconnect", mailbox=mailbox,
                              login_hint=grant.identity, form_values={"next": local_target(request.args.get("next"))})
    except (grants.AppNotRegistered, client.ProviderUnreachable):
        flash(_("Signing in with %(name)s is not available right now: an administrator must check it on "
                "Sign-in providers.", name=provider_name(PROVIDERS[grant.provider])), "error")
        return _go(request.referrer or url_for("mailboxes.mine"))
    _remember_state(started.state)
    return _go(started.url)


@bp.route("/oauth/callback")
@login_required
def callback():
    """Where the provider sends the browser back: a state this browser was not given, used or too old is refused
    with a page that says so; anything else returns to the form (or to the mailbox, for Reconnect)."""
    if not request.args:  # opened by hand, not sent back by a provider
        return redirect(url_for("mailboxes.mine"))
    try:
        flow = flows.finish(request.args.get("state", ""), current_user, session.get(SESSION_KEY, []),
                            request.args.to_dict(), redirect_uri())
    except flows.FlowRefused as refused:
        return render_template("oauth/refused.html", reason=refused.reason), 400
    # The used state stays among the browser's few kept ones: coming back with it again is "already used".
    if flow.purpose == "reconnect":
        return _reconnected(flow)
    target = (url_for("mailboxes.edit", mailbox_id=flow.mailbox_id, signed_in=flow.id) if flow.mailbox_id
              else url_for("mailboxes.new", signed_in=flow.id, **_new_form_target(flow)))
    return redirect(target)


def _new_form_target(flow):
    import json

    values = json.loads(flow.form_values or "{}")
    return {key: values[key] for key in ("scope", "owner_id") if values.get(key)}


def _local_path(path):
    """A page of the portal to come back to (never another site's address; behind a prefix, under it), else My
    addresses. ``path`` is inside the portal, as ``request.full_path`` gives it."""
    path = local_target(path)
    return request.script_root + path if path else url_for("mailboxes.mine")


def _reconnected(flow):
    import json

    mailbox = Mailbox.get_or_none(Mailbox.id == flow.mailbox_id)
    back = _local_path(json.loads(flow.form_values or "{}").get("next"))
    if mailbox is None:
        abort(404)
    if flow.error:
        flash(explain_error(flow.error), "error")
        return redirect(back)
    pending = flows.pending_grant(flow.id, current_user)
    old = grants.grant_of(mailbox)
    if pending is None or old is None or pending.identity != old.identity:
        if pending is not None:
            pending.delete_instance()
        flash(_("You signed in as %(who)s, but %(address)s signs in as %(expected)s. Sign in with that account.",
                who=flow.identity, address=mailbox.address, expected=old.identity if old else "?"), "error")
        return redirect(back)
    released = grants.reconnect(mailbox, pending, actor=current_user, ip=request.remote_addr or "")
    flash(_("%(address)s is connected again.", address=mailbox.address) + (
        " " + ngettext("%(num)d waiting letter goes out now.", "%(num)d waiting letters go out now.", released)
        if released else ""), "success")
    return redirect(back)


# What to tell the person for each error a provider sends back to the callback.
_ERRORS = {
    "access_denied": lambda: _("The sign-in was cancelled or consent was refused at the provider. Nothing was "
                               "saved: press the sign-in button again and allow the portal access."),
    "invalid_scope": lambda: _("The provider refused the permissions the portal asks for. An administrator must "
                               "grant them to the portal's app (see Sign-in providers for the list)."),
    "unauthorized_client": lambda: _("The provider does not allow the portal's app to sign in this way. An "
                                     "administrator must check the app's settings at the provider."),
    "invalid_client": lambda: _("The provider did not recognise the portal's app (client ID or secret). An "
                                "administrator must check it on Sign-in providers."),
    "invalid_grant": lambda: _("The provider refused the sign-in code: the redirect URI registered there must be "
                               "exactly the one shown on Sign-in providers. Try again, or ask an administrator."),
    "no_email": lambda: _("The provider did not say which address signed in. Allow the portal to see your e-mail "
                          "address, then try again."),
    "temporarily_unavailable": lambda: _("The provider could not be reached. Try again in a minute."),
    "id_token_issuer": lambda: _("The sign-in came back signed by another provider than this one, so it was not "
                                 "trusted and nothing was saved. An administrator must check Sign-in providers."),
}


def explain_error(code):
    """A plain explanation of a provider's error, with what to fix."""
    return _ERRORS.get(code, lambda: _("The provider refused the sign-in (%(code)s). Nothing was saved: try again, "
                                       "or ask an administrator to check Sign-in providers.", code=code))()


# ---------------------------------------------------------------- what the mailbox form and lists use

def restore_signed_in_form(form):
    """Back from the provider: the form's values as they were (no password), and which sign-in it carries."""
    import json

    flow = flows.returned_flow(request.args.get("signed_in", ""), current_user)
    g.oauth_flow = flow
    if flow is None:
        return
    values = json.loads(flow.form_values or "{}")
    for name, value in values.items():
        if name in form and name not in flows.SECRET_FORM_FIELDS and name != "submit_token":
            form[name].data = value
    if values.get("submit_token"):
        form.submit_token.data = values["submit_token"]


def with_sign_in(values):
    """The mailbox form's values plus its sign-in choice; a form's grant is only ever this employee's own."""
    values = dict(values)
    chosen = (request.form.get("auth") or "").strip().lower()
    if chosen:
        values["auth"] = chosen
    key = (request.form.get("oauth_grant") or "").strip()
    if key and chosen != "password":
        values["oauth_grant"] = key if flows.pending_grant(key, current_user) is not None else "expired-" + key
    return values


@bp.app_template_global("oauth_sign_in")
def oauth_sign_in(preset, mailbox=None):
    """What the mailbox form offers for signing in: the provider, whether its app is registered, the grant in use,
    the flow the browser just returned from, and whether a password is still allowed."""
    registered = apps.registered_apps()
    provider = provider_for_preset(preset.key if preset is not None else None)
    grant = grants.grant_of(mailbox) if mailbox is not None else None
    flow = getattr(g, "oauth_flow", None)
    if flow is None and request.form.get("oauth_grant"):
        flow = flows.returned_flow(request.form["oauth_grant"], current_user)
    if provider is None and grant is not None:
        provider = PROVIDERS.get(grant.provider)
    if provider is None and flow is not None:
        provider = PROVIDERS.get(flow.provider)
    if provider is None and "company" in registered and (preset is None or preset.key == "other"):
        provider = PROVIDERS["company"]
    if provider is None or provider.key not in registered:
        return None
    pending = flows.pending_grant(flow.id, current_user) if flow is not None and not flow.error else None
    password_allowed = preset is None or preset.password_allowed  # per preset: Microsoft 365 yes, Outlook.com no
    chosen = (request.form.get("auth") or "").strip().lower() or (
        "oauth" if pending is not None or grant is not None else ("password" if password_allowed else "oauth"))
    return {"provider": provider, "name": provider_name(provider), "grant": grant, "flow": flow,
            "pending": pending, "chosen": chosen, "password_allowed": password_allowed,
            "error": explain_error(flow.error) if flow is not None and flow.error else "",
            "identity": pending.identity if pending is not None else (grant.identity if grant is not None else "")}


@bp.app_template_global("oauth_needs_reconnect")
def oauth_needs_reconnect(mailbox):
    """The grant of a mailbox that needs reconnecting, or None. Every row of a list asks: the grants that need
    reconnecting are read once per request (one query, however many rows)."""
    lost = g.get("oauth_lost_grants")
    if lost is None:
        lost = g.oauth_lost_grants = grants.lost_grants()
    return lost.get(getattr(mailbox, "id", None))


@bp.app_template_global("mailboxes_needing_reconnect")
def mailboxes_needing_reconnect():
    """The signed-in person's mailboxes (all of them, for an admin) whose sign-in needs reconnecting."""
    from portal.models.oauth import MailboxGrant

    query = Mailbox.select().join(MailboxGrant, on=(MailboxGrant.mailbox == Mailbox.id)).where(
        MailboxGrant.needs_reconnect == True)  # noqa: E712
    if not current_user.is_admin:
        query = query.where((Mailbox.scope == "employee") & (Mailbox.owner == current_user.id))
    return list(query.order_by(Mailbox.address))
