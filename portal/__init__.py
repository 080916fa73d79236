"""The external-addresses portal: which mailbox each letter to an external contact leaves from."""
import os
from pathlib import Path

from flask import Flask
from flask_babel import get_locale, lazy_gettext
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from portal import config as portal_config
from portal import db, logs
from portal import secret_box
from portal.extensions import babel, csrf, limiter, login_manager
from portal.htmx import htmx
from portal.i18n import LANGUAGE_NAMES, select_locale
from portal.security import (PrefixSessionInterface, add_security_headers, configure_cookies,
                             remember_cookie_under_prefix)

ROOT = Path(__file__).resolve().parent.parent


def create_app(config=None):
    """Create the portal: defaults, then instance/config.py, then PORTAL_* variables, then `config`."""
    config = dict(config or {})
    instance_path = config.pop("INSTANCE_PATH", None) or os.environ.get("PORTAL_INSTANCE_PATH")
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=instance_path,
        instance_relative_config=True,
    )
    app.config.from_mapping(portal_config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_mapping(portal_config.from_environment())
    if config:
        app.config.from_mapping(config)
    portal_config.private_folder(app.instance_path)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = portal_config.instance_secret(app.instance_path, "secret_key")

    configure_cookies(app)
    app.session_interface = PrefixSessionInterface()
    app.config["MAX_CONTENT_LENGTH"] = app.config["PORTAL_MAX_REQUEST_BYTES"]
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(ROOT / "portal" / "translations"))
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["PORTAL_RATELIMIT_STORAGE"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Redis down for a few seconds must not turn a stored letter or a sign-in into a 500: Flask-Limiter
    # counts in memory meanwhile (and logs "falling back to in-memory storage"), and swallows what is left.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    proxies = int(app.config.get("PORTAL_PROXY_COUNT") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies
        )

    logs.init_app(app)
    # Mailbox secrets are decrypted with this app's own configured keys, by pages, API, queue and commands alike.
    app.extensions["portal_secret_box"] = secret_box.install(
        secret_box.SecretBox.from_config(app.config, app.instance_path))
    app.url_map.converters["int"] = BoundedIntegerConverter  # before any route is added
    db.init_app(app)
    htmx.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.after_request(remember_cookie_under_prefix)  # registered before Flask-Login's hook: runs after it
    _init_login(app)
    app.after_request(add_security_headers)

    @app.context_processor
    def page_globals():
        return {
            "current_language": str(get_locale()),
            "language_names": LANGUAGE_NAMES,
        }

    from portal import errors
    from portal.views import register_blueprints

    errors.init_app(app)
    register_blueprints(app)
    from portal.cli import register_commands

    register_commands(app)
    from portal import notifications, portal_mail  # the notification centre hears the domain events

    notifications.listen()
    portal_mail.configure(base_url=app.config["PORTAL_BASE_URL"], url_map=app.url_map,
                          default_language=app.config["PORTAL_DEFAULT_LANGUAGE"])
    from portal import openid  # where identity providers may be reached (PORTAL_OIDC_ALLOWED_HOSTS)

    openid.configure(app.config)
    return app


class BoundedIntegerConverter(IntegerConverter):
    """`<int:…>` that reads an id too large for a database as 0, which names no row: a plain 404.

    Refusing to match instead would make Werkzeug answer 405 when the same path has rules
    for other methods, since it compares methods before it converts.
    """

    def to_python(self, value):
        number = super().to_python(value)
        return number if number <= db.MAX_ID else 0


def _init_login(app):
    from portal.sessions import employee_for_session

    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = lazy_gettext("Please sign in to open this page.")
    login_manager.login_message_category = "info"

    @login_manager.unauthorized_handler
    def sign_in_first():
        # An htmx request must not swap the sign-in page into a fragment: send the whole page there.
        from flask import flash, redirect, request, url_for

        from portal.htmx import is_htmx

        target = url_for("auth.sign_in", next=request.full_path.rstrip("?") if request.method == "GET" else None)
        if is_htmx():
            return "", 401, {"HX-Redirect": target}
        flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(target)

    @login_manager.user_loader
    def load_employee(session_token):
        # The token names a session the server keeps; an ended one loads nobody (portal/sessions.py).
        return employee_for_session(session_token)
