"""The file field every CSV import shares, and its answer to a file over the limits."""
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from portal.csv_import import too_large_message


class CsvImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])

    @classmethod
    def refusing_too_large(cls):
        """The form, unread (the body was refused before it was read), saying the file is too large."""
        form = cls(formdata=None)
        form.file.errors = [too_large_message(current_app.config["PORTAL_IMPORT_MAX_BYTES"])]
        return form


def import_limits():
    """The configured limits of one import, as the core's keyword arguments."""
    config = current_app.config
    return {"max_bytes": config["PORTAL_IMPORT_MAX_BYTES"], "max_rows": config["PORTAL_IMPORT_MAX_ROWS"]}
