"""Account management → Sign-in providers: the portal's app at one provider."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField

from portal.forms import choices, max_length, single_line, strip
from portal.mail.settings import OAUTH_MECHANISMS


class SignInProviderForm(FlaskForm):
    """One provider's app; the secret is never shown again (blank keeps it)."""

    client_id = StringField(_l("Client ID"), filters=[strip], validators=[single_line, max_length()])
    client_secret = PasswordField(_l("Client secret"), validators=[single_line, max_length(1024)])
    tenant = StringField(_l("Microsoft tenant"), filters=[strip], validators=[single_line, max_length()],
                         description=_l("common (any account), organizations (work and school accounts only), or "
                                        "your tenant ID."))
    discovery_url = StringField(_l("OpenID discovery URL"), filters=[strip], validators=[single_line, max_length()],
                                description=_l("https://…/.well-known/openid-configuration of your identity "
                                               "server."))
    sasl = SelectField(_l("Sign-in mechanism of your mail servers"),
                       choices=choices((name, name) for name in OAUTH_MECHANISMS),
                       validate_choice=False)  # only the company's card shows it; save_app checks it there
    scopes = StringField(_l("Scopes to ask for"), filters=[strip], validators=[single_line, max_length(1000)],
                         description=_l("Space-separated; include offline_access so the portal can keep the "
                                        "mailbox signed in."))

    def values(self):
        names = ("client_id", "client_secret", "tenant", "discovery_url", "sasl", "scopes")
        return {name: self[name].data or "" for name in names}
