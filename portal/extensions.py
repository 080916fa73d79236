"""Flask extensions, created unbound and initialised in the app factory."""
import time

from flask import current_app, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from limits import parse
from werkzeug.exceptions import TooManyRequests


class PortalLoginManager(LoginManager):
    """Flask-Login's strong session protection, applied to signed-in sessions only.

    Flask-Login checks any non-empty session. An anonymous one (a CSRF token, a chosen
    language) never carries the identifier, so every answer to it, a stylesheet or the
    favicon included, rewrote the session cookie; an answer to a request sent before
    "change language" could land after it and undo the change. Here a session without a
    signed-in employee is left alone.

    And a session restored from the remember cookie got no identifier, so the next page
    failed the check and "Remember me" lasted one page. It is bound to the browser that
    restores it, in the same answer, as Flask-Login's documentation says it should be.
    A remember cookie whose session the server has ended is deleted at its first use.
    """

    def _session_protection_failed(self):
        if "_user_id" not in session:
            return False
        return super()._session_protection_failed()

    def _load_user_from_remember_cookie(self, cookie):
        user = super()._load_user_from_remember_cookie(cookie)
        if user is not None:
            session["_id"] = self._session_identifier_generator()
        else:  # a session that has ended (or a forged cookie): delete the cookie in this answer
            session.pop("_user_id", None)
            session.pop("_fresh", None)
            session["_remember"] = "clear"
        return user


babel = Babel()
csrf = CSRFProtect()
login_manager = PortalLoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def _over_limit(setting, kind, subject, *, count):
    """Seconds to wait when `subject` is past the limit in config[`setting`], else None; counts one try if `count`.

    Counted where Flask-Limiter counts, under its key prefix, and as forgiving of a storage
    outage as RATELIMIT_SWALLOW_ERRORS makes it.
    """
    if not limiter.enabled:
        return None
    config = current_app.config
    item = parse(config[setting])
    key = (config.get("RATELIMIT_KEY_PREFIX", ""), kind, subject)
    try:
        if (limiter.limiter.hit if count else limiter.limiter.test)(item, *key):
            return None
        reset = limiter.limiter.get_window_stats(item, *key).reset_time
    except Exception:
        if not config.get("RATELIMIT_SWALLOW_ERRORS"):
            raise
        current_app.logger.exception("The rate-limit storage failed; this %s is let through.", kind)
        return None
    return max(1, int(reset - time.time()) + 1)


def spend_account_test(actor):
    """Count one account test for `actor`; past PORTAL_ACCOUNT_TEST_RATE_LIMIT, answer 429.

    Each test connects to servers the user names, so tests are capped per employee, whether
    they come from the form's Test account or from the API (a test, a create, a changed server).
    """
    wait = _over_limit("PORTAL_ACCOUNT_TEST_RATE_LIMIT", "account-test", f"employee:{actor.id}", count=True)
    if wait is not None:
        raise TooManyRequests(retry_after=wait)


def bearer_refusals_wait(address):
    """Seconds a client address must wait after too many refused bearer tokens, else None.

    The API's own limit counts per token value, so someone trying a new value on every request
    was never slowed: refusals are also counted per address (PORTAL_API_FAILED_AUTH_RATE_LIMIT),
    and past the limit that address is refused before any token is looked at.
    """
    return _over_limit("PORTAL_API_FAILED_AUTH_RATE_LIMIT", "api-refused", f"address:{address}", count=False)


def count_bearer_refusal(address):
    """Count one refused bearer token against the client address."""
    _over_limit("PORTAL_API_FAILED_AUTH_RATE_LIMIT", "api-refused", f"address:{address}", count=True)
