"""Personal API tokens on pages: one's own on My profile, anyone's for admins; each new token is shown once."""
from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from peewee import fn

from portal.access import admin_required
from portal.api.openapi import MAX_ID
from portal.api.tokens import TokenInvalid, TokenNotFound, create_token, every_token, revoke_token, token_for, tokens_of
from portal.forms import choices
from portal.forms.api_tokens import TokenForEmployeeForm, TokenForm
from portal.htmx import is_htmx, render_htmx
from portal.models import Employee

bp = Blueprint("api_tokens", __name__)
FORM_PREFIX = "token"
SECTION = "api_tokens/partial/tokens.html"


def _create_url(owner):
    if owner.id == current_user.id:
        return url_for("api_tokens.create_mine")
    return url_for("api_tokens.create_for", employee_id=owner.id)


@bp.app_template_global("api_token_section")
def token_section(owner=None, *, form=None, created=None, token=None):
    """What the tokens fragment shows for one employee (the signed-in one by default)."""
    owner = owner if owner is not None else current_user._get_current_object()
    return {
        "owner": owner,
        "mine": owner.id == current_user.id,
        "tokens": tokens_of(owner),
        "form": form or TokenForm(formdata=None, prefix=FORM_PREFIX),
        "created": created,
        "token": token,
        "create_url": _create_url(owner),
    }


def _employee_or_404(employee_id):
    employee = Employee.get_or_none(Employee.id == employee_id) if employee_id <= MAX_ID else None
    if employee is None:
        abort(404)
    return employee


def _page(owner, **section):
    """The tokens page of one employee, or only its fragment for htmx."""
    template = "api_tokens/mine.html" if owner.id == current_user.id else "api_tokens/employee.html"
    return render_htmx(template, partial=SECTION, section=token_section(owner, **section))


def _create(owner):
    form = TokenForm(prefix=FORM_PREFIX)
    if form.validate_on_submit():
        try:
            row, token = create_token(owner, form.name.data, actor=current_user)
        except TokenInvalid as error:
            form.name.errors.append(str(error.message))
        else:
            return _changed(_page(owner, created=row, token=token))
    return _page(owner, form=form)


def _changed(response):
    """Tell the page its tokens changed: My profile's webhooks section offers only the live ones."""
    body, headers = response
    return body, {**headers, "HX-Trigger": "api-tokens-changed"}


@bp.route("/profile/api-tokens")
@login_required
def mine():
    """My API tokens (also a section of My profile)."""
    return _page(current_user)


@bp.route("/profile/api-tokens", methods=["POST"])
@login_required
def create_mine():
    """Create a token for myself; the answer shows it once."""
    return _create(current_user._get_current_object())


@bp.route("/admin/employees/<int:employee_id>/api-tokens")
@admin_required
def employee(employee_id):
    """One employee's API tokens, for admins (fits the employee card as a tab)."""
    return _page(_employee_or_404(employee_id))


@bp.route("/admin/employees/<int:employee_id>/api-tokens", methods=["POST"])
@admin_required
def create_for(employee_id):
    """Create a token for an employee; the answer shows it once."""
    return _create(_employee_or_404(employee_id))


@bp.route("/api-tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id):
    """Revoke a token at once: one's own, or anyone's for an admin."""
    try:
        row = token_for(current_user, token_id if token_id <= MAX_ID else 0)
        revoke_token(row, actor=current_user)
    except TokenNotFound:
        abort(404)
    owner = Employee.get_by_id(row.owner_id)
    if request.form.get("back") == "all" and current_user.is_admin:
        if is_htmx():
            return _all_tokens(notice=_("Revoked the token “%(name)s”.", name=row.name))
        flash(_("Revoked the token “%(name)s”.", name=row.name), "info")
        return redirect(url_for("api_tokens.every"))
    if is_htmx():
        return _changed(_page(owner))
    flash(_("Revoked the token “%(name)s”.", name=row.name), "info")
    return redirect(url_for("profile.edit") if owner.id == current_user.id
                    else url_for("api_tokens.employee", employee_id=owner.id))


# ---------------------------------------------------------------- every token, for admins

def _employee_form(form=None):
    form = form or TokenForEmployeeForm(formdata=None, prefix=FORM_PREFIX)
    people = Employee.select().where(Employee.active == True).order_by(fn.LOWER(Employee.name))  # noqa: E712
    form.owner.choices = choices([("", _("Choose an employee"))] + [(e.id, f"{e.name} <{e.email}>") for e in people])
    return form


def _all_tokens(form=None, created=None, token=None, notice=""):
    return render_htmx("api_tokens/every.html", tokens=list(every_token()), form=_employee_form(form),
                       created=created, token=token, notice=notice)


@bp.route("/admin/api-tokens")
@admin_required
def every():
    """Every employee's API tokens: who has which, when each was last used; revoke any, create for anyone."""
    return _all_tokens()


@bp.route("/admin/api-tokens", methods=["POST"])
@admin_required
def create_any():
    """Create a token for the chosen employee; the answer shows it once."""
    form = _employee_form(TokenForEmployeeForm(prefix=FORM_PREFIX))
    if form.validate_on_submit():
        owner = Employee.get_or_none(Employee.id == int(form.owner.data)) if form.owner.data.isdigit() else None
        if owner is None:
            form.owner.errors.append(_("Choose an employee."))
        else:
            try:
                row, token = create_token(owner, form.name.data, actor=current_user)
            except TokenInvalid as error:
                form.name.errors.append(str(error.message))
            else:
                return _all_tokens(created=row, token=token)
    return _all_tokens(form=form)
