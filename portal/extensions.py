"""Flask extensions, created unbound and initialised in the app factory."""
from flask import session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


class PortalLoginManager(LoginManager):
    """Flask-Login's strong session protection, applied to signed-in sessions only.

    Flask-Login checks any non-empty session. An anonymous one (a CSRF token, a chosen
    language) never carries the identifier, so every answer to it, a stylesheet or the
    favicon included, rewrote the session cookie; an answer to a request sent before
    "change language" could land after it and undo the change. And a session restored
    from the remember cookie gets no identifier either, so "Remember me" lasted one page.
    Here a session without a signed-in employee is left alone, and a restored one is bound
    to the browser that restored it, as Flask-Login's documentation says it should be.
    """

    def _session_protection_failed(self):
        if "_user_id" not in session:
            return False
        if "_id" not in session:
            session["_id"] = self._session_identifier_generator()
        return super()._session_protection_failed()


babel = Babel()
csrf = CSRFProtect()
login_manager = PortalLoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
