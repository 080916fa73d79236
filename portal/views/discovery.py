"""Find settings: the mailbox form asks autoconfiguration for the typed address and gets the fields to fill."""
from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.forms.mailboxes import MailboxForm
from portal.mail.discovery import discover, dns_resolver
from portal.mail.presets import OTHER, get_preset
from portal.views.mailboxes import _form_choices, _lang, _mail_config

bp = Blueprint("discovery", __name__)

# The fields autoconfiguration may fill (never a password), in the order the form shows them.
FILLED_SLOTS = ("provider", "smtp_host", "smtp_port", "smtp_security", "smtp_username", "incoming_protocol",
                "incoming_host", "incoming_port", "incoming_security", "incoming_username")


@bp.route("/mailboxes/discover", methods=["POST"])
@login_required
def find_settings():
    """Look the typed address's servers up; answer with the changed fields (out of band) and where they came from.

    Always 200 for htmx: a bad address gets its error beside the field, and a domain with no answer
    anywhere leaves every field as it was.
    """
    scope = request.form.get("scope") if current_user.is_admin else "employee"
    form = MailboxForm()
    _form_choices(form, scope)
    return settings_answer(form)


def configured_resolver():
    """The DNS resolver PORTAL_MAIL_DNS_SERVERS names, or None for the system's."""
    return dns_resolver(current_app.config.get("PORTAL_MAIL_DNS_SERVERS") or "")


def settings_answer(form, *, quiet=False):
    """Discover the servers for the form's address and answer with the changed fields and where they came from.

    ``quiet`` (the address was only typed, the button not pressed): a bad address gives None instead of an
    error beside the field.
    """
    lang = _lang()
    resolver, config = configured_resolver(), _mail_config()  # a wrong setting is the admin's error, not the field's
    try:
        found = discover(form.address.data or "", config, resolver=resolver,
                         mx_lookup=bool(current_app.config.get("PORTAL_MAIL_PROVIDER_MX_LOOKUP", True)))
    except ValueError:
        if quiet:
            return None
        form.address.errors = [_("Type the whole address, like name@example.com, then press Find settings.")]
        return _answer(form, None, ("address",), lang)
    before = {name: form[name].data for name in FILLED_SLOTS}
    if found.found:
        _fill(form, found)
    changed = tuple(name for name in FILLED_SLOTS if form[name].data != before[name])
    return _answer(form, found, changed, lang)


def _answer(form, found, slots, lang):
    preset = get_preset(form.provider.data or OTHER) or get_preset(OTHER)
    body = render_template("mailboxes/partial/discovery_answer.html", form=form, found=found, slots=slots,
                           preset=preset, lang=lang)
    return body, {"Vary": "HX-Request"}


def _fill(form, found):
    """Put the found servers into the form: outgoing and incoming; logins only where still blank."""
    form.provider.data = found.preset_key or OTHER
    smtp = found.smtp
    form.smtp_host.data, form.smtp_port.data, form.smtp_security.data = smtp.host, str(smtp.port), smtp.security
    form.smtp_username.data = form.smtp_username.data or smtp.username
    # The protocol the user chose, when that was found too; else what was found (IMAP before POP3).
    incoming = found.server(form.incoming_protocol.data or "") or found.incoming
    if incoming is not None:
        form.incoming_protocol.data = incoming.protocol
        form.incoming_host.data, form.incoming_port.data = incoming.host, str(incoming.port)
        form.incoming_security.data = incoming.security
        form.incoming_username.data = form.incoming_username.data or incoming.username
