"""The directory settings form (Account management → Directory)."""
import os

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import Optional, ValidationError

from portal.forms import max_length, not_blank, single_line, strip

DN_MAX = 1024


def ldap_url(form, field):
    """ldap:// (always upgraded with StartTLS) or ldaps://."""
    if field.data and not field.data.lower().startswith(("ldap://", "ldaps://")):
        raise ValidationError(_l("Use an address starting with ldaps:// or ldap:// (StartTLS is always used)."))


def readable_file(form, field):
    if field.data and not os.path.isfile(field.data):
        raise ValidationError(_l("No such file on the server."))


def search_filter(form, field):
    if field.data and not (field.data.startswith("(") and field.data.endswith(")")):
        raise ValidationError(_l("An LDAP filter is written in parentheses, e.g. (objectClass=person)."))


def _text(label, *validators, limit=255, description=None):
    return StringField(label, filters=[strip], description=description,
                       validators=[*validators, max_length(limit), single_line])


class DirectoryForm(FlaskForm):
    url = _text(_l("Directory address"), not_blank, ldap_url, description=_l("e.g. ldaps://dc.example.com"))
    ca_file = _text(_l("CA certificate file"), Optional(), readable_file, limit=1024,
                    description=_l("Leave empty to trust the system's certificate authorities."))
    bind_dn = _text(_l("Bind DN"), Optional(), limit=DN_MAX)
    bind_password = PasswordField(_l("Bind password"), validators=[Optional(), max_length(), single_line],
                                  description=_l("Stored encrypted. Leave empty to keep the current one."))
    base_dn = _text(_l("Base DN"), not_blank, limit=DN_MAX)
    search_filter = _text(_l("Search filter"), not_blank, search_filter, limit=1024)
    admin_group_dn = _text(_l("Admin group DN"), Optional(), limit=DN_MAX,
                           description=_l("Its members get the admin role; leave empty to keep roles as they are."))
    name_attribute = _text(_l("Name attribute"), not_blank, limit=64)
    mail_attribute = _text(_l("E-mail attribute"), not_blank, limit=64)
    title_attribute = _text(_l("Position attribute"), Optional(), limit=64)
    department_attribute = _text(_l("Department attribute"), Optional(), limit=64)
    manager_attribute = _text(_l("Manager attribute"), Optional(), limit=64)

    FIELDS = ("url", "ca_file", "bind_dn", "bind_password", "base_dn", "search_filter", "admin_group_dn",
              "name_attribute", "mail_attribute", "title_attribute", "department_attribute", "manager_attribute")

    def values(self):
        return {name: getattr(self, name).data or "" for name in self.FIELDS}
