"""The New letter form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.forms import single_line, strip


class LetterForm(FlaskForm):
    """New letter. Every problem is found in one go: each bad address in To and Cc beside empty Subject and Text."""

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

    def validate_to(self, field):
        """Name every bad address in To, not just the first."""
        _every_bad_address(field, "to")

    def validate_cc(self, field):
        """Name every bad address in Cc, not just the first."""
        _every_bad_address(field, "cc")


def _every_bad_address(field, kind):
    from portal.letters.compose import recipient_problems

    if field.errors:  # a line break is said once, by single_line
        return
    field.errors.extend(str(message) for message in recipient_problems(field.data or "", kind))
