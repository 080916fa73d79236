"""The project name form, used to add and to rename."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import ValidationError

from portal.projects import ProjectError, clean_project_name


def usable_project_name(form, field):
    """The project naming rules, so each refusal shows beside the field."""
    try:
        field.data = clean_project_name(field.data, keep=form.project)
    except ProjectError as error:
        raise ValidationError(error.message) from None


class ProjectForm(FlaskForm):
    name = StringField(_l("Project name"), validators=[usable_project_name])

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
