"""The New letter form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.forms import single_line, strip


class LetterForm(FlaskForm):
    submit_token = HiddenField()
    in_reply_to = HiddenField()
    references = HiddenField()
    project = SelectField(_l("Project"), choices=[], validate_choice=False)
    mailbox = SelectField(_l("From"), choices=[], validate_choice=False)
    to = StringField(_l("To"), filters=[strip],
                     validators=[DataRequired(_l("Add at least one recipient.")), single_line],
                     description=_l("Addresses separated by commas, e.g. ivan@example.com, anna@example.org."))
    cc = StringField(_l("Cc"), filters=[strip], validators=[single_line])
    subject = StringField(_l("Subject"), filters=[strip],
                          validators=[DataRequired(_l("Write a subject.")), single_line,
                                      Length(max=900, message=_l("At most %(max)d characters.", max=900))])
    body = TextAreaField(_l("Text"), validators=[DataRequired(_l("Write the text of the letter."))],
                         description=_l("Plain text. The letter also carries an HTML copy made from it."))
    save_contacts = BooleanField(_l("Save new addresses as contacts"))
