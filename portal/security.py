"""Security headers, cookie defaults, and where a redirect may go."""
import datetime
from urllib.parse import urlsplit

from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import config as login_config
from flask_login import current_user

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)


def configure_cookies(app):
    """HttpOnly, SameSite=Lax, Secure unless plain-http development asks otherwise; remembered PORTAL_REMEMBER_DAYS."""
    secure = not app.config.get("PORTAL_INSECURE_COOKIES")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="portal_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_DURATION=datetime.timedelta(days=app.config["PORTAL_REMEMBER_DAYS"]),
    )


class PrefixSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session whose cookie path is the prefix the portal is served under.

    Behind nginx at /mail/ (X-Forwarded-Prefix through ProxyFix) the session cookie is sent to
    /mail/ only, not to every other application on the host. SESSION_COOKIE_PATH, when set, wins.
    """

    def get_cookie_path(self, app):
        return app.config.get("SESSION_COOKIE_PATH") or request.script_root or "/"


def remember_cookie_under_prefix(response):
    """The remember cookie at the prefix the portal is served under, like the session cookie.

    Flask-Login writes and deletes it at one REMEMBER_COOKIE_PATH ("/") for every request; behind nginx at /mail/ it
    would go to every other application on the host. Its Set-Cookie is moved to the prefix here (a deletion also
    deletes a cookie left at "/" before this). REMEMBER_COOKIE_PATH, when set, wins.
    """
    prefix = request.script_root
    if not prefix or current_app.config.get("REMEMBER_COOKIE_PATH"):
        return response
    name = current_app.config.get("REMEMBER_COOKIE_NAME", login_config.COOKIE_NAME) + "="
    cookies = response.headers.getlist("Set-Cookie")
    if not any(cookie.startswith(name) for cookie in cookies):
        return response
    response.headers.remove("Set-Cookie")
    for cookie in cookies:
        attributes = [part.strip() for part in cookie.split(";")]
        if cookie.startswith(name) and "Path=/" in attributes:
            if "Max-Age=0" in attributes:
                response.headers.add("Set-Cookie", cookie)
            attributes[attributes.index("Path=/")] = f"Path={prefix}"
            cookie = "; ".join(attributes)
        response.headers.add("Set-Cookie", cookie)
    return response


def add_security_headers(response):
    """Headers every answer carries; pages behind sign-in are never cached."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if current_user.is_authenticated and request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def local_target(target):
    """The target if it is a path on this site, else None: never a way to send someone elsewhere.

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
    "/\\t/evil.example" and "/\\\\evil.example" would leave the site; such targets are refused.
    """
    if not target or any(ord(char) < 0x20 or char in "\\\x7f" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
