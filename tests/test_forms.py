"""The one field macro every form uses."""
from flask import render_template_string
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import StringField


class HintedForm(FlaskForm):
    name = StringField("Name", description=lazy_gettext("Type it as <Surname, Name>"))


def test_a_translated_hint_is_shown_as_text_not_markup(app):
    with app.test_request_context():
        form = HintedForm(meta={"csrf": False})
        html = render_template_string('{% from "macros/forms.html" import field %}{{ field(form.name) }}', form=form)
    assert "Type it as &lt;Surname, Name&gt;" in html
    assert 'aria-describedby="name-hint"' in html


def test_errors_sit_beside_their_field_and_are_announced(app):
    with app.test_request_context():
        form = HintedForm(meta={"csrf": False})
        form.name.errors = ["Too long."]
        html = render_template_string('{% from "macros/forms.html" import field %}{{ field(form.name) }}', form=form)
    assert 'aria-invalid="true"' in html and 'id="name-error" role="alert">Too long.' in html
    assert 'aria-describedby="name-hint name-error"' in html
