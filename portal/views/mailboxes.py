"""External addresses: Outgoing messages, employees' and my addresses, the add/edit form, Who sends from what, audit."""

import secrets

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from peewee import fn

from portal import account_tests, mailbox_health, password_ending
from portal import mailboxes as service
from portal.db import whole_number
from portal.extensions import spend_account_test
from portal.pagination import paginate
from portal.access import admin_required
from portal.forms import choices
from portal.forms.mailboxes import (
    AuditFilterForm,
    EmployeeSearchForm,
    EmployeesMayAddForm,
    MailboxForm,
    SendersFilterForm,
)
from portal.htmx import is_htmx, render_htmx, request_is_partial
from portal.mail.problems import catalogue, catalogue_entry
from portal.mail.settings import MAILBOX_FIELDS
from portal.models import Employee, Mailbox, Project
from portal.sender import resolve_sender, sender_table
from portal.views.oauth import restore_signed_in_form, with_sign_in
from portal.mail.check import ROUND_TRIP_SECONDS
from portal.views.notifications import system_mailbox_context  # the section on the portal's own mail

bp = Blueprint("mailboxes", __name__)

# Fields the provider picker and the address field may fill in (never a password).
SERVER_SLOTS = ("smtp_host", "smtp_port", "smtp_security", "smtp_username",
                "incoming_host", "incoming_port", "incoming_security", "incoming_username")
# Every field slot a form answer may re-render: all but the passwords, which the browser keeps.
FIELD_SLOTS = ("provider", "address", "display_name", "smtp_host", "smtp_port", "smtp_security", "smtp_username",
               "incoming_protocol", "incoming_host", "incoming_port", "incoming_security", "incoming_username",
               "receive_replies", "smtp_trusted_fingerprint", "incoming_trusted_fingerprint",
               "allow_plaintext_auth", "projects", "is_default", "access_everyone", "access_employees",
               "access_departments")
# The fields in the form's Servers section: an error in any of them opens it.
SERVERS_SECTION = ("provider",) + SERVER_SLOTS + ("incoming_protocol", "incoming_password", "receive_replies",
                                                  "smtp_trusted_fingerprint", "incoming_trusted_fingerprint",
                                                  "allow_plaintext_auth")


@bp.record_once
def _install_test_pool(state):
    """Every app that serves these pages runs account tests on a pool of its own, sized at first use."""
    app = state.app
    app.extensions["portal_account_tests"] = account_tests.TestPool(
        lambda: app.config["PORTAL_ACCOUNT_TESTS_AT_ONCE"], around=app.app_context)


@bp.app_template_filter("fingerprint")
def _fingerprint_filter(value):
    """A SHA-256 fingerprint as AB:CD:… for people to compare."""
    from portal.mail.settings import format_fingerprint

    return format_fingerprint(value)


@bp.app_template_global("fix_label")
def _fix_label(code, lang):
    """The words of a one-click fix's button."""
    from portal.mail.remedies import fix_label

    return fix_label(code, lang)


@bp.app_template_global("stage_detail")
def _stage_detail(text, lang):
    """A test stage's detail in the reader's language (a server's own words stay as they came)."""
    from portal.mail.details import detail_in

    return detail_in(text, lang)


@bp.app_template_global("form_field_of")
def _form_field_of(setting):
    """The mailbox form's field for a setting named as in remedies.py ("smtp.port" is smtp_port)."""
    return "address" if setting == "smtp.address" else setting.replace(".", "_")


def _fragment(template, **context):
    """A fragment that only exists for htmx (form helpers): never a whole page."""
    return render_template(template, **context), {"Vary": "HX-Request"}


# How portal/mailboxes.py records a Default that moved to another address, and the problem codes it records.
REPLACED_BY = "replaced by "
PROBLEM_CODES = frozenset(entry.code for entry in catalogue())


def _lang():
    return "ru" if str(get_locale()).startswith("ru") else "en"


def _ip():
    return request.remote_addr or ""


def _mail_config():
    from portal.mail.settings import MailConfig

    return MailConfig.from_mapping(current_app.config)


def _test_pool():
    return current_app.extensions["portal_account_tests"]


def _employees_may_add():
    return service.employees_may_add(current_app.config["PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES"])


def _mailbox_or_404(mailbox_id, *, manage=True):
    try:
        return service.mailbox_for(current_user, mailbox_id, manage=manage)
    except service.MailboxNotFound:
        abort(404)


def _employee_or_404(employee_id):
    employee = Employee.get_or_none(Employee.id == employee_id)
    if employee is None:
        abort(404)
    return employee


def _page(query, page_size=None):
    """(rows, page, pages) for a query or list, from ?page=."""
    page_size = page_size or int(current_app.config.get("PORTAL_PAGE_SIZE") or 25)
    listing = paginate(query, request.args.get("page", 1, type=whole_number), page_size)
    return listing.rows, listing.page, listing.pages, listing.total


def _list_context(mailboxes):
    """Projects, access, health and password endings of each listed mailbox, a few queries whatever their number."""
    return {"mailboxes": mailboxes, "projects": service.projects_of(mailboxes), "access": service.access_of(mailboxes),
            "health": mailbox_health.health_of(mailboxes),
            "password_endings": password_ending.password_endings(mailboxes, password_ending.today())}


def _back_url(mailbox=None, scope=None, owner=None):
    """Where a mailbox's list lives: Outgoing messages, My addresses, or one employee's addresses."""
    scope = mailbox.scope if mailbox is not None else scope
    owner_id = mailbox.owner_id if mailbox is not None else (owner.id if owner is not None else None)
    if scope == "company":
        return url_for("mailboxes.outgoing")
    if owner_id == current_user.id:
        return url_for("mailboxes.mine")
    return url_for("mailboxes.employee_addresses", employee_id=owner_id)


# ---------------------------------------------------------------- lists

@bp.route("/admin/mail/outgoing")
@admin_required
def outgoing():
    """Account management → Working with e-mail → Outgoing messages: company addresses and the switches."""
    mailboxes = service.company_mailboxes()
    switch = EmployeesMayAddForm(allowed=_employees_may_add())
    return render_htmx("mailboxes/outgoing.html", switch=switch, **_list_context(mailboxes),
                       **system_mailbox_context(mailboxes))


@bp.route("/admin/mail/outgoing/employees-may-add", methods=["POST"])
@admin_required
def employees_may_add():
    """Let employees add their own external addresses, or stop them."""
    form = EmployeesMayAddForm()
    if form.validate_on_submit():
        service.set_employees_may_add(form.allowed.data, actor=current_user)
        flash(_("Employees may now add their own addresses.") if form.allowed.data
              else _("Only admins can add addresses for employees now."), "success")
    return redirect(url_for("mailboxes.outgoing"))


@bp.route("/admin/mail/employees")
@admin_required
def employees():
    """Employees' external addresses: find an employee (live search) to open their addresses."""
    search = EmployeeSearchForm(request.args)
    query = Employee.search(search.q.data or "")
    people, page, pages, total = _page(query)
    counts = {}
    if people:
        rows = (Mailbox.select(Mailbox.owner, fn.COUNT(Mailbox.id)).where(Mailbox.owner.in_([p.id for p in people]))
                .group_by(Mailbox.owner).tuples())
        counts = dict(rows)
    return render_htmx("mailboxes/employees.html", search=search, people=people, counts=counts,
                       page=page, pages=pages, total=total)


@bp.route("/admin/mail/employees/<int:employee_id>")
@admin_required
def employee_addresses(employee_id):
    """One employee's external addresses (also the External addresses tab of the employee card)."""
    owner = _employee_or_404(employee_id)
    mailboxes = service.personal_mailboxes(owner)
    return render_htmx("mailboxes/employee_addresses.html", owner=owner, **_list_context(mailboxes))


@bp.route("/my/addresses")
@login_required
def mine():
    """My addresses: my own mailboxes, and the company ones I may use (without their settings)."""
    own = service.personal_mailboxes(current_user)
    shared = service.company_mailboxes_for(current_user)
    return render_htmx(
        "mailboxes/mine.html",
        may_add=_employees_may_add() or current_user.is_admin,
        shared=shared,
        shared_projects=service.projects_of(shared),
        shared_health=mailbox_health.health_of(shared),
        **_list_context(own),
    )


# ---------------------------------------------------------------- the add/edit form

def _form_choices(form, scope):
    from portal.mail.presets import PRESETS

    form.provider.choices = choices((p.key, p.title(_lang())) for p in PRESETS)
    projects = list(Project.select().order_by(Project.archived, fn.LOWER(Project.name)))
    form.projects.choices = choices((p.id, p.name + (" " + _("(archived)") if p.archived else "")) for p in projects)
    if scope == "company":
        people = Employee.select().where(Employee.active == True).order_by(fn.LOWER(Employee.name))  # noqa: E712
        form.access_employees.choices = choices((e.id, f"{e.name} <{e.email}>") for e in people)
        form.access_departments.choices = choices((d, d) for d in Employee.departments())


def _fill_from_mailbox(form, mailbox):
    for name in ("address", "display_name", "smtp_host", "smtp_port", "smtp_security", "smtp_username",
                 "smtp_trusted_fingerprint", "allow_plaintext_auth", "incoming_host", "incoming_port",
                 "incoming_security", "incoming_username", "incoming_trusted_fingerprint", "receive_replies",
                 "is_default", "access_everyone"):
        value = getattr(mailbox, name)
        form[name].data = "" if value is None else (str(value) if name.endswith("_port") else value)
    form.incoming_protocol.data = mailbox.incoming_protocol or ""
    form.projects.data = [str(pid) for pid in mailbox.project_ids()]
    if mailbox.scope == "company":
        rules = list(mailbox.access_rules)
        form.access_employees.data = [str(r.employee_id) for r in rules if r.employee_id]
        form.access_departments.data = [r.department for r in rules if r.department]
    form.provider.data = _provider_for_form(form).key


def _provider_for_form(form):
    """The preset the form's fields point at: the one picked, else the provider its SMTP host (or, with none yet, its
    address's domain) is at."""
    from portal.mail.presets import OTHER, get_preset, provider_at

    picked = get_preset(form.provider.data or "")
    if picked is not None and picked.key != OTHER:
        return picked
    address = form.address.data or ""
    return provider_at(form.smtp_host.data, address.rpartition("@")[2] if "@" in address else "") or get_preset(OTHER)


def _target(mailbox_id=None):
    """(mailbox or None, scope, owner) of the form being shown or posted; 404 for what the user may not touch."""
    if mailbox_id is not None:
        mailbox = _mailbox_or_404(mailbox_id)
        return mailbox, mailbox.scope, mailbox.owner
    # Only an admin chooses company level or another owner; anyone else always adds their own.
    if not current_user.is_admin:
        return None, "employee", current_user
    scope = request.values.get("scope") or "employee"
    owner_id = request.values.get("owner_id") or request.values.get("owner")
    if scope == "company":
        return None, "company", None
    if owner_id:
        try:
            return None, "employee", _employee_or_404(whole_number(owner_id))
        except ValueError:
            abort(404)
    return None, "employee", current_user


def _form_context(form, mailbox, scope, owner, *, outcome=None, proof="", run=None):
    preset = _provider_for_form(form)
    conflicts = []
    if scope == "employee" and owner is not None and form.is_default.data:
        conflicts = service.default_conflicts(owner.id, _project_ids(form), exclude_id=mailbox.id if mailbox else None)
    return {
        "form": form,
        "mailbox": mailbox,
        "scope": scope,
        "owner": owner,
        "preset": preset,
        "lang": _lang(),
        "outcome": outcome,
        "proof": proof,
        "run": run,
        "conflicts": conflicts,
        "back_url": _back_url(mailbox, scope, owner),
        "save_url": url_for("mailboxes.edit", mailbox_id=mailbox.id) if mailbox else url_for("mailboxes.new"),
        "test_url": url_for("mailboxes.test", mailbox_id=mailbox.id) if mailbox else url_for("mailboxes.test"),
        "may_add": mailbox is not None or current_user.is_admin or _employees_may_add(),
        "server_fields": [f.name for f in MAILBOX_FIELDS if f.server],
        "servers_open": any(form[name].errors for name in SERVERS_SECTION),
        "password_ending": password_ending.password_ending(mailbox, password_ending.today()),
    }


def _project_ids(form):
    ids = []
    for raw in form.projects.data or []:
        try:
            ids.append(whole_number(raw))
        except (TypeError, ValueError):
            pass
    return ids


def _new_form(mailbox, scope, owner):
    form = MailboxForm()
    _form_choices(form, scope)
    if request.method == "GET":
        form.scope.data = scope
        form.owner_id.data = str(owner.id) if owner is not None else ""
        if mailbox is not None:
            _fill_from_mailbox(form, mailbox)
        else:
            form.access_everyone.data = True
            form.smtp_security.data = "ssl"
            form.provider.data = "other"
            form.submit_token.data = secrets.token_urlsafe(24)
        restore_signed_in_form(form)  # back from the provider's consent page (issue 12)
    return form


def _same_address(form, mailbox, scope, owner):
    """Another mailbox with this address at the same level: the owner's own, or the company's."""
    address = (form.address.data or "").strip().lower()
    if not address:
        return None
    query = Mailbox.select().where(fn.LOWER(Mailbox.address) == address)
    if scope == "company":
        query = query.where(Mailbox.scope == "company")
    else:
        query = query.where((Mailbox.scope == "employee") & (Mailbox.owner == (owner.id if owner else None)))
    if mailbox is not None:
        query = query.where(Mailbox.id != mailbox.id)
    return query.first()


def _after_save(mailbox):
    target = _back_url(mailbox)
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


@bp.route("/mailboxes/new", methods=["GET", "POST"])
@login_required
def new():
    """Add an external address: a company one, one for an employee (admins), or my own."""
    mailbox, scope, owner = _target()
    return _form_view(mailbox, scope, owner)


@bp.route("/mailboxes/<int:mailbox_id>/edit", methods=["GET", "POST"])
@login_required
def edit(mailbox_id):
    """Change an external address; server settings or a secret need a new passed test."""
    mailbox, scope, owner = _target(mailbox_id)
    return _form_view(mailbox, scope, owner)


def _form_view(mailbox, scope, owner):
    form = _new_form(mailbox, scope, owner)
    if request.method == "POST" and not form.validate_on_submit():
        context = _form_context(form, mailbox, scope, owner)
        return render_htmx("mailboxes/form.html", partial="mailboxes/partial/form_answer.html",
                           status=_("The form has expired. Reload the page and try again."), **context)
    token = form.submit_token.data if mailbox is None else None
    earlier = Mailbox.get_or_none(Mailbox.submit_token == token) if token else None
    if request.method == "POST" and earlier is not None:
        return _after_save(earlier)  # a double-click or a replay: the first submission's answer, no second box
    same = _same_address(form, mailbox, scope, owner) if request.method == "POST" else None
    if same is not None:
        # Markup's % escapes the values: the address is someone's input.
        form.address.errors.append(Markup(_(
            'This address exists already at this level: <a href="%(url)s">open %(address)s</a>.'))
            % {"url": url_for("mailboxes.edit", mailbox_id=same.id), "address": same.address})
        context = _form_context(form, mailbox, scope, owner, proof=form.proof.data or "")
        status = _("Nothing was saved: fix the marked fields.")
        if request_is_partial():
            return render_htmx("mailboxes/form.html", partial="mailboxes/partial/form_answer.html",
                               status=status, **context)
        return render_htmx("mailboxes/form.html", status=status, **context)
    if request.method == "POST":
        try:
            saved = service.save_mailbox(
                with_sign_in(form.values()), actor=current_user, secret_key=current_app.secret_key, mailbox=mailbox,
                scope=scope, owner=owner, proof=form.proof.data, ip=_ip(),
                employees_may_add_default=current_app.config["PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES"],
            )
        except service.MailboxInvalid as error:
            form.add_errors(error.errors)
            status = _("Nothing was saved: fix the marked fields.")
        except service.SaveRefused as error:
            status = str(error.message)
        except service.NotAllowed as error:
            status = str(error.message)
        else:
            if token:
                Mailbox.update(submit_token=token).where(Mailbox.id == saved.mailbox.id).execute()
            flash(_("Saved %(address)s.", address=saved.mailbox.address), "success")
            for other in saved.replaced_defaults:
                flash(_("%(address)s is no longer Default for these projects.", address=other.address), "info")
            return _after_save(saved.mailbox)
        context = _form_context(form, mailbox, scope, owner, proof=form.proof.data or "")
        if request_is_partial():
            return render_htmx("mailboxes/form.html", partial="mailboxes/partial/form_answer.html",
                               status=status, **context)
        return render_htmx("mailboxes/form.html", status=status, **context)
    return render_htmx("mailboxes/form.html", status="", **_form_context(form, mailbox, scope, owner))


@bp.route("/mailboxes/test", methods=["POST"], defaults={"mailbox_id": None})
@bp.route("/mailboxes/<int:mailbox_id>/test", methods=["POST"])
@login_required
def test(mailbox_id):
    """Start Test account off the request path; the answer shows it running and polls for its stages.

    200 whatever the test finds; 429 (shown in the page's notice) past the employee's allowance of tests.
    """
    mailbox, scope, owner = _target(mailbox_id)
    form = _new_form(mailbox, scope, owner)
    run, status = None, ""
    if form.validate_on_submit():
        try:
            service.clean_mailbox(with_sign_in(form.values()), existing=mailbox, is_admin=current_user.is_admin)
            spend_account_test(current_user)
            run = account_tests.start(
                with_sign_in(form.values()), actor=current_user, pool=_test_pool(),
                at_once=current_app.config["PORTAL_ACCOUNT_TESTS_AT_ONCE"], mail_config=_mail_config(),
                secret_key=current_app.secret_key, mailbox=mailbox, owner=owner, ip=_ip(),
                send_test_letter=bool(form.send_test_letter.data),
            )
        except service.MailboxInvalid as error:
            form.add_errors(error.errors)
            status = _("Fix the marked fields, then run the test again.")
        except account_tests.TestsBusy as busy:
            status = str(busy.message)
            run = busy.running  # this person's own test still running: keep showing it
    else:
        status = _("The form has expired. Reload the page and try again.")
    context = _form_context(form, mailbox, scope, owner, run=run)
    context["test_status"] = status
    return render_htmx("mailboxes/form.html", partial="mailboxes/partial/test_answer.html", status="", **context)


@bp.route("/mailboxes/tests/<run_id>")
@login_required
def test_progress(run_id):
    """Where a running Test account is: the stages finished so far, then the result and the save proof."""
    # A run with a test letter may also wait for its round trip (and the reads of the polls) past the deadline.
    config = _mail_config()
    run = account_tests.progress(run_id, current_user, config.deadline + ROUND_TRIP_SECONDS + config.timeout)
    if run is None:
        abort(404)
    status = _("The test was interrupted. Run it again.") if run.interrupted else ""
    return _fragment("mailboxes/partial/test_progress.html", run=run, lang=_lang(), test_status=status,
                     outcome=run if run.finished and not run.interrupted else None, proof=run.proof)


@bp.route("/mailboxes/provider", methods=["POST"])
@login_required
def provider():
    """Fill the server fields from the chosen provider, or from the address as the user leaves it."""
    scope = request.form.get("scope") if current_user.is_admin else "employee"
    form = MailboxForm()
    _form_choices(form, scope)
    from portal.mail.presets import OTHER, get_preset

    trigger = request.form.get("trigger", "provider")
    before = form.provider.data or OTHER
    if trigger == "address":
        found = _preset_for_address(form.address.data or "")
        preset = found if found.key != OTHER else (get_preset(before) or found)
    else:
        preset = get_preset(before) or get_preset(OTHER)
    looks_up = current_app.config.get("PORTAL_MAIL_PROVIDER_MX_LOOKUP", True)
    if trigger == "address" and preset.key == OTHER and not form.smtp_host.data and looks_up:
        # No preset knows the domain and no server is typed yet: look further (autoconfig, SRV, a guess).
        from portal.views.discovery import settings_answer

        answer = settings_answer(form, quiet=True)
        if answer is not None:
            return answer
    fill_servers = trigger == "provider" or (trigger == "address" and (preset.key != before or not form.smtp_host.data))
    form.provider.data = preset.key
    before_values = {name: form[name].data for name in SERVER_SLOTS}
    if preset.key != OTHER:
        _apply_preset(form, preset, servers=fill_servers, incoming=fill_servers or trigger == "protocol")
    elif trigger == "provider":
        _clear_preset_servers(form)
    # Only the fields the preset changed go back, so nothing typed meanwhile is overwritten.
    changed = [name for name in SERVER_SLOTS if form[name].data != before_values[name]]
    slots = (("provider",) if preset.key != before else ()) + tuple(changed)
    context = {"form": form, "preset": preset, "lang": _lang(), "slots": slots}
    return _fragment("mailboxes/partial/provider_answer.html", **context)


def _preset_for_address(address):
    """The provider an address is at: its domain, else (when allowed) its MX records; else "other"."""
    from portal.mail.presets import OTHER, get_preset, preset_for_address, preset_for_domain

    if "@" not in address:
        return get_preset(OTHER)
    if current_app.config.get("PORTAL_MAIL_PROVIDER_MX_LOOKUP", True):
        from portal.views.discovery import configured_resolver

        return preset_for_address(address, resolver=configured_resolver())
    return preset_for_domain(address.rpartition("@")[2]) or get_preset(OTHER)


def _apply_preset(form, preset, *, servers, incoming):
    """Put a provider's servers into the form; logins only where still blank."""
    address = form.address.data or ""
    login = preset.login_for(address) if "@" in address else ""
    if servers and preset.smtp:
        form.smtp_host.data, form.smtp_port.data = preset.smtp.host, str(preset.smtp.port)
        form.smtp_security.data = preset.smtp.security
    if login and not form.smtp_username.data:
        form.smtp_username.data = login
    server = {"pop3": preset.pop3, "imap": preset.imap}.get(form.incoming_protocol.data or "")
    if server:
        if incoming:
            form.incoming_host.data, form.incoming_port.data = server.host, str(server.port)
            form.incoming_security.data = server.security
        if login and not form.incoming_username.data:
            form.incoming_username.data = login


def _clear_preset_servers(form):
    """"Other server" chosen: empty the servers a preset filled in (recognised by their values), keep the rest."""
    from portal.mail.presets import PRESETS

    def filled_by(server, prefix):
        return server is not None and (form[f"{prefix}_host"].data, form[f"{prefix}_port"].data) == (
            server.host, str(server.port))

    for preset in PRESETS:
        if filled_by(preset.smtp, "smtp"):
            form.smtp_host.data = form.smtp_port.data = ""
        if filled_by(preset.pop3, "incoming") or filled_by(preset.imap, "incoming"):
            form.incoming_host.data = form.incoming_port.data = ""


@bp.route("/mailboxes/default-hint", methods=["POST"])
@login_required
def default_hint():
    """Which of the owner's personal Defaults ticking Default here would replace."""
    mailbox = None
    if request.form.get("mailbox_id"):
        mailbox = _mailbox_or_404(request.form.get("mailbox_id"))
    owner = mailbox.owner if mailbox is not None else None
    if mailbox is None:
        _, scope, owner = _target()
    form = MailboxForm()
    conflicts = []
    if owner is not None and form.is_default.data and (mailbox is None or mailbox.scope == "employee"):
        conflicts = service.default_conflicts(owner.id, _project_ids(form), exclude_id=mailbox.id if mailbox else None)
    return _fragment("mailboxes/partial/default_hint.html", conflicts=conflicts)


@bp.route("/mailboxes/trust", methods=["POST"])
@login_required
def trust():
    """Put a certificate fingerprint the user chose to trust into the form (the next test then uses it)."""
    from portal.mail.settings import format_fingerprint, normalize_fingerprint

    side = "incoming" if request.form.get("side") == "incoming" else "smtp"
    try:
        fingerprint = format_fingerprint(normalize_fingerprint(request.form.get("fingerprint", "")))
    except ValueError:
        return "", 200, {"Vary": "HX-Request"}  # nothing to put in: the form stays as it is
    form = MailboxForm()
    form[f"{side}_trusted_fingerprint"].data = fingerprint
    return _fragment("mailboxes/partial/trust_answer.html", form=form, side=side, fingerprint=fingerprint)


@bp.route("/mailboxes/<int:mailbox_id>/pause", methods=["POST"])
@login_required
def pause(mailbox_id):
    """Pause an address: no letter leaves from it until it is resumed."""
    mailbox = _mailbox_or_404(mailbox_id)
    service.set_active(mailbox, False, actor=current_user, ip=_ip())
    flash(_("Paused %(address)s.", address=mailbox.address), "info")
    return redirect(_back_url(mailbox))


@bp.route("/mailboxes/<int:mailbox_id>/resume", methods=["POST"])
@login_required
def resume(mailbox_id):
    """Resume a paused address."""
    mailbox = _mailbox_or_404(mailbox_id)
    service.set_active(mailbox, True, actor=current_user, ip=_ip())
    flash(_("Resumed %(address)s.", address=mailbox.address), "success")
    return redirect(_back_url(mailbox))


@bp.route("/mailboxes/<int:mailbox_id>/delete", methods=["POST"])
@login_required
def delete(mailbox_id):
    """Delete an address; the audit log keeps its history."""
    mailbox = _mailbox_or_404(mailbox_id)
    back = _back_url(mailbox)
    service.delete_mailbox(mailbox, actor=current_user, ip=_ip())
    flash(_("Deleted %(address)s.", address=mailbox.address), "info")
    return redirect(back)


# ---------------------------------------------------------------- who sends from what, audit

@bp.route("/admin/mail/senders")
@admin_required
def senders():
    """Who sends from what: employees × projects, the address each letter would leave from, and why."""
    filters = SendersFilterForm(request.args)
    all_projects = list(Project.select().where(Project.archived == False)  # noqa: E712
                        .order_by(fn.LOWER(Project.name)))
    departments = Employee.departments()
    filters.project.choices = choices([("", _("Every project"))] + [(p.id, p.name) for p in all_projects])
    filters.department.choices = choices([("", _("Every department"))] + [(d, d) for d in departments])
    projects = [p for p in all_projects if str(p.id) == (filters.project.data or "")] or all_projects
    people = Employee.select().where(Employee.active == True)  # noqa: E712
    if filters.department.data:
        people = people.where(fn.LOWER(Employee.department) == filters.department.data.lower())
    people = people.order_by(fn.LOWER(Employee.name), Employee.id)
    wanted = filters.problem.data or ""
    if wanted:
        # Filtering by problem needs every row decided; the grid costs the same few queries regardless.
        rows = [(e, cells) for e, cells in sender_table(list(people), projects).rows()
                if any(c.problem and (wanted == "any" or c.problem == wanted) for c in cells)]
        shown, page, pages, total = _page(rows)
    else:
        chosen, page, pages, total = _page(people)
        shown = sender_table(chosen, projects).rows()
    # Translated once, formatted per cell (flask_babel's gettext leaves it unformatted without values).
    why_label_pattern = _("Why: %(employee)s in %(project)s")
    return render_htmx("mailboxes/senders.html", filters=filters, projects=projects, rows=shown, page=page,
                       pages=pages, total=total, lang=_lang(), why_label_pattern=why_label_pattern)


@bp.route("/admin/mail/senders/<int:employee_id>/<int:project_id>")
@admin_required
def sender_cell(employee_id, project_id):
    """The full explanation of one cell of Who sends from what."""
    employee = _employee_or_404(employee_id)
    project = Project.get_or_none(Project.id == project_id) or abort(404)
    decision = resolve_sender(employee, project)
    return render_htmx("mailboxes/sender_cell.html", employee=employee, project=project, decision=decision,
                       lang=_lang())


@bp.route("/admin/mail/audit")
@admin_required
def audit():
    """The audit log: who created, changed, tested, paused or deleted which address, when and from where."""
    filters = AuditFilterForm(request.args)
    employee_ids = None
    if filters.employee.data:
        text = filters.employee.data.lower()
        employee_ids = [e.id for e in Employee.select(Employee.id).where(
            fn.LOWER(Employee.name).contains(text) | Employee.email.contains(text))]
    query = service.audit_events(address=filters.address.data or "")
    if employee_ids is not None:
        from portal.models import AuditEvent

        query = query.where(AuditEvent.actor.in_(employee_ids or [0]) | AuditEvent.owner.in_(employee_ids or [0]))
    events, page, pages, total = _page(query)
    people_ids = {e.actor_id for e in events} | {e.owner_id for e in events}
    people = ({e.id: e for e in Employee.select().where(Employee.id.in_([i for i in people_ids if i]))}
              if people_ids else {})
    return render_htmx("mailboxes/audit.html", filters=filters, events=events, people=people, page=page,
                       pages=pages, total=total, detail_words=_audit_detail_words)


def _audit_detail_words(detail):
    """An audit event's stored detail in the reader's words: a problem's title, or the Default's new home."""
    if detail.startswith(REPLACED_BY):
        return _("Default moved to %(address)s", address=detail[len(REPLACED_BY):])
    if detail in PROBLEM_CODES:
        return catalogue_entry(detail).title.get(_lang()) or detail
    return detail
