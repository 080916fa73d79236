"""Account management: the employee list, add and edit, (de)activation, CSV import, and the card."""
from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from portal.db import whole_number
from portal.access import admin_required
from portal.forms.employees import ConfirmForm, EmployeeForm, ImportForm, NewEmployeeForm
from portal.forms.uploads import import_limits
from portal.htmx import render_htmx, request_is_partial
from portal.invitations import VALID_DAYS, cannot_sign_in, invitation_token
from portal.models import Employee
from portal.people import (EmployeeError, create_employee, import_employees, list_employees, set_employee_active,
                           update_employee)
from portal.sessions import end_sessions, open_sessions

bp = Blueprint("employees", __name__, url_prefix="/admin/employees")

SORTS = ("name", "email", "department", "position", "role")


def _listing():
    """The list's query string read safely: search text, sort column and direction, page."""
    text = request.args.get("q", "").strip()[:255]
    sort = request.args.get("sort", "name")
    sort = sort if sort in SORTS else "name"
    descending = request.args.get("dir") == "desc"
    page = request.args.get("page", 1, type=whole_number) or 1
    return text, sort, descending, max(page, 1)


def _employee_or_404(employee_id):
    return Employee.get_or_none(Employee.id == employee_id) or abort(404)


def _form_values(form):
    return {
        "email": form.email.data,
        "name": form.name.data,
        "position": form.position.data or "",
        "department": form.department.data or "",
        "role": form.role.data,
        "language": form.language.data or None,
        "password": form.password.data or None,
    }


def _refuse(form, error):
    """Show a core refusal beside its field."""
    target = getattr(form, error.field, None) if error.field else None
    (target.errors if target is not None else form.form_errors).append(str(error.message))


@bp.route("")
@admin_required
def index():
    """Employees, searched as you type, sortable by column, a page at a time."""
    text, sort, descending, page = _listing()
    size = current_app.config["PORTAL_PAGE_SIZE"]
    listing = list_employees(text, sort=sort, descending=descending, page=page, size=size)
    return render_htmx(
        "employees/index.html", listing=listing, q=text, sort=sort, descending=descending
    )


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new():
    """Add an employee."""
    form = NewEmployeeForm()
    if form.validate_on_submit():
        try:
            employee = create_employee(**_form_values(form))
        except EmployeeError as error:
            _refuse(form, error)
        else:
            flash(_("Employee %(name)s added.", name=employee.name), "success")
            return redirect(url_for("employees.card", employee_id=employee.id))
    return render_htmx("employees/new.html", form=form)


@bp.route("/<int:employee_id>")
@admin_required
def card(employee_id):
    """The employee card: tabs for the profile and the external addresses."""
    employee = _employee_or_404(employee_id)
    return render_htmx("employees/card.html", employee=employee, tab="profile", **_sessions_of(employee))


@bp.route("/<int:employee_id>/profile")
@admin_required
def profile_tab(employee_id):
    """The card's Profile tab (the whole card when opened as a page)."""
    employee = _employee_or_404(employee_id)
    return render_htmx(
        "employees/card.html", partial="employees/partial/profile_tab.html", employee=employee, tab="profile",
        **_sessions_of(employee)
    )


def _invitation_link(employee):
    return url_for("invitations.accept", token=invitation_token(employee, current_app.secret_key), _external=True)


def _invite(employee):
    """(the link to show, or None; the letter carrying it, or None): by e-mail when the portal has a system
    mailbox (portal.portal_mail), else shown to copy."""
    from portal.letters.worker import wake_sender
    from portal.portal_mail import NoSystemMailbox, send_invitation

    link = _invitation_link(employee)
    try:
        letter = send_invitation(employee, link, valid_days=VALID_DAYS)
    except NoSystemMailbox:
        return link, None
    wake_sender(current_app, letter)
    return None, letter


@bp.route("/<int:employee_id>/invitation", methods=["POST"])
@admin_required
def invitation(employee_id):
    """A set-password link for one employee: e-mailed through the system mailbox, or shown to copy without one."""
    employee = _employee_or_404(employee_id)
    if not employee.active:
        abort(404)
    link, mailed = _invite(employee)
    return render_htmx("employees/card.html", partial="employees/partial/invitation.html", employee=employee,
                       link=link, mailed=mailed, valid_days=VALID_DAYS, tab="profile",
                       **_sessions_of(employee))


@bp.route("/invitations", methods=["POST"])
@admin_required
def invitations():
    """Set-password links for the employees ticked in the list, or for everyone who cannot sign in yet."""
    try:
        ids = [whole_number(raw) for raw in request.form.getlist("employee")]
    except ValueError:
        abort(400)
    query = Employee.select().where(Employee.id.in_(ids)) if ids else None
    people = [(person, *_invite(person)) for person in cannot_sign_in(query)]
    return render_htmx("employees/invitations.html", people=people, valid_days=VALID_DAYS)


def _sessions_of(employee):
    """What the profile tab shows about where the employee is signed in, and the form that ends it."""
    return {"open_sessions": open_sessions(employee), "sign_out_form": ConfirmForm(formdata=None)}


@bp.route("/<int:employee_id>/sign-out", methods=["POST"])
@admin_required
def sign_out(employee_id):
    """Sign the employee out on every browser (a lost laptop, someone leaving): every cookie stops working."""
    employee = _employee_or_404(employee_id)
    if ConfirmForm().validate_on_submit():
        ended = end_sessions(employee, keep=current_user.get_id())
        flash(ngettext("%(name)s is signed out of %(num)d browser.", "%(name)s is signed out of %(num)d browsers.",
                       ended, name=employee.name), "success")
    return redirect(url_for("employees.card", employee_id=employee.id))


@bp.route("/<int:employee_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(employee_id):
    """Change an employee's details, role, language or password."""
    employee = _employee_or_404(employee_id)
    form = EmployeeForm(obj=employee, language=employee.language or "")
    if form.validate_on_submit():
        if employee.id == current_user.id and form.role.data != "admin":
            form.role.errors.append(_("You cannot take the admin role from yourself."))
        else:
            try:
                update_employee(employee, **_form_values(form), keep_session=current_user.get_id())
            except EmployeeError as error:
                _refuse(form, error)
            else:
                flash(_("Changes to %(name)s saved.", name=employee.name), "success")
                return redirect(url_for("employees.card", employee_id=employee.id))
    return render_htmx("employees/edit.html", form=form, employee=employee)


def _set_active(employee_id, active):
    """Ask to confirm (GET), then deactivate or reactivate (POST)."""
    employee = _employee_or_404(employee_id)
    form = ConfirmForm()
    refusal = None
    if not active and employee.id == current_user.id:
        refusal = _("You cannot deactivate yourself.")
    elif form.validate_on_submit():
        set_employee_active(employee, active)
        message = (_("%(name)s can sign in again.") if active else _("%(name)s can no longer sign in.")) % {
            "name": employee.name
        }
        if request_is_partial():
            return render_htmx(
                "employees/card.html", partial="employees/partial/status.html", employee=employee, notice=message,
                tab="profile", **_sessions_of(employee)
            )
        flash(message, "success")
        return redirect(url_for("employees.card", employee_id=employee.id))
    return render_htmx(
        "employees/confirm_status.html", form=form, employee=employee, active=active, refusal=refusal
    )


@bp.route("/<int:employee_id>/deactivate", methods=["GET", "POST"])
@admin_required
def deactivate(employee_id):
    """Deactivate an employee after confirmation: they can no longer sign in."""
    return _set_active(employee_id, False)


@bp.route("/<int:employee_id>/reactivate", methods=["GET", "POST"])
@admin_required
def reactivate(employee_id):
    """Reactivate an employee after confirmation."""
    return _set_active(employee_id, True)


@bp.route("/<int:employee_id>/status")
@admin_required
def status(employee_id):
    """The card's status widget (active or not, with the button to change it)."""
    employee = _employee_or_404(employee_id)
    return render_htmx("employees/card.html", partial="employees/partial/status.html", employee=employee, tab="profile",
                       **_sessions_of(employee))


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_csv():
    """Import employees from a CSV file: every row or none, with a report per row."""
    form = ImportForm()
    report = None
    if form.validate_on_submit():
        report = import_employees(form.file.data.read(), **import_limits())
        if report.error:
            form.file.errors.append(report.error)
            report = None
    return render_htmx("employees/import.html", form=form, report=report)


def _import_too_large():
    """The import page again, saying beside the file field that the file is too large (a plain form post)."""
    body, headers = render_htmx("employees/import.html", form=ImportForm.refusing_too_large(), report=None)
    return body, 413, headers


import_csv.too_large = _import_too_large
