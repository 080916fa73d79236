"""Who may open what: sign-in and admin guards for views."""
from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def admin_required(view):
    """Signed-in admins only; anyone else signed in gets 404, as if the page were not there."""

    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if not current_user.is_admin:
            abort(404)
        return view(*args, **kwargs)

    return guarded
