"""The form that registers a webhook endpoint, and the words for what the core refuses."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget

from portal import webhooks
from portal.forms import choices, strip

EVENT_LABELS = {
    webhooks.LETTER_SENT: _l("A letter was sent"),
    webhooks.LETTER_FAILED: _l("A letter failed"),
    webhooks.LETTER_BOUNCED: _l("A letter bounced"),
    webhooks.REPLY_RECEIVED: _l("A reply arrived"),
    webhooks.MAILBOX_PAUSED: _l("A mailbox was paused"),
}

# What the core's EndpointInvalid codes mean, beside the field.
REFUSALS = {
    "missing": _l("Give the address the portal should send events to."),
    "bad_url": _l("Give a full http:// or https:// address, without a user name, password or #."),
    webhooks.NOT_ALLOWED: _l("The portal may not send to this address (a private or local one, or a port other "
                             "than the web's). An administrator can allow it with PORTAL_WEBHOOK_ALLOWED_HOSTS."),
    webhooks.NO_SUCH_HOST: _l("This host name does not exist."),
    "no_events": _l("Choose at least one event."),
    "revoked": _l("This token is revoked; choose a live one."),
}


class WebhookForm(FlaskForm):
    token = SelectField(_l("API token"), validate_choice=False,
                        description=_l("Events go out with this token's rights: only what its owner may see."))
    url = StringField(_l("Address (URL)"), filters=[strip],
                      description=_l("Where the portal POSTs each event as JSON, "
                                     "e.g. https://crm.example.com/hooks/portal"))
    events = SelectMultipleField(_l("Events"), choices=choices(EVENT_LABELS.items()), validate_choice=False,
                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
