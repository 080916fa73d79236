"""The single sign-on settings form (Account management → Sign-in)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import Optional, ValidationError

from portal.forms import max_length, not_blank, single_line, strip


def discovery_url(form, field):
    """An https:// address (http:// only for a provider on this machine, e.g. a test one)."""
    value = (field.data or "").lower()
    local = value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if value and not (value.startswith("https://") or local):
        raise ValidationError(_l("Use the provider's https:// address."))


def has_openid(form, field):
    if field.data and "openid" not in field.data.split():
        raise ValidationError(_l("The scopes must include openid."))


def _text(label, *validators, limit=255, description=None):
    return StringField(label, filters=[strip], description=description,
                       validators=[*validators, max_length(limit), single_line])


class SsoForm(FlaskForm):
    company_name = _text(_l("Company name on the button"), not_blank, limit=80,
                         description=_l('Shown as "Sign in with …" on the sign-in page.'))
    discovery_url = _text(_l("Discovery address"), not_blank, discovery_url, limit=1024,
                          description=_l("e.g. https://id.example.com/realms/staff/.well-known/openid-configuration"))
    client_id = _text(_l("Client ID"), not_blank)
    client_secret = PasswordField(_l("Client secret"), validators=[Optional(), max_length(1024), single_line],
                                  description=_l("Stored encrypted. Leave empty to keep the current one."))
    scopes = _text(_l("Scopes"), not_blank, has_openid)
    passwords_allowed = BooleanField(_l("Employees may also sign in with a password"),
                                     description=_l("When off, only admins may still use a password."))
    provision = BooleanField(_l("Create unknown people on their first sign-in"))
    department_claim = _text(_l("Department claim"), Optional(), limit=64)
    groups_claim = _text(_l("Groups claim"), Optional(), limit=64)
    admin_group = _text(_l("Admin group"), Optional(),
                        description=_l("People created in this group become admins."))

    FIELDS = ("company_name", "discovery_url", "client_id", "client_secret", "scopes", "passwords_allowed",
              "provision", "department_claim", "groups_claim", "admin_group")

    def values(self):
        return {name: self[name].data if self[name].type == "BooleanField" else self[name].data or ""
                for name in self.FIELDS}
