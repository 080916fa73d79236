"""Webhooks on pages: one's own on My profile, any employee's for admins; the signing secret is shown once."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from portal import webhooks
from portal.access import admin_required
from portal.api.openapi import MAX_ID
from portal.forms import choices
from portal.forms.webhooks import EVENT_LABELS, REFUSALS, WebhookForm
from portal.htmx import is_htmx, render_htmx, request_is_partial
from portal.letters.worker import huey_for
from portal.models import ApiToken, Employee

bp = Blueprint("webhooks", __name__)
FORM_PREFIX = "webhook"
SECTION = "webhooks/partial/endpoints.html"

# What a failed try's error code means, in the delivery log.
TRY_ERRORS = {
    webhooks.NOT_ALLOWED: _l("Address not allowed"),
    webhooks.NO_SUCH_HOST: _l("No such host"),
    webhooks.TIMEOUT: _l("No answer in time"),
    webhooks.UNREACHABLE: _l("Could not connect"),
    webhooks.TLS_FAILED: _l("Certificate not trusted"),
    webhooks.SECRET_UNREADABLE: _l("The secret cannot be read with the configured keys"),
}


@bp.record_once
def _listen(state):
    """The app hears the domain events, and a new delivery enqueues its try on this app's queue."""
    app = state.app
    webhooks.connect_receivers()
    webhooks.install_doorbell(lambda delivery_id: huey_for(app).portal_tasks.deliver_webhook(delivery_id))


@bp.app_template_filter("webhook_result")
def webhook_result(attempt):
    """A try's result in words: the status code, or why there was none."""
    if attempt.succeeded:
        return f"HTTP {attempt.status_code}"
    code = webhooks.error_code(attempt.error)
    if code == webhooks.HTTP_STATUS:
        return f"HTTP {attempt.status_code}"
    if code == webhooks.REDIRECT:
        return _("HTTP %(status)s: redirects are not followed", status=attempt.status_code)
    words = str(TRY_ERRORS.get(code, code))
    detail = webhooks.error_detail(attempt.error)
    return f"{words} ({detail})" if detail and current_user.is_admin else words


def _settings():
    return webhooks.WebhookSettings.from_mapping(current_app.config)


def _live_tokens(owner):
    return list(ApiToken.select().where((ApiToken.owner == owner.id) & ApiToken.revoked_at.is_null())
                .order_by(ApiToken.created_at, ApiToken.id))


def _form(owner, form=None):
    if form is None:
        form = WebhookForm(formdata=None, prefix=FORM_PREFIX)
        form.events.data = list(webhooks.EVENTS)
    form.token.choices = choices([(t.id, f"{t.name} ({t.hint}…)") for t in _live_tokens(owner)])
    return form


def _mine(owner):
    return owner.id == current_user.id


@bp.app_template_global("webhook_section")
def webhook_section(owner=None, *, form=None, created=None, secret=None, notice=""):
    """What the webhooks fragment shows for one employee (the signed-in one by default)."""
    owner = owner if owner is not None else current_user._get_current_object()
    form = _form(owner, form)
    return {
        "owner": owner,
        "mine": _mine(owner),
        "has_tokens": bool(form.token.choices),
        "endpoints": [(e, webhooks.delivery_log(e)) for e in webhooks.endpoints_of(owner)],
        "form": form,
        "event_labels": EVENT_LABELS,
        "created": created,
        "secret": secret,
        "notice": notice,
        "create_url": url_for("webhooks.create_mine") if _mine(owner)
        else url_for("webhooks.create_for", employee_id=owner.id),
        "self_url": url_for("webhooks.mine") if _mine(owner) else url_for("webhooks.employee", employee_id=owner.id),
    }


def _page(owner, **section):
    """The webhooks page of one employee, or only its fragment for htmx."""
    template = "webhooks/mine.html" if _mine(owner) else "webhooks/employee.html"
    return render_htmx(template, partial=SECTION, hooks=webhook_section(owner, **section))


def _employee_or_404(employee_id):
    employee = Employee.get_or_none(Employee.id == employee_id) if employee_id <= MAX_ID else None
    if employee is None:
        abort(404)
    return employee


def _create(owner):
    form = _form(owner, WebhookForm(prefix=FORM_PREFIX))
    if form.validate_on_submit():
        token = ApiToken.get_or_none((ApiToken.id == form.token.data) & (ApiToken.owner == owner.id)) \
            if str(form.token.data or "").isdigit() else None
        if token is None:
            form.token.errors.append(_("Choose one of the tokens."))
            return _page(owner, form=form)
        try:
            endpoint, secret = webhooks.create_endpoint(token, form.url.data, form.events.data or [],
                                                        actor=current_user, settings=_settings())
        except webhooks.EndpointInvalid as error:
            getattr(form, error.field).errors.append(str(REFUSALS[error.code]))
        else:
            return _page(owner, created=endpoint, secret=secret)
    return _page(owner, form=form)


@bp.route("/profile/webhooks")
@login_required
def mine():
    """My webhooks (also a section of My profile)."""
    return _page(current_user._get_current_object())


@bp.route("/profile/webhooks", methods=["POST"])
@login_required
def create_mine():
    """Add a webhook to one of my tokens; the answer shows its secret once."""
    return _create(current_user._get_current_object())


@bp.route("/admin/employees/<int:employee_id>/webhooks")
@admin_required
def employee(employee_id):
    """One employee's webhooks, for admins."""
    return _page(_employee_or_404(employee_id))


@bp.route("/admin/employees/<int:employee_id>/webhooks", methods=["POST"])
@admin_required
def create_for(employee_id):
    """Add a webhook to an employee's token; the answer shows its secret once."""
    return _create(_employee_or_404(employee_id))


def _endpoint_or_404(endpoint_id):
    try:
        return webhooks.endpoint_for(current_user, endpoint_id if endpoint_id <= MAX_ID else 0)
    except webhooks.EndpointNotFound:
        abort(404)


def _back_to(owner):
    """Where an employee's webhooks are: My profile, or the admins' page of that employee's."""
    return redirect(url_for("profile.edit") if _mine(owner) else url_for("webhooks.employee", employee_id=owner.id))


def _done(endpoint, notice):
    """The owner's section again with a notice (htmx), or back to the page it was on."""
    owner = endpoint.token.owner
    if is_htmx():
        return _page(owner, notice=notice)
    flash(notice, "info")
    return _back_to(owner)


@bp.route("/webhooks/<int:endpoint_id>/test", methods=["POST"])
@login_required
def send_test(endpoint_id):
    """Queue a webhook.test event for this endpoint; its try shows in the log."""
    endpoint = _endpoint_or_404(endpoint_id)
    webhooks.send_test_event(endpoint, actor=current_user)
    return _done(endpoint, _("A test event is on its way to %(url)s: its result appears in the log.", url=endpoint.url))


@bp.route("/webhooks/<int:endpoint_id>/enable", methods=["POST"])
@login_required
def enable(endpoint_id):
    """Enable a webhook again (after a person or the portal disabled it)."""
    endpoint = webhooks.set_enabled(_endpoint_or_404(endpoint_id), True)
    return _done(endpoint, _("The webhook to %(url)s is enabled.", url=endpoint.url))


@bp.route("/webhooks/<int:endpoint_id>/disable", methods=["POST"])
@login_required
def disable(endpoint_id):
    """Disable a webhook: nothing more is sent to it, and what waited for it is cancelled."""
    endpoint = webhooks.set_enabled(_endpoint_or_404(endpoint_id), False)
    return _done(endpoint, _("The webhook to %(url)s is disabled.", url=endpoint.url))


@bp.route("/webhooks/<int:endpoint_id>/delete", methods=["POST"])
@login_required
def delete(endpoint_id):
    """Delete a webhook with its delivery log."""
    endpoint = _endpoint_or_404(endpoint_id)
    webhooks.delete_endpoint(endpoint)
    return _done(endpoint, _("The webhook to %(url)s is deleted.", url=endpoint.url))


@bp.route("/webhooks/<int:endpoint_id>/log")
@login_required
def log(endpoint_id):
    """One webhook's delivery log (the fragment asks for itself while something waits)."""
    endpoint = _endpoint_or_404(endpoint_id)
    owner = endpoint.token.owner
    if not request_is_partial():  # a fragment's own address opened as a page: the page it belongs to
        return _back_to(owner)
    return render_template("webhooks/partial/log.html", endpoint=endpoint,
                           log=webhooks.delivery_log(endpoint)), {"Vary": "HX-Request"}
