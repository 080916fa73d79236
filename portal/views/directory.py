"""Account management → Directory: the LDAP settings, a preview of the next sync, and the last report."""

from flask import Blueprint, current_app, flash, redirect, url_for
from flask_babel import gettext as _

from portal.access import admin_required
from portal.directory import (MESSAGES, DirectoryError, configured_settings, store_settings, sync_directory,
                              sync_directory_alone)
from portal.forms.directory import DirectoryForm
from portal.htmx import render_htmx
from portal.letters.worker import huey_for
from portal.models import DirectoryLink, DirectorySync
from portal.secret_box import active_box
from portal.views.page_settings import stored

bp = Blueprint("directory", __name__, url_prefix="/admin/directory")
SHOWN = 20  # report lines shown per list; the counts are always whole


def _page(form, running=False, **context):
    settings = configured_settings(current_app.config, active_box())
    return render_htmx("directory/index.html", form=form, settings=settings, latest=DirectorySync.latest(),
                       first_sync_done=DirectorySync.first_sync_done(), shown=SHOWN, messages=MESSAGES,
                       running=running, **context)


def _form():
    settings = configured_settings(current_app.config, active_box()).public()
    settings.pop("bind_password")
    return DirectoryForm(data=settings)


@bp.route("")
@admin_required
def index():
    """The settings, what the next sync would do, and the last sync's report."""
    return _page(_form())


@bp.route("", methods=["POST"])
@admin_required
def save():
    """Store the settings (the bind password encrypted)."""
    form = DirectoryForm()
    if not form.validate_on_submit() or not stored(form, store_settings, _(
            "Type the bind password again: the stored one was given for another directory or bind DN.")):
        return _page(form)
    flash(_("Directory settings saved. Preview the sync to see what it would change."), "success")
    return redirect(url_for("directory.index"))


@bp.route("/preview", methods=["POST"])
@admin_required
def preview():
    """A dry run: what a sync would change, nothing written."""
    sync_directory(configured_settings(current_app.config, active_box()), dry_run=True)
    return _page(_form())


@bp.route("/sync", methods=["POST"])
@admin_required
def sync():
    """Sync now (the hourly schedule starts after the first one)."""
    try:
        sync_directory_alone(huey_for(current_app), configured_settings(current_app.config, active_box()))
    except DirectoryError:  # the scheduled sync (or another admin's) is running
        return _page(_form(), running=True)
    return _page(_form())


@bp.app_template_global()
def directory_link_of(employee):
    """The directory entry an employee is kept by, or None when kept by hand (the employee card shows which)."""
    return DirectoryLink.get_or_none(DirectoryLink.employee == employee.id)
