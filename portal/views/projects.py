"""Projects: list, add, rename and archive, each edited in place."""
from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _

from portal.access import admin_required
from portal.forms.employees import ConfirmForm
from portal.forms.projects import ProjectForm
from portal.htmx import render_htmx, request_is_partial
from portal.models import Project
from portal.models.people import fn
from portal.projects import ProjectError, create_project, rename_project, set_archived

bp = Blueprint("projects", __name__, url_prefix="/admin/projects")


def _projects():
    """Active projects first, then archived ones, each by name."""
    return list(Project.select().order_by(Project.archived, fn.LOWER(Project.name), Project.id))


def _project_or_404(project_id):
    return Project.get_or_none(Project.id == project_id) or abort(404)


def _row(project, **context):
    """One project's row, as a fragment for htmx or within the list page otherwise."""
    return render_htmx(
        "projects/index.html", partial="projects/partial/row.html", project=project, projects=_projects(),
        form=ProjectForm(formdata=None), **context
    )


@bp.route("", methods=["GET", "POST"])
@admin_required
def index():
    """Every project, with a form to add one."""
    form = ProjectForm()
    if form.validate_on_submit():
        try:
            project = create_project(form.name.data)
        except ProjectError as error:  # a name taken between validation and insert
            form.name.errors.append(str(error.message))
        else:
            message = _("Project %(name)s added.", name=project.name)
            if not request_is_partial():
                flash(message, "success")
                return redirect(url_for("projects.index"))
            form = ProjectForm(formdata=None)
            return render_htmx("projects/index.html", projects=_projects(), form=form, notice=message, added=project.id)
    return render_htmx("projects/index.html", projects=_projects(), form=form)


@bp.route("/<int:project_id>")
@admin_required
def row(project_id):
    """One project's row (used to cancel a rename)."""
    return _row(_project_or_404(project_id))


@bp.route("/<int:project_id>/rename", methods=["GET", "POST"])
@admin_required
def rename(project_id):
    """Rename a project in place."""
    project = _project_or_404(project_id)
    form = ProjectForm(project=project, name=project.name, prefix=f"project{project.id}")
    if form.validate_on_submit():
        try:
            rename_project(project, form.name.data)
        except ProjectError as error:
            form.name.errors.append(str(error.message))
        else:
            if request_is_partial():
                return _row(project)
            flash(_("Project renamed to %(name)s.", name=project.name), "success")
            return redirect(url_for("projects.index"))
    return render_htmx("projects/rename.html", project=project, form=form)


def _set_archived(project_id, archived):
    project = _project_or_404(project_id)
    if ConfirmForm().validate_on_submit():
        set_archived(project, archived)
    if request_is_partial():
        return _row(project)
    message = _("Project %(name)s archived.") if archived else _("Project %(name)s is back in use.")
    flash(message % {"name": project.name}, "success")
    return redirect(url_for("projects.index"))


@bp.route("/<int:project_id>/archive", methods=["POST"])
@admin_required
def archive(project_id):
    """Archive a project: it stays on the list, and no new address can be tied to it."""
    return _set_archived(project_id, True)


@bp.route("/<int:project_id>/unarchive", methods=["POST"])
@admin_required
def unarchive(project_id):
    """Bring an archived project back into use."""
    return _set_archived(project_id, False)
