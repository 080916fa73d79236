"""Contact forms: one contact, and a CSV file of them."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.forms import max_length, single_line, strip
from portal.forms.uploads import CsvImportForm


class ContactForm(FlaskForm):
    name = StringField(_l("Name"), filters=[strip], validators=[max_length(), single_line])
    email = EmailField(_l("E-mail"), filters=[strip],
                       validators=[DataRequired(_l("Enter the e-mail address.")), max_length(), single_line])
    organisation = StringField(_l("Organisation"), filters=[strip], validators=[max_length(), single_line])
    notes = TextAreaField(_l("Notes"), filters=[strip],
                          validators=[Length(max=4000, message=_l("At most %(max)d characters.", max=4000))])


class ContactImportForm(CsvImportForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))],
                     description=_l("Columns: name, email, organisation, notes (email is required). "
                                    "Known e-mails are updated."))
