"""Projects an external address can be tied to: naming rules shared by the pages and the command line."""
from flask_babel import lazy_gettext as _l

from portal.fields import CONTROL_CHARACTERS
from portal.models import Project
from portal.models.people import FIELD_MAX


class ProjectError(ValueError):
    """A name that cannot be a project's."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def clean_project_name(name, *, keep=None):
    """The trimmed name, refusing blanks, over-long names, control characters and taken names.

    `keep` is the project being renamed, which may keep (or re-case) its own name.
    """
    raw = name or ""
    name = raw.strip()
    if not name:
        raise ProjectError(_l("A project name cannot be only spaces.") if raw else _l("Enter a project name."))
    if len(name) > FIELD_MAX:
        raise ProjectError(_l("At most %(max)d characters.", max=FIELD_MAX))
    if CONTROL_CHARACTERS.search(name):
        raise ProjectError(_l("Use a single line without control characters."))
    holder = Project.by_name(name)
    if holder and (keep is None or holder.id != keep.id):
        raise ProjectError(_l("A project with this name already exists."))
    return name


def create_project(name):
    """Create a project with a name no other project has (compared case-insensitively)."""
    return Project.create(name=clean_project_name(name))


def rename_project(project, name):
    """Give a project a new name no other project has."""
    project.name = clean_project_name(name, keep=project)
    project.save()
    return project


def set_archived(project, archived):
    """Archive a project (no new addresses tied to it) or bring it back."""
    project.archived = bool(archived)
    project.save()
    return project
