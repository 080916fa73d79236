"""Saving a settings page whose one secret is kept encrypted (Account management → Directory, → Sign-in)."""
import secrets

from flask import current_app

from portal.admin_settings import SecretNotKept
from portal.secret_box import active_box


def stored(form, store, secret_again) -> bool:
    """Keep the form's values with ``store`` (a PageSettings' ``store``); whether they were kept. When a blank
    secret may not keep the stored (or configured) one, ``secret_again`` goes beside the secret field instead."""
    try:
        store(active_box(), form.values(), secrets.token_hex(16), current_app.config)
    except SecretNotKept as refused:
        form[refused.secret_name].errors.append(secret_again)
        return False
    return True
