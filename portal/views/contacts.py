"""External contacts: the list searched as you type, add and edit, CSV import, and the picker on New letter."""
from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.db import whole_number
from portal.pagination import paginate
from portal.contacts import ContactError, import_contacts, save_contact
from portal.forms.contacts import ContactForm, ContactImportForm
from portal.forms.uploads import import_limits
from portal.htmx import render_htmx
from portal.models import Contact

bp = Blueprint("contacts", __name__, url_prefix="/contacts")


def _contact_or_404(contact_id):
    return Contact.get_or_none(Contact.id == contact_id) or abort(404)


def _search_text():
    return request.args.get("q", "").strip()[:255]


@bp.route("")
@login_required
def index():
    """The company's contacts, filtered as you type, a page at a time."""
    text = _search_text()
    size = current_app.config["PORTAL_PAGE_SIZE"]
    listing = paginate(Contact.search(text), request.args.get("page", 1, type=whole_number), size)
    return render_htmx("contacts/index.html", rows=listing.rows, q=text, total=listing.total, page=listing.page,
                       pages=listing.pages)


@bp.route("/pick")
@login_required
def pick():
    """A few contacts matching the text, each with buttons that add it to To or Cc (New letter)."""
    text = _search_text()
    rows = list(Contact.search(text).limit(8)) if text else []
    return render_htmx("contacts/pick.html", rows=rows, q=text)


def _save(form, contact):
    try:
        return save_contact(contact, author=current_user.id, name=form.name.data, email=form.email.data,
                            organisation=form.organisation.data, notes=form.notes.data)
    except ContactError as error:
        target = getattr(form, error.field, None)
        (target.errors if target is not None else form.form_errors).append(str(error.message))
        return None


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    """Add a contact."""
    form = ContactForm(email=request.args.get("email", "")[:255] or None)
    if form.validate_on_submit() and _save(form, None):
        flash(_("Contact added."), "success")
        return redirect(url_for("contacts.index"))
    return render_htmx("contacts/form.html", form=form, contact=None)


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
@login_required
def edit(contact_id):
    """Change a contact."""
    contact = _contact_or_404(contact_id)
    form = ContactForm(obj=contact)
    if form.validate_on_submit() and _save(form, contact):
        flash(_("Contact saved."), "success")
        return redirect(url_for("contacts.index"))
    return render_htmx("contacts/form.html", form=form, contact=contact)


@bp.route("/<int:contact_id>/delete", methods=["POST"])
@login_required
def delete(contact_id):
    """Remove a contact (letters already written keep their addresses)."""
    _contact_or_404(contact_id).delete_instance()
    flash(_("Contact removed."), "info")
    return redirect(url_for("contacts.index"))


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_csv():
    """Import contacts from a CSV file: every row checked first, all or nothing."""
    form = ContactImportForm()
    report = None
    if form.validate_on_submit():
        report = import_contacts(form.file.data.read(), author=current_user.id, **import_limits())
        if report.ok:
            flash(_("Imported: %(created)d new, %(updated)d updated.", created=report.count("created"),
                    updated=report.count("updated")), "success")
            return redirect(url_for("contacts.index"))
        if report.error:  # the file as a whole: said beside the field
            form.file.errors.append(report.error)
            report = None
    return render_htmx("contacts/import.html", form=form, report=report)


def _import_too_large():
    """The import page again, saying beside the file field that the file is too large (a plain form post)."""
    body, headers = render_htmx("contacts/import.html", form=ContactImportForm.refusing_too_large(), report=None)
    return body, 413, headers


import_csv.too_large = _import_too_large
